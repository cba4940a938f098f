"""Webhooks: subscriptions (the signing secret is shown once, by create and rotate), their
deliveries with each attempt, and replays."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from synapsex.contracts import webhooks as contract
from synapsex.contracts.auth import Principal
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]


# ---------------------------------------------------------------------------- types


@strawberry.type(description="Where, and for which events, the tenant's events are POSTed.")
class WebhookSubscription:
    id: strawberry.ID
    url: str
    event_types: list[str] = strawberry.field(
        description="Topics or patterns: '*' matches one segment, a final '#' the rest."
    )
    description: str | None
    enabled: bool
    disabled_reason: str | None = strawberry.field(
        description="Why it was disabled: by the service after failing too long, or by a user."
    )
    created_at: datetime
    secret_rotated_at: datetime | None = strawberry.field(
        description="When the secret was last rotated; the previous one still signs for 24 hours."
    )

    @classmethod
    def of(cls, view: contract.WebhookSubscriptionView) -> WebhookSubscription:
        return cls(
            id=strawberry.ID(view.id),
            url=view.url,
            event_types=list(view.event_types),
            description=view.description,
            enabled=view.enabled,
            disabled_reason=view.disabled_reason,
            created_at=view.created_at,
            secret_rotated_at=view.secret_rotated_at,
        )


@strawberry.type
class WebhookSecretPayload:
    subscription: WebhookSubscription
    secret: str = strawberry.field(
        description="The signing secret (whsec_…): shown once, never again."
    )

    @classmethod
    def of(cls, created: contract.SubscriptionWithSecret) -> WebhookSecretPayload:
        return cls(subscription=WebhookSubscription.of(created.subscription), secret=created.secret)


@strawberry.enum(description="A webhook delivery's state.")
class WebhookDeliveryStatus(Enum):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.type(description="One POST of a delivery.")
class WebhookDeliveryAttempt:
    at: datetime
    status_code: int | None = strawberry.field(
        description="The HTTP status answered; null when no answer came."
    )
    duration_ms: float
    error: str | None
    response_body_excerpt: str

    @classmethod
    def of(cls, view: contract.WebhookAttemptView) -> WebhookDeliveryAttempt:
        return cls(
            at=view.at,
            status_code=view.status_code,
            duration_ms=view.duration_ms,
            error=view.error,
            response_body_excerpt=view.response_body_excerpt,
        )


@strawberry.type(description="One event on its way to one subscription.")
class WebhookDelivery:
    id: strawberry.ID
    subscription_id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(
        description="Also the webhook-id header, the same across retries and replays."
    )
    topic: str
    status: WebhookDeliveryStatus
    attempts: list[WebhookDeliveryAttempt]
    next_attempt_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, view: contract.WebhookDeliveryView) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(view.id),
            subscription_id=strawberry.ID(view.subscription_id),
            event_id=strawberry.ID(view.event_id),
            topic=view.topic,
            status=WebhookDeliveryStatus(view.status),
            attempts=[WebhookDeliveryAttempt.of(a) for a in view.attempts],
            next_attempt_at=view.next_attempt_at,
            created_at=view.created_at,
        )


@strawberry.type
class ReplayWebhookEventsPayload:
    deliveries: int = strawberry.field(description="How many deliveries the replay made.")
    subscription: WebhookSubscription


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class CreateWebhookSubscriptionInput:
    url: str = strawberry.field(description="An http(s) URL whose host is not a private address.")
    event_types: list[str] = strawberry.field(
        description="Topics or patterns: '*' matches one segment, a final '#' the rest."
    )
    description: str | None = None


@strawberry.input
class UpdateWebhookSubscriptionInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[str] | None = None
    enabled: bool | None = strawberry.field(
        default=None, description="Enabling a disabled subscription resets its failure clock."
    )
    description: str | None = None


@strawberry.input
class DeleteWebhookSubscriptionInput:
    id: strawberry.ID


@strawberry.input
class RotateWebhookSecretInput:
    id: strawberry.ID


@strawberry.input
class ReplayWebhookDeliveryInput:
    id: strawberry.ID


@strawberry.input
class ReplayWebhookEventsInput:
    subscription_id: strawberry.ID
    since: datetime = strawberry.field(description="A time without an offset is taken as UTC.")


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The tenant's webhook subscriptions, oldest first.")
    async def webhook_subscriptions(
        self, info: Ctx, first: First = 50, after: str | None = None
    ) -> Connection[WebhookSubscription]:
        return await tenant_connection(
            info,
            contract.ListWebhookSubscriptions,
            WebhookSubscription.of,
            first=first,
            after=after,
        )

    @strawberry.field(description="One webhook subscription of the tenant.")
    async def webhook_subscription(self, info: Ctx, id: strawberry.ID) -> WebhookSubscription:
        p = await info.context.principal()
        view = await info.context.ask(
            contract.GetWebhookSubscription(tenant_id=p.tenant_id, id=str(id))
        )
        return WebhookSubscription.of(view)

    @strawberry.field(description="One subscription's deliveries, oldest first.")
    async def webhook_deliveries(
        self,
        info: Ctx,
        subscription_id: strawberry.ID,
        status: WebhookDeliveryStatus | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[WebhookDelivery]:
        return await tenant_connection(
            info,
            contract.ListWebhookDeliveries,
            WebhookDelivery.of,
            subscription_id=str(subscription_id),
            status=status.value if status else None,
            first=first,
            after=after,
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="Subscribe a URL to the tenant's events; the signing secret is shown once."
    )
    async def create_webhook_subscription(
        self, info: Ctx, input: CreateWebhookSubscriptionInput
    ) -> WebhookSecretPayload:
        async def run(p: Principal) -> contract.SubscriptionWithSecret:
            return await info.context.ask(
                contract.CreateWebhookSubscription(
                    tenant_id=p.tenant_id,
                    url=input.url,
                    event_types=tuple(input.event_types),
                    description=input.description,
                )
            )

        created = await guarded(
            info,
            action="webhook.subscription.create",
            resource_type="webhook_subscription",
            run=run,
            resource_id_of=lambda created: created.subscription.id,
        )
        return WebhookSecretPayload.of(created)

    @strawberry.mutation(description="Change what is given (null or omitted: unchanged).")
    async def update_webhook_subscription(
        self, info: Ctx, input: UpdateWebhookSubscriptionInput
    ) -> WebhookSubscription:
        async def run(p: Principal) -> contract.WebhookSubscriptionView:
            return await info.context.ask(
                contract.UpdateWebhookSubscription(
                    tenant_id=p.tenant_id,
                    id=str(input.id),
                    url=input.url,
                    event_types=None if input.event_types is None else tuple(input.event_types),
                    description=input.description,
                    enabled=input.enabled,
                )
            )

        view = await guarded(
            info,
            action="webhook.subscription.update",
            resource_type="webhook_subscription",
            resource_id=str(input.id),
            run=run,
        )
        return WebhookSubscription.of(view)

    @strawberry.mutation(description="Delete a subscription and its deliveries.")
    async def delete_webhook_subscription(
        self, info: Ctx, input: DeleteWebhookSubscriptionInput
    ) -> WebhookSubscription:
        async def run(p: Principal) -> contract.WebhookSubscriptionView:
            return await info.context.ask(
                contract.DeleteWebhookSubscription(tenant_id=p.tenant_id, id=str(input.id))
            )

        view = await guarded(
            info,
            action="webhook.subscription.delete",
            resource_type="webhook_subscription",
            resource_id=str(input.id),
            run=run,
        )
        return WebhookSubscription.of(view)

    @strawberry.mutation(
        description="A new signing secret, shown once; the previous one keeps signing for 24 hours."
    )
    async def rotate_webhook_secret(
        self, info: Ctx, input: RotateWebhookSecretInput
    ) -> WebhookSecretPayload:
        async def run(p: Principal) -> contract.SubscriptionWithSecret:
            return await info.context.ask(
                contract.RotateWebhookSecret(tenant_id=p.tenant_id, id=str(input.id))
            )

        rotated = await guarded(
            info,
            action="webhook.secret.rotate",
            resource_type="webhook_subscription",
            resource_id=str(input.id),
            run=run,
        )
        return WebhookSecretPayload.of(rotated)

    @strawberry.mutation(
        description="Deliver a delivery's event again: a new delivery, the same webhook-id."
    )
    async def replay_webhook_delivery(
        self, info: Ctx, input: ReplayWebhookDeliveryInput
    ) -> WebhookDelivery:
        async def run(p: Principal) -> contract.WebhookDeliveryView:
            return await info.context.ask(
                contract.ReplayWebhookDelivery(tenant_id=p.tenant_id, id=str(input.id))
            )

        view = await guarded(
            info,
            action="webhook.delivery.replay",
            resource_type="webhook_delivery",
            resource_id=str(input.id),  # the delivery replayed (the new one is the result)
            run=run,
        )
        return WebhookDelivery.of(view)

    @strawberry.mutation(
        description="Deliver again to one subscription every matching event kept since `since`."
    )
    async def replay_webhook_events(
        self, info: Ctx, input: ReplayWebhookEventsInput
    ) -> ReplayWebhookEventsPayload:
        subscription_id = str(input.subscription_id)

        async def run(p: Principal) -> tuple[int, contract.WebhookSubscriptionView]:
            made = await info.context.ask(
                contract.ReplayWebhookEvents(
                    tenant_id=p.tenant_id, subscription_id=subscription_id, since=input.since
                )
            )
            view = await info.context.ask(
                contract.GetWebhookSubscription(tenant_id=p.tenant_id, id=subscription_id)
            )
            return made, view

        made, view = await guarded(
            info,
            action="webhook.delivery.replay",
            resource_type="webhook_subscription",
            resource_id=subscription_id,
            run=run,
        )
        return ReplayWebhookEventsPayload(
            deliveries=made, subscription=WebhookSubscription.of(view)
        )
