"""Events: publish, consumer groups, claims and leases, dead letters, and the live stream.

The ``events`` subscription streams the caller's tenant's events in commit order. With ``after``
(the id of the last event the client saw) it first replays what was committed after that event,
then continues live; a client that reconnects with its last id misses nothing and sees nothing
twice. It relies on each tenant's events carrying consecutive ``seq`` numbers: whenever the live
feed jumps (the feed started late, or this subscriber fell behind and lost buffered items), the
missing stretch is read back from the event bus before going on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from synapsex.contracts import events as contract
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import InvalidInput
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import JSON
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]

#: a claim waits at most this long for events (as SQS long polling)
MAX_WAIT_SECONDS = 20.0
#: while waiting, look again this often even without news (delayed and retried events become
#: claimable without anything being published)
WAIT_POLL_SECONDS = 0.5
#: how many events one read of the stream returns while replaying
REPLAY_CHUNK = 500


def source_of(principal: Principal) -> str:
    """The ``source`` of an event published through the gateway: the caller's API key."""
    return f"apikey:{principal.key_id}"


# ---------------------------------------------------------------------------- types


@strawberry.type
class Event:
    id: strawberry.ID
    topic: str
    payload: JSON | None
    key: str | None
    occurred_at: datetime
    trace_id: str | None
    source: str = strawberry.field(description="A service name, or apikey:<key id>.")

    @classmethod
    def of(cls, view: contract.EventView) -> Event:
        return cls(
            id=strawberry.ID(view.id),
            topic=view.topic,
            payload=view.payload,
            key=view.key,
            occurred_at=view.occurred_at,
            trace_id=view.trace_id,
            source=view.source,
        )


@strawberry.enum(description="An event's state in one consumer group.")
class DeliveryState(Enum):
    PENDING = "pending"
    LEASED = "leased"
    ACKED = "acked"
    DEAD_LETTER = "dead_letter"


@strawberry.type(description="One event as one consumer group sees it.")
class Delivery:
    group: str
    event: Event
    state: DeliveryState
    attempt: int = strawberry.field(description="How many times it has been leased.")
    lease_id: str | None = strawberry.field(
        description="Needed to ack, nack or extend; set while leased."
    )
    lease_expires_at: datetime | None
    available_at: datetime | None = strawberry.field(
        description="When a pending delivery may next be claimed."
    )
    last_error: str | None

    @classmethod
    def of(cls, view: contract.DeliveryView) -> Delivery:
        return cls(
            group=view.group,
            event=Event.of(view.event),
            state=DeliveryState(view.state),
            attempt=view.attempt,
            lease_id=view.lease_id,
            lease_expires_at=view.lease_expires_at,
            available_at=view.available_at,
            last_error=view.last_error,
        )


@strawberry.type
class ConsumerGroup:
    id: strawberry.ID
    name: str
    topics: list[str]
    max_attempts: int
    visibility_timeout_seconds: float
    retry_backoff_seconds: float
    max_retry_backoff_seconds: float
    created_at: datetime
    pending: int
    leased: int
    acked: int
    dead_letter: int
    oldest_pending_age_seconds: float | None = strawberry.field(
        description="Age of the oldest event not yet acked (pending or leased)."
    )

    @classmethod
    def of(cls, view: contract.ConsumerGroupView) -> ConsumerGroup:
        counts = view.counts
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            topics=list(view.topics),
            max_attempts=view.max_attempts,
            visibility_timeout_seconds=view.visibility_timeout_seconds,
            retry_backoff_seconds=view.retry_backoff_seconds,
            max_retry_backoff_seconds=view.max_retry_backoff_seconds,
            created_at=view.created_at,
            pending=counts.pending,
            leased=counts.leased,
            acked=counts.acked,
            dead_letter=counts.dead_letter,
            oldest_pending_age_seconds=counts.oldest_pending_age_seconds,
        )


@strawberry.type
class AckEventsPayload:
    acked: list[strawberry.ID]
    stale: list[strawberry.ID] = strawberry.field(
        description="Events whose lease was not current (expired or claimed again)."
    )


@strawberry.type
class DeadLettersPayload:
    event_ids: list[strawberry.ID]
    group: ConsumerGroup


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class PublishEventInput:
    topic: str
    payload: JSON | None = None
    key: str | None = strawberry.field(
        default=None, description="Events sharing a key are consumed one at a time, in order."
    )
    delay_seconds: float = strawberry.field(
        default=0.0, description="Claimable only after this many seconds (at most 900)."
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="The same key within 24 hours returns the first event."
    )


@strawberry.input
class CreateConsumerGroupInput:
    name: str
    topics: list[str] = strawberry.field(
        description="Topics or patterns: '*' matches one segment, a final '#' the rest."
    )
    max_attempts: int = contract.DEFAULT_MAX_ATTEMPTS
    visibility_timeout_seconds: float = contract.DEFAULT_VISIBILITY_SECONDS
    retry_backoff_seconds: float = contract.DEFAULT_RETRY_BACKOFF_SECONDS
    max_retry_backoff_seconds: float = contract.DEFAULT_MAX_RETRY_BACKOFF_SECONDS


@strawberry.input
class DeleteConsumerGroupInput:
    name: str


@strawberry.input
class ClaimEventsInput:
    group: str
    limit: int = 10
    visibility_timeout_seconds: float | None = None
    wait_seconds: float = strawberry.field(
        default=0.0, description="Wait up to this long (at most 20 s) for something to claim."
    )


@strawberry.input
class AckEventInput:
    group: str
    event_id: strawberry.ID
    lease_id: str


@strawberry.input
class LeaseInput:
    event_id: strawberry.ID
    lease_id: str


@strawberry.input
class AckEventsInput:
    group: str
    leases: list[LeaseInput]


@strawberry.input
class NackEventInput:
    group: str
    event_id: strawberry.ID
    lease_id: str
    delay_seconds: float | None = strawberry.field(
        default=None, description="Retry after this long; default: the group's backoff."
    )
    error: str | None = None


@strawberry.input
class ExtendLeaseInput:
    group: str
    event_id: strawberry.ID
    lease_id: str
    visibility_timeout_seconds: float


@strawberry.input
class RedriveDeadLettersInput:
    group: str
    event_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Omit to redrive every dead letter of the group."
    )


@strawberry.input
class DeleteDeadLettersInput:
    group: str
    event_ids: list[strawberry.ID]


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class EventQuery:
    @strawberry.field(description="The tenant's events in commit order; topic may be a pattern.")
    async def events(
        self,
        info: Ctx,
        topic: str | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Event]:
        return await tenant_connection(
            info, contract.ListEvents, Event.of, topic=topic, first=first, after=after
        )

    @strawberry.field(description="One event of the tenant.")
    async def event(self, info: Ctx, id: strawberry.ID) -> Event:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetEvent(tenant_id=p.tenant_id, event_id=str(id)))
        return Event.of(view)

    @strawberry.field(description="The tenant's consumer groups with their per-state counts.")
    async def consumer_groups(
        self, info: Ctx, first: First = 50, after: str | None = None
    ) -> Connection[ConsumerGroup]:
        return await tenant_connection(
            info, contract.ListConsumerGroups, ConsumerGroup.of, first=first, after=after
        )

    @strawberry.field(description="One consumer group by name.")
    async def consumer_group(self, info: Ctx, name: str) -> ConsumerGroup:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetConsumerGroup(tenant_id=p.tenant_id, name=name))
        return ConsumerGroup.of(view)

    @strawberry.field(description="A group's dead letters in commit order.")
    async def dead_letters(
        self, info: Ctx, group: str, first: First = 50, after: str | None = None
    ) -> Connection[Delivery]:
        return await tenant_connection(
            info,
            contract.ListDeadLetters,
            Delivery.of,
            cursor=lambda view: view.event.id,
            group=group,
            first=first,
            after=after,
        )


@strawberry.type
class EventMutation:
    @strawberry.mutation(description="Publish an event; returns once it is durable.")
    async def publish_event(self, info: Ctx, input: PublishEventInput) -> Event:
        async def run(p: Principal) -> contract.EventView:
            return await info.context.ask(
                contract.PublishEvent(
                    tenant_id=p.tenant_id,
                    source=source_of(p),
                    topic=input.topic,
                    payload=input.payload,
                    key=input.key,
                    delay_seconds=input.delay_seconds,
                    idempotency_key=input.idempotency_key,
                )
            )

        view = await guarded(info, action="event.publish", resource_type="event", run=run)
        return Event.of(view)

    @strawberry.mutation(description="Create a consumer group: its own delivery of each event.")
    async def create_consumer_group(
        self, info: Ctx, input: CreateConsumerGroupInput
    ) -> ConsumerGroup:
        async def run(p: Principal) -> contract.ConsumerGroupView:
            contract.check_user_group(input.name, "name")
            return await info.context.ask(
                contract.CreateConsumerGroup(
                    tenant_id=p.tenant_id,
                    name=input.name,
                    topics=tuple(input.topics),
                    max_attempts=input.max_attempts,
                    visibility_timeout_seconds=input.visibility_timeout_seconds,
                    retry_backoff_seconds=input.retry_backoff_seconds,
                    max_retry_backoff_seconds=input.max_retry_backoff_seconds,
                )
            )

        view = await guarded(
            info,
            action="event.consumer_group.create",
            resource_type="consumer_group",
            resource_id=input.name,
            run=run,
            resource_id_of=lambda created: created.name,  # groups are audited by name
        )
        return ConsumerGroup.of(view)

    @strawberry.mutation(description="Delete a consumer group and all its deliveries.")
    async def delete_consumer_group(
        self, info: Ctx, input: DeleteConsumerGroupInput
    ) -> ConsumerGroup:
        async def run(p: Principal) -> contract.ConsumerGroupView:
            contract.check_user_group(input.name, "name")
            return await info.context.ask(
                contract.DeleteConsumerGroup(tenant_id=p.tenant_id, name=input.name)
            )

        view = await guarded(
            info,
            action="event.consumer_group.delete",
            resource_type="consumer_group",
            resource_id=input.name,
            run=run,
        )
        return ConsumerGroup.of(view)

    @strawberry.mutation(description="Lease up to `limit` events of a group, in commit order.")
    async def claim_events(self, info: Ctx, input: ClaimEventsInput) -> list[Delivery]:
        async def run(p: Principal) -> tuple[contract.DeliveryView, ...]:
            contract.check_user_group(input.group, "group")
            if not 0 <= input.wait_seconds <= MAX_WAIT_SECONDS:  # audited, after auth and policy
                raise InvalidInput("waitSeconds", f"must be between 0 and {MAX_WAIT_SECONDS:g}")
            message = contract.ClaimEvents(
                tenant_id=p.tenant_id,
                group=input.group,
                limit=input.limit,
                visibility_timeout_seconds=input.visibility_timeout_seconds,
            )
            return await claim_waiting(info.context, message, input.wait_seconds)

        views = await guarded(
            info,
            action="event.claim",
            resource_type="consumer_group",
            resource_id=input.group,
            is_own_resource=True,
            run=run,
            resource_id_of=lambda _: input.group,
        )
        return [Delivery.of(v) for v in views]

    @strawberry.mutation(description="Ack a leased event: done, never delivered again.")
    async def ack_event(self, info: Ctx, input: AckEventInput) -> Delivery:
        async def run(p: Principal) -> contract.DeliveryView:
            contract.check_user_group(input.group, "group")
            return await info.context.ask(
                contract.AckEvent(
                    tenant_id=p.tenant_id,
                    group=input.group,
                    event_id=str(input.event_id),
                    lease_id=input.lease_id,
                )
            )

        return Delivery.of(await _lease_mutation(info, "event.ack", input, run))

    @strawberry.mutation(description="Ack up to 100 leased events; stale leases are reported.")
    async def ack_events(self, info: Ctx, input: AckEventsInput) -> AckEventsPayload:
        async def run(p: Principal) -> contract.AckResult:
            contract.check_user_group(input.group, "group")
            return await info.context.ask(
                contract.AckEvents(
                    tenant_id=p.tenant_id,
                    group=input.group,
                    leases=tuple(
                        contract.LeaseRef(event_id=str(lease.event_id), lease_id=lease.lease_id)
                        for lease in input.leases
                    ),
                )
            )

        result = await guarded(
            info,
            action="event.ack",
            resource_type="consumer_group",
            resource_id=input.group,
            is_own_resource=True,
            run=run,
            resource_id_of=lambda _: input.group,
        )
        return AckEventsPayload(
            acked=[strawberry.ID(i) for i in result.acked],
            stale=[strawberry.ID(i) for i in result.stale],
        )

    @strawberry.mutation(description="Give a leased event back for a retry (or dead letter).")
    async def nack_event(self, info: Ctx, input: NackEventInput) -> Delivery:
        async def run(p: Principal) -> contract.DeliveryView:
            contract.check_user_group(input.group, "group")
            return await info.context.ask(
                contract.NackEvent(
                    tenant_id=p.tenant_id,
                    group=input.group,
                    event_id=str(input.event_id),
                    lease_id=input.lease_id,
                    delay_seconds=input.delay_seconds,
                    error=input.error,
                )
            )

        return Delivery.of(await _lease_mutation(info, "event.nack", input, run))

    @strawberry.mutation(description="Keep a lease longer: it expires this long from now.")
    async def extend_lease(self, info: Ctx, input: ExtendLeaseInput) -> Delivery:
        async def run(p: Principal) -> contract.DeliveryView:
            contract.check_user_group(input.group, "group")
            return await info.context.ask(
                contract.ExtendLease(
                    tenant_id=p.tenant_id,
                    group=input.group,
                    event_id=str(input.event_id),
                    lease_id=input.lease_id,
                    visibility_timeout_seconds=input.visibility_timeout_seconds,
                )
            )

        return Delivery.of(await _lease_mutation(info, "event.lease.extend", input, run))

    @strawberry.mutation(description="Make dead letters pending again, with fresh attempts.")
    async def redrive_dead_letters(
        self, info: Ctx, input: RedriveDeadLettersInput
    ) -> DeadLettersPayload:
        async def run(p: Principal) -> contract.ChangedDeliveries:
            contract.check_user_group(input.group, "group")
            ids = None if input.event_ids is None else tuple(str(i) for i in input.event_ids)
            return await info.context.ask(
                contract.RedriveDeadLetters(tenant_id=p.tenant_id, group=input.group, event_ids=ids)
            )

        return await _dead_letter_mutation(info, "event.dead_letter.redrive", input.group, run)

    @strawberry.mutation(description="Delete dead letters for good.")
    async def delete_dead_letters(
        self, info: Ctx, input: DeleteDeadLettersInput
    ) -> DeadLettersPayload:
        async def run(p: Principal) -> contract.ChangedDeliveries:
            contract.check_user_group(input.group, "group")
            return await info.context.ask(
                contract.DeleteDeadLetters(
                    tenant_id=p.tenant_id,
                    group=input.group,
                    event_ids=tuple(str(i) for i in input.event_ids),
                )
            )

        return await _dead_letter_mutation(info, "event.dead_letter.delete", input.group, run)


async def _lease_mutation(info: Ctx, action: str, input: Any, run: Any) -> contract.DeliveryView:
    """Ack, nack and extend: a consumer acts on its own lease (members may)."""
    return await guarded(
        info,
        action=action,
        resource_type="event",
        resource_id=str(input.event_id),
        is_own_resource=True,
        run=run,
        resource_id_of=lambda _: str(input.event_id),
    )


async def _dead_letter_mutation(info: Ctx, action: str, group: str, run: Any) -> DeadLettersPayload:
    changed = await guarded(
        info,
        action=action,
        resource_type="consumer_group",
        resource_id=group,
        run=run,
        resource_id_of=lambda _: group,
    )
    return DeadLettersPayload(
        event_ids=[strawberry.ID(i) for i in changed.event_ids],
        group=ConsumerGroup.of(changed.group),
    )


async def claim_waiting(
    ctx: GatewayContext, message: contract.ClaimEvents, wait_seconds: float
) -> tuple[contract.DeliveryView, ...]:
    """Claim; when nothing is claimable, wait up to ``wait_seconds`` for the tenant's next
    event (or a poll interval) and try again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    async with AsyncExitStack() as stack:
        wake = None
        while True:
            claimed = await ctx.ask(message)
            remaining = deadline - loop.time()
            if claimed or remaining <= 0:
                return claimed
            if wake is None:  # listen from the first empty claim on
                channel = contract.events_channel(message.tenant_id)
                wake = await stack.enter_async_context(
                    ctx.runtime.broadcast.listen(channel, capacity=1)
                )
                continue  # something may have been committed before we listened
            await wake.next(min(remaining, WAIT_POLL_SECONDS))


# ---------------------------------------------------------------------------- subscription


class TenantStream:
    """Reads a tenant's stream from ``last`` (a seq) onwards, keeping the matching events."""

    def __init__(self, ctx: GatewayContext, tenant_id: str, topics: tuple[str, ...], last: int):
        self.ctx = ctx
        self.tenant_id = tenant_id
        self.topics = topics
        self.last = last

    async def read(self, up_to: int | None = None) -> AsyncIterator[contract.EventView]:
        """The matching events after ``last`` up to ``up_to`` (default: the current end)."""
        if up_to is not None and self.last >= up_to:
            return
        while True:
            chunk = await self.ctx.ask(
                contract.ReadStream(
                    tenant_id=self.tenant_id,
                    after_seq=self.last,
                    topics=self.topics,
                    limit=REPLAY_CHUNK,
                    up_to_seq=up_to,
                )
            )
            for view in chunk.events:
                yield view
            advanced = chunk.last_seq > self.last
            self.last = max(self.last, chunk.last_seq)
            target = chunk.head_seq if up_to is None else min(up_to, chunk.head_seq)
            if not advanced or self.last >= target:
                return


@asynccontextmanager
async def tenant_events(
    ctx: GatewayContext, tenant_id: str, patterns: tuple[str, ...], *, after: str | None = None
) -> AsyncIterator[AsyncIterator[contract.EventView]]:
    """The tenant's events matching ``patterns`` as they are committed, in commit order: the
    machinery of the ``events`` subscription, for other subscriptions to reuse (e.g.
    ``rolloutProgress``). With ``after`` (an event id) what was committed after it comes
    first. Once entered it is already listening: nothing committed from then on is missed,
    so a caller may read a snapshot inside the block and then follow the stream."""
    matches = contract.topic_matcher(patterns)
    channel = contract.events_channel(tenant_id)
    async with ctx.runtime.broadcast.listen(channel) as live:
        start = await ctx.ask(contract.StreamPosition(tenant_id=tenant_id, after_event_id=after))
        stream = TenantStream(ctx, tenant_id, patterns, start)
        async with aclosing(_follow(stream, live, matches, after)) as events:
            yield events


async def _follow(
    stream: TenantStream,
    live: AsyncIterator[contract.EventView],
    matches: Callable[[str], bool],
    after: str | None,
) -> AsyncIterator[contract.EventView]:
    if after is not None:
        async for view in stream.read():
            yield view
    async for view in live:
        if view.seq <= stream.last:
            continue
        if view.seq > stream.last + 1:  # a gap: read it back first
            async for missed in stream.read(up_to=view.seq - 1):
                yield missed
        stream.last = view.seq
        if matches(view.topic):
            yield view


@strawberry.type
class EventSubscription:
    @strawberry.subscription(
        description="The tenant's events as they are committed, in commit order. With `after` "
        "(the last event id you saw), what was committed since is replayed first."
    )
    async def events(
        self, info: Ctx, topics: list[str], after: strawberry.ID | None = None
    ) -> AsyncGenerator[Event, None]:
        ctx = info.context
        principal = await ctx.principal()
        patterns = tuple(topics)
        contract.check_topic_patterns(patterns)
        last = None if after is None else str(after)
        async with tenant_events(ctx, principal.tenant_id, patterns, after=last) as stream:
            async for view in stream:
                yield Event.of(view)
