"""secrets-service handlers: versioned tenant secrets under envelope encryption.

A put raises the secret's ``latest_version`` with one conditional ``UPDATE`` and inserts the
version in the same transaction: on PostgreSQL the update holds the secret's row lock until the
commit, so puts from several processes get consecutive versions; the first put of a name inserts
the secret, and the unique ``(tenant_id, name)`` makes a concurrent first put retry as an
update. Values are opened only to answer :class:`RevealSecret` (the gateway's, after policy and
with audit) and :class:`GetSecretValue` (services only, audited here). Nothing here logs a
value: log lines name rows, versions and key ids.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from synapsex.config import SealError, load_master_key
from synapsex.contracts.audit import RecordAudit
from synapsex.contracts.common import Page
from synapsex.contracts.errors import (
    Conflict,
    ContractError,
    Forbidden,
    ServiceFailure,
    Unavailable,
)
from synapsex.contracts.keys import ResealProgress, ResealSecretValues
from synapsex.contracts.secrets import (
    SERVICE,
    DeleteSecret,
    GetSecret,
    GetSecretValue,
    ListSecrets,
    ListSecretVersions,
    PutSecret,
    RevealSecret,
    SecretValue,
    SecretVersionView,
    SecretView,
)
from synapsex.runtime import Actor, current_envelope, handler, new_id
from synapsex.runtime.orm import get_or_not_found, paginate

from .envelope import VersionRow, open_value, seal_value
from .models import Secret, SecretVersion

log = structlog.get_logger("synapsex.secrets")

#: tries of a put that races another first put of the same name
PUT_ATTEMPTS = 3


def secret_view(row: Secret) -> SecretView:
    return SecretView(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        description=row.description,
        latest_version=row.latest_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
    )


def version_view(row: SecretVersion) -> SecretVersionView:
    return SecretVersionView(
        id=row.id,
        name=row.name,
        version=row.version,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _row(version: SecretVersion) -> VersionRow:
    return VersionRow(version.tenant_id, version.name, version.version, version.id)


class SecretsActor(Actor, service=SERVICE, models="synapsex.actors.secrets.models", concurrency=4):
    """Owns ``secrets`` and ``secret_versions``."""

    async def on_start(self) -> None:
        self._key = load_master_key(self.actor_runtime.settings)

    async def _secret(self, tenant_id: str, name: str) -> Secret:
        return await get_or_not_found(
            Secret.filter(tenant_id=tenant_id, name=name), "secret", name=name
        )

    # ------------------------------------------------------------------ writing

    @handler
    async def put(self, msg: PutSecret) -> SecretVersionView:
        for _attempt in range(PUT_ATTEMPTS):
            try:
                return await self._put(msg)
            except IntegrityError:  # another first put of the name won: this one updates
                continue
        raise Conflict(f"secret {msg.name!r} is being put by others; try again", name=msg.name)

    async def _put(self, msg: PutSecret) -> SecretVersionView:
        now = datetime.now(UTC)
        changes = {"updated_at": now}
        if msg.description is not None:
            changes["description"] = msg.description
        async with in_transaction() as conn:
            same = Secret.filter(tenant_id=msg.tenant_id, name=msg.name).using_db(conn)
            if await same.update(latest_version=F("latest_version") + 1, **changes):
                secret = await same.get()
            else:
                secret = await Secret.create(
                    id=new_id("sec"),
                    tenant_id=msg.tenant_id,
                    name=msg.name,
                    description=msg.description,
                    latest_version=1,
                    created_at=now,
                    updated_at=now,
                    created_by=msg.member_id,
                    using_db=conn,
                )
            row = VersionRow(msg.tenant_id, msg.name, secret.latest_version, new_id("scv"))
            wrapped, ciphertext = seal_value(self._key, msg.value, row)
            version = await SecretVersion.create(
                id=row.version_id,
                secret_id=secret.id,
                tenant_id=msg.tenant_id,
                name=msg.name,
                version=row.version,
                description=secret.description,
                data_key_sealed=wrapped,
                ciphertext=ciphertext,
                created_at=now,
                created_by=msg.member_id,
                using_db=conn,
            )
        log.info("secret version put", secret_id=secret.id, version=version.version)
        return version_view(version)

    @handler
    async def delete(self, msg: DeleteSecret) -> SecretView:
        secret = await self._secret(msg.tenant_id, msg.name)
        async with in_transaction() as conn:
            await SecretVersion.filter(secret_id=secret.id).using_db(conn).delete()
            await Secret.filter(id=secret.id).using_db(conn).delete()
        log.info("secret deleted", secret_id=secret.id)
        return secret_view(secret)

    # ------------------------------------------------------------------ reading

    @handler(read_only=True)
    async def get(self, msg: GetSecret) -> SecretView:
        return secret_view(await self._secret(msg.tenant_id, msg.name))

    @handler(read_only=True)
    async def list_secrets(self, msg: ListSecrets) -> Page[SecretView]:
        return await paginate(
            Secret.filter(tenant_id=msg.tenant_id),
            first=msg.first,
            after=msg.after,
            view=secret_view,
        )

    @handler(read_only=True)
    async def list_versions(self, msg: ListSecretVersions) -> Page[SecretVersionView]:
        secret = await self._secret(msg.tenant_id, msg.name)
        return await paginate(
            SecretVersion.filter(secret_id=secret.id),
            first=msg.first,
            after=msg.after,
            view=version_view,
        )

    @handler(read_only=True)
    async def reveal(self, msg: RevealSecret) -> SecretValue:
        return await self._value(msg.tenant_id, msg.name, msg.version)

    @handler(read_only=True)
    async def get_value(self, msg: GetSecretValue) -> SecretValue:
        envelope = current_envelope.get()
        sender = getattr(envelope, "sender", None)
        if not sender or sender == "redrive":
            raise Forbidden("secret values are given to services only; use revealSecret")
        value = await self._value(msg.tenant_id, msg.name, msg.version)
        await self._audit_fetch(msg, sender, value.version, envelope)
        return value

    async def _value(self, tenant_id: str, name: str, version: int | None) -> SecretValue:
        secret = await self._secret(tenant_id, name)
        number = version if version is not None else secret.latest_version
        row = await get_or_not_found(
            SecretVersion.filter(secret_id=secret.id, version=number),
            f"secret {name!r} version {number}",
            name=name,
            version=number,
        )
        try:
            value = open_value(self._key, row.data_key_sealed, row.ciphertext, _row(row))
        except SealError as exc:
            log.error(
                "secret version does not open",
                secret_version_id=row.id,
                version=number,
                reason=exc.reason,
                problem=str(exc),
            )
            raise ServiceFailure(
                f"secret {name!r} version {number} cannot be decrypted: its stored data does "
                "not belong to this row, was altered, or was sealed under a master key not in "
                "the ring",
                name=name,
                version=number,
            ) from None
        return SecretValue(name=name, version=number, value=value, created_at=row.created_at)

    async def _audit_fetch(self, msg: GetSecretValue, sender: str, version: int, envelope) -> None:
        """A service read a value: one audit record, or no value (fail closed)."""
        record = RecordAudit(
            tenant_id=msg.tenant_id,
            actor_key_id=f"service:{sender}"[:40],
            action="secret.fetch",
            resource_type="secret",
            resource_id=f"{msg.name}@{version}",
            outcome="SUCCESS",
            request_id=envelope.correlation_id or envelope.message_id,
        )
        try:
            await self.actor_runtime.ask(record)
        except ContractError as exc:
            log.error("secret fetch not audited; value withheld", error_code=exc.code)
            raise Unavailable(
                "the secret fetch cannot be audited right now; try again", service=SERVICE
            ) from None

    # ------------------------------------------------------------------ master key rotation

    @handler(concurrent=True)  # each row is one conditional update
    async def reseal(self, msg: ResealSecretValues) -> ResealProgress:
        query = SecretVersion.all().order_by("id").limit(msg.limit)
        if msg.after is not None:
            query = query.filter(id__gt=msg.after)
        rows = await query
        resealed = changed = unreadable = 0
        for row in rows:
            try:
                token = self._key.reseal(row.data_key_sealed, context=_row(row).data_key_context())
            except SealError as exc:
                unreadable += 1
                log.error(
                    "wrapped data key does not open", secret_version_id=row.id, reason=exc.reason
                )
                continue
            if token is None:
                continue
            done = await SecretVersion.filter(
                id=row.id, data_key_sealed=row.data_key_sealed
            ).update(data_key_sealed=token)
            resealed += done
            changed += 1 - done
        return ResealProgress(
            service=SERVICE,
            key_id=self._key.key_id,
            examined=len(rows),
            resealed=resealed,
            changed_meanwhile=changed,
            unreadable=unreadable,
            next_after=rows[-1].id if len(rows) == msg.limit else None,
        )
