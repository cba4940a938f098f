from __future__ import annotations

import asyncio

import pytest

from synapsex.actors.policy import actor as policy_actor
from synapsex.actors.policy.actor import PolicyActor
from synapsex.contracts.errors import InvalidInput, LimitExceeded, NotFound
from synapsex.contracts.policy import (
    ALLOW,
    DENY,
    REQUIRE_APPROVAL,
    CheckPolicy,
    DeletePolicy,
    ListPolicies,
    SetPolicy,
)
from synapsex.runtime import Runtime

pytestmark = pytest.mark.usefixtures("db_environ")

T1, T2 = "ten_one", "ten_two"


def embedded(tmp_path, db_environ):
    # the entry point is not registered yet: run the actor class directly
    return Runtime.embedded(data_dir=tmp_path, actors=[PolicyActor], environ=db_environ)


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


async def check(rt, role, action, tenant_id=T1, **kw):
    return await rt.ask(CheckPolicy(tenant_id=tenant_id, role=role, action=action, **kw))


async def rule(rt, action, effect, roles, reason="Because the tenant says so.", tenant_id=T1):
    return await rt.ask(
        SetPolicy(tenant_id=tenant_id, action=action, effect=effect, roles=roles, reason=reason)
    )


# action, is_own_resource, expected effect for (viewer, member, admin, owner)
DEFAULTS = [
    ("tenant.read", False, (ALLOW, ALLOW, ALLOW, ALLOW)),
    ("audit.verify", False, (ALLOW, ALLOW, ALLOW, ALLOW)),
    ("tenant.plan.update", False, (DENY, DENY, DENY, ALLOW)),
    ("policy.set", False, (DENY, DENY, DENY, ALLOW)),
    ("tenant.member.add", False, (DENY, DENY, ALLOW, ALLOW)),
    ("apikey.revoke", True, (DENY, DENY, ALLOW, ALLOW)),
    ("agent.create", False, (DENY, ALLOW, ALLOW, ALLOW)),
    ("agent.delete", True, (DENY, ALLOW, ALLOW, ALLOW)),
    ("agent.delete", False, (DENY, DENY, ALLOW, ALLOW)),
]


@pytest.mark.parametrize(("action", "own", "expected"), DEFAULTS)
async def test_default_matrix_without_rules(rt, action, own, expected):
    decisions = [
        await check(rt, role, action, is_own_resource=own, resource_id="agt_1")
        for role in ("viewer", "member", "admin", "owner")
    ]
    assert tuple(d.effect for d in decisions) == expected
    assert all(d.policy_id is None for d in decisions)


async def test_default_denial_reason_is_readable(rt):
    decision = await check(rt, "admin", "tenant.plan.update")
    assert (decision.effect, decision.reason) == (DENY, "Only owners can update the plan.")
    assert (await check(rt, "viewer", "agent.create")).reason == "Viewers can only read."


async def test_a_rule_overrides_the_default_for_the_roles_it_names(rt):
    made = await rule(rt, "agent.create", DENY, ("member",), "Agents are frozen this week.")
    assert made.id.startswith("pol_")
    assert (made.tenant_id, made.action, made.effect, made.roles) == (
        T1,
        "agent.create",
        DENY,
        ("member",),
    )
    denied = await check(rt, "member", "agent.create")
    assert (denied.effect, denied.reason, denied.policy_id) == (
        DENY,
        "Agents are frozen this week.",
        made.id,
    )
    admin = await check(rt, "admin", "agent.create")  # not named: the default applies
    assert (admin.effect, admin.policy_id) == (ALLOW, None)
    granted = await rule(rt, "tenant.member.add", ALLOW, ("member",), "Members may invite.")
    assert (await check(rt, "member", "tenant.member.add")).policy_id == granted.id


async def test_the_most_restrictive_matching_rule_wins(rt):
    allow = await rule(rt, "agent.#", ALLOW, ("viewer", "member"), "Agents are open.")
    approve = await rule(rt, "agent.*", REQUIRE_APPROVAL, ("member",), "An admin approves.")
    deny = await rule(rt, "agent.delete", DENY, ("member", "viewer"), "Never delete agents.")

    decision = await check(rt, "member", "agent.delete", is_own_resource=True)
    assert (decision.effect, decision.policy_id) == (DENY, deny.id)
    decision = await check(rt, "member", "agent.create")
    assert (decision.effect, decision.reason, decision.policy_id) == (
        REQUIRE_APPROVAL,
        "An admin approves.",
        approve.id,
    )
    # `*` is exactly one segment: agent.tool.call only matches agent.#
    decision = await check(rt, "member", "agent.tool.call")
    assert (decision.effect, decision.policy_id) == (ALLOW, allow.id)
    decision = await check(rt, "viewer", "agent.create")  # the ALLOW rule grants viewers
    assert (decision.effect, decision.policy_id) == (ALLOW, allow.id)
    decision = await check(rt, "admin", "agent.delete")
    assert (decision.effect, decision.policy_id) == (ALLOW, None)


async def test_star_matches_one_segment_and_hash_the_rest(rt):
    star = await rule(rt, "*.create", REQUIRE_APPROVAL, ("member",), "Creations are reviewed.")
    hash_ = await rule(rt, "#", DENY, ("viewer",), "This tenant is closed to viewers.")
    assert (await check(rt, "member", "vm.create")).policy_id == star.id
    assert (await check(rt, "member", "workspace.file.create")).policy_id is None
    for action in ("tenant.read", "tenant.member.list", "audit.verify"):
        decision = await check(rt, "viewer", action)
        assert (decision.effect, decision.policy_id) == (DENY, hash_.id)
    assert (await check(rt, "member", "tenant.read")).policy_id is None


async def test_set_policy_upserts_one_rule_per_action(rt):
    first = await rule(rt, "agent.deploy", DENY, ("member",), "No deploys.")
    second = await rule(
        rt, "agent.deploy", REQUIRE_APPROVAL, ("viewer", "member", "member"), "Deploys reviewed."
    )
    assert second.id == first.id
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert (second.effect, second.roles, second.reason) == (
        REQUIRE_APPROVAL,
        ("member", "viewer"),
        "Deploys reviewed.",
    )
    page = await rt.ask(ListPolicies(tenant_id=T1))
    assert [p.id for p in page.items] == [first.id]
    decision = await check(rt, "member", "agent.deploy")
    assert (decision.effect, decision.reason) == (REQUIRE_APPROVAL, "Deploys reviewed.")


async def test_list_is_paginated_oldest_first_and_per_tenant(rt):
    made = [await rule(rt, f"thing{i}.create", DENY, ("member",)) for i in range(5)]
    # ids sort by creation time to the millisecond (random within one): order by id
    actions = [p.action for p in sorted(made, key=lambda p: p.id)]
    await rule(rt, "other.create", DENY, ("member",), tenant_id=T2)
    seen, after = [], None
    while True:
        page = await rt.ask(ListPolicies(tenant_id=T1, first=2, after=after))
        assert len(page.items) <= 2
        seen += [p.action for p in page.items]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == actions
    empty = await rt.ask(ListPolicies(tenant_id="ten_none"))
    assert (empty.items, empty.has_next_page, empty.end_cursor) == ((), False, None)


async def test_delete_restores_the_default_and_is_scoped_to_the_tenant(rt):
    made = await rule(rt, "agent.create", DENY, ("member",))
    assert (await check(rt, "member", "agent.create")).effect == DENY
    with pytest.raises(NotFound):
        await rt.ask(DeletePolicy(tenant_id=T2, id=made.id))
    assert (await check(rt, "member", "agent.create")).effect == DENY
    deleted = await rt.ask(DeletePolicy(tenant_id=T1, id=made.id))
    assert deleted.id == made.id
    decision = await check(rt, "member", "agent.create")
    assert (decision.effect, decision.policy_id) == (ALLOW, None)
    with pytest.raises(NotFound):
        await rt.ask(DeletePolicy(tenant_id=T1, id=made.id))
    assert (await rt.ask(ListPolicies(tenant_id=T1))).items == ()


async def test_one_tenants_rules_never_affect_another(rt):
    await check(rt, "member", "agent.create", tenant_id=T2)  # T2 cached before T1 changes
    one = await rule(rt, "#", DENY, ("owner", "admin", "member", "viewer"), "Locked.")
    two = await rule(rt, "agent.create", ALLOW, ("viewer",), "Viewers create.", tenant_id=T2)
    assert (await check(rt, "owner", "tenant.read")).policy_id == one.id
    assert (await check(rt, "viewer", "agent.create")).policy_id == one.id
    decision = await check(rt, "member", "agent.create", tenant_id=T2)
    assert (decision.effect, decision.policy_id) == (ALLOW, None)
    assert (await check(rt, "viewer", "agent.create", tenant_id=T2)).policy_id == two.id
    assert (await check(rt, "viewer", "agent.delete", tenant_id=T2)).effect == DENY
    with pytest.raises(NotFound):
        await rt.ask(DeletePolicy(tenant_id=T1, id=two.id))


async def test_a_check_right_after_a_change_sees_it(rt):
    assert (await check(rt, "member", "agent.create")).effect == ALLOW  # now cached
    made = await rule(rt, "agent.create", DENY, ("member",))
    assert (await check(rt, "member", "agent.create")).policy_id == made.id
    await rule(rt, "agent.create", REQUIRE_APPROVAL, ("member",))
    assert (await check(rt, "member", "agent.create")).effect == REQUIRE_APPROVAL
    await rt.ask(DeletePolicy(tenant_id=T1, id=made.id))
    assert (await check(rt, "member", "agent.create")).policy_id is None


async def test_checks_running_side_by_side_with_a_change_keep_the_order(rt):
    def checks(n):
        return [check(rt, "member", "agent.create") for _ in range(n)]

    results = await asyncio.gather(
        *checks(10),
        rule(rt, "agent.create", DENY, ("member",)),
        *checks(10),
    )
    before, made, after = results[:10], results[10], results[11:]
    assert {d.effect for d in before} == {ALLOW}
    assert {d.policy_id for d in after} == {made.id}


async def test_another_process_change_is_seen_after_the_cache_ttl(
    tmp_path, db_environ, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(policy_actor, "monotonic", lambda: now[0])
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        assert (await check(a, "member", "agent.create")).effect == ALLOW  # a caches T1
        made = await rule(b, "agent.create", DENY, ("member",))
        assert (await check(b, "member", "agent.create")).policy_id == made.id
        now[0] += policy_actor.CACHE_TTL_SECONDS - 1
        assert (await check(a, "member", "agent.create")).effect == ALLOW  # still cached
        now[0] += 1.5
        assert (await check(a, "member", "agent.create")).policy_id == made.id


async def test_rules_survive_a_runtime_restart(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        made = await rule(rt, "agent.*", REQUIRE_APPROVAL, ("member",), "Reviewed.")
    async with embedded(tmp_path, db_environ) as rt:
        decision = await check(rt, "member", "agent.create")
        page = await rt.ask(ListPolicies(tenant_id=T1))
    assert (decision.effect, decision.reason, decision.policy_id) == (
        REQUIRE_APPROVAL,
        "Reviewed.",
        made.id,
    )
    assert [p.id for p in page.items] == [made.id]
    assert page.items[0].roles == ("member",)


async def test_invalid_messages_name_their_field():
    cases = [
        (
            lambda: SetPolicy(
                tenant_id=T1, action="a.b", effect="NOPE", roles=("member",), reason="r"
            ),
            "effect",
        ),
        (lambda: SetPolicy(tenant_id=T1, action="a.b", effect=DENY, roles=(), reason="r"), "roles"),
        (
            lambda: SetPolicy(tenant_id=T1, action="a.b", effect=DENY, roles=("god",), reason="r"),
            "roles",
        ),
        (
            lambda: SetPolicy(
                tenant_id=T1, action="a.#.b", effect=DENY, roles=("member",), reason="r"
            ),
            "action",
        ),
        (
            lambda: SetPolicy(
                tenant_id=T1, action="a.b", effect=DENY, roles=("member",), reason=""
            ),
            "reason",
        ),
        (lambda: CheckPolicy(tenant_id=T1, role="member", action="agent.*"), "action"),
        (lambda: CheckPolicy(tenant_id=T1, role="superuser", action="agent.create"), "role"),
        (lambda: ListPolicies(tenant_id=T1, first=101), "first"),
    ]
    for build, field in cases:
        with pytest.raises(InvalidInput) as err:
            build()
        assert err.value.field == field


async def test_concurrent_sets_of_one_action_from_two_runtimes_leave_one_rule(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        for attempt in range(5):
            action = f"race{attempt}.create"
            made = await asyncio.gather(
                rule(a, action, DENY, ("member",), "From a."),
                rule(b, action, REQUIRE_APPROVAL, ("member",), "From b."),
            )
            assert made[0].id == made[1].id
        page = await a.ask(ListPolicies(tenant_id=T1))
        assert len(page.items) == 5


async def test_a_tenant_has_a_bounded_number_of_rules(rt, monkeypatch):
    monkeypatch.setattr(policy_actor, "MAX_POLICIES_PER_TENANT", 2)
    await rule(rt, "a.create", DENY, ("member",))
    await rule(rt, "b.create", DENY, ("member",))
    await rule(rt, "b.create", ALLOW, ("member",))  # an update needs no room
    await rule(rt, "c.create", DENY, ("member",), tenant_id=T2)
    with pytest.raises(LimitExceeded):
        await rule(rt, "c.create", DENY, ("member",))
