"""Policies through the gateway: the tenant's rules, setting and deleting them, what
``checkPolicy`` decides, and how a rule changes what a mutation may do."""

from __future__ import annotations

from synapsex.runtime import new_id

from .conftest import CORE_SERVICES

# the services these tests need (conftest.CORE_SERVICES)
GATEWAY_SERVICES = CORE_SERVICES

POLICIES = """query ($first: Int!, $after: String) {
  policies(first: $first, after: $after) {
    edges { cursor node { id action effect roles reason createdAt updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""

SET = """mutation ($action: String!, $effect: Effect!, $roles: [Role!]!, $reason: String!) {
  setPolicy(input: {action: $action, effect: $effect, roles: $roles, reason: $reason}) {
    id action effect roles reason createdAt updatedAt
  }
}"""

DELETE = """mutation ($id: ID!) {
  deletePolicy(input: {id: $id}) { id action effect }
}"""

CHECK = """query ($action: String!, $resourceId: ID) {
  checkPolicy(action: $action, resourceId: $resourceId) { effect reason policyId }
}"""

ADD = """mutation ($email: String!) {
  addTenantMember(input: {email: $email, role: MEMBER}) { id email }
}"""


async def set_policy(caller, action: str, effect: str, roles: list[str], reason: str) -> dict:
    variables = {"action": action, "effect": effect, "roles": roles, "reason": reason}
    return (await caller.data(SET, variables))["setPolicy"]


async def check(caller, action: str, resource_id: str | None = None) -> dict:
    data = await caller.data(CHECK, {"action": action, "resourceId": resource_id})
    return data["checkPolicy"]


async def list_policies(caller) -> list[dict]:
    data = await caller.data(POLICIES, {"first": 100})
    return [edge["node"] for edge in data["policies"]["edges"]]


# ---------------------------------------------------------------------------- policies, setPolicy


async def test_a_new_tenant_has_no_rules_of_its_own(gateway):
    data = await gateway.acme.data(POLICIES, {"first": 10})

    assert data["policies"] == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


async def test_set_policy_returns_the_rule_and_policies_lists_it(gateway):
    rule = await set_policy(
        gateway.acme, "agent.create", "DENY", ["VIEWER", "MEMBER"], "Agents are made by admins."
    )

    assert rule["id"]
    assert rule["action"] == "agent.create"
    assert rule["effect"] == "DENY"
    assert sorted(rule["roles"]) == ["MEMBER", "VIEWER"]
    assert rule["reason"] == "Agents are made by admins."
    assert rule["createdAt"]
    assert rule["updatedAt"]
    assert await list_policies(gateway.acme) == [rule]


async def test_set_policy_accepts_every_effect(gateway):
    for effect in ("ALLOW", "DENY", "REQUIRE_APPROVAL"):
        rule = await set_policy(
            gateway.acme, f"thing{effect.lower()}.create", effect, ["MEMBER"], f"{effect} rule"
        )
        assert rule["effect"] == effect

    listed = await list_policies(gateway.acme)
    assert [p["effect"] for p in listed] == ["ALLOW", "DENY", "REQUIRE_APPROVAL"]


async def test_setting_a_rule_for_the_same_action_replaces_it(gateway):
    first = await set_policy(gateway.acme, "agent.create", "DENY", ["MEMBER"], "No.")

    second = await set_policy(
        gateway.acme, "agent.create", "REQUIRE_APPROVAL", ["MEMBER", "ADMIN"], "Ask first."
    )

    assert second["id"] == first["id"]
    assert second["createdAt"] == first["createdAt"]
    assert second["effect"] == "REQUIRE_APPROVAL"
    assert second["reason"] == "Ask first."
    assert [p["id"] for p in await list_policies(gateway.acme)] == [first["id"]]


async def test_policies_are_paged_oldest_first(gateway):
    actions = [f"res{i}.create" for i in range(5)]
    for action in actions:
        await set_policy(gateway.acme, action, "ALLOW", ["MEMBER"], "ok")

    seen: list[str] = []
    after = None
    while True:
        connection = (await gateway.acme.data(POLICIES, {"first": 2, "after": after}))["policies"]
        seen.extend(edge["node"]["action"] for edge in connection["edges"])
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == actions


async def test_policies_refuse_more_than_100_per_page(gateway):
    error = await gateway.acme.error(POLICIES, {"first": 101})

    assert error["extensions"]["code"] == "INVALID_INPUT"


async def test_set_policy_checks_its_input(gateway):
    cases = [
        ({"action": "Not An Action"}, "action"),
        ({"action": "single"}, "action"),
        ({"action": "agent.#.create"}, "action"),
        ({"roles": []}, "roles"),
        ({"reason": ""}, "reason"),
    ]
    for change, field in cases:
        variables = {
            "action": "agent.create",
            "effect": "DENY",
            "roles": ["MEMBER"],
            "reason": "r",
            **change,
        }
        error = await gateway.acme.error(SET, variables)
        assert error["extensions"]["code"] == "INVALID_INPUT", change
        assert error["extensions"]["field"] == field, change

    assert await list_policies(gateway.acme) == []


async def test_only_owners_set_policies(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    for caller in (admin, member, viewer):
        error = await caller.error(
            SET, {"action": "agent.create", "effect": "ALLOW", "roles": ["VIEWER"], "reason": "r"}
        )
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Only owners can change policies."

    assert await list_policies(gateway.acme) == []


async def test_only_owners_delete_policies(gateway):
    rule = await set_policy(gateway.acme, "agent.create", "DENY", ["VIEWER"], "No.")
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")

    for caller in (admin, member):
        error = await caller.error(DELETE, {"id": rule["id"]})
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Only owners can delete policies."

    assert [p["id"] for p in await list_policies(gateway.acme)] == [rule["id"]]


async def test_everyone_in_the_tenant_can_read_its_policies(gateway):
    rule = await set_policy(gateway.acme, "agent.create", "DENY", ["VIEWER"], "No.")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    assert [p["id"] for p in await list_policies(viewer)] == [rule["id"]]


# ---------------------------------------------------------------------------- deletePolicy


async def test_deleting_a_rule_returns_it_and_the_default_matrix_decides_again(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    rule = await set_policy(gateway.acme, "tenant.member.add", "DENY", ["ADMIN"], "Frozen.")
    assert (await check(admin, "tenant.member.add"))["policyId"] == rule["id"]

    data = await gateway.acme.data(DELETE, {"id": rule["id"]})

    assert data["deletePolicy"] == {
        "id": rule["id"],
        "action": "tenant.member.add",
        "effect": "DENY",
    }
    assert await list_policies(gateway.acme) == []
    assert await check(admin, "tenant.member.add") == {
        "effect": "ALLOW",
        "reason": "Admins and owners can do this.",
        "policyId": None,
    }
    added = await admin.data(ADD, {"email": "thawed@acme.io"})
    assert added["addTenantMember"]["email"] == "thawed@acme.io"


async def test_deleting_an_unknown_rule_is_not_found(gateway):
    error = await gateway.acme.error(DELETE, {"id": new_id("pol")})

    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_deleting_a_rule_twice_is_not_found_the_second_time(gateway):
    rule = await set_policy(gateway.acme, "agent.create", "DENY", ["VIEWER"], "No.")
    await gateway.acme.data(DELETE, {"id": rule["id"]})

    error = await gateway.acme.error(DELETE, {"id": rule["id"]})

    assert error["extensions"]["code"] == "NOT_FOUND"


# ---------------------------------------------------------------------------- checkPolicy


async def test_check_policy_without_rules_follows_the_default_matrix(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    owner = gateway.acme

    expectations = [
        (owner, "tenant.plan.update", "ALLOW", "Owners can do this."),
        (admin, "tenant.plan.update", "DENY", "Only owners can update the plan."),
        (admin, "policy.set", "DENY", "Only owners can change policies."),
        (admin, "tenant.member.add", "ALLOW", "Admins and owners can do this."),
        (member, "tenant.member.add", "DENY", "Only admins and owners can manage members."),
        (member, "apikey.create", "DENY", "Only admins and owners can manage API keys."),
        (member, "agent.create", "ALLOW", "Members can create new resources."),
        (
            member,
            "agent.delete",
            "DENY",
            "Members can only change their own resources; ask an admin.",
        ),
        (admin, "agent.delete", "ALLOW", "Admins and owners can change any resource."),
        (viewer, "agent.create", "DENY", "Viewers can only read."),
        (viewer, "agent.list", "ALLOW", "Every member of the tenant can read."),
        (viewer, "audit.verify", "ALLOW", "Every member of the tenant can read."),
    ]
    for caller, action, effect, reason in expectations:
        decision = await check(caller, action)
        assert decision == {"effect": effect, "reason": reason, "policyId": None}, action


async def test_check_policy_reports_the_deciding_rule_for_every_effect(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    rules = {
        "ALLOW": await set_policy(gateway.acme, "agent.delete", "ALLOW", ["MEMBER"], "Go ahead."),
        "DENY": await set_policy(gateway.acme, "agent.create", "DENY", ["MEMBER"], "Not you."),
        "REQUIRE_APPROVAL": await set_policy(
            gateway.acme, "workspace.create", "REQUIRE_APPROVAL", ["MEMBER"], "Ask an admin."
        ),
    }

    for effect, rule in rules.items():
        decision = await check(member, rule["action"])
        assert decision == {"effect": effect, "reason": rule["reason"], "policyId": rule["id"]}


async def test_a_rule_applies_only_to_the_roles_it_names(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    rule = await set_policy(gateway.acme, "agent.create", "DENY", ["MEMBER"], "Not members.")

    assert (await check(member, "agent.create"))["policyId"] == rule["id"]
    assert await check(gateway.acme, "agent.create") == {
        "effect": "ALLOW",
        "reason": "Members can create new resources.",
        "policyId": None,
    }


async def test_check_policy_takes_a_resource_id(gateway):
    decision = await check(gateway.acme, "agent.delete", new_id("agt"))

    assert decision["effect"] == "ALLOW"


async def test_check_policy_refuses_an_action_that_is_not_one(gateway):
    for action in ("nonsense", "Agent.Create", "agent.*"):
        error = await gateway.acme.error(CHECK, {"action": action})
        assert error["extensions"]["code"] == "INVALID_INPUT", action
        assert error["extensions"]["field"] == "action", action


async def test_pattern_rules_match_their_actions(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    one = await set_policy(gateway.acme, "agent.*", "REQUIRE_APPROVAL", ["MEMBER"], "One level.")
    rest = await set_policy(gateway.acme, "vm.#", "DENY", ["MEMBER"], "No VMs.")

    assert (await check(member, "agent.create"))["policyId"] == one["id"]
    assert (await check(member, "agent.tool.call"))["policyId"] is None
    assert (await check(member, "vm.create"))["policyId"] == rest["id"]
    assert (await check(member, "vm.label.update"))["policyId"] == rest["id"]


async def test_the_most_restrictive_matching_rule_wins(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    await set_policy(gateway.acme, "agent.create", "ALLOW", ["MEMBER"], "Allowed.")
    approval = await set_policy(gateway.acme, "agent.*", "REQUIRE_APPROVAL", ["MEMBER"], "Ask.")

    assert await check(member, "agent.create") == {
        "effect": "REQUIRE_APPROVAL",
        "reason": "Ask.",
        "policyId": approval["id"],
    }

    deny = await set_policy(gateway.acme, "#", "DENY", ["MEMBER"], "Read-only week.")
    assert await check(member, "agent.create") == {
        "effect": "DENY",
        "reason": "Read-only week.",
        "policyId": deny["id"],
    }


# ---------------------------------------------------------------------------- enforcement


async def test_a_deny_rule_makes_the_mutation_forbidden_with_the_rules_reason(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    assert (await admin.data(ADD, {"email": "before@acme.io"}))["addTenantMember"]
    reason = "Membership is frozen during the audit; ask legal@acme.io."
    await set_policy(gateway.acme, "tenant.member.add", "DENY", ["ADMIN"], reason)

    error = await admin.error(ADD, {"email": "after@acme.io"})

    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == reason
    members = await gateway.acme.data("{ tenantMembers { edges { node { email } } } }")
    emails = [edge["node"]["email"] for edge in members["tenantMembers"]["edges"]]
    assert "after@acme.io" not in emails


async def test_a_deny_rule_for_admins_leaves_owners_alone(gateway):
    await set_policy(gateway.acme, "tenant.member.add", "DENY", ["ADMIN"], "Frozen for admins.")

    data = await gateway.acme.data(ADD, {"email": "by-owner@acme.io"})

    assert data["addTenantMember"]["email"] == "by-owner@acme.io"


async def test_a_pattern_deny_rule_forbids_every_matching_mutation(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    await set_policy(gateway.acme, "tenant.member.#", "DENY", ["ADMIN"], "Members are locked.")

    add = await admin.error(ADD, {"email": "x@acme.io"})
    remove = await admin.error(
        "mutation ($id: ID!) { removeTenantMember(input: {id: $id}) { id } }",
        {"id": admin.member_id},
    )

    for error in (add, remove):
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Members are locked."


async def test_a_require_approval_rule_refuses_the_mutation_with_its_reason(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    rule = await set_policy(
        gateway.acme, "tenant.member.add", "REQUIRE_APPROVAL", ["ADMIN"], "An owner must approve."
    )

    error = await admin.error(ADD, {"email": "pending@acme.io"})

    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "An owner must approve."
    assert error["extensions"]["effect"] == "REQUIRE_APPROVAL"
    assert error["extensions"]["policyId"] == rule["id"]


async def test_an_allow_rule_grants_more_than_the_default_matrix(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    denied = await member.error(ADD, {"email": "early@acme.io"})
    assert denied["extensions"]["code"] == "FORBIDDEN"

    await set_policy(gateway.acme, "tenant.member.add", "ALLOW", ["MEMBER"], "Members invite.")

    data = await member.data(ADD, {"email": "invited@acme.io"})
    assert data["addTenantMember"]["email"] == "invited@acme.io"


async def test_changing_a_rule_takes_effect_on_the_next_request(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    await set_policy(gateway.acme, "tenant.member.add", "DENY", ["ADMIN"], "Frozen.")
    assert (await admin.error(ADD, {"email": "a@acme.io"}))["message"] == "Frozen."

    await set_policy(gateway.acme, "tenant.member.add", "DENY", ["ADMIN"], "Still frozen.")
    assert (await admin.error(ADD, {"email": "a@acme.io"}))["message"] == "Still frozen."

    await set_policy(gateway.acme, "tenant.member.add", "ALLOW", ["ADMIN"], "Thawed.")
    assert (await admin.data(ADD, {"email": "a@acme.io"}))["addTenantMember"]
