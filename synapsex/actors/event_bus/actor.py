"""event-bus-service handlers: publish, consumer groups, claims, leases, dead letters, streams.

The hot paths are single SQL statements (see :mod:`.sql`); publishing is one transaction that
takes the tenant's stream row, inserts the events and one delivery per matching group, and (on
PostgreSQL) queues a ``NOTIFY``. After the commit the events are announced on the runtime's
broadcast channel for the tenant (:func:`~synapsex.contracts.events.events_channel`), in ``seq``
order and without gaps, for the live subscriptions of this process. Events committed by other
processes arrive through ``LISTEN`` (PostgreSQL) or a once-a-second look at the stream heads, and
are read back from the database before they are announced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import structlog
from cachetools import TTLCache
from tortoise.transactions import in_transaction

from synapsex.contracts.common import Page
from synapsex.contracts.errors import Conflict, ContractError, InvalidInput, NotFound
from synapsex.contracts.events import (
    IDEMPOTENCY_WINDOW_SECONDS,
    SERVICE,
    AckEvent,
    AckEvents,
    AckResult,
    ChangedDeliveries,
    ClaimEvents,
    ConsumerGroupView,
    CreateConsumerGroup,
    DeleteConsumerGroup,
    DeleteDeadLetters,
    DeliveryView,
    EventDraft,
    EventView,
    ExtendLease,
    GetConsumerGroup,
    GetEvent,
    GroupCounts,
    ListConsumerGroups,
    ListDeadLetters,
    ListEvents,
    NackEvent,
    PublishEvent,
    PublishEvents,
    ReadStream,
    RedriveDeadLetters,
    StreamChunk,
    StreamPosition,
    encode_payload,
    events_channel,
    topic_matcher,
)
from synapsex.runtime import Actor, current_envelope, handler, new_id
from synapsex.runtime.orm import db_errors, insert_row_chunks

from .internal import Maintain, StreamCommitted
from .listener import NotifyListener
from .models import ConsumerGroup
from .sql import Dialect

log = structlog.get_logger("synapsex.event_bus")

#: a group's settings are remembered this long (a group deleted by another process is noticed
#: within this many seconds)
GROUP_CACHE_SECONDS = 5.0
#: how often the actor looks at stream heads for live listeners and prunes old events
MAINTAIN_INTERVAL_SECONDS = 1.0
PRUNE_INTERVAL_SECONDS = 60.0
#: how often claims on a group turn its exhausted lapsed leases into dead letters
EXPIRE_INTERVAL_SECONDS = 1.0
PRUNE_BATCH = 1_000
#: at most this many missed events are read back to announce at once; listeners that need
#: more read the stream themselves (they notice the jump in ``seq``)
ANNOUNCE_LIMIT = 1_000
_IDEMPOTENCY_WINDOW_MS = int(IDEMPOTENCY_WINDOW_SECONDS * 1000)


@dataclass(slots=True)
class _Group:
    id: str
    name: str
    max_attempts: int
    visibility_ms: int
    backoff_ms: int
    max_backoff_ms: int
    #: when a claim next moves the group's exhausted lapsed leases to dead letters (monotonic)
    expire_due: float = 0.0


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


@lru_cache(maxsize=4096)
def _group_matcher(topics_json: str) -> Any:
    return topic_matcher(json.loads(topics_json))


def event_view(row: Any, prefix: str = "", *, raw: bool = False) -> EventView:
    """The event in ``row``, whose event columns may carry a ``prefix``; with ``raw``, its
    payload as the stored JSON text (``payload_json``), not decoded."""
    stored = row[prefix + "payload"]
    return EventView(
        id=row[prefix + "id"],
        tenant_id=row[prefix + "tenant_id"],
        seq=row[prefix + "seq"],
        topic=row[prefix + "topic"],
        payload=None if raw else json.loads(stored),
        key=row[prefix + "key"],
        occurred_at=_at(row[prefix + "occurred_at_ms"]),  # type: ignore[arg-type]
        trace_id=row[prefix + "trace_id"],
        source=row[prefix + "source"],
        payload_json=stored if raw else None,
    )


def _delivery_view(group: _Group, row: Any, event: EventView) -> DeliveryView:
    return DeliveryView(
        group=group.name,
        event=event,
        state=row["state"],
        attempt=row["attempt"],
        lease_id=row["lease_id"],
        lease_expires_at=_at(row["lease_expires_at_ms"]),
        available_at=_at(row["available_at_ms"]),
        last_error=row["last_error"],
    )


class EventBusActor(
    Actor, service=SERVICE, models="synapsex.actors.event_bus.models", concurrency=4
):
    """Owns ``events``, ``event_streams``, ``event_consumer_groups`` and ``event_deliveries``.

    Claims, acks, nacks, lease extensions and reads run side by side (``concurrency``): each is
    one conditional statement the database keeps consistent (``SKIP LOCKED`` on PostgreSQL, one
    writer on SQLite), so concurrent consumers overlap their round trips as they would on raw
    connections. Publishing and everything that uses a transaction or the announce bookkeeping
    runs alone.
    """

    async def on_start(self) -> None:
        db = self.actor_db
        assert db is not None
        self._sql = Dialect(db.config.engine)
        self._connection = db.connection_name
        self._postgres = db.config.engine == "postgres"
        self._channel = f"sx_events_{db.config.schema or db.slug}"
        self._groups: TTLCache[tuple[str, str], _Group] = TTLCache(
            maxsize=10_000, ttl=GROUP_CACHE_SECONDS
        )
        #: per tenant with live listeners here: the last seq announced
        self._announced: dict[str, int] = {}
        self._retention_ms = _ms(self.actor_runtime.settings.event_retention_seconds)
        self._next_prune = 0.0
        self._maintain_queued = False
        self._ticker = asyncio.create_task(self._tick(), name="event-bus-ticker")
        self._listener: NotifyListener | None = None
        if self._postgres:
            self._listener = NotifyListener(db.config.credentials, self._channel, self._on_notify)
            self._listener.start()
        # on_stop runs after a graceful stop only: after a crash (or a kill) the ticker and
        # the LISTEN connection must not outlive this instance, so they end with its task
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _task: self._release())

    def _release(self) -> None:
        self._ticker.cancel()
        if self._listener is not None:
            self._listener.cancel()

    async def on_stop(self) -> None:
        self._ticker.cancel()
        if self._listener is not None:
            await self._listener.stop()

    # ------------------------------------------------------------------ plumbing

    def _client(self) -> Any:
        assert self.actor_db is not None
        return self.actor_db.client()

    async def _query(
        self, name: str, values: Sequence[Any], conn: Any = None, **parts: str
    ) -> list[Any]:
        """Run statement ``name``; the rows it returns, read by column name."""
        client = conn or self._client()
        sql = self._sql.sql(name, **parts)
        if self._postgres:
            # straight to asyncpg: Tortoise's execute_query drops the rows of an UPDATE …
            # RETURNING, and execute_query_dict copies each row into a dict
            async with client.acquire_connection() as connection:
                return await connection.fetch(sql, *values)
        return (await client.execute_query(sql, list(values)))[1]  # sqlite3.Row objects

    def _send_self(self, message: Any) -> bool:
        try:
            self.actor_runtime.tell_nowait(message)
        except ContractError:  # mailbox full or stopping: the next tick catches up
            return False
        return True

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_INTERVAL_SECONDS)
            if not self._maintain_queued:
                self._maintain_queued = self._send_self(Maintain())

    def _on_notify(self, payload: str) -> None:
        tenant_id, first, last = payload.split(" ")
        if self.actor_runtime.broadcast.has_listeners(events_channel(tenant_id)):
            self._send_self(
                StreamCommitted(tenant_id=tenant_id, first_seq=int(first), last_seq=int(last))
            )

    async def _group(self, tenant_id: str, name: str) -> _Group:
        group = self._groups.get((tenant_id, name))
        if group is None:
            group, _row = await self._load_group(tenant_id, name)
        return group

    async def _load_group(self, tenant_id: str, name: str) -> tuple[_Group, ConsumerGroup]:
        """The group and its row read afresh (and remembered again): the remembered one may
        have been deleted, or replaced, by another process."""
        row = await ConsumerGroup.filter(tenant_id=tenant_id, name=name).first()
        if row is None:
            self._groups.pop((tenant_id, name), None)
            raise NotFound(f"consumer group {name!r} not found", field="group")
        group = self._groups[(tenant_id, name)] = _Group(
            id=row.id,
            name=row.name,
            max_attempts=row.max_attempts,
            visibility_ms=row.visibility_timeout_ms,
            backoff_ms=row.retry_backoff_ms,
            max_backoff_ms=row.max_retry_backoff_ms,
        )
        return group, row

    async def _events(self, ids: Sequence[str], *, raw: bool = False) -> dict[str, EventView]:
        if not ids:
            return {}
        rows = await self._query("events_by_id", ids, ids=Dialect.marks(len(ids)))
        return {r["id"]: event_view(r, raw=raw) for r in rows}

    async def _event(self, tenant_id: str, event_id: str) -> EventView:
        rows = await self._query("event", (tenant_id, event_id))
        if not rows:
            raise NotFound(f"event {event_id!r} not found", field="eventId")
        return event_view(rows[0])

    async def _seq_of(self, tenant_id: str, event_id: str, field: str) -> int:
        rows = await self._query("event", (tenant_id, event_id))
        if not rows:
            raise InvalidInput(field, f"no event {event_id!r} (unknown, or no longer kept)")
        return rows[0]["seq"]

    # ------------------------------------------------------------------ publishing

    @handler
    async def publish_event(self, msg: PublishEvent) -> EventView:
        # the message has a draft's fields, already checked: no second EventDraft to build
        (view,) = await self._publish(msg.tenant_id, msg.source, (msg,))
        return view

    @handler
    async def publish_events(self, msg: PublishEvents) -> tuple[EventView, ...]:
        return await self._publish(msg.tenant_id, msg.source, msg.events)

    async def _publish(
        self, tenant_id: str, source: str, drafts: Sequence[EventDraft | PublishEvent]
    ) -> tuple[EventView, ...]:
        envelope = current_envelope.get()
        trace_id = envelope.trace() if envelope is not None else None
        payloads = [encode_payload(d.payload) for d in drafts]
        results: list[EventView | None] = [None] * len(drafts)
        fresh: list[int] = []  # indexes of the drafts that become new events
        twins: dict[int, int] = {}  # draft index -> earlier draft index with the same key
        created: list[EventView] = []
        async with in_transaction(self._connection) as conn:
            keys = {d.idempotency_key for d in drafts if d.idempotency_key}
            known: dict[str, EventView] = {}
            if keys:
                known = await self._idempotent(conn, tenant_id, keys)
            first_of_key: dict[str, int] = {}
            for i, draft in enumerate(drafts):
                key = draft.idempotency_key
                if key and key in known:
                    results[i] = known[key]
                elif key and key in first_of_key:
                    twins[i] = first_of_key[key]
                else:
                    if key:
                        first_of_key[key] = i
                    fresh.append(i)
            if fresh:
                created = await self._insert(
                    conn, tenant_id, source, trace_id, drafts, payloads, fresh
                )
                for i, view in zip(fresh, created, strict=True):
                    results[i] = view
        for i, j in twins.items():
            results[i] = results[j]
        if created:
            self._announce(tenant_id, created[0].seq, created[-1].seq, created)
        return tuple(results)  # type: ignore[arg-type]

    async def _idempotent(self, conn: Any, tenant_id: str, keys: set[str]) -> dict[str, EventView]:
        """Events already published under these keys within the window; older holders of a
        key let go of it. Takes the tenant's stream row first, so concurrent publishers of
        the same key queue here instead of both inserting."""
        rows = await self._query("reserve_seqs", (tenant_id, 0), conn)
        now = rows[0]["now_ms"]
        found: dict[str, EventView] = {}
        expired: list[str] = []
        rows = await self._query(
            "idempotent", (tenant_id, *keys), conn, ids=Dialect.marks(len(keys))
        )
        for row in rows:
            if row["occurred_at_ms"] >= now - _IDEMPOTENCY_WINDOW_MS:
                found[row["idempotency_key"]] = event_view(row)
            else:
                expired.append(row["id"])
        if expired:
            await self._query("forget_idempotency", expired, conn, ids=Dialect.marks(len(expired)))
        return found

    async def _insert(
        self,
        conn: Any,
        tenant_id: str,
        source: str,
        trace_id: str | None,
        drafts: Sequence[EventDraft | PublishEvent],
        payloads: list[str],
        fresh: list[int],
    ) -> list[EventView]:
        rows = await self._query("reserve_seqs", (tenant_id, len(fresh)), conn)
        last, now = rows[0]["last_seq"], rows[0]["now_ms"]
        seq = last - len(fresh)
        occurred = _at(now)
        views: list[EventView] = []
        event_rows: list[list[Any]] = []
        for i in fresh:
            seq += 1
            draft = drafts[i]
            event_id = new_id("evt")
            event_rows.append(
                [
                    event_id,
                    tenant_id,
                    seq,
                    draft.topic,
                    draft.key,
                    payloads[i],
                    now,
                    trace_id,
                    source,
                    draft.idempotency_key,
                ]
            )
            views.append(
                EventView(
                    id=event_id,
                    tenant_id=tenant_id,
                    seq=seq,
                    topic=draft.topic,
                    payload=draft.payload,
                    key=draft.key,
                    occurred_at=occurred,  # type: ignore[arg-type]
                    trace_id=trace_id,
                    source=source,
                )
            )
        await self._write(conn, "insert_event", event_rows)
        groups = await self._query("tenant_groups", (tenant_id,), conn)
        delivery_rows: list[list[Any]] = []
        for group in groups:
            matches = _group_matcher(group["topics"])
            for i, view in zip(fresh, views, strict=True):
                if matches(view.topic):
                    delay = _ms(drafts[i].delay_seconds)
                    delivery_rows.append(
                        [group["id"], view.id, view.seq, view.key, now + delay, now, now]
                    )
        if delivery_rows:
            await self._write(conn, "insert_delivery", delivery_rows)
        if self._postgres:
            notice = f"{tenant_id} {views[0].seq} {views[-1].seq}"
            await self._query("notify", (self._channel, notice), conn)
        return views

    async def _write(self, conn: Any, name: str, rows: list[list[Any]]) -> None:
        """Run the one-row ``INSERT`` ``name`` for every row, inside ``conn``'s transaction: on
        SQLite as multi-row statements (see :func:`~synapsex.runtime.orm.insert_rows` for why),
        on PostgreSQL as one pipelined ``executemany``."""
        sql = self._sql.sql(name)
        if len(rows) == 1:
            await conn.execute_query(sql, rows[0])
        elif self._postgres:
            await conn.execute_many(sql, rows)
        else:
            head, _, row = sql.partition(" VALUES ")
            await insert_row_chunks(conn, head, row, rows)

    # ------------------------------------------------------------------ live streams

    def _announce(
        self, tenant_id: str, first: int, last: int, views: list[EventView] | None = None
    ) -> None:
        """Announce committed events ``first..last`` (and any before them not yet announced
        here) to this process's listeners of the tenant; reads them back when needed."""
        channel = events_channel(tenant_id)
        broadcast = self.actor_runtime.broadcast
        if not broadcast.has_listeners(channel):
            self._announced.pop(tenant_id, None)
            return
        done = self._announced.get(tenant_id)
        if done is not None and done >= last:
            return
        if views is not None and (done is None or done == first - 1):
            for view in views:
                broadcast.publish(channel, view)
            self._announced[tenant_id] = last
            return
        # events committed elsewhere are missing before these: read them back in order, in a
        # turn of their own (if the mailbox is full, the next maintenance tick catches up)
        self._send_self(StreamCommitted(tenant_id=tenant_id, first_seq=first, last_seq=last))

    @handler
    async def stream_committed(self, msg: StreamCommitted) -> None:
        channel = events_channel(msg.tenant_id)
        broadcast = self.actor_runtime.broadcast
        if not broadcast.has_listeners(channel):
            self._announced.pop(msg.tenant_id, None)
            return
        done = self._announced.get(msg.tenant_id)
        start = msg.first_seq if done is None else done + 1
        start = max(start, msg.last_seq - ANNOUNCE_LIMIT + 1)
        if start > msg.last_seq:
            return
        rows = await self._query("stream", (msg.tenant_id, start - 1, msg.last_seq, ANNOUNCE_LIMIT))
        for row in rows:
            broadcast.publish(channel, event_view(row))
        self._announced[msg.tenant_id] = msg.last_seq

    @handler
    async def maintain(self, msg: Maintain) -> None:
        self._maintain_queued = False
        broadcast = self.actor_runtime.broadcast
        prefix = events_channel("")
        tenants = [c[len(prefix) :] for c in broadcast.channels(prefix)]
        if tenants:
            rows = await self._query("heads", tenants, ids=Dialect.marks(len(tenants)))
            for row in rows:
                done = self._announced.get(row["tenant_id"])
                if done is None or row["last_seq"] > done:
                    await self.stream_committed(
                        StreamCommitted(
                            tenant_id=row["tenant_id"],
                            first_seq=row["last_seq"] if done is None else done + 1,
                            last_seq=row["last_seq"],
                        )
                    )
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_INTERVAL_SECONDS
            await self._prune()

    async def _prune(self) -> int:
        """Delete events past the retention whose every delivery is acked; returns how many."""
        cutoff_rows = await self._query("now", ())
        cutoff = cutoff_rows[0]["now_ms"] - self._retention_ms
        pruned = 0
        while True:
            freed = await self._query("prune_deliveries", (cutoff, PRUNE_BATCH))
            gone = await self._query("prune_events", (cutoff, PRUNE_BATCH))
            pruned += len(gone)
            if not freed and len(gone) < PRUNE_BATCH:
                break
        if pruned:
            log.info("pruned acked events", count=pruned)
        return pruned

    @handler(read_only=True)
    async def stream_position(self, msg: StreamPosition) -> int:
        if msg.after_event_id is not None:
            rows = await self._query("event", (msg.tenant_id, msg.after_event_id))
            if not rows:
                raise NotFound(
                    f"event {msg.after_event_id!r} not found (unknown, or no longer kept)",
                    field="after",
                )
            return rows[0]["seq"]
        rows = await self._query("head", (msg.tenant_id,))
        return rows[0]["last_seq"] if rows else 0

    @handler(read_only=True)
    async def read_stream(self, msg: ReadStream) -> StreamChunk:
        rows = await self._query("head", (msg.tenant_id,))
        head = rows[0]["last_seq"] if rows else 0
        bound = head if msg.up_to_seq is None else min(head, msg.up_to_seq)
        rows = await self._query("stream", (msg.tenant_id, msg.after_seq, bound, msg.limit))
        matches = topic_matcher(msg.topics)
        events = tuple(event_view(r) for r in rows if matches(r["topic"]))
        last = rows[-1]["seq"] if len(rows) == msg.limit else max(bound, msg.after_seq)
        return StreamChunk(events=events, last_seq=last, head_seq=head)

    # ------------------------------------------------------------------ reading events

    @handler(read_only=True)
    async def get_event(self, msg: GetEvent) -> EventView:
        return await self._event(msg.tenant_id, msg.event_id)

    @handler(read_only=True)
    async def list_events(self, msg: ListEvents) -> Page[EventView]:
        after = 0 if msg.after is None else await self._seq_of(msg.tenant_id, msg.after, "after")
        matches = topic_matcher((msg.topic or "#",))
        found: list[EventView] = []
        scan = 200
        while len(found) <= msg.first:
            rows = await self._query("stream", (msg.tenant_id, after, 2**62, scan))
            found.extend(event_view(r) for r in rows if matches(r["topic"]))
            if len(rows) < scan:
                break
            after = rows[-1]["seq"]
        items = tuple(found[: msg.first])
        return Page(
            items=items,
            has_next_page=len(found) > msg.first,
            end_cursor=items[-1].id if items else None,
        )

    # ------------------------------------------------------------------ consumer groups

    @handler
    async def create_group(self, msg: CreateConsumerGroup) -> ConsumerGroupView:
        with db_errors(conflict=f"a consumer group named {msg.name!r} exists", field="name"):
            row = await ConsumerGroup.create(
                id=new_id("cgr"),
                tenant_id=msg.tenant_id,
                name=msg.name,
                topics=json.dumps(list(msg.topics)),
                max_attempts=msg.max_attempts,
                visibility_timeout_ms=_ms(msg.visibility_timeout_seconds),
                retry_backoff_ms=_ms(msg.retry_backoff_seconds),
                max_retry_backoff_ms=_ms(msg.max_retry_backoff_seconds),
                created_at_ms=int(time.time() * 1000),
            )
        return (await self._group_views([row]))[0]

    @handler(concurrent=True)
    async def get_group(self, msg: GetConsumerGroup) -> ConsumerGroupView:
        _group, row = await self._load_group(msg.tenant_id, msg.name)
        return (await self._group_views([row]))[0]

    @handler(concurrent=True)
    async def list_groups(self, msg: ListConsumerGroups) -> Page[ConsumerGroupView]:
        query = ConsumerGroup.filter(tenant_id=msg.tenant_id)
        if msg.after:
            query = query.filter(id__gt=msg.after)
        rows = await query.order_by("id").limit(msg.first + 1)
        views = await self._group_views(rows[: msg.first])
        return Page(
            items=tuple(views),
            has_next_page=len(rows) > msg.first,
            end_cursor=views[-1].id if views else None,
        )

    @handler
    async def delete_group(self, msg: DeleteConsumerGroup) -> ConsumerGroupView:
        group, row = await self._load_group(msg.tenant_id, msg.name)
        (view,) = await self._group_views([row])
        async with in_transaction(self._connection) as conn:
            await self._query("delete_group_deliveries", (group.id,), conn)
            await ConsumerGroup.filter(id=group.id).using_db(conn).delete()
        self._groups.pop((msg.tenant_id, msg.name), None)
        return view

    async def _group_views(self, rows: Sequence[ConsumerGroup]) -> list[ConsumerGroupView]:
        if not rows:
            return []
        for row in rows:  # lapsed last attempts show as dead letters, not as pending
            await self._query("expire_leases", (row.id, row.max_attempts))
        counted = await self._query("counts", [r.id for r in rows], ids=Dialect.marks(len(rows)))
        by_group = {c["group_id"]: c for c in counted}
        views = []
        for row in rows:
            c = by_group.get(row.id)
            oldest = c["oldest_ms"] if c else None
            counts = GroupCounts(
                pending=int(c["pending"]) if c else 0,
                leased=int(c["leased"]) if c else 0,
                acked=int(c["acked"]) if c else 0,
                dead_letter=int(c["dead_letter"]) if c else 0,
                oldest_pending_age_seconds=(
                    None if oldest is None else max(0.0, (c["now_ms"] - oldest) / 1000)
                ),
            )
            views.append(
                ConsumerGroupView(
                    id=row.id,
                    tenant_id=row.tenant_id,
                    name=row.name,
                    topics=tuple(json.loads(row.topics)),
                    max_attempts=row.max_attempts,
                    visibility_timeout_seconds=row.visibility_timeout_ms / 1000,
                    retry_backoff_seconds=row.retry_backoff_ms / 1000,
                    max_retry_backoff_seconds=row.max_retry_backoff_ms / 1000,
                    created_at=_at(row.created_at_ms),  # type: ignore[arg-type]
                    counts=counts,
                )
            )
        return views

    # ------------------------------------------------------------------ claims and leases

    @handler(concurrent=True)
    async def claim(self, msg: ClaimEvents) -> tuple[DeliveryView, ...]:
        group = await self._group(msg.tenant_id, msg.group)
        visibility = (
            group.visibility_ms
            if msg.visibility_timeout_seconds is None
            else _ms(msg.visibility_timeout_seconds)
        )
        if time.monotonic() >= group.expire_due:  # at most once a second per group: a claim
            # never takes an exhausted delivery, but its lapsed lease holds back later events
            # of its key until it is a dead letter
            group.expire_due = time.monotonic() + EXPIRE_INTERVAL_SECONDS
            await self._query("expire_leases", (group.id, group.max_attempts))
        rows = await self._query(
            "claim_with_events" if self._postgres else "claim",
            (
                new_id("lse"),
                visibility,
                visibility,
                group.backoff_ms,
                group.max_backoff_ms,
                group.id,
                group.max_attempts,
                msg.limit,
            ),
        )
        if not rows:
            return ()
        rows = sorted(rows, key=lambda r: r["seq"])
        raw = msg.raw_payloads
        if self._postgres:
            return tuple(_delivery_view(group, r, event_view(r, "e_", raw=raw)) for r in rows)
        events = await self._events([r["event_id"] for r in rows], raw=raw)
        return tuple(_delivery_view(group, r, events[r["event_id"]]) for r in rows)

    async def _leased(self, group: _Group, msg: AckEvent | NackEvent | ExtendLease, rows: Any):
        """The delivery a lease statement changed, or why it changed none."""
        if rows:
            return _delivery_view(group, rows[0], await self._event(msg.tenant_id, msg.event_id))
        current = await self._query("delivery", (group.id, msg.event_id))
        if not current:
            raise NotFound(
                f"event {msg.event_id!r} is not in consumer group {group.name!r}", field="eventId"
            )
        state = current[0]["state"]
        why = (
            "expired or was superseded by a later claim"
            if state in ("leased", "pending")
            else f"is over: the event is {state.replace('_', ' ')}"
        )
        raise Conflict(f"lease {msg.lease_id!r} is not current: it {why}", field="leaseId")

    @handler(concurrent=True)
    async def ack(self, msg: AckEvent) -> DeliveryView:
        group = await self._group(msg.tenant_id, msg.group)
        rows = await self._query("ack", (group.id, msg.event_id, msg.lease_id))
        return await self._leased(group, msg, rows)

    @handler(concurrent=True)
    async def ack_many(self, msg: AckEvents) -> AckResult:
        group = await self._group(msg.tenant_id, msg.group)
        pairs = [v for lease in msg.leases for v in (lease.event_id, lease.lease_id)]
        rows = await self._query(
            "ack_many", (group.id, *pairs), pairs=Dialect.pairs(len(msg.leases))
        )
        acked = {r["event_id"] for r in rows}
        named = dict.fromkeys(lease.event_id for lease in msg.leases)  # once each, in order
        return AckResult(
            acked=tuple(e for e in named if e in acked),
            stale=tuple(e for e in named if e not in acked),
        )

    @handler(concurrent=True)
    async def nack(self, msg: NackEvent) -> DeliveryView:
        group = await self._group(msg.tenant_id, msg.group)
        delay = None if msg.delay_seconds is None else _ms(msg.delay_seconds)
        rows = await self._query(
            "nack",
            (
                group.max_attempts,
                delay,
                group.backoff_ms,
                group.max_backoff_ms,
                msg.error or "nacked",
                group.id,
                msg.event_id,
                msg.lease_id,
            ),
        )
        return await self._leased(group, msg, rows)

    @handler(concurrent=True)
    async def extend(self, msg: ExtendLease) -> DeliveryView:
        group = await self._group(msg.tenant_id, msg.group)
        visibility = _ms(msg.visibility_timeout_seconds)
        rows = await self._query(
            "extend",
            (
                visibility,
                visibility,
                group.backoff_ms,
                group.max_backoff_ms,
                group.id,
                msg.event_id,
                msg.lease_id,
            ),
        )
        return await self._leased(group, msg, rows)

    # ------------------------------------------------------------------ dead letters

    @handler(concurrent=True)
    async def dead_letters(self, msg: ListDeadLetters) -> Page[DeliveryView]:
        group = await self._group(msg.tenant_id, msg.group)
        await self._query("expire_leases", (group.id, group.max_attempts))
        after = 0 if msg.after is None else await self._seq_of(msg.tenant_id, msg.after, "after")
        rows = await self._query("dead_letters", (group.id, after, msg.first + 1))
        page = rows[: msg.first]
        events = await self._events([r["event_id"] for r in page])
        items = tuple(_delivery_view(group, r, events[r["event_id"]]) for r in page)
        return Page(
            items=items,
            has_next_page=len(rows) > msg.first,
            end_cursor=items[-1].event.id if items else None,
        )

    @handler
    async def redrive(self, msg: RedriveDeadLetters) -> ChangedDeliveries:
        return await self._change_dead_letters("redrive", msg.tenant_id, msg.group, msg.event_ids)

    @handler
    async def delete_dead_letters(self, msg: DeleteDeadLetters) -> ChangedDeliveries:
        return await self._change_dead_letters(
            "delete_dead", msg.tenant_id, msg.group, msg.event_ids
        )

    async def _change_dead_letters(
        self, statement: str, tenant_id: str, name: str, event_ids: tuple[str, ...] | None
    ) -> ChangedDeliveries:
        group, row = await self._load_group(tenant_id, name)
        await self._query("expire_leases", (group.id, group.max_attempts))
        only = "" if event_ids is None else f"AND event_id IN ({Dialect.marks(len(event_ids))})"
        rows = await self._query(statement, (group.id, *(event_ids or ())), only=only)
        ordered = tuple(r["event_id"] for r in sorted(rows, key=lambda r: r["seq"]))
        (view,) = await self._group_views([row])
        return ChangedDeliveries(event_ids=ordered, group=view)
