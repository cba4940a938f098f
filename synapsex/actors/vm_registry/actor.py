"""vm-registry-service handlers: registration, VM tokens, heartbeats and derived health.

**One clock.** Every time the service keeps (registration, heartbeats) and the "now" health is
judged against come from the database's clock (:data:`NOW_SQL`), never from a process's, so
processes sharing a database agree, and a test moves a VM in time by changing its row.

**The heartbeat path** is one ``UPDATE … RETURNING`` when nothing but the time changes (the
common case: same versions, same status). A heartbeat that changes the versions or the status
takes the slow path: a transaction that locks the row while reading what it held, stores the
heartbeat and stages the ``vm.status_changed`` event when the status changed (concurrent
heartbeats of one VM, even from two processes, apply one after another). Either way the service
then tells agent-registry ``ReportDeploymentStates`` (when the VM reported deployments) and
update-service ``NoteVmHeartbeat``, without waiting; a service that is not running here or whose
mailbox is full is skipped (the next heartbeat repeats the VM's whole report), never failing
the heartbeat.

**The plan's limit** is a conditional update of the tenant's row in ``vm_tenant_counters`` in
the registration's transaction (``vms < limit``), undone by deregistration in its own: two
registrations at the limit, even in two processes on one PostgreSQL database, cannot both pass.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

import structlog
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.common import Page
from synapsex.contracts.deployments import ReportDeploymentStates, UndeployAll
from synapsex.contracts.errors import (
    Conflict,
    ContractError,
    LimitExceeded,
    NotFound,
    Unauthenticated,
)
from synapsex.contracts.releases import NoteVmHeartbeat
from synapsex.contracts.tenant import GetTenant
from synapsex.contracts.vms import (
    OFFLINE_AFTER_INTERVALS,
    SERVICE,
    STALE_AFTER_INTERVALS,
    VM_DEREGISTERED,
    VM_REGISTERED,
    VM_STATUS_CHANGED,
    VM_TOKEN_PREFIX,
    AuthenticateVm,
    DeregisterVm,
    GetVm,
    HeartbeatAck,
    ListVmFleet,
    ListVms,
    RegisteredVm,
    RegisterVm,
    RotateVmToken,
    VmFleet,
    VmHeartbeat,
    VmPrincipal,
    VmView,
    parse_label_selector,
    vm_event,
    vm_name_key,
)
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import numbered_placeholders, paginate

from .health import health_of, ms_to_datetime
from .models import Vm, VmLabel, VmRegistryOutbox, VmTenantCounter
from .settings import VmSettings

log = structlog.get_logger("synapsex.vm_registry")

#: a token: the prefix then ``token_urlsafe(32)`` (43 characters)
TOKEN_LENGTH = len(VM_TOKEN_PREFIX) + 43
#: the database's clock in epoch milliseconds, per engine
NOW_SQL = {
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    "postgres": "CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
}
_COLUMNS = (
    "id",
    "tenant_id",
    "name",
    "labels",
    "runtime_version",
    "agent_version",
    "status",
    "created_at_ms",
    "last_heartbeat_ms",
    "created_by",
)
#: a heartbeat that changes nothing but the time
_TOUCH = (
    "UPDATE vms SET last_heartbeat_ms = {now} WHERE id = ? AND tenant_id = ? "
    "AND runtime_version = ? AND agent_version = ? AND status = ? RETURNING " + ", ".join(_COLUMNS)
)
#: the slow path's first statement: lock the row, read what it holds
_LOCK = (
    "UPDATE vms SET status = status WHERE id = ? AND tenant_id = ? "
    "RETURNING runtime_version, agent_version, status"
)
#: ... and its second: store what the heartbeat says
_CHANGE = (
    "UPDATE vms SET runtime_version = ?, agent_version = ?, status = ?, last_heartbeat_ms = {now} "
    "WHERE id = ? AND tenant_id = ? RETURNING " + ", ".join(_COLUMNS)
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return VM_TOKEN_PREFIX + secrets.token_urlsafe(32)


def labels_json(labels: dict[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)


class VmRegistryActor(
    Actor, service=SERVICE, models="synapsex.actors.vm_registry.models", concurrency=4
):
    """Owns ``vms``, ``vm_labels`` and ``vm_tenant_counters``.

    Reads, authentication and heartbeats run side by side (``concurrency``): a heartbeat is one
    conditional statement (or a conditional update retried), never a read-then-write of the
    actor's memory. Registration, rotation and deregistration run alone."""

    async def on_start(self) -> None:
        db = self.actor_db
        assert db is not None
        self._engine = "postgres" if db.config.engine == "postgres" else "sqlite"
        self._postgres = self._engine == "postgres"
        self._now = NOW_SQL[self._engine]
        self._touch_sql = self._render(_TOUCH)
        self._lock_sql = self._render(_LOCK)
        self._change_sql = self._render(_CHANGE)
        self._settings = VmSettings.from_environ(self.actor_runtime.settings.environ)
        self._interval_ms = self._settings.heartbeat_interval_ms
        self._outbox = Outbox(self, VmRegistryOutbox)
        self._outbox.start()

    # ------------------------------------------------------------------ plumbing

    def _render(self, sql: str) -> str:
        sql = sql.replace("{now}", self._now)
        return numbered_placeholders(sql) if self._postgres else sql

    async def _fetch(self, sql: str, values: Sequence[Any], conn: Any = None) -> list[Any]:
        """Rows of a rendered statement (``UPDATE … RETURNING`` included), read by name."""
        assert self.actor_db is not None
        client = conn or self.actor_db.client()
        if self._postgres:
            # straight to asyncpg: Tortoise's execute_query drops the rows of UPDATE … RETURNING
            async with client.acquire_connection() as connection:
                return await connection.fetch(sql, *values)
        return (await client.execute_query(sql, list(values)))[1]

    async def _db_now(self, conn: Any = None) -> int:
        rows = await self._fetch(f"SELECT {self._now} AS now_ms", (), conn)
        return int(rows[0]["now_ms"])

    def _view(self, row: Any, now_ms: int) -> VmView:
        """A view of a ``Vm`` or of a row read by column name, healthy or not at ``now_ms``."""
        get = (lambda name: getattr(row, name)) if isinstance(row, Vm) else row.__getitem__
        last = get("last_heartbeat_ms")
        last = None if last is None else int(last)
        created = int(get("created_at_ms"))
        return VmView(
            id=get("id"),
            tenant_id=get("tenant_id"),
            name=get("name"),
            labels=json.loads(get("labels")),
            runtime_version=get("runtime_version"),
            agent_version=get("agent_version"),
            status=get("status"),
            last_heartbeat_at=None if last is None else ms_to_datetime(last),
            health=health_of(now_ms, last, created, self._interval_ms),
            created_at=ms_to_datetime(created),
            created_by=get("created_by"),
        )

    def _health_filter(self, health: str, now_ms: int) -> Q:
        stale_from = now_ms - STALE_AFTER_INTERVALS * self._interval_ms
        offline_from = now_ms - OFFLINE_AFTER_INTERVALS * self._interval_ms
        if health == "HEALTHY":
            return Q(last_heartbeat_ms__gte=stale_from)
        if health == "STALE":
            return Q(last_heartbeat_ms__lt=stale_from, last_heartbeat_ms__gte=offline_from) | Q(
                last_heartbeat_ms__isnull=True, created_at_ms__gte=offline_from
            )
        return Q(last_heartbeat_ms__lt=offline_from) | Q(
            last_heartbeat_ms__isnull=True, created_at_ms__lt=offline_from
        )

    async def _row(self, tenant_id: str, vm_id: str) -> Vm:
        row = await Vm.filter(id=vm_id, tenant_id=tenant_id).first()
        if row is None:
            raise NotFound("VM not found", field="id", id=vm_id)
        return row

    def _tell(self, message: Any) -> None:
        """Tell another service without waiting; skipped (logged) when it is not running here
        or its mailbox is full."""
        try:
            self.actor_runtime.tell_nowait(message)
        except ContractError as exc:
            log.debug(
                "notice to another service skipped",
                message_type=type(message).__name__,
                error_code=exc.code,
            )

    # ------------------------------------------------------------------ reads

    @handler(read_only=True)
    async def get_vm(self, msg: GetVm) -> VmView:
        row = await self._row(msg.tenant_id, msg.id)
        return self._view(row, await self._db_now())

    def _listed(self, tenant_id: str, now_ms: int, health: str | None) -> QuerySet[Vm]:
        query = Vm.filter(tenant_id=tenant_id)
        if health is not None:
            query = query.filter(self._health_filter(health, now_ms))
        return query

    @handler(read_only=True)
    async def list_vms(self, msg: ListVms) -> Page[VmView]:
        now_ms = await self._db_now()
        query = self._listed(msg.tenant_id, now_ms, msg.health)
        if msg.status is not None:
            query = query.filter(status=msg.status)
        if msg.label is not None:
            key, value = parse_label_selector(msg.label)
            labelled = VmLabel.filter(tenant_id=msg.tenant_id, key=key, value=value)
            query = query.filter(id__in=Subquery(labelled.values("vm_id")))
        return await paginate(
            query, first=msg.first, after=msg.after, view=lambda row: self._view(row, now_ms)
        )

    @handler(read_only=True)
    async def fleet(self, msg: ListVmFleet) -> VmFleet:
        now_ms = await self._db_now()
        rows = await self._listed(msg.tenant_id, now_ms, msg.health).order_by("id")
        return VmFleet(vms=tuple(self._view(row, now_ms) for row in rows))

    @handler(read_only=True)
    async def authenticate(self, msg: AuthenticateVm) -> VmPrincipal:
        token = msg.token
        if len(token) != TOKEN_LENGTH or not token.startswith(VM_TOKEN_PREFIX):
            raise Unauthenticated("invalid VM token")
        rows = await Vm.filter(token_hash=hash_token(token)).values_list("id", "tenant_id")
        if not rows:
            raise Unauthenticated("invalid VM token")
        vm_id, tenant_id = rows[0]
        return VmPrincipal(tenant_id=tenant_id, vm_id=vm_id)

    # ------------------------------------------------------------------ heartbeats

    @handler(concurrent=True)  # one conditional statement decides (see the module doc)
    async def heartbeat(self, msg: VmHeartbeat) -> HeartbeatAck:
        same = (msg.runtime_version, msg.agent_version, msg.status)
        rows = await self._fetch(self._touch_sql, (msg.vm_id, msg.tenant_id, *same))
        if rows:
            view = self._view(rows[0], int(rows[0]["last_heartbeat_ms"]))
            ack = self._ack(view, changed=False, previous_status=view.status)
        else:
            ack = await self._change(msg)
        if msg.deployments:
            self._tell(
                ReportDeploymentStates(
                    tenant_id=msg.tenant_id, vm_id=msg.vm_id, reports=msg.deployments
                )
            )
        self._tell(NoteVmHeartbeat(tenant_id=msg.tenant_id, vm_id=msg.vm_id))
        return ack

    def _ack(self, view: VmView, *, changed: bool, previous_status: str) -> HeartbeatAck:
        return HeartbeatAck(
            vm=view,
            changed=changed,
            previous_status=previous_status,
            heartbeat_interval_seconds=self._settings.heartbeat_interval_seconds,
        )

    async def _change(self, msg: VmHeartbeat) -> HeartbeatAck:
        """The slow path: the heartbeat changes the versions or the status (or the VM is gone).
        The first statement locks the row (PostgreSQL) or takes the write lock (SQLite) and
        reads what it held, so concurrent heartbeats of one VM apply one after another."""
        async with in_transaction() as conn:
            old = await self._fetch(self._lock_sql, (msg.vm_id, msg.tenant_id), conn)
            if not old:
                raise Unauthenticated("invalid VM token: the VM is no longer registered")
            before = old[0]
            new = (msg.runtime_version, msg.agent_version, msg.status)
            rows = await self._fetch(self._change_sql, (*new, msg.vm_id, msg.tenant_id), conn)
            view = self._view(rows[0], int(rows[0]["last_heartbeat_ms"]))
            previous = (before["runtime_version"], before["agent_version"], before["status"])
            if before["status"] != view.status:
                await self._outbox.stage(
                    conn,
                    view.tenant_id,
                    VM_STATUS_CHANGED,
                    {**vm_event(view), "from": before["status"], "to": view.status},
                    key=view.id,
                )
        await self._outbox.flush()
        return self._ack(view, changed=previous != new, previous_status=before["status"])

    # ------------------------------------------------------------------ writes

    @handler
    async def register(self, msg: RegisterVm) -> RegisteredVm:
        name_key = vm_name_key(msg.name)
        if await Vm.filter(tenant_id=msg.tenant_id, name_key=name_key).exists():
            raise Conflict(f"the tenant already has a VM named {msg.name!r}", field="name")
        tenant = await self.actor_runtime.ask(GetTenant(id=msg.tenant_id))
        limit = tenant.limits.vms
        token = new_token()
        labels = {str(k): str(v) for k, v in msg.labels.items()}
        try:
            async with in_transaction() as conn:
                # the tenant's counter row, created race-free (a second creator's insert is
                # ignored); a write first, so SQLite takes its write lock at once
                await VmTenantCounter.bulk_create(
                    [VmTenantCounter(tenant_id=msg.tenant_id, vms=0)],
                    ignore_conflicts=True,
                    using_db=conn,
                )
                taken = (
                    await VmTenantCounter.filter(tenant_id=msg.tenant_id, vms__lt=limit)
                    .using_db(conn)
                    .update(vms=F("vms") + 1)
                )
                if not taken:
                    raise LimitExceeded(
                        f"the plan allows {limit} VMs and the tenant has that many; deregister "
                        "one or raise the limit",
                        limit="vms",
                        allowed=limit,
                    )
                now_ms = await self._db_now(conn)
                row = await Vm.create(
                    id=new_id("vm"),
                    tenant_id=msg.tenant_id,
                    name=msg.name,
                    name_key=name_key,
                    labels=labels_json(labels),
                    runtime_version=msg.runtime_version,
                    agent_version=msg.agent_version,
                    status="READY",
                    token_hash=hash_token(token),
                    created_at_ms=now_ms,
                    last_heartbeat_ms=None,
                    created_by=msg.created_by,
                    using_db=conn,
                )
                if labels:
                    await VmLabel.bulk_create(
                        [
                            VmLabel(vm_id=row.id, tenant_id=row.tenant_id, key=k, value=v)
                            for k, v in sorted(labels.items())
                        ],
                        using_db=conn,
                    )
                view = self._view(row, now_ms)
                await self._outbox.stage(
                    conn, view.tenant_id, VM_REGISTERED, vm_event(view), key=view.id
                )
        except IntegrityError:  # the name was taken meanwhile by another process
            raise Conflict(
                f"the tenant already has a VM named {msg.name!r}", field="name"
            ) from None
        await self._outbox.flush()
        return RegisteredVm(vm=view, token=token)

    @handler
    async def rotate(self, msg: RotateVmToken) -> RegisteredVm:
        token = new_token()
        if not await Vm.filter(id=msg.id, tenant_id=msg.tenant_id).update(
            token_hash=hash_token(token)
        ):
            raise NotFound("VM not found", field="id", id=msg.id)
        row = await self._row(msg.tenant_id, msg.id)
        return RegisteredVm(vm=self._view(row, await self._db_now()), token=token)

    @handler
    async def deregister(self, msg: DeregisterVm) -> VmView:
        row = await self._row(msg.tenant_id, msg.id)
        async with in_transaction() as conn:
            removed = await Vm.filter(id=row.id, tenant_id=row.tenant_id).using_db(conn).delete()
            if not removed:  # deregistered meanwhile by another process
                raise NotFound("VM not found", field="id", id=msg.id)
            await VmLabel.filter(vm_id=row.id).using_db(conn).delete()
            await (
                VmTenantCounter.filter(tenant_id=row.tenant_id, vms__gt=0)
                .using_db(conn)
                .update(vms=F("vms") - 1)
            )
            view = self._view(row, await self._db_now(conn))
            await self._outbox.stage(
                conn, view.tenant_id, VM_DEREGISTERED, vm_event(view), key=view.id
            )
        await self._outbox.flush()
        # what ran there is undeployed (best effort: agent-registry may not run here)
        self._tell(UndeployAll(tenant_id=row.tenant_id, vm_id=row.id, reason="VM_REMOVED"))
        return view
