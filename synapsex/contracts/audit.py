"""audit-service: compliance records ("who did what, when, and was it successful?").

Records are append-only (no message updates or deletes one) and hash-chained per tenant with
SHA-256: a tenant's records have consecutive ``seq`` numbers from 1, each carries the ``hash`` of
the one before as ``prev_hash`` (the first carries :data:`GENESIS_HASH`), and ``hash`` is
:func:`audit_record_hash` of the record's other fields. Anyone holding the records (the
:class:`AuditRecordView` replies) can check them with the same function; the service does it for a
whole chain with :class:`VerifyAuditChain`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from synapsex.contracts.common import Page, PageRequest, check_choice, check_text
from synapsex.contracts.message import Message, Reply

SERVICE = "audit-service"

OUTCOMES: tuple[str, ...] = ("SUCCESS", "FAILURE", "DENIED")
#: the ``prev_hash`` of a tenant's first record
GENESIS_HASH = "0" * 64
#: the fields the hash covers: every field of a record except ``hash`` itself
HASHED_FIELDS: tuple[str, ...] = (
    "id",
    "tenant_id",
    "seq",
    "at",
    "actor_member_id",
    "actor_key_id",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "error_code",
    "request_id",
    "prev_hash",
)

ID_MAX_LENGTH = 40
NAME_MAX_LENGTH = 100
RESOURCE_ID_MAX_LENGTH = 255


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # naive datetimes are taken as UTC; always ISO 8601 in UTC with microseconds
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.isoformat(timespec="microseconds")
    return value


def canonical_audit_record(record: Mapping[str, Any]) -> bytes:
    """The bytes an audit record's hash is computed over (the one definition, used to write
    and to verify): JSON of :data:`HASHED_FIELDS` with sorted keys, no white space
    (``separators=(",", ":")``), UTF-8 (``ensure_ascii=False``), ``at`` as ISO 8601 UTC with
    microseconds (``2025-01-31T12:00:00.123456+00:00``)."""
    data = {name: _canonical_value(record[name]) for name in HASHED_FIELDS}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def audit_record_hash(record: Mapping[str, Any]) -> str:
    """Hex SHA-256 of :func:`canonical_audit_record`; ``record`` maps at least
    :data:`HASHED_FIELDS` (a view's fields: ``dataclasses.asdict(view)``)."""
    return hashlib.sha256(canonical_audit_record(record)).hexdigest()


def _check_optional(value: str | None, field: str, max_length: int) -> None:
    if value is not None:
        check_text(value, field, max_length=max_length)


# ---------------------------------------------------------------------------- replies


class AuditRecordView(Reply):
    id: str
    tenant_id: str
    #: position in the tenant's chain: 1, 2, 3, … without gaps
    seq: int
    #: when the service recorded it (UTC)
    at: datetime
    actor_member_id: str | None
    actor_key_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    #: one of :data:`OUTCOMES`
    outcome: str
    error_code: str | None
    request_id: str | None
    #: the previous record's ``hash`` (:data:`GENESIS_HASH` for ``seq`` 1)
    prev_hash: str
    #: :func:`audit_record_hash` of the fields above
    hash: str


class ChainVerification(Reply):
    """The result of :class:`VerifyAuditChain`.

    ``checked`` counts the records examined, the broken one included (the chain's length when
    ``ok``). ``first_broken_id`` is the first record, in ``seq`` order, whose stored hash does not
    match its fields, whose ``prev_hash`` is not the previous record's hash, or whose ``seq`` does
    not follow the previous one (so a deleted record is reported as the one after the gap). It is
    ``None`` when ``ok``, and also when the chain is intact but ends early: records at its end
    are missing (the service's own record of the head is further on).
    """

    ok: bool
    checked: int
    first_broken_id: str | None


# ---------------------------------------------------------------------------- messages


class RecordAudit(Message, service=SERVICE):
    """Append a record to the tenant's chain. The service sets ``id``, ``at``, ``seq``,
    ``prev_hash`` and ``hash``. Replies :class:`AuditRecordView`; :class:`Conflict` only if
    the chain stays contended after many retries."""

    tenant_id: str
    #: what was done, e.g. ``"member.add"``
    action: str
    #: what kind of thing it was done to, e.g. ``"member"``
    resource_type: str
    #: one of :data:`OUTCOMES`
    outcome: str
    actor_member_id: str | None = None
    actor_key_id: str | None = None
    resource_id: str | None = None
    #: the contract error code of a ``FAILURE`` or ``DENIED``, e.g. ``"FORBIDDEN"``
    error_code: str | None = None
    request_id: str | None = None

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=ID_MAX_LENGTH)
        check_text(self.action, "action", max_length=NAME_MAX_LENGTH)
        check_text(self.resource_type, "resource_type", max_length=NAME_MAX_LENGTH)
        check_choice(self.outcome, OUTCOMES, "outcome")
        _check_optional(self.actor_member_id, "actor_member_id", ID_MAX_LENGTH)
        _check_optional(self.actor_key_id, "actor_key_id", ID_MAX_LENGTH)
        _check_optional(self.resource_id, "resource_id", RESOURCE_ID_MAX_LENGTH)
        _check_optional(self.error_code, "error_code", NAME_MAX_LENGTH)
        _check_optional(self.request_id, "request_id", NAME_MAX_LENGTH)


class ListAuditRecords(PageRequest, service=SERVICE):
    """Replies ``Page[AuditRecordView]`` of one tenant, **newest first** (``seq`` descending),
    optionally only one ``action`` and/or ``outcome``.

    The cursor is a record id: ``end_cursor`` is the id of the page's last record; pass it as
    ``after`` for the records before it in the chain. An ``after`` that is not a record of the
    tenant is :class:`InvalidInput` on ``after``.
    """

    tenant_id: str
    action: str | None = None
    outcome: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        check_text(self.tenant_id, "tenant_id", max_length=ID_MAX_LENGTH)
        _check_optional(self.action, "action", NAME_MAX_LENGTH)
        if self.outcome is not None:
            check_choice(self.outcome, OUTCOMES, "outcome")


class VerifyAuditChain(Message, service=SERVICE):
    """Recompute the tenant's chain in ``seq`` order. Replies :class:`ChainVerification`
    (``ok=True, checked=0`` for a tenant without records)."""

    tenant_id: str

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=ID_MAX_LENGTH)


__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "OUTCOMES",
    "SERVICE",
    "AuditRecordView",
    "ChainVerification",
    "ListAuditRecords",
    "Page",
    "RecordAudit",
    "VerifyAuditChain",
    "audit_record_hash",
    "canonical_audit_record",
]
