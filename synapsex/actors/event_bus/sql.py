"""The event bus's hot statements, for SQLite and PostgreSQL.

They are written once with ``?`` placeholders and ``{now}`` for the database clock in epoch
milliseconds, then rendered per engine: PostgreSQL gets ``$1 …`` placeholders, ``now()`` and
``FOR UPDATE SKIP LOCKED`` (so concurrent claimers on several processes never lease a row twice and
never wait on each other's rows); SQLite, with one writer at a time, needs no lock clause.

A claim takes, in stream order, the group's deliveries that are pending (or whose lease lapsed) and
due, skipping any whose key has an earlier delivery not yet acked or dead-lettered, or a delivery
under a current lease (a redriven dead letter is behind a later event of its key), so events that
share a key are leased one at a time, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from synapsex.runtime.orm import numbered_placeholders

_NOW = {
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    "postgres": "CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
}
_SKIP_LOCKED = {"sqlite": "", "postgres": "FOR UPDATE SKIP LOCKED"}
_LEAST = {"sqlite": "min", "postgres": "LEAST"}

#: the backoff after attempt ``n`` is ``base * 2 ** (n - 1)`` ms, at most ``cap``; ``{shift}`` is
#: ``n - 1`` (capped so the shift cannot overflow a 64-bit integer)
_BACKOFF = "{least}(CAST(? AS BIGINT) << {least}({shift}, 30), CAST(? AS BIGINT))"

_DELIVERY_COLUMNS = (
    "event_id, seq, state, attempt, lease_id, lease_expires_at_ms, available_at_ms, last_error"
)
EVENT_COLUMNS = "id, tenant_id, seq, topic, key, payload, occurred_at_ms, trace_id, source"

_TEMPLATES = {
    "now": "SELECT {now} AS now_ms",
    # Reserve `n` seqs for a tenant; the row lock orders the tenant's publishes by commit.
    "reserve_seqs": (
        "INSERT INTO event_streams (tenant_id, last_seq) VALUES (?, ?) "
        "ON CONFLICT (tenant_id) DO UPDATE "
        "SET last_seq = event_streams.last_seq + excluded.last_seq "
        "RETURNING last_seq, {now} AS now_ms"
    ),
    "insert_event": (
        "INSERT INTO events (id, tenant_id, seq, topic, key, payload, occurred_at_ms, trace_id, "
        "source, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "insert_delivery": (
        "INSERT INTO event_deliveries (group_id, event_id, seq, key, state, attempt, "
        "available_at_ms, occurred_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
    ),
    "tenant_groups": "SELECT id, topics FROM event_consumer_groups WHERE tenant_id = ?",
    "notify": "SELECT pg_notify(?, ?)",
    # A lapsed lease on the group's last attempt becomes a dead letter.
    "expire_leases": (
        "UPDATE event_deliveries SET state = 'dead_letter', lease_id = NULL, "
        "last_error = 'lease expired on attempt ' || CAST(attempt AS TEXT), "
        "updated_at_ms = {now} "
        "WHERE id IN (SELECT id FROM event_deliveries WHERE group_id = ? AND state = 'leased' "
        "AND lease_expires_at_ms <= {now} AND attempt >= ? {skip_locked})"
    ),
    "claim": (
        "UPDATE event_deliveries SET state = 'leased', attempt = attempt + 1, lease_id = ?, "
        "lease_expires_at_ms = {now} + ?, "
        "available_at_ms = {now} + ? + " + _BACKOFF.replace("{shift}", "attempt") + ", "
        "updated_at_ms = {now} "
        "WHERE id IN ("
        " SELECT d.id FROM event_deliveries d"
        " WHERE d.group_id = ? AND d.state IN ('pending', 'leased') AND d.available_at_ms <= {now}"
        " AND d.attempt < ?"
        " AND (d.key IS NULL OR NOT EXISTS ("
        "  SELECT 1 FROM event_deliveries e WHERE e.group_id = d.group_id AND e.key = d.key"
        "  AND e.id <> d.id AND (e.seq < d.seq AND e.state IN ('pending', 'leased')"
        "  OR e.state = 'leased' AND e.lease_expires_at_ms > {now})))"
        " ORDER BY d.seq LIMIT ? {skip_locked}) "
        f"RETURNING {_DELIVERY_COLUMNS}"
    ),
    # Ack, nack and extend change a delivery only under its current, unexpired lease.
    "ack": (
        "UPDATE event_deliveries SET state = 'acked', lease_id = NULL, lease_expires_at_ms = NULL, "
        "updated_at_ms = {now} "
        "WHERE group_id = ? AND event_id = ? AND lease_id = ? AND state = 'leased' "
        "AND lease_expires_at_ms > {now} "
        f"RETURNING {_DELIVERY_COLUMNS}"
    ),
    "ack_many": (
        "UPDATE event_deliveries SET state = 'acked', lease_id = NULL, lease_expires_at_ms = NULL, "
        "updated_at_ms = {now} "
        "WHERE group_id = ? AND state = 'leased' AND lease_expires_at_ms > {now} "
        "AND (event_id, lease_id) IN (VALUES {pairs}) "
        "RETURNING event_id"
    ),
    "nack": (
        "UPDATE event_deliveries SET "
        "state = CASE WHEN attempt >= ? THEN 'dead_letter' ELSE 'pending' END, "
        "available_at_ms = {now} + COALESCE(CAST(? AS BIGINT), "
        + _BACKOFF.replace("{shift}", "attempt - 1")
        + "), "
        "lease_id = NULL, lease_expires_at_ms = NULL, last_error = ?, updated_at_ms = {now} "
        "WHERE group_id = ? AND event_id = ? AND lease_id = ? AND state = 'leased' "
        "AND lease_expires_at_ms > {now} "
        f"RETURNING {_DELIVERY_COLUMNS}"
    ),
    "extend": (
        "UPDATE event_deliveries SET lease_expires_at_ms = {now} + ?, "
        "available_at_ms = {now} + ? + " + _BACKOFF.replace("{shift}", "attempt - 1") + ", "
        "updated_at_ms = {now} "
        "WHERE group_id = ? AND event_id = ? AND lease_id = ? AND state = 'leased' "
        "AND lease_expires_at_ms > {now} "
        f"RETURNING {_DELIVERY_COLUMNS}"
    ),
    "delivery": (
        f"SELECT {_DELIVERY_COLUMNS} FROM event_deliveries WHERE group_id = ? AND event_id = ?"
    ),
    "counts": (
        "SELECT group_id,"
        " SUM(CASE WHEN state = 'pending' OR (state = 'leased' AND lease_expires_at_ms <= {now})"
        "  THEN 1 ELSE 0 END) AS pending,"
        " SUM(CASE WHEN state = 'leased' AND lease_expires_at_ms > {now} THEN 1 ELSE 0 END)"
        "  AS leased,"
        " SUM(CASE WHEN state = 'acked' THEN 1 ELSE 0 END) AS acked,"
        " SUM(CASE WHEN state = 'dead_letter' THEN 1 ELSE 0 END) AS dead_letter,"
        " MIN(CASE WHEN state IN ('pending', 'leased') THEN occurred_at_ms END) AS oldest_ms,"
        " {now} AS now_ms"
        " FROM event_deliveries WHERE group_id IN ({ids}) GROUP BY group_id"
    ),
    "dead_letters": (
        f"SELECT {_DELIVERY_COLUMNS} FROM event_deliveries "
        "WHERE group_id = ? AND state = 'dead_letter' AND seq > ? ORDER BY seq LIMIT ?"
    ),
    "redrive": (
        "UPDATE event_deliveries SET state = 'pending', attempt = 0, available_at_ms = {now}, "
        "updated_at_ms = {now} WHERE group_id = ? AND state = 'dead_letter' {only} "
        "RETURNING event_id, seq"
    ),
    "delete_dead": (
        "DELETE FROM event_deliveries WHERE group_id = ? AND state = 'dead_letter' {only} "
        "RETURNING event_id, seq"
    ),
    "events_by_id": f"SELECT {EVENT_COLUMNS} FROM events WHERE id IN ({{ids}})",
    "event": f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ? AND id = ?",
    "stream": (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ? AND seq > ? AND seq <= ? "
        "ORDER BY seq LIMIT ?"
    ),
    "head": "SELECT last_seq FROM event_streams WHERE tenant_id = ?",
    "heads": "SELECT tenant_id, last_seq FROM event_streams WHERE tenant_id IN ({ids})",
    "idempotent": (
        f"SELECT {EVENT_COLUMNS}, idempotency_key FROM events "
        "WHERE tenant_id = ? AND idempotency_key IN ({ids})"
    ),
    "forget_idempotency": "UPDATE events SET idempotency_key = NULL WHERE id IN ({ids})",
    # Retention, in two single statements (no transaction: on SQLite a read that then writes
    # could fail against another process's writer): first the deliveries of events past the
    # cut-off that every group has acked, then the events left with no delivery at all.
    "prune_deliveries": (
        "DELETE FROM event_deliveries WHERE event_id IN ("
        " SELECT e.id FROM events e WHERE e.occurred_at_ms < ?"
        " AND EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = e.id)"
        " AND NOT EXISTS (SELECT 1 FROM event_deliveries d"
        "  WHERE d.event_id = e.id AND d.state <> 'acked')"
        " LIMIT ?) RETURNING event_id"
    ),
    "prune_events": (
        "DELETE FROM events WHERE id IN ("
        " SELECT e.id FROM events e WHERE e.occurred_at_ms < ?"
        " AND NOT EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = e.id)"
        " LIMIT ?) RETURNING id"
    ),
    "delete_group_deliveries": "DELETE FROM event_deliveries WHERE group_id = ?",
}
# PostgreSQL only (a data-modifying WITH): the claim and its events in one statement, the
# events joined by key from the claimed rows (a separate ``id IN (…)`` read is planned as a
# scan of the whole table while it is mid-sized); event columns come as ``e_<column>``
_TEMPLATES["claim_with_events"] = (
    "WITH c AS ("
    + _TEMPLATES["claim"]
    + ") SELECT c.*, "
    + ", ".join(f"e.{col} AS e_{col}" for col in EVENT_COLUMNS.split(", "))
    + " FROM c JOIN events e ON e.id = c.event_id"
)


@dataclass(frozen=True)
class Dialect:
    """The statements rendered for one engine."""

    engine: str

    def sql(self, name: str, **parts: str) -> str:
        """Statement ``name`` with its ``{ids}`` / ``{pairs}`` / ``{only}`` parts filled in."""
        text = _TEMPLATES[name].format(
            now=_NOW[self.engine],
            skip_locked=_SKIP_LOCKED[self.engine],
            least=_LEAST[self.engine],
            **parts,
        )
        if self.engine == "postgres":
            text = numbered_placeholders(text)
        return text

    @staticmethod
    def marks(n: int) -> str:
        """``?, ?, ?`` for an ``IN (…)`` list of ``n`` values."""
        return ", ".join("?" * n)

    @staticmethod
    def pairs(n: int) -> str:
        return ", ".join(["(?, ?)"] * n)
