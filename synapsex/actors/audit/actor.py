"""audit-service handlers.

Concurrency (several ``synapsex serve`` processes may append to one tenant's chain on one
PostgreSQL database, so the chain's order is decided in the database, never in this actor):

* ``audit_chain_heads`` keeps each tenant's latest ``seq`` and ``hash``. An append is one
  transaction that locks the tenant's head, reads it, inserts the record with ``seq + 1`` and
  ``prev_hash = head.hash``, and moves the head with a conditional update
  (``UPDATE … WHERE tenant_id = ? AND seq = <read seq>``).
* The lock: on PostgreSQL ``SELECT … FOR UPDATE`` on the head row, so a second writer waits for
  the first to commit and then reads the new head (no retry needed). SQLite has no row locks and
  one writer per database; there the transaction starts with a no-op ``UPDATE`` of the head,
  which takes the database's write lock at once (as ``BEGIN IMMEDIATE`` would, waiting up to the
  busy timeout), so the head read after it is current.
* What the lock cannot cover is retried: two first appends of a tenant both insert its head
  (primary key violation), and the unique ``(tenant_id, seq)`` of ``audit_records`` plus the
  conditional head update refuse any append from a stale head. Each refusal rolls back and
  starts again from the new head, at most :data:`MAX_APPEND_ATTEMPTS` times, then
  :class:`Conflict`.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from synapsex.contracts.audit import (
    GENESIS_HASH,
    HASHED_FIELDS,
    AuditRecordView,
    ChainVerification,
    ListAuditRecords,
    RecordAudit,
    VerifyAuditChain,
    audit_record_hash,
)
from synapsex.contracts.common import Page
from synapsex.contracts.errors import Conflict, InvalidInput
from synapsex.runtime import Actor, handler, new_id

from .models import AuditChainHead, AuditRecord

#: appends tried before a contended chain is answered with :class:`Conflict`
MAX_APPEND_ATTEMPTS = 20
#: records read per query while verifying a chain
VERIFY_BATCH = 500


class _StaleHead(Exception):
    """The head moved between reading and updating it: start the append again."""


def record_fields(row: AuditRecord) -> dict[str, Any]:
    """The hashed fields of a stored record."""
    return {name: getattr(row, name) for name in HASHED_FIELDS}


def record_view(row: AuditRecord) -> AuditRecordView:
    return AuditRecordView(**record_fields(row), hash=row.hash)


def _is_sqlite(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "sqlite"


class AuditActor(Actor, service="audit-service", models="synapsex.actors.audit.models"):
    """Owns ``audit_records`` and its bookkeeping table ``audit_chain_heads``."""

    @handler
    async def record(self, msg: RecordAudit) -> AuditRecordView:
        record_id = new_id("aud")
        for attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                return record_view(await self._append(msg, record_id))
            except (IntegrityError, _StaleHead):
                # another writer took this seq: back off a little, then append to the new head
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise Conflict("the tenant's audit chain is too busy; try again", tenant_id=msg.tenant_id)

    async def _append(self, msg: RecordAudit, record_id: str) -> AuditRecord:
        async with in_transaction() as conn:
            heads = AuditChainHead.filter(tenant_id=msg.tenant_id).using_db(conn)
            if _is_sqlite(conn):
                # a write as the first statement takes SQLite's write lock now (see the module)
                await heads.update(seq=F("seq"))
            head = await heads.select_for_update().first()
            seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
            fields: dict[str, Any] = {
                "id": record_id,
                "tenant_id": msg.tenant_id,
                "seq": seq,
                "at": datetime.now(UTC),  # after the lock: `at` grows with seq
                "actor_member_id": msg.actor_member_id,
                "actor_key_id": msg.actor_key_id,
                "action": msg.action,
                "resource_type": msg.resource_type,
                "resource_id": msg.resource_id,
                "outcome": msg.outcome,
                "error_code": msg.error_code,
                "request_id": msg.request_id,
                "prev_hash": prev_hash,
            }
            digest = audit_record_hash(fields)
            if head is None:
                await AuditChainHead.create(
                    tenant_id=msg.tenant_id, seq=seq, hash=digest, using_db=conn
                )
            else:
                moved = await heads.filter(seq=head.seq).update(seq=seq, hash=digest)
                if moved != 1:
                    raise _StaleHead
            return await AuditRecord.create(**fields, hash=digest, using_db=conn)

    @handler
    async def list_records(self, msg: ListAuditRecords) -> Page[AuditRecordView]:
        query = AuditRecord.filter(tenant_id=msg.tenant_id)
        if msg.action is not None:
            query = query.filter(action=msg.action)
        if msg.outcome is not None:
            query = query.filter(outcome=msg.outcome)
        if msg.after:
            # the cursor is a record id; the order is the chain's (seq descending)
            cursor = (
                await AuditRecord.filter(tenant_id=msg.tenant_id, id=msg.after).only("seq").first()
            )
            if cursor is None:
                raise InvalidInput("after", "is not a cursor of this list")
            query = query.filter(seq__lt=cursor.seq)
        rows = await query.order_by("-seq").limit(msg.first + 1)
        items = tuple(record_view(r) for r in rows[: msg.first])
        return Page(
            items=items,
            has_next_page=len(rows) > msg.first,
            end_cursor=items[-1].id if items else None,
        )

    @handler
    async def verify(self, msg: VerifyAuditChain) -> ChainVerification:
        # One transaction, one snapshot: the head and every batch are read as of one moment,
        # so appends committed meanwhile neither show up half-way nor look like tampering.
        async with in_transaction() as conn:
            if not _is_sqlite(conn):  # SQLite's read transactions are snapshots already
                await conn.execute_query(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
            head = await AuditChainHead.filter(tenant_id=msg.tenant_id).using_db(conn).first()
            head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
            checked, expected_prev, last_id = 0, GENESIS_HASH, None
            while True:
                batch = (
                    await AuditRecord.filter(tenant_id=msg.tenant_id, seq__gt=checked)
                    .using_db(conn)
                    .order_by("seq")
                    .limit(VERIFY_BATCH)
                )
                for row in batch:
                    checked += 1
                    if (
                        row.seq != checked  # a gap: a record before this one is missing
                        or row.seq > head_seq  # appended behind the service's back
                        or row.prev_hash != expected_prev
                        or row.hash != audit_record_hash(record_fields(row))
                    ):
                        return ChainVerification(ok=False, checked=checked, first_broken_id=row.id)
                    expected_prev, last_id = row.hash, row.id
                if len(batch) < VERIFY_BATCH:
                    break
        if checked < head_seq:  # intact but cut short: its last records are missing
            return ChainVerification(ok=False, checked=checked, first_broken_id=None)
        if expected_prev != head_hash:  # the last record was replaced (a valid-looking fork)
            return ChainVerification(ok=False, checked=checked, first_broken_id=last_id)
        return ChainVerification(ok=True, checked=checked, first_broken_id=None)
