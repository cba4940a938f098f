"""Secrets: names, versions and descriptions are listed; a value is shown only by
``revealSecret`` (admins and owners by default; audited like every mutation)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from synapsex.contracts import secrets as contract
from synapsex.contracts.auth import Principal
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded, made_by_caller
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]


# ---------------------------------------------------------------------------- types


@strawberry.type(description="A named secret of the tenant; its value is never listed.")
class Secret:
    id: strawberry.ID
    name: str
    description: str | None = strawberry.field(description="The latest version's description.")
    latest_version: int
    created_at: datetime
    updated_at: datetime = strawberry.field(description="When the latest version was put.")
    created_by: strawberry.ID | None = strawberry.field(description="The member who first put it.")

    @classmethod
    def of(cls, view: contract.SecretView) -> Secret:
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            description=view.description,
            latest_version=view.latest_version,
            created_at=view.created_at,
            updated_at=view.updated_at,
            created_by=strawberry.ID(view.created_by) if view.created_by else None,
        )


@strawberry.type(description="One version of a secret, without its value.")
class SecretVersion:
    id: strawberry.ID
    name: str
    version: int
    description: str | None
    created_at: datetime
    created_by: strawberry.ID | None

    @classmethod
    def of(cls, view: contract.SecretVersionView) -> SecretVersion:
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            version=view.version,
            description=view.description,
            created_at=view.created_at,
            created_by=strawberry.ID(view.created_by) if view.created_by else None,
        )


@strawberry.type(description="A secret's value, as revealSecret shows it.")
class RevealedSecret:
    name: str
    version: int
    value: str
    created_at: datetime


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class PutSecretInput:
    name: str = strawberry.field(
        description="Letters, digits, _, - or ., starting with a letter or _ (at most 128)."
    )
    value: str = strawberry.field(description="At most 64 KiB of UTF-8; stored encrypted.")
    description: str | None = strawberry.field(
        default=None, description="Omitted: the previous version's description is kept."
    )


@strawberry.input
class RevealSecretInput:
    name: str
    version: int | None = strawberry.field(default=None, description="Omitted: the latest.")


@strawberry.input
class DeleteSecretInput:
    name: str


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class SecretQuery:
    @strawberry.field(description="The tenant's secrets (never their values), oldest first.")
    async def secrets(
        self, info: Ctx, first: First = 50, after: str | None = None
    ) -> Connection[Secret]:
        return await tenant_connection(
            info, contract.ListSecrets, Secret.of, first=first, after=after
        )

    @strawberry.field(description="One secret of the tenant, by name (never its value).")
    async def secret(self, info: Ctx, name: str) -> Secret:
        p = await info.context.principal()
        return Secret.of(
            await info.context.ask(contract.GetSecret(tenant_id=p.tenant_id, name=name))
        )

    @strawberry.field(description="One secret's versions (never their values), oldest first.")
    async def secret_versions(
        self, info: Ctx, name: str, first: First = 50, after: str | None = None
    ) -> Connection[SecretVersion]:
        return await tenant_connection(
            info, contract.ListSecretVersions, SecretVersion.of, name=name, first=first, after=after
        )


async def _created_by_caller(info: Ctx, name: str) -> bool:
    """Whether a put of ``name`` acts on the caller's own resource: a new secret (or a bad name
    the put refuses, audited there), or one they created."""
    return await made_by_caller(
        info, lambda t: contract.GetSecret(tenant_id=t, name=name), unknown=True
    )


@strawberry.type
class SecretMutation:
    @strawberry.mutation(
        description="Store a new version of a secret (the first creates it); returns the version."
    )
    async def put_secret(self, info: Ctx, input: PutSecretInput) -> SecretVersion:
        async def run(p: Principal) -> contract.SecretVersionView:
            return await info.context.ask(
                contract.PutSecret(
                    tenant_id=p.tenant_id,
                    name=input.name,
                    value=input.value,
                    description=input.description,
                    member_id=p.member_id,
                )
            )

        view = await guarded(
            info,
            action="secret.put",
            resource_type="secret",
            resource_id=input.name,
            run=run,
            is_own_resource=await _created_by_caller(info, input.name),
        )
        return SecretVersion.of(view)

    @strawberry.mutation(
        description="A secret's value (admins and owners by default); every reveal is audited."
    )
    async def reveal_secret(self, info: Ctx, input: RevealSecretInput) -> RevealedSecret:
        async def run(p: Principal) -> contract.SecretValue:
            return await info.context.ask(
                contract.RevealSecret(tenant_id=p.tenant_id, name=input.name, version=input.version)
            )

        value = await guarded(
            info,
            action="secret.reveal",
            resource_type="secret",
            resource_id=input.name if input.version is None else f"{input.name}@{input.version}",
            run=run,
        )
        return RevealedSecret(
            name=value.name, version=value.version, value=value.value, created_at=value.created_at
        )

    @strawberry.mutation(description="Delete a secret and every version.")
    async def delete_secret(self, info: Ctx, input: DeleteSecretInput) -> Secret:
        async def run(p: Principal) -> contract.SecretView:
            return await info.context.ask(
                contract.DeleteSecret(tenant_id=p.tenant_id, name=input.name)
            )

        view = await guarded(
            info,
            action="secret.delete",
            resource_type="secret",
            resource_id=input.name,
            run=run,
        )
        return Secret.of(view)
