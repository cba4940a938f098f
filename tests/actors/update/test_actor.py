"""update-service on both engines, with a stand-in vm-registry (the fleet set by the test):
releases (semver, unique by precedence, per tenant), rollouts (one active per component,
previous release by precedence), what each VM is told (labels, percentage growth, pause,
rings, completion, rollback), the health gate on heartbeats and on the periodic sweep, and
tenant isolation."""

from __future__ import annotations

import asyncio

import pytest

from synapsex.actors.update.actor import UpdateActor
from synapsex.actors.update.internal import EvaluateTenant
from synapsex.contracts.errors import Conflict, InvalidInput, NotFound
from synapsex.contracts.releases import (
    CreateRelease,
    GetDesiredVersion,
    GetRelease,
    GetRollout,
    ListReleases,
    ListRollouts,
    NoteVmHeartbeat,
    PauseRollout,
    ReleaseView,
    ResumeRollout,
    RollbackRollout,
    RolloutRing,
    RolloutView,
    SetRolloutPercentage,
    StartRollout,
    bucket_of,
    in_percentage,
)
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql, wait_until

from .fake_vms import FakeVmRegistry

A = "ten_a"
B = "ten_b"
SHA = "ab" * 32


@pytest.fixture(autouse=True)
def _fleet():
    FakeVmRegistry.fleets.clear()
    yield
    FakeVmRegistry.fleets.clear()


def embedded(tmp_path, environ: dict[str, str], **env: str) -> Runtime:
    return Runtime.embedded(
        data_dir=tmp_path, actors=[UpdateActor, FakeVmRegistry], environ={**environ, **env}
    )


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


async def release(rt: Runtime, version: str, *, tenant: str = A, component: str = "AGENT"):
    return await rt.ask(
        CreateRelease(
            tenant_id=tenant,
            component=component,
            version=version,
            url=f"https://dl.example.com/agent-{version}.tar.gz",
            sha256=SHA,
            notes=f"agent {version}",
        )
    )


async def start(rt: Runtime, rel: ReleaseView, percentage: int = 100, **kw) -> RolloutView:
    kw.setdefault("labels", {})
    return await rt.ask(
        StartRollout(tenant_id=rel.tenant_id, release_id=rel.id, percentage=percentage, **kw)
    )


async def desired(rt: Runtime, vm_id: str, *, tenant: str = A, preview: bool = False):
    return await rt.ask(
        GetDesiredVersion(tenant_id=tenant, vm_id=vm_id, component="AGENT", preview=preview)
    )


async def rollout(rt: Runtime, rollout_id: str, tenant: str = A) -> RolloutView:
    return await rt.ask(GetRollout(tenant_id=tenant, id=rollout_id))


async def evaluate(rt: Runtime, rollout_id: str, tenant: str = A) -> RolloutView:
    await rt.ask(EvaluateTenant(tenant_id=tenant))
    return await rollout(rt, rollout_id, tenant)


def vms(count: int, tenant: str = A, prefix: str = "vm", **kw) -> list[str]:
    ids = [f"{prefix}_{i:03d}" for i in range(count)]
    for vm_id in ids:
        FakeVmRegistry.add(tenant, vm_id, **kw)
    return ids


# ---------------------------------------------------------------------------- releases


async def test_releases_are_unique_per_component_by_precedence_and_per_tenant(rt):
    first = await release(rt, "1.4.0")
    assert (first.component, first.version, first.sha256) == ("AGENT", "1.4.0", SHA)
    with pytest.raises(Conflict) as exc:
        await release(rt, "1.4.0+build.7")  # build metadata does not make another version
    assert exc.value.details["field"] == "version"
    await release(rt, "1.4.0", component="RUNTIME")
    await release(rt, "1.4.0", tenant=B)
    assert await rt.ask(GetRelease(tenant_id=A, id=first.id)) == first
    with pytest.raises(NotFound):
        await rt.ask(GetRelease(tenant_id=B, id=first.id))
    page = await rt.ask(ListReleases(tenant_id=A, component="AGENT"))
    assert [r.version for r in page.items] == ["1.4.0"]
    assert len((await rt.ask(ListReleases(tenant_id=A))).items) == 2


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("version", {"version": "1.4"}),
        ("version", {"version": "v1.4.0"}),
        ("component", {"component": "KERNEL"}),
        ("url", {"url": "ftp://x/y"}),
        ("sha256", {"sha256": "xyz"}),
    ],
)
def test_release_validation_names_the_field(field, fields):
    values = {
        "tenant_id": A,
        "component": "AGENT",
        "version": "1.0.0",
        "url": "https://x/y",
        "sha256": SHA,
        **fields,
    }
    with pytest.raises(InvalidInput) as exc:
        CreateRelease(**values)
    assert exc.value.field == field


# ---------------------------------------------------------------------------- rollouts


async def test_previous_release_is_the_highest_lower_version_by_precedence(rt):
    for version in ("1.2.0", "1.10.0", "1.9.0", "1.10.0-rc.1"):
        await release(rt, version)
    target = await release(rt, "1.10.1")
    started = await start(rt, target)
    assert (started.status, started.previous_version) == ("RUNNING", "1.10.0")
    lowest = await rt.ask(ListReleases(tenant_id=A))
    first = next(r for r in lowest.items if r.version == "1.2.0")
    assert (await rt.ask(RollbackRollout(tenant_id=A, id=started.id))).status == "ROLLED_BACK"
    assert (await start(rt, first)).previous_version is None


async def test_one_active_rollout_per_component(rt):
    a1, a2 = await release(rt, "1.0.0"), await release(rt, "1.1.0")
    r1 = await release(rt, "2.0.0", component="RUNTIME")
    first = await start(rt, a1, 10)
    with pytest.raises(Conflict) as exc:
        await start(rt, a2, 10)
    assert exc.value.details["field"] == "releaseId"
    assert first.id in exc.value.message
    await start(rt, r1, 10)  # another component
    await rt.ask(PauseRollout(tenant_id=A, id=first.id))
    with pytest.raises(Conflict):
        await start(rt, a2, 10)  # paused is still active
    await rt.ask(RollbackRollout(tenant_id=A, id=first.id))
    assert (await start(rt, a2, 10)).status == "RUNNING"
    page = await rt.ask(ListRollouts(tenant_id=A, status="RUNNING"))
    assert len(page.items) == 2


async def test_rollouts_and_vms_are_tenant_isolated(rt):
    vms(1, tenant=A)
    mine = await start(rt, await release(rt, "1.0.0"))
    with pytest.raises(NotFound):
        await rollout(rt, mine.id, tenant=B)
    for message in (
        PauseRollout(tenant_id=B, id=mine.id),
        RollbackRollout(tenant_id=B, id=mine.id),
        SetRolloutPercentage(tenant_id=B, id=mine.id, percentage=5),
    ):
        with pytest.raises(NotFound):
            await rt.ask(message)
    with pytest.raises(NotFound) as exc:
        await rt.ask(StartRollout(tenant_id=B, release_id=mine.release_id, percentage=5, labels={}))
    assert exc.value.details["field"] == "releaseId"
    with pytest.raises(NotFound) as exc:
        await desired(rt, "vm_000", tenant=B)
    assert exc.value.details["field"] == "vmId"
    assert (await rt.ask(ListRollouts(tenant_id=B))).items == ()


# ---------------------------------------------------------------------------- targeting


async def test_percentage_growth_only_adds_vms_and_given_vms_keep_the_version(rt):
    ids = vms(40)
    rel = await release(rt, "1.1.0")
    r = await start(rt, rel, 0)
    assert r.targeted == 0
    given: set[str] = set()
    for percentage in (10, 50, 20, 100):
        await rt.ask(SetRolloutPercentage(tenant_id=A, id=r.id, percentage=percentage))
        told = {v: await desired(rt, v) for v in ids}
        now = {v for v, d in told.items() if d.version == "1.1.0"}
        expected = {v for v in ids if in_percentage(bucket_of(r.id, v), percentage)}
        assert now == expected | given  # lowering to 20 takes nobody back
        given = now
        assert all(told[v].rollout_id == r.id for v in now)
    assert given == set(ids)


async def test_labels_narrow_the_target(rt):
    FakeVmRegistry.add(A, "vm_prod", {"env": "prod", "zone": "eu"})
    FakeVmRegistry.add(A, "vm_stage", {"env": "staging"})
    r = await start(rt, await release(rt, "1.1.0"), labels={"env": "prod"})
    assert r.targeted == 1
    assert (await desired(rt, "vm_prod")).version == "1.1.0"
    other = await desired(rt, "vm_stage")
    assert other.version is None
    assert "do not match the selector env=prod" in other.reason


async def test_preview_records_nothing(rt):
    vms(1)
    r = await start(rt, await release(rt, "1.1.0"))
    assert (await desired(rt, "vm_000", preview=True)).reason.startswith("This VM would be given")
    await rt.ask(PauseRollout(tenant_id=A, id=r.id))
    assert (await desired(rt, "vm_000")).version is None  # never given: paused targets nobody


async def test_paused_rollouts_target_no_new_vm_but_given_ones_keep_it(rt):
    vms(2)
    r = await start(rt, await release(rt, "1.1.0"))
    assert (await desired(rt, "vm_000")).version == "1.1.0"
    paused = await rt.ask(PauseRollout(tenant_id=A, id=r.id))
    assert paused.status == "PAUSED"
    with pytest.raises(Conflict):
        await rt.ask(PauseRollout(tenant_id=A, id=r.id))
    kept = await desired(rt, "vm_000")
    assert kept.version == "1.1.0"
    assert "paused" in kept.reason
    new = await desired(rt, "vm_001")
    assert new.version is None
    assert "targets no new VM" in new.reason
    assert (await evaluate(rt, r.id)).targeted == 1
    await rt.ask(ResumeRollout(tenant_id=A, id=r.id))
    assert (await desired(rt, "vm_001")).version == "1.1.0"


async def test_rings_advance_when_the_current_ring_is_updated_and_healthy(rt):
    FakeVmRegistry.add(A, "vm_canary", {"ring": "canary"})
    FakeVmRegistry.add(A, "vm_early", {"ring": "early"})
    FakeVmRegistry.add(A, "vm_rest")
    rings = (
        RolloutRing(name="canary", labels={"ring": "canary"}),
        RolloutRing(name="early", labels={"ring": "early"}),
        RolloutRing(name="broad", labels={}),
    )
    r = await start(rt, await release(rt, "1.1.0"), rings=rings)
    assert (r.current_ring, r.targeted) == (0, 1)
    waiting = await desired(rt, "vm_rest")
    assert waiting.version is None
    assert "its ring 'broad' is not reached yet (ring 'canary' is in progress)" in waiting.reason
    assert (await desired(rt, "vm_canary")).version == "1.1.0"
    FakeVmRegistry.set(A, "vm_canary", agent_version="1.1.0")
    r = await evaluate(rt, r.id)
    assert (r.current_ring, r.targeted, r.updated) == (1, 2, 1)
    assert (await desired(rt, "vm_rest")).version is None
    assert (await desired(rt, "vm_early")).version == "1.1.0"
    FakeVmRegistry.set(A, "vm_early", agent_version="1.1.0")
    r = await evaluate(rt, r.id)
    assert r.current_ring == 2
    assert (await desired(rt, "vm_rest")).version == "1.1.0"
    FakeVmRegistry.set(A, "vm_rest", agent_version="1.1.0")
    r = await evaluate(rt, r.id)
    assert (r.status, r.targeted, r.updated) == ("COMPLETED", 3, 3)


async def test_a_completed_rollout_frees_the_component_and_still_serves_new_vms(rt):
    vms(2)
    r = await start(rt, await release(rt, "1.1.0"))
    for vm_id in ("vm_000", "vm_001"):
        assert (await desired(rt, vm_id)).version == "1.1.0"
        FakeVmRegistry.set(A, vm_id, agent_version="1.1.0")
    done = await evaluate(rt, r.id)
    assert (done.status, done.ended_at is not None) == ("COMPLETED", True)
    FakeVmRegistry.add(A, "vm_new")
    told = await desired(rt, "vm_new")
    assert (told.version, told.rollout_id) == ("1.1.0", r.id)
    nxt = await start(rt, await release(rt, "1.2.0"), 0)
    assert nxt.previous_version == "1.1.0"
    # not targeted by the new one: stays on what the completed one gave it
    stays = await desired(rt, "vm_000")
    assert (stays.version, stays.rollout_id) == ("1.1.0", r.id)
    assert stays.reason.startswith(f"Not targeted by rollout {nxt.id}")


async def test_rollback_sends_every_vm_given_the_release_back_to_the_previous_one(rt):
    vms(3)
    old = await release(rt, "1.0.0")
    first = await start(rt, old)
    for vm_id in ("vm_000", "vm_001", "vm_002"):
        await desired(rt, vm_id)
        FakeVmRegistry.set(A, vm_id, agent_version="1.0.0")
    assert (await evaluate(rt, first.id)).status == "COMPLETED"
    r = await start(rt, await release(rt, "1.1.0"), 100)
    assert (await desired(rt, "vm_000")).version == "1.1.0"
    assert (await desired(rt, "vm_001")).version == "1.1.0"
    with pytest.raises(Conflict):  # only the latest rollout of the component
        await rt.ask(RollbackRollout(tenant_id=A, id=first.id))
    back = await rt.ask(RollbackRollout(tenant_id=A, id=r.id))
    assert (back.status, back.previous_release_id) == ("ROLLED_BACK", old.id)
    for vm_id in ("vm_000", "vm_001", "vm_002"):
        told = await desired(rt, vm_id)
        assert (told.version, told.release_id) == ("1.0.0", old.id)
    assert "rolled back" in (await desired(rt, "vm_000")).reason
    with pytest.raises(Conflict):
        await rt.ask(ResumeRollout(tenant_id=A, id=r.id))


# ---------------------------------------------------------------------------- health gate


async def test_the_health_gate_halts_on_heartbeats(rt):
    ids = vms(5)
    r = await start(rt, await release(rt, "1.1.0"))
    for vm_id in ids:
        await desired(rt, vm_id)
        FakeVmRegistry.set(A, vm_id, agent_version="1.1.0")
    FakeVmRegistry.set(A, ids[0], status="FAILED")  # 1 of 5: 20 %, not more
    assert (await evaluate(rt, r.id)).status == "RUNNING"
    FakeVmRegistry.set(A, ids[1], status="FAILED")  # 2 of 5: 40 %
    await rt.tell(NoteVmHeartbeat(tenant_id=A, vm_id=ids[1]))
    halted = await wait_until(
        lambda: _with_status(rt, r.id, "HALTED"), message="halted after the heartbeat"
    )
    assert (halted.failed, halted.updated) == (2, 5)
    assert halted.halted_reason.startswith("2 of the 5 VMs given 1.1.0 (40 %)")
    assert (await desired(rt, ids[0])).version == "1.1.0"  # keeps it until a rollback
    FakeVmRegistry.add(A, "vm_new")
    assert "health gate" in (await desired(rt, "vm_new")).reason


async def test_the_health_gate_needs_a_minimum_sample(rt):
    ids = vms(2)
    r = await start(rt, await release(rt, "1.1.0"))
    for vm_id in ids:
        await desired(rt, vm_id)
        FakeVmRegistry.set(A, vm_id, status="FAILED")
    assert (await evaluate(rt, r.id)).status == "RUNNING"  # 2 < the minimum sample of 3


async def test_the_sweep_halts_when_vms_go_offline_without_heartbeats(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ, SYNAPSEX_ROLLOUT_SWEEP_INTERVAL="0.2") as rt:
        ids = vms(4)
        r = await start(rt, await release(rt, "1.1.0"))
        for vm_id in ids:
            await desired(rt, vm_id)
        FakeVmRegistry.set(A, ids[0], health="OFFLINE")
        halted = await wait_until(lambda: _with_status(rt, r.id, "HALTED"))
        assert halted.failed == 1  # 1 of 4: 25 % > 20 %


async def _with_status(rt: Runtime, rollout_id: str, status: str) -> RolloutView | None:
    view = await rollout(rt, rollout_id)
    return view if view.status == status else None


async def test_events_are_staged_with_every_change(tmp_path, db_environ):
    """Without an event bus in the runtime the events wait in the outbox, in order."""
    async with embedded(tmp_path, db_environ) as rt:
        vms(1)
        r = await start(rt, await release(rt, "1.1.0"))
        await rt.ask(PauseRollout(tenant_id=A, id=r.id))
        await rt.ask(ResumeRollout(tenant_id=A, id=r.id))
        await rt.ask(RollbackRollout(tenant_id=A, id=r.id))
        async with raw_sql(rt, "update-service") as sql:
            rows = await sql("SELECT topic FROM update_outbox ORDER BY id")
    assert [row["topic"] for row in rows] == [
        "release.created",
        "rollout.started",
        "rollout.progressed",
        "rollout.paused",
        "rollout.resumed",
        "rollout.rolled_back",
    ]


async def test_two_processes_on_one_postgresql_start_one_rollout_and_agree_on_assignments(
    tmp_path, pg_url
):
    """Two runtimes (servers) on one database: of two rollouts of a component started at once
    only one starts; VMs asking both while one pauses it are given the release only inside
    the percentage, and both answer the same afterwards (paused: nobody new)."""
    environ = {"DATABASE_URL": pg_url}
    first = Runtime.embedded(
        data_dir=tmp_path / "a", actors=[UpdateActor, FakeVmRegistry], environ=environ
    )
    second = Runtime.embedded(
        data_dir=tmp_path / "b", actors=[UpdateActor, FakeVmRegistry], environ=environ
    )
    await first.start()
    await second.start()
    try:
        ids = vms(10)
        one, two = await release(first, "1.0.0"), await release(first, "1.1.0")
        results = await asyncio.gather(
            start(first, one, 50), start(second, two, 50), return_exceptions=True
        )
        started = [r for r in results if isinstance(r, RolloutView)]
        assert len(started) == 1
        assert [type(r) for r in results if not isinstance(r, RolloutView)] == [Conflict]
        (r,) = started
        told = await asyncio.gather(
            *(desired(rt, vm_id) for vm_id in ids for rt in (first, second)),
            second.ask(PauseRollout(tenant_id=A, id=r.id)),
        )
        given = {vm_id for vm_id in ids if (await desired(first, vm_id)).version is not None}
        # whatever interleaving: the VMs given it are inside the percentage, and after the
        # pause nobody else is
        assert given <= {v for v in ids if in_percentage(bucket_of(r.id, v), 50)}
        assert all(t.version in (None, r.version) for t in told[:-1])
        assert given == {v for v in ids if (await desired(second, v)).version is not None}
    finally:
        await first.stop()
        await second.stop()
