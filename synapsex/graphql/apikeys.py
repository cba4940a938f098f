"""API keys: list, create (the key is shown once), revoke."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from synapsex.contracts import auth as contract
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.enums import Role
from synapsex.graphql.guard import check_role_ceiling, guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]


@strawberry.type
class ApiKey:
    id: strawberry.ID
    name: str
    role: Role
    prefix: str = strawberry.field(description="The key's first characters, to tell keys apart.")
    member_id: strawberry.ID
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, view: contract.ApiKeyView) -> ApiKey:
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            role=Role(view.role),
            prefix=view.prefix,
            member_id=strawberry.ID(view.member_id),
            created_at=view.created_at,
            last_used_at=view.last_used_at,
            revoked_at=view.revoked_at,
        )


@strawberry.type
class CreateApiKeyPayload:
    key: str = strawberry.field(description="The key itself: shown once, never again.")
    api_key: ApiKey


@strawberry.input
class CreateApiKeyInput:
    name: str
    role: Role


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(description="The tenant's API keys, revoked ones included.")
    async def api_keys(
        self, info: Ctx, first: First = 50, after: str | None = None
    ) -> Connection[ApiKey]:
        return await tenant_connection(
            info, contract.ListApiKeys, ApiKey.of, first=first, after=after
        )


@strawberry.type
class ApiKeyMutation:
    @strawberry.mutation(description="Create a key for yourself; never above your own role.")
    async def create_api_key(self, info: Ctx, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        async def run(p: contract.Principal) -> contract.CreatedApiKey:
            check_role_ceiling(p, input.role.value, "create a key")
            return await info.context.ask(
                contract.CreateApiKey(
                    tenant_id=p.tenant_id,
                    member_id=p.member_id,
                    role=input.role.value,
                    name=input.name,
                )
            )

        created = await guarded(
            info,
            action="apikey.create",
            resource_type="api_key",
            run=run,
            resource_id_of=lambda created: created.api_key.id,
        )
        return CreateApiKeyPayload(key=created.key, api_key=ApiKey.of(created.api_key))

    @strawberry.mutation(description="Revoke a key; it stops working at once.")
    async def revoke_api_key(self, info: Ctx, input: RevokeApiKeyInput) -> ApiKey:
        async def run(p: contract.Principal) -> contract.ApiKeyView:
            return await info.context.ask(
                contract.RevokeApiKey(tenant_id=p.tenant_id, key_id=str(input.id))
            )

        view = await guarded(
            info,
            action="apikey.revoke",
            resource_type="api_key",
            resource_id=str(input.id),
            run=run,
        )
        return ApiKey.of(view)
