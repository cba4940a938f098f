"""vm-registry-service on both engines: registration and its token, names, labels and their
filter, the plan's limit (also two runtimes racing on one database), heartbeats (the one-UPDATE
path, the changing path and its event, the notices to agent-registry and update-service, which
may be absent), health moved in time by changing rows (the database's clock), token rotation,
deregistration and tenant isolation."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from synapsex.contracts.deployments import (
    DeploymentList,
    DeploymentReport,
    ReportDeploymentStates,
    UndeployAll,
)
from synapsex.contracts.errors import (
    Conflict,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Unauthenticated,
)
from synapsex.contracts.events import ListEvents
from synapsex.contracts.releases import NoteVmHeartbeat
from synapsex.contracts.tenant import CreateTenant, UpdateTenantPlan
from synapsex.contracts.vms import (
    VM_TOKEN_PREFIX,
    AuthenticateVm,
    DeregisterVm,
    GetVm,
    ListVmFleet,
    ListVms,
    RegisteredVm,
    RegisterVm,
    RotateVmToken,
    VmHeartbeat,
)
from synapsex.runtime import Actor, Runtime, handler
from synapsex.runtime.testing import raw_sql, wait_until

SERVICE = "vm-registry-service"
SERVICES = ["tenant-service", SERVICE]
INTERVAL_MS = 30_000  # the default SYNAPSEX_VM_HEARTBEAT_INTERVAL


def embedded(tmp_path, environ, *, services=SERVICES, actors=None) -> Runtime:
    return Runtime.embedded(data_dir=tmp_path, services=services, actors=actors, environ=environ)


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


async def tenant(rt: Runtime, name: str = "Acme", **limits: int) -> str:
    return (await rt.ask(CreateTenant(name=name, limits=limits or None))).id


async def register(rt: Runtime, tenant_id: str, name: str = "node-1", **kw) -> RegisteredVm:
    fields = {"labels": {}, "runtime_version": "1.0.0", "agent_version": "2.0.0", **kw}
    return await rt.ask(RegisterVm(tenant_id=tenant_id, name=name, **fields))


def beat(tenant_id: str, vm_id: str, status: str = "READY", **kw) -> VmHeartbeat:
    fields = {"runtime_version": "1.0.0", "agent_version": "2.0.0", **kw}
    return VmHeartbeat(tenant_id=tenant_id, vm_id=vm_id, status=status, **fields)


async def age(rt: Runtime, vm_id: str, *, heartbeat_ms: int | None, created_ms: int = 0) -> None:
    """Move the VM back in time: its last heartbeat ``heartbeat_ms`` (and its registration
    ``created_ms``) earlier than now on the database's clock; ``heartbeat_ms=None``: never."""
    async with raw_sql(rt, SERVICE) as sql:
        if heartbeat_ms is None:
            await sql("UPDATE vms SET last_heartbeat_ms = NULL WHERE id = ?", vm_id)
        else:
            await sql(
                "UPDATE vms SET last_heartbeat_ms = last_heartbeat_ms - ? WHERE id = ?",
                heartbeat_ms,
                vm_id,
            )
        await sql(
            "UPDATE vms SET created_at_ms = created_at_ms - ? WHERE id = ?", created_ms, vm_id
        )


# ---------------------------------------------------------------------------- registration


async def test_registration_replies_the_vm_and_a_token_stored_only_as_its_hash(rt):
    acme = await tenant(rt)
    created = await register(rt, acme, labels={"zone": "eu-west", "example.com/gpu": ""})
    vm = created.vm
    assert created.token.startswith(VM_TOKEN_PREFIX)
    assert len(created.token) == 48
    assert created.token not in repr(created)  # never shown in logs
    assert (vm.name, vm.status, vm.last_heartbeat_at) == ("node-1", "READY", None)
    assert vm.labels == {"example.com/gpu": "", "zone": "eu-west"}
    assert (vm.runtime_version, vm.agent_version) == ("1.0.0", "2.0.0")
    assert vm.health == "STALE"  # not heard from yet
    assert await rt.ask(GetVm(tenant_id=acme, id=vm.id)) == vm
    principal = await rt.ask(AuthenticateVm(token=created.token))
    assert (principal.tenant_id, principal.vm_id) == (acme, vm.id)
    async with raw_sql(rt, SERVICE) as sql:
        rows = await sql("SELECT * FROM vms")
    assert created.token not in str(rows)
    for bad in ("", "sx_" + "a" * 43, VM_TOKEN_PREFIX + "a" * 43, created.token[:-1]):
        with pytest.raises(Unauthenticated):
            await rt.ask(AuthenticateVm(token=bad))


async def test_names_are_unique_per_tenant_case_insensitively(rt):
    acme, other = await tenant(rt), await tenant(rt, "Other")
    await register(rt, acme, "Node-1")
    with pytest.raises(Conflict) as err:
        await register(rt, acme, "node-1")
    assert err.value.details["field"] == "name"
    assert (await register(rt, other, "node-1")).vm.name == "node-1"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "-node"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"runtime_version": "v1.0.0"}, "runtimeVersion"),
        ({"agent_version": "1.0"}, "agentVersion"),
        ({"labels": {"bad key": "x"}}, "labels"),
        ({"labels": {"Example.com/x": "y"}}, "labels"),
        ({"labels": {"zone": "eu west"}}, "labels.zone"),
        ({"labels": {"zone": 3}}, "labels.zone"),
        ({"labels": {f"k{i}": "v" for i in range(33)}}, "labels"),
    ],
)
def test_bad_input_names_the_field(fields, field):
    values = {
        "tenant_id": "ten_a",
        "name": "node-1",
        "labels": {},
        "runtime_version": "1.0.0",
        "agent_version": "1.0.0",
        **fields,
    }
    with pytest.raises(InvalidInput) as err:
        RegisterVm(**values)
    assert err.value.field == field


def test_heartbeat_and_list_inputs_are_checked():
    with pytest.raises(InvalidInput) as err:
        beat("ten_a", "vm_1", status="SLEEPING")
    assert err.value.field == "status"
    report = DeploymentReport(deployment_id="dep_1", state="PENDING")
    with pytest.raises(InvalidInput) as err:
        beat("ten_a", "vm_1", deployments=(report,))
    assert err.value.field == "deployments.state"
    for label in ("zone", "=eu", "zone=eu west"):
        with pytest.raises(InvalidInput) as err:
            ListVms(tenant_id="ten_a", label=label)
        assert err.value.field == "label"
    with pytest.raises(InvalidInput) as err:
        ListVms(tenant_id="ten_a", health="DEAD")
    assert err.value.field == "health"


# ---------------------------------------------------------------------------- the plan's limit


async def test_the_limit_counts_registered_vms_and_deregistering_frees_a_place(rt):
    acme = await tenant(rt, vms=2)
    first = await register(rt, acme, "a")
    await register(rt, acme, "b")
    with pytest.raises(LimitExceeded) as err:
        await register(rt, acme, "c")
    assert (err.value.details["limit"], err.value.details["allowed"]) == ("vms", 2)
    with pytest.raises(Conflict):  # a taken name is a conflict even at the limit
        await register(rt, acme, "a")
    await rt.ask(DeregisterVm(tenant_id=acme, id=first.vm.id))
    await register(rt, acme, "c")
    # a raised limit applies at once
    await rt.ask(UpdateTenantPlan(tenant_id=acme, plan="free", limits={"vms": 3}))
    await register(rt, acme, "d")


async def test_concurrent_registrations_from_two_runtimes_admit_exactly_the_limit(
    tmp_path, db_environ
):
    # two runtimes on one database stand for two `synapsex serve` processes
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        for attempt in range(2):
            acme = await tenant(a, f"Race {attempt}", vms=5)
            results = await asyncio.gather(
                *(register(rt, acme, f"n{i}") for i, rt in enumerate([a, b] * 8)),
                return_exceptions=True,
            )
            refused = [r for r in results if isinstance(r, LimitExceeded)]
            assert [r for r in results if isinstance(r, BaseException)] == refused
            assert len(results) - len(refused) == 5
            fleet = await b.ask(ListVmFleet(tenant_id=acme))
            assert len(fleet.vms) == 5


# ---------------------------------------------------------------------------- heartbeats


async def test_a_heartbeat_that_changes_nothing_only_moves_the_time(rt):
    acme = await tenant(rt)
    vm = (await register(rt, acme)).vm
    ack = await rt.ask(beat(acme, vm.id))
    assert (ack.changed, ack.previous_status) == (False, "READY")
    assert ack.heartbeat_interval_seconds == 30.0
    assert ack.vm.health == "HEALTHY"
    assert ack.vm.last_heartbeat_at is not None
    assert ack.vm.last_heartbeat_at >= vm.created_at
    again = await rt.ask(beat(acme, vm.id))
    assert again.vm.last_heartbeat_at >= ack.vm.last_heartbeat_at
    assert not again.changed


async def test_a_heartbeat_changing_status_or_versions_is_stored_and_published(
    tmp_path, db_environ
):
    services = [*SERVICES, "event-bus-service"]
    async with embedded(tmp_path, db_environ, services=services) as rt:
        acme = await tenant(rt)
        vm = (await register(rt, acme)).vm
        ack = await rt.ask(beat(acme, vm.id, "UPDATING"))
        assert (ack.changed, ack.previous_status, ack.vm.status) == (True, "READY", "UPDATING")
        ack = await rt.ask(beat(acme, vm.id, "UPDATING", agent_version="2.1.0"))
        assert (ack.changed, ack.vm.agent_version) == (True, "2.1.0")
        assert not (await rt.ask(beat(acme, vm.id, "UPDATING", agent_version="2.1.0"))).changed
        stored = await rt.ask(GetVm(tenant_id=acme, id=vm.id))
        assert (stored.status, stored.agent_version) == ("UPDATING", "2.1.0")
        await rt.ask(DeregisterVm(tenant_id=acme, id=vm.id))
        events = (await rt.ask(ListEvents(tenant_id=acme, topic="vm.#"))).items
        # a version change alone publishes nothing; a status change does
        topics = [e.topic for e in events]
        assert topics == ["vm.registered", "vm.status_changed", "vm.deregistered"]
        changed = events[1].payload
        assert (changed["id"], changed["from"], changed["to"]) == (vm.id, "READY", "UPDATING")
        assert events[0].payload["labels"] == {}
        assert events[0].key == vm.id
        assert all("token" not in str(e.payload).lower() for e in events)


async def test_concurrent_changing_heartbeats_of_one_vm_are_all_stored(rt):
    acme = await tenant(rt)
    vm = (await register(rt, acme)).vm
    statuses = ["BUSY", "READY", "UPDATING", "FAILED"] * 3
    acks = await asyncio.gather(*(rt.ask(beat(acme, vm.id, s)) for s in statuses))
    # applied one after another: each saw the status the one before it left, so the acks'
    # (previous -> new) steps form one path from READY to the final status
    final = await rt.ask(GetVm(tenant_id=acme, id=vm.id))
    assert all(a.changed == (a.previous_status != a.vm.status) for a in acks)
    leaving = Counter(a.previous_status for a in acks)
    entering = Counter(a.vm.status for a in acks)
    for status in {*statuses, "READY"}:
        start, end = int(status == "READY"), int(status == final.status)
        assert leaving[status] - entering[status] == start - end, status


async def test_a_deregistered_or_foreign_vm_cannot_heartbeat(rt):
    acme, other = await tenant(rt), await tenant(rt, "Other")
    vm = (await register(rt, acme)).vm
    for status in ("READY", "BUSY"):  # the fast path and the changing path
        with pytest.raises(Unauthenticated):
            await rt.ask(beat(other, vm.id, status))
    await rt.ask(DeregisterVm(tenant_id=acme, id=vm.id))
    for status in ("READY", "BUSY"):
        with pytest.raises(Unauthenticated):
            await rt.ask(beat(acme, vm.id, status))


class Recorder:
    messages: list = []


class FakeAgentRegistry(Actor, service="agent-registry-service"):
    @handler
    async def report(self, msg: ReportDeploymentStates) -> DeploymentList:
        Recorder.messages.append(msg)
        return DeploymentList(items=())

    @handler
    async def undeploy_all(self, msg: UndeployAll) -> DeploymentList:
        Recorder.messages.append(msg)
        return DeploymentList(items=())


class FakeUpdateService(Actor, service="update-service"):
    @handler
    async def note(self, msg: NoteVmHeartbeat) -> None:
        Recorder.messages.append(msg)


async def test_heartbeats_tell_agent_registry_and_update_service_when_they_run(
    tmp_path, db_environ
):
    Recorder.messages = []
    actors = [FakeAgentRegistry, FakeUpdateService]
    async with embedded(tmp_path, db_environ, actors=actors) as rt:
        acme = await tenant(rt)
        vm = (await register(rt, acme)).vm
        report = DeploymentReport(deployment_id="dep_1", state="FAILED", error="exit 1")
        await rt.ask(beat(acme, vm.id, deployments=(report,)))
        await rt.ask(beat(acme, vm.id, "BUSY"))  # no reports: agent-registry is not told
        await rt.ask(DeregisterVm(tenant_id=acme, id=vm.id))
        await wait_until(lambda: len(Recorder.messages) == 4)
    kinds = sorted(type(m).__name__ for m in Recorder.messages)
    assert kinds == ["NoteVmHeartbeat", "NoteVmHeartbeat", "ReportDeploymentStates", "UndeployAll"]
    (told,) = [m for m in Recorder.messages if isinstance(m, ReportDeploymentStates)]
    assert (told.tenant_id, told.vm_id, told.reports) == (acme, vm.id, (report,))
    (undeploy,) = [m for m in Recorder.messages if isinstance(m, UndeployAll)]
    assert (undeploy.vm_id, undeploy.reason) == (vm.id, "VM_REMOVED")


async def test_heartbeats_succeed_when_neither_agent_registry_nor_update_service_runs(rt):
    acme = await tenant(rt)
    vm = (await register(rt, acme)).vm
    report = DeploymentReport(deployment_id="dep_1", state="RUNNING")
    ack = await rt.ask(beat(acme, vm.id, "BUSY", deployments=(report,)))
    assert ack.changed
    assert ack.vm.status == "BUSY"


# ---------------------------------------------------------------------------- health


async def test_health_follows_the_time_since_the_last_heartbeat(rt):
    acme = await tenant(rt)
    vm = (await register(rt, acme)).vm
    await rt.ask(beat(acme, vm.id))

    async def health() -> str:
        return (await rt.ask(GetVm(tenant_id=acme, id=vm.id))).health

    assert await health() == "HEALTHY"
    await age(rt, vm.id, heartbeat_ms=3 * INTERVAL_MS - 2_000)  # 2 s before the third miss
    assert await health() == "HEALTHY"
    await age(rt, vm.id, heartbeat_ms=4_000)
    assert await health() == "STALE"
    await age(rt, vm.id, heartbeat_ms=7 * INTERVAL_MS)  # 10 intervals and 2 s
    assert await health() == "OFFLINE"
    await rt.ask(beat(acme, vm.id))  # back
    assert await health() == "HEALTHY"


async def test_a_vm_never_heard_from_is_stale_then_offline_after_ten_intervals(rt):
    acme = await tenant(rt)
    vm = (await register(rt, acme)).vm
    assert vm.health == "STALE"
    await age(rt, vm.id, heartbeat_ms=None, created_ms=10 * INTERVAL_MS - 5_000)
    assert (await rt.ask(GetVm(tenant_id=acme, id=vm.id))).health == "STALE"
    await age(rt, vm.id, heartbeat_ms=None, created_ms=10_000)
    assert (await rt.ask(GetVm(tenant_id=acme, id=vm.id))).health == "OFFLINE"


async def test_health_filters_the_list_and_the_fleet(rt):
    acme = await tenant(rt, vms=10)
    ids = {}
    for name in ("healthy", "stale", "offline", "never", "lost"):
        ids[name] = (await register(rt, acme, name)).vm.id
    for name in ("healthy", "stale", "offline"):
        await rt.ask(beat(acme, ids[name]))
    await age(rt, ids["stale"], heartbeat_ms=5 * INTERVAL_MS)
    await age(rt, ids["offline"], heartbeat_ms=11 * INTERVAL_MS)
    await age(rt, ids["lost"], heartbeat_ms=None, created_ms=11 * INTERVAL_MS)
    expected = {
        "HEALTHY": {"healthy"},
        "STALE": {"stale", "never"},
        "OFFLINE": {"offline", "lost"},
    }
    for health, names in expected.items():
        page = await rt.ask(ListVms(tenant_id=acme, health=health))
        assert {v.name for v in page.items} == names
        assert {v.health for v in page.items} == {health}
        fleet = await rt.ask(ListVmFleet(tenant_id=acme, health=health))
        assert {v.name for v in fleet.vms} == names
    assert len((await rt.ask(ListVmFleet(tenant_id=acme))).vms) == 5


async def test_the_heartbeat_interval_is_configurable(tmp_path, db_environ):
    environ = {**db_environ, "SYNAPSEX_VM_HEARTBEAT_INTERVAL": "2m"}
    async with embedded(tmp_path, environ) as rt:
        acme = await tenant(rt)
        vm = (await register(rt, acme)).vm
        ack = await rt.ask(beat(acme, vm.id))
        assert ack.heartbeat_interval_seconds == 120.0
        await age(rt, vm.id, heartbeat_ms=5 * INTERVAL_MS)  # 2.5 min: within 3 x 2 min
        assert (await rt.ask(GetVm(tenant_id=acme, id=vm.id))).health == "HEALTHY"


# ---------------------------------------------------------------------------- lists


async def test_vms_are_listed_oldest_first_by_page_status_and_label(rt):
    acme = await tenant(rt, vms=10)
    zones = ["eu", "us", "eu", "ap", "eu"]
    ids = [
        (await register(rt, acme, f"n{i}", labels={"zone": z, "tier": "gpu"})).vm.id
        for i, z in enumerate(zones)
    ]
    await rt.ask(beat(acme, ids[2], "BUSY"))
    first = await rt.ask(ListVms(tenant_id=acme, first=2))
    assert [v.id for v in first.items] == ids[:2]
    assert first.has_next_page
    rest = await rt.ask(ListVms(tenant_id=acme, first=10, after=first.end_cursor))
    assert [v.id for v in rest.items] == ids[2:]
    assert not rest.has_next_page
    eu = await rt.ask(ListVms(tenant_id=acme, label="zone=eu"))
    assert [v.id for v in eu.items] == [ids[0], ids[2], ids[4]]
    assert (await rt.ask(ListVms(tenant_id=acme, label="zone=EU"))).items == ()  # exact
    assert (await rt.ask(ListVms(tenant_id=acme, label="gpu=zone"))).items == ()
    busy_eu = await rt.ask(ListVms(tenant_id=acme, label="zone=eu", status="BUSY"))
    assert [v.id for v in busy_eu.items] == [ids[2]]
    page = await rt.ask(ListVms(tenant_id=acme, label="zone=eu", first=2))
    assert [v.id for v in page.items] == [ids[0], ids[2]]
    assert page.has_next_page


# ---------------------------------------------------------------------------- tokens, removal


async def test_rotating_the_token_retires_the_old_one(rt):
    acme = await tenant(rt)
    created = await register(rt, acme)
    rotated = await rt.ask(RotateVmToken(tenant_id=acme, id=created.vm.id))
    assert rotated.token != created.token
    assert rotated.vm.id == created.vm.id
    with pytest.raises(Unauthenticated):
        await rt.ask(AuthenticateVm(token=created.token))
    assert (await rt.ask(AuthenticateVm(token=rotated.token))).vm_id == created.vm.id


async def test_deregistering_removes_the_vm_its_token_and_frees_its_name(rt):
    acme = await tenant(rt)
    created = await register(rt, acme, labels={"zone": "eu"})
    removed = await rt.ask(DeregisterVm(tenant_id=acme, id=created.vm.id))
    assert removed.id == created.vm.id
    with pytest.raises(Unauthenticated):
        await rt.ask(AuthenticateVm(token=created.token))
    with pytest.raises(NotFound):
        await rt.ask(GetVm(tenant_id=acme, id=created.vm.id))
    with pytest.raises(NotFound):
        await rt.ask(DeregisterVm(tenant_id=acme, id=created.vm.id))
    assert (await rt.ask(ListVms(tenant_id=acme, label="zone=eu"))).items == ()
    assert (await register(rt, acme)).vm.id != created.vm.id


async def test_another_tenants_vm_is_not_found(rt):
    acme, other = await tenant(rt), await tenant(rt, "Other")
    vm = (await register(rt, acme, labels={"zone": "eu"})).vm
    for message in (
        GetVm(tenant_id=other, id=vm.id),
        RotateVmToken(tenant_id=other, id=vm.id),
        DeregisterVm(tenant_id=other, id=vm.id),
    ):
        with pytest.raises(NotFound):
            await rt.ask(message)
    assert (await rt.ask(ListVms(tenant_id=other))).items == ()
    assert (await rt.ask(ListVms(tenant_id=other, label="zone=eu"))).items == ()
    assert (await rt.ask(ListVmFleet(tenant_id=other))).vms == ()
    assert (await rt.ask(GetVm(tenant_id=acme, id=vm.id))).id == vm.id  # untouched
