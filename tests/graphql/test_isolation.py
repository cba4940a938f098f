"""Tenant isolation through the gateway: another tenant's objects do not exist for a caller
(``NOT_FOUND``, exactly as for an id that never existed), every list shows only the caller's
tenant, and one tenant's rules never decide for another."""

from __future__ import annotations

import json

from synapsex.runtime import new_id

from .conftest import Caller

ME = "{ me { memberId keyId tenant { id name } } }"
MEMBERS = "{ tenantMembers(first: 100) { edges { node { id email } } } }"
KEYS = "{ apiKeys(first: 100) { edges { node { id name memberId } } } }"
POLICIES = "{ policies(first: 100) { edges { node { id action reason } } } }"
AUDIT = """query ($first: Int!, $after: String) {
  auditRecords(first: $first, after: $after) {
    edges { node { id action outcome errorCode resourceId actor { memberId keyId } } }
  }
}"""
VERIFY = "{ verifyAuditChain { ok checked firstBrokenId } }"
CHECK = """query ($action: String!, $resourceId: ID) {
  checkPolicy(action: $action, resourceId: $resourceId) { effect reason policyId }
}"""

ADD = """mutation ($email: String!) {
  addTenantMember(input: {email: $email, role: MEMBER}) { id email }
}"""
REMOVE = "mutation ($id: ID!) { removeTenantMember(input: {id: $id}) { id email } }"
CREATE_KEY = """mutation ($name: String!) {
  createApiKey(input: {name: $name, role: MEMBER}) { key apiKey { id } }
}"""
REVOKE_KEY = "mutation ($id: ID!) { revokeApiKey(input: {id: $id}) { id revokedAt } }"
SET_POLICY = """mutation ($action: String!, $effect: Effect!, $roles: [Role!]!, $reason: String!) {
  setPolicy(input: {action: $action, effect: $effect, roles: $roles, reason: $reason}) { id }
}"""
DELETE_POLICY = "mutation ($id: ID!) { deletePolicy(input: {id: $id}) { id } }"


def nodes(data: dict, field: str) -> list[dict]:
    return [edge["node"] for edge in data[field]["edges"]]


async def set_policy(caller: Caller, action: str, effect: str, roles: list[str], reason: str):
    variables = {"action": action, "effect": effect, "roles": roles, "reason": reason}
    return (await caller.data(SET_POLICY, variables))["setPolicy"]


async def check(caller: Caller, action: str, resource_id: str | None = None) -> dict:
    data = await caller.data(CHECK, {"action": action, "resourceId": resource_id})
    return data["checkPolicy"]


def without(error: dict, object_id: str) -> str:
    """The error as text with the id it names blanked out, to compare two errors' shapes."""
    return json.dumps(error, sort_keys=True).replace(object_id, "<id>")


async def assert_indistinguishable_from_missing(
    caller: Caller, query: str, foreign_id: str, missing_id: str, code: str = "NOT_FOUND"
) -> None:
    """``foreign_id`` (another tenant's) is answered exactly like ``missing_id`` (nobody's)."""
    foreign = await caller.error(query, {"id": foreign_id})
    missing = await caller.error(query, {"id": missing_id})
    assert foreign["extensions"]["code"] == code
    assert missing["extensions"]["code"] == code
    assert without(foreign, foreign_id) == without(missing, missing_id)


# ---------------------------------------------------------------------------- ids


async def test_another_tenants_member_is_not_found_and_stays(gateway):
    target = (await gateway.acme.data(ADD, {"email": "keep@acme.io"}))["addTenantMember"]

    await assert_indistinguishable_from_missing(gateway.globex, REMOVE, target["id"], new_id("mem"))
    await assert_indistinguishable_from_missing(
        gateway.globex, REMOVE, gateway.acme.member_id, new_id("mem")
    )

    emails = [n["email"] for n in nodes(await gateway.acme.data(MEMBERS), "tenantMembers")]
    assert emails == ["owner@acme.io", "keep@acme.io"]


async def test_another_tenants_key_is_not_found_and_keeps_working(gateway):
    acme_key_id = (await gateway.acme.data(ME))["me"]["keyId"]

    await assert_indistinguishable_from_missing(
        gateway.globex, REVOKE_KEY, acme_key_id, new_id("key")
    )

    assert (await gateway.acme.data(ME))["me"]["keyId"] == acme_key_id
    listed = nodes(
        await gateway.acme.data("{ apiKeys { edges { node { id revokedAt } } } }"), "apiKeys"
    )
    assert listed == [{"id": acme_key_id, "revokedAt": None}]


async def test_another_tenants_policy_is_not_found_and_stays(gateway):
    rule = await set_policy(gateway.acme, "agent.create", "DENY", ["MEMBER"], "Acme's rule.")

    await assert_indistinguishable_from_missing(
        gateway.globex, DELETE_POLICY, rule["id"], new_id("pol")
    )

    assert [p["id"] for p in nodes(await gateway.acme.data(POLICIES), "policies")] == [rule["id"]]
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    assert (await check(member, "agent.create"))["policyId"] == rule["id"]


async def test_an_admin_of_another_tenant_gets_not_found_too(gateway):
    target = (await gateway.acme.data(ADD, {"email": "keep@acme.io"}))["addTenantMember"]
    globex_admin = await gateway.key_for(gateway.globex, "admin", "admin@globex.io")

    await assert_indistinguishable_from_missing(globex_admin, REMOVE, target["id"], new_id("mem"))


async def test_another_tenants_audit_record_is_no_cursor_of_mine(gateway):
    await gateway.acme.data(ADD, {"email": "a@acme.io"})
    [acme_record] = nodes(await gateway.acme.data(AUDIT, {"first": 10}), "auditRecords")
    missing = new_id("aud")

    foreign = await gateway.globex.error(AUDIT, {"first": 10, "after": acme_record["id"]})
    nobody = await gateway.globex.error(AUDIT, {"first": 10, "after": missing})

    assert foreign["extensions"]["code"] == "INVALID_INPUT"
    assert without(foreign, acme_record["id"]) == without(nobody, missing)


async def test_check_policy_on_another_tenants_resource_id_gives_no_hint(gateway):
    target = (await gateway.acme.data(ADD, {"email": "keep@acme.io"}))["addTenantMember"]

    foreign = await check(gateway.globex, "tenant.member.remove", target["id"])
    nobody = await check(gateway.globex, "tenant.member.remove", new_id("mem"))

    assert foreign == nobody


async def test_failed_attempts_on_another_tenants_ids_are_audited_in_the_callers_tenant(gateway):
    target = (await gateway.acme.data(ADD, {"email": "keep@acme.io"}))["addTenantMember"]
    acme_before = nodes(await gateway.acme.data(AUDIT, {"first": 100}), "auditRecords")

    await gateway.globex.error(REMOVE, {"id": target["id"]})

    acme_after = nodes(await gateway.acme.data(AUDIT, {"first": 100}), "auditRecords")
    assert acme_after == acme_before
    [attempt] = nodes(await gateway.globex.data(AUDIT, {"first": 100}), "auditRecords")
    assert attempt["action"] == "tenant.member.remove"
    assert (attempt["outcome"], attempt["errorCode"]) == ("FAILURE", "NOT_FOUND")
    assert attempt["actor"]["memberId"] == gateway.globex.member_id


# ---------------------------------------------------------------------------- lists


async def populate(gateway) -> dict[str, dict[str, set[str]]]:
    """Members, keys, rules and audit records in both tenants; each tenant's ids by kind."""
    seen: dict[str, dict[str, set[str]]] = {}
    for name, caller in (("acme", gateway.acme), ("globex", gateway.globex)):
        me = (await caller.data(ME))["me"]
        ids = {
            "members": {caller.member_id},
            "keys": {me["keyId"]},
            "policies": set(),
        }
        for i in range(2):
            member = await caller.data(ADD, {"email": f"m{i}@{name}.io"})
            ids["members"].add(member["addTenantMember"]["id"])
            key = await caller.data(CREATE_KEY, {"name": f"{name}-{i}"})
            ids["keys"].add(key["createApiKey"]["apiKey"]["id"])
            rule = await set_policy(caller, f"{name}{i}.create", "DENY", ["VIEWER"], name)
            ids["policies"].add(rule["id"])
        seen[name] = ids
    return seen


async def test_every_list_shows_only_the_callers_tenant(gateway):
    ids = await populate(gateway)

    for name, caller in (("acme", gateway.acme), ("globex", gateway.globex)):
        mine = ids[name]
        members = nodes(await caller.data(MEMBERS), "tenantMembers")
        keys = nodes(await caller.data(KEYS), "apiKeys")
        policies = nodes(await caller.data(POLICIES), "policies")
        assert {m["id"] for m in members} == mine["members"], name
        assert all(m["email"].endswith(f"@{name}.io") for m in members), name
        assert {k["id"] for k in keys} == mine["keys"], name
        assert {k["memberId"] for k in keys} == {caller.member_id}, name
        assert {p["id"] for p in policies} == mine["policies"], name
        assert {p["reason"] for p in policies} == {name}, name


async def test_audit_records_show_only_the_callers_tenant(gateway):
    ids = await populate(gateway)

    for name, caller in (("acme", gateway.acme), ("globex", gateway.globex)):
        records = nodes(await caller.data(AUDIT, {"first": 100}), "auditRecords")
        mine = ids[name]["members"] | ids[name]["keys"] | ids[name]["policies"]
        assert len(records) == 6, name  # 2 members, 2 keys, 2 rules
        assert {r["resourceId"] for r in records} <= mine, name
        assert {r["actor"]["memberId"] for r in records} == {caller.member_id}, name
        verification = (await caller.data(VERIFY))["verifyAuditChain"]
        assert verification == {"ok": True, "checked": 6, "firstBrokenId": None}, name


async def test_a_tenant_with_nothing_sees_nothing_of_the_other(gateway):
    await populate_one(gateway.acme, "acme")

    assert [m["email"] for m in nodes(await gateway.globex.data(MEMBERS), "tenantMembers")] == [
        "owner@globex.io"
    ]
    assert len(nodes(await gateway.globex.data(KEYS), "apiKeys")) == 1
    assert nodes(await gateway.globex.data(POLICIES), "policies") == []
    assert nodes(await gateway.globex.data(AUDIT, {"first": 100}), "auditRecords") == []
    assert (await gateway.globex.data(VERIFY))["verifyAuditChain"]["checked"] == 0


async def populate_one(caller: Caller, name: str) -> None:
    await caller.data(ADD, {"email": f"m@{name}.io"})
    await caller.data(CREATE_KEY, {"name": name})
    await set_policy(caller, f"{name}.create", "DENY", ["VIEWER"], name)


async def test_me_is_the_callers_own_tenant(gateway):
    acme = (await gateway.acme.data(ME))["me"]["tenant"]
    globex = (await gateway.globex.data(ME))["me"]["tenant"]

    assert acme == {"id": gateway.acme.tenant_id, "name": "Acme"}
    assert globex == {"id": gateway.globex.tenant_id, "name": "Globex"}


# ---------------------------------------------------------------------------- policies


async def test_check_policy_reflects_only_the_callers_tenants_rules(gateway):
    rule = await set_policy(gateway.acme, "agent.create", "DENY", ["OWNER"], "Acme froze agents.")

    assert await check(gateway.acme, "agent.create") == {
        "effect": "DENY",
        "reason": "Acme froze agents.",
        "policyId": rule["id"],
    }
    assert await check(gateway.globex, "agent.create") == {
        "effect": "ALLOW",
        "reason": "Members can create new resources.",
        "policyId": None,
    }


async def test_the_same_action_has_each_tenants_own_rule(gateway):
    acme_rule = await set_policy(gateway.acme, "agent.create", "DENY", ["OWNER"], "Acme says no.")
    globex_rule = await set_policy(
        gateway.globex, "agent.create", "REQUIRE_APPROVAL", ["OWNER"], "Globex asks first."
    )

    assert acme_rule["id"] != globex_rule["id"]
    assert await check(gateway.acme, "agent.create") == {
        "effect": "DENY",
        "reason": "Acme says no.",
        "policyId": acme_rule["id"],
    }
    assert await check(gateway.globex, "agent.create") == {
        "effect": "REQUIRE_APPROVAL",
        "reason": "Globex asks first.",
        "policyId": globex_rule["id"],
    }


async def test_one_tenants_deny_rule_does_not_forbid_another_tenants_mutation(gateway):
    await set_policy(gateway.acme, "tenant.member.add", "DENY", ["OWNER"], "Acme is frozen.")

    acme = await gateway.acme.error(ADD, {"email": "x@acme.io"})
    globex = await gateway.globex.data(ADD, {"email": "x@globex.io"})

    assert acme["extensions"]["code"] == "FORBIDDEN"
    assert acme["message"] == "Acme is frozen."
    assert globex["addTenantMember"]["email"] == "x@globex.io"


async def test_one_tenants_catch_all_rule_does_not_reach_another_tenant(gateway):
    await set_policy(gateway.acme, "#", "DENY", ["ADMIN", "MEMBER", "VIEWER"], "Acme is locked.")
    globex_member = await gateway.key_for(gateway.globex, "member", "member@globex.io")
    acme_member = await gateway.key_for(gateway.acme, "member", "member@acme.io")

    assert (await check(acme_member, "agent.create"))["reason"] == "Acme is locked."
    assert await check(globex_member, "agent.create") == {
        "effect": "ALLOW",
        "reason": "Members can create new resources.",
        "policyId": None,
    }
