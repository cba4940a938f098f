"""auth-service handlers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from cachetools import TTLCache
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.auth import (
    KEY_PREFIX,
    ApiKeyView,
    Authenticate,
    CreateApiKey,
    CreatedApiKey,
    ListApiKeys,
    Principal,
    RevokeApiKey,
    RevokeMemberKeys,
)
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import Forbidden, Unauthenticated
from synapsex.contracts.tenant import ROLE_RANK, GetMember
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import get_or_not_found, paginate

from .models import ApiKey, AuthOutbox

#: characters of the key kept in clear (``sx_`` + 8): enough to tell keys apart, useless alone
PREFIX_LENGTH = len(KEY_PREFIX) + 8
KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32)
#: last_used_at is written at most this often per key, so authentication stays a read
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: how long a successful authentication is remembered. A key revoked through this process stops
#: working at once (the entry is dropped); one revoked by another process sharing the database
#: stops working within this many seconds.
AUTH_CACHE_SECONDS = 5.0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _key_event(row: ApiKey) -> dict[str, str | None]:
    """An ``apikey.*`` event's payload: who and what, never the key or its hash."""
    return {
        "keyId": row.id,
        "memberId": row.member_id,
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
    }


def key_view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        id=row.id,
        tenant_id=row.tenant_id,
        member_id=row.member_id,
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
    )


def _check_not_expired(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise Unauthenticated("API key expired")


class AuthActor(Actor, service="auth-service", models="synapsex.actors.auth.models"):
    """Owns ``api_keys``."""

    async def on_start(self) -> None:
        # key hash -> (principal, last_used_at, expires_at): authentication runs on every request
        self._known: TTLCache[str, tuple[Principal, datetime | None, datetime | None]] = TTLCache(
            maxsize=10_000, ttl=AUTH_CACHE_SECONDS
        )
        self._outbox = Outbox(self, AuthOutbox)
        self._outbox.start()

    def _forget(self, *, key_id: str | None = None, member_id: str | None = None) -> None:
        stale = [
            digest
            for digest, (principal, _, _) in self._known.items()
            if principal.key_id == key_id or principal.member_id == member_id
        ]
        for digest in stale:
            self._known.pop(digest, None)

    @handler
    async def create_key(self, msg: CreateApiKey) -> CreatedApiKey:
        member = await self.actor_runtime.ask(
            GetMember(tenant_id=msg.tenant_id, member_id=msg.member_id)
        )
        if ROLE_RANK[msg.role] > ROLE_RANK[member.role]:
            raise Forbidden(
                f"a key cannot have a higher role ({msg.role}) than its member ({member.role})",
                field="role",
            )
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with in_transaction() as conn:
            row = await ApiKey.create(
                id=new_id("key"),
                tenant_id=msg.tenant_id,
                member_id=msg.member_id,
                name=msg.name,
                role=msg.role,
                prefix=key[:PREFIX_LENGTH],
                key_hash=hash_key(key),
                expires_at=None if msg.expires_at is None else as_utc(msg.expires_at),
                using_db=conn,
            )
            await self._outbox.stage(
                conn, row.tenant_id, "apikey.created", _key_event(row), key=row.id
            )
        await self._outbox.flush()
        return CreatedApiKey(key=key, api_key=key_view(row))

    @handler
    async def authenticate(self, msg: Authenticate) -> Principal:
        key = msg.key
        if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
            raise Unauthenticated("invalid API key")
        digest = hash_key(key)
        known = self._known.get(digest)
        if known is not None:
            principal, last_used, expires_at = known
            _check_not_expired(expires_at)
            await self._touch(digest, principal, last_used, expires_at)
            return principal
        match = None
        for row in await ApiKey.filter(prefix=key[:PREFIX_LENGTH]):
            if hmac.compare_digest(row.key_hash, digest):
                match = row
        if match is None or match.revoked_at is not None:
            raise Unauthenticated("invalid API key")
        expires_at = None if match.expires_at is None else as_utc(match.expires_at)
        _check_not_expired(expires_at)
        principal = Principal(
            tenant_id=match.tenant_id, member_id=match.member_id, role=match.role, key_id=match.id
        )
        await self._touch(digest, principal, match.last_used_at, expires_at)
        return principal

    async def _touch(
        self,
        digest: str,
        principal: Principal,
        last_used: datetime | None,
        expires_at: datetime | None,
    ) -> None:
        """Record the use (at most once per LAST_USED_RESOLUTION) and remember the key."""
        now = datetime.now(UTC)
        if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
            await ApiKey.filter(id=principal.key_id).update(last_used_at=now)
            last_used = now
        self._known[digest] = (principal, last_used, expires_at)

    @handler
    async def revoke(self, msg: RevokeApiKey) -> ApiKeyView:
        row = await get_or_not_found(
            ApiKey.filter(id=msg.key_id, tenant_id=msg.tenant_id), "API key", id=msg.key_id
        )
        if row.revoked_at is None:
            now = datetime.now(UTC)
            async with in_transaction() as conn:
                # conditional: of two concurrent revokes (two processes) one wins and tells
                if (
                    await ApiKey.filter(id=row.id, revoked_at=None)
                    .using_db(conn)
                    .update(revoked_at=now)
                ):
                    await self._outbox.stage(
                        conn, row.tenant_id, "apikey.revoked", _key_event(row), key=row.id
                    )
            row = await ApiKey.get(id=row.id)
        self._forget(key_id=row.id)
        await self._outbox.flush()
        return key_view(row)

    @handler
    async def revoke_member_keys(self, msg: RevokeMemberKeys) -> int:
        now = datetime.now(UTC)
        revoked = 0
        async with in_transaction() as conn:
            live = ApiKey.filter(tenant_id=msg.tenant_id, member_id=msg.member_id, revoked_at=None)
            for row in await live.using_db(conn):
                if (
                    await ApiKey.filter(id=row.id, revoked_at=None)
                    .using_db(conn)
                    .update(revoked_at=now)
                ):
                    revoked += 1
                    await self._outbox.stage(
                        conn, row.tenant_id, "apikey.revoked", _key_event(row), key=row.id
                    )
        self._forget(member_id=msg.member_id)
        await self._outbox.flush()
        return revoked

    @handler
    async def list_keys(self, msg: ListApiKeys) -> Page[ApiKeyView]:
        return await paginate(
            ApiKey.filter(tenant_id=msg.tenant_id), first=msg.first, after=msg.after, view=key_view
        )
