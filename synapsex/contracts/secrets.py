"""secrets-service: a tenant's named secrets, versioned, encrypted at rest, revealed only to the
allowed and to services.

**Names** are identifiers: 1 to :data:`MAX_NAME_LENGTH` characters of ``A-Z a-z 0-9 _ - .``,
starting with a letter or ``_`` (``OPENAI_API_KEY``, ``github.token``). Each tenant has its own
names: another tenant's secret is ``NOT_FOUND``.

**Versions**: every :class:`PutSecret` adds version ``latest + 1`` (the first is 1); older
versions stay readable until the secret is deleted. :class:`DeleteSecret` removes the secret
and every version; putting the name again starts at version 1.

**Encryption** (envelope): each version's value is encrypted with AES-256-GCM under a data key
of its own; the data key is stored wrapped (sealed) under the master key. The tenant, the name,
the version and the version's id are the associated data of both, so a value or a wrapped key
copied to another row or tenant does not open (``INTERNAL`` with a clear log line, never a
crash). A master key rotation re-wraps the data keys only (:mod:`synapsex.contracts.keys`).

**Who sees values.** Listing never shows a value. :class:`RevealSecret` is asked by the gateway
for ``revealSecret`` (admins and owners by default, audited there like every mutation).
:class:`GetSecretValue` answers services only (an ask from outside the runtime is
``FORBIDDEN``) and writes an audit record ``secret.fetch`` per call. Values are secret fields
of the messages and replies that carry them: never in ``repr``, logs or dead letters.
"""

from __future__ import annotations

import re
from datetime import datetime

from synapsex.contracts.common import PageRequest, check_text, secret_field
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "secrets-service"

MAX_NAME_LENGTH = 128
#: a value is at most this many bytes of UTF-8
MAX_VALUE_BYTES = 65_536
MAX_DESCRIPTION_LENGTH = 500
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def check_secret_name(value: str, field: str = "name") -> None:
    """A secret's name: an identifier of ``A-Z a-z 0-9 _ - .`` starting with a letter or ``_``."""
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidInput(field, f"must be 1 to {MAX_NAME_LENGTH} characters")
    if not _NAME_RE.fullmatch(value):
        raise InvalidInput(
            field,
            "must start with a letter or _ and hold only letters, digits, _, - or . "
            "(e.g. OPENAI_API_KEY)",
        )


def _check_version(value: int | None) -> None:
    if value is not None and value < 1:
        raise InvalidInput("version", "must be 1 or more (omit it for the latest)")


def _check_value(value: str) -> None:
    if not value:
        raise InvalidInput("value", "must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("value", "must be valid Unicode text") from None
    if size > MAX_VALUE_BYTES:
        raise InvalidInput("value", f"must be at most {MAX_VALUE_BYTES} bytes of UTF-8")


# ---------------------------------------------------------------------------- replies


class SecretView(Reply):
    """A secret without its value."""

    id: str
    tenant_id: str
    name: str
    #: the latest version's description
    description: str | None
    latest_version: int
    created_at: datetime
    #: when the latest version was put
    updated_at: datetime
    #: the member who first put it (``None`` when a service did)
    created_by: str | None


class SecretVersionView(Reply):
    """One version of a secret, without its value."""

    id: str
    name: str
    version: int
    description: str | None
    created_at: datetime
    created_by: str | None


class SecretValue(Reply):
    """A version's value: replied to :class:`RevealSecret` and :class:`GetSecretValue` only."""

    name: str
    version: int
    value: str = secret_field()
    created_at: datetime


# ---------------------------------------------------------------------------- messages


class PutSecret(Message, service=SERVICE):
    """Add a version (creating the secret at version 1); replies :class:`SecretVersionView`.
    ``description`` ``None`` keeps the previous version's."""

    tenant_id: str
    name: str
    value: str = secret_field()
    description: str | None = None
    #: the member putting it, kept as ``created_by``
    member_id: str | None = None

    def validate(self) -> None:
        check_secret_name(self.name)
        _check_value(self.value)
        if self.description is not None:
            check_text(self.description, "description", max_length=MAX_DESCRIPTION_LENGTH)


class GetSecret(Message, service=SERVICE):
    """Replies :class:`SecretView`; ``NotFound`` when the tenant has no such secret."""

    tenant_id: str
    name: str

    def validate(self) -> None:
        check_secret_name(self.name)


class ListSecrets(PageRequest, service=SERVICE):
    """Replies ``Page[SecretView]`` of the tenant's secrets, oldest first."""

    tenant_id: str


class ListSecretVersions(PageRequest, service=SERVICE):
    """Replies ``Page[SecretVersionView]`` of one secret, oldest first."""

    tenant_id: str
    name: str

    def validate(self) -> None:
        super().validate()
        check_secret_name(self.name)


class RevealSecret(Message, service=SERVICE):
    """A version's value (``version`` ``None``: the latest) for the gateway, which has checked
    the policy and audits the reveal. Replies :class:`SecretValue`."""

    tenant_id: str
    name: str
    version: int | None = None

    def validate(self) -> None:
        check_secret_name(self.name)
        _check_version(self.version)


class GetSecretValue(Message, service=SERVICE):
    """A version's value for another service (``FORBIDDEN`` when not asked by a service);
    every answer is audited as ``secret.fetch``. Replies :class:`SecretValue`."""

    tenant_id: str
    name: str
    version: int | None = None

    def validate(self) -> None:
        check_secret_name(self.name)
        _check_version(self.version)


class DeleteSecret(Message, service=SERVICE):
    """Delete a secret and every version; replies its last :class:`SecretView`."""

    tenant_id: str
    name: str

    def validate(self) -> None:
        check_secret_name(self.name)


__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_VALUE_BYTES",
    "SERVICE",
    "DeleteSecret",
    "GetSecret",
    "GetSecretValue",
    "ListSecretVersions",
    "ListSecrets",
    "PutSecret",
    "RevealSecret",
    "SecretValue",
    "SecretVersionView",
    "SecretView",
    "check_secret_name",
]
