"""auth-service: API keys bound to a tenant, a member and a role.

A key is ``sx_`` followed by 43 URL-safe characters (32 random bytes). It is returned once, by
:class:`CreateApiKey`; only its SHA-256 and a short prefix are stored.

A key may expire (``expires_at``): from then on :class:`Authenticate` refuses it, as a revoked
one. The MCP router makes such short-lived keys for the tools it runs on synapsex-ops-mcp (and
revokes them after the call, see ``docs/mcp.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from synapsex.contracts.common import PageRequest, as_utc, check_choice, check_text, secret_field
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply
from synapsex.contracts.tenant import ROLES

SERVICE = "auth-service"
KEY_PREFIX = "sx_"


class ApiKeyView(Reply):
    id: str
    tenant_id: str
    member_id: str
    name: str
    role: str
    #: the key's first characters, to tell keys apart
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    #: when the key stops authenticating; ``None``: never (until revoked)
    expires_at: datetime | None = None


class CreatedApiKey(Reply):
    #: the plaintext key: shown once, never stored
    key: str = secret_field()
    api_key: ApiKeyView


class Principal(Reply):
    """Who a request acts for."""

    tenant_id: str
    member_id: str
    role: str
    key_id: str


class CreateApiKey(Message, service=SERVICE):
    """Replies :class:`CreatedApiKey`. With ``expires_at`` (a time without an offset is UTC;
    it must be in the future) the key stops authenticating at that time."""

    tenant_id: str
    member_id: str
    role: str
    name: str
    expires_at: datetime | None = None

    def validate(self) -> None:
        check_choice(self.role, ROLES, "role")
        check_text(self.name, "name", max_length=100)
        if self.expires_at is not None and as_utc(self.expires_at) <= datetime.now(UTC):
            raise InvalidInput("expiresAt", "must be in the future")


class Authenticate(Message, service=SERVICE):
    """Replies :class:`Principal`; :class:`Unauthenticated` for a missing, unknown, revoked or
    expired key. Updates ``last_used_at`` (at most once a minute per key)."""

    key: str = secret_field()


class RevokeApiKey(Message, service=SERVICE):
    """Replies the revoked :class:`ApiKeyView`; revoking twice is harmless."""

    tenant_id: str
    key_id: str


class RevokeMemberKeys(Message, service=SERVICE):
    """Revoke every key of a member (when the member leaves the tenant); replies how many."""

    tenant_id: str
    member_id: str


class ListApiKeys(PageRequest, service=SERVICE):
    """Replies ``Page[ApiKeyView]``, oldest first, revoked keys included."""

    tenant_id: str


__all__ = [
    "KEY_PREFIX",
    "ApiKeyView",
    "Authenticate",
    "CreateApiKey",
    "CreatedApiKey",
    "ListApiKeys",
    "Principal",
    "RevokeApiKey",
    "RevokeMemberKeys",
]
