"""The targeting rules as pure functions: the bucketing function (deterministic, fair within
±3 points over 2,000 VMs, monotonic in the percentage, independent between rollouts), label
selectors, rings, progress counts, and the sentence a VM is told."""

from __future__ import annotations

import bisect
import hashlib

import pytest

from synapsex.actors.update.targeting import (
    Plan,
    decide,
    eligible,
    measure,
    reached_ring,
    ring_of,
)
from synapsex.contracts.releases import (
    BUCKETS,
    COMPLETED,
    HALTED,
    PAUSED,
    ROLLED_BACK,
    RUNNING,
    RolloutRing,
    bucket_of,
    in_percentage,
    same_version,
    selector_matches,
    version_key,
)

from .fake_vms import FakeVmRegistry

T = "ten_t"
FLEET = [f"vm_{i:05d}" for i in range(2000)]


def plan(**kw) -> Plan:
    fields = {
        "id": "rol_1",
        "component": "AGENT",
        "release_id": "rel_2",
        "version": "2.0.0",
        "previous_release_id": "rel_1",
        "previous_version": "1.0.0",
        "status": RUNNING,
        "percentage": 100,
        "labels": {},
        "rings": (),
        "current_ring": 0,
        **kw,
    }
    return Plan(**fields)


@pytest.fixture(autouse=True)
def _fleet():
    FakeVmRegistry.fleets.clear()
    yield
    FakeVmRegistry.fleets.clear()


def vm(vm_id: str = "vm_1", labels: dict[str, str] | None = None, **kw):
    return FakeVmRegistry.add(T, vm_id, labels, **kw)


# ---------------------------------------------------------------------------- bucketing


def test_bucket_is_the_documented_sha256_function():
    digest = hashlib.sha256(b"rol_abc:vm_xyz").digest()
    assert bucket_of("rol_abc", "vm_xyz") == int.from_bytes(digest[:8], "big") % BUCKETS
    assert bucket_of("rol_abc", "vm_xyz") == bucket_of("rol_abc", "vm_xyz")
    assert 0 <= bucket_of("rol_abc", "vm_xyz") < BUCKETS


@pytest.mark.parametrize("rollout", ["rol_a", "rol_b", "rol_01M97APT9GZT8Y8SDKC6V5VZ6H"])
def test_every_percentage_targets_that_share_of_2000_vms_within_3_points(rollout):
    buckets = sorted(bucket_of(rollout, v) for v in FLEET)
    for percentage in range(1, 100):
        # in_percentage(b, p) is b < p * 100: count the buckets below that
        inside = bisect.bisect_left(buckets, percentage * BUCKETS // 100)
        assert abs(100 * inside / len(FLEET) - percentage) <= 3, (percentage, inside)


def test_0_and_100_percent_are_nobody_and_everybody():
    assert not any(in_percentage(bucket_of("rol_a", v), 0) for v in FLEET)
    assert all(in_percentage(bucket_of("rol_a", v), 100) for v in FLEET)


def test_raising_the_percentage_only_adds_vms():
    previous: set[str] = set()
    for percentage in range(101):
        inside = {v for v in FLEET if in_percentage(bucket_of("rol_a", v), percentage)}
        assert previous <= inside
        previous = inside


def test_buckets_of_two_rollouts_are_independent():
    first = {v for v in FLEET if in_percentage(bucket_of("rol_a", v), 10)}
    second = {v for v in FLEET if in_percentage(bucket_of("rol_b", v), 10)}
    # ~10 % of the first 10 % are also in the second: not the same VMs every time
    assert len(first & second) < len(first) / 2


# ---------------------------------------------------------------------------- versions, labels


def test_versions_compare_by_precedence_without_build_metadata():
    assert version_key("1.4.0+b7") == "1.4.0"
    assert version_key("2.0.0-rc.1+x") == "2.0.0-rc.1"
    assert same_version("1.4.0+b7", "1.4.0")
    assert not same_version("1.4.0-rc.1", "1.4.0")
    assert same_version("not-semver", "not-semver")
    assert not same_version(None, "1.0.0")


def test_selector_needs_every_pair():
    assert selector_matches({}, {"env": "prod"})
    assert selector_matches({"env": "prod"}, {"env": "prod", "zone": "eu"})
    assert not selector_matches({"env": "prod", "zone": "us"}, {"env": "prod", "zone": "eu"})
    assert not selector_matches({"env": "prod"}, {})


def test_labels_narrow_the_target():
    p = plan(labels={"env": "prod"})
    assert eligible(p, vm("vm_1", {"env": "prod"}))
    assert not eligible(p, vm("vm_2", {"env": "staging"}))


# ---------------------------------------------------------------------------- rings

RINGS = (
    RolloutRing(name="canary", labels={"ring": "canary"}),
    RolloutRing(name="rest", labels={}),
)


def test_a_vm_belongs_to_the_first_ring_that_matches():
    assert ring_of(RINGS, {"ring": "canary"}) == 0
    assert ring_of(RINGS, {"ring": "other"}) == 1
    assert ring_of((RINGS[0],), {}) is None
    assert ring_of((), {}) == 0


def test_only_rings_reached_are_targeted_and_a_ring_advances_once_complete():
    canary = vm("vm_c", {"ring": "canary"})
    other = vm("vm_o")
    p = plan(rings=RINGS)
    assert eligible(p, canary)
    assert not eligible(p, other)
    assert reached_ring(p, [canary, other]) == 0  # canary not updated yet
    FakeVmRegistry.set(T, "vm_c", agent_version="2.0.0")
    fleet = list(FakeVmRegistry.fleets[T].values())
    assert reached_ring(p, fleet) == 1
    FakeVmRegistry.set(T, "vm_c", status="FAILED")  # updated but failing: not complete
    assert reached_ring(p, list(FakeVmRegistry.fleets[T].values())) == 0


def test_an_empty_ring_is_complete_at_once():
    other = vm("vm_o")
    assert reached_ring(plan(rings=RINGS), [other]) == 1


# ---------------------------------------------------------------------------- progress


def test_progress_counts_targeted_updated_and_failed():
    a = vm("vm_a", agent_version="2.0.0")
    b = vm("vm_b", agent_version="2.0.0", status="FAILED")
    c = vm("vm_c", health="OFFLINE")
    d = vm("vm_d", {"env": "staging"})
    p = plan(labels={})
    progress = measure(p, [a, b, c, d], given={"vm_a", "vm_b", "vm_c"})
    assert (progress.targeted, progress.updated, progress.failed, progress.given) == (4, 2, 2, 3)
    assert not progress.all_done
    paused = measure(plan(status=PAUSED), [a, b, c, d], given={"vm_a"})
    assert (paused.targeted, paused.updated, paused.given) == (1, 1, 1)  # no new VM
    done = measure(p, [a], given={"vm_a"})
    assert done.all_done
    assert not measure(p, [], given=set()).all_done  # nothing targeted is not complete


# ---------------------------------------------------------------------------- decisions


def test_decide_gives_a_targeted_vm_the_release_and_explains_its_bucket():
    v = vm("vm_1")
    d = decide(v, "AGENT", [plan()], {})
    assert (d.version, d.release_id, d.rollout_id) == ("2.0.0", "rel_2", "rol_1")
    assert d.assign is not None
    assert f"bucket {bucket_of('rol_1', 'vm_1')}" in d.reason
    assert d.reason.endswith(".")


def test_decide_keeps_what_a_vm_was_given_and_explains_why_others_are_not_targeted():
    v = vm("vm_1")
    for status in (RUNNING, PAUSED, HALTED, COMPLETED):
        d = decide(v, "AGENT", [plan(status=status, percentage=0)], {"rol_1": "1.0.0"})
        assert d.version == "2.0.0"
        assert d.assign is None
        assert "keeps" in d.reason
    paused = decide(v, "AGENT", [plan(status=PAUSED)], {})
    assert paused.version is None
    assert paused.rollout_id == "rol_1"
    assert "paused" in paused.reason
    assert "keep the version it runs" in paused.reason


def test_decide_falls_back_to_older_rollouts():
    v = vm("vm_1")
    old = plan(id="rol_0", release_id="rel_1", version="1.0.0", status=COMPLETED)
    new = plan(id="rol_1", percentage=0)
    d = decide(v, "AGENT", [new, old], {"rol_0": "0.9.0"})
    assert (d.version, d.rollout_id) == ("1.0.0", "rol_0")
    assert d.reason.startswith("Not targeted by rollout rol_1 of 2.0.0 (its bucket")


def test_decide_sends_vms_given_a_rolled_back_release_to_the_previous_one():
    v = vm("vm_1")
    rolled_back = plan(status=ROLLED_BACK)
    d = decide(v, "AGENT", [rolled_back], {"rol_1": "1.0.0"})
    assert (d.version, d.release_id) == ("1.0.0", "rel_1")
    assert "rolled back" in d.reason
    # never given it: the rollback does not concern it
    assert decide(v, "AGENT", [rolled_back], {}).version is None
    first = plan(status=ROLLED_BACK, previous_release_id=None, previous_version=None)
    d = decide(v, "AGENT", [first], {"rol_1": "0.9.0"})
    assert d.version is None
    assert "(0.9.0)" in d.reason
