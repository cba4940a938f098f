"""Tenants through the gateway: ``me``, the member list, adding and removing members, plans."""

from __future__ import annotations

import asyncio

from synapsex.contracts.tenant import GIB
from synapsex.runtime import new_id

from .conftest import CORE_SERVICES

# the services these tests need (conftest.CORE_SERVICES)
GATEWAY_SERVICES = CORE_SERVICES

ME = """{ me { memberId keyId role email tenant { id name slug plan memberCount
  limits { members agents vms workspaces storageBytes toolCallsPerDay } } } }"""

MEMBERS = """query ($first: Int!, $after: String) {
  tenantMembers(first: $first, after: $after) {
    edges { cursor node { id email role createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""

ADD = """mutation ($email: String!, $role: Role!) {
  addTenantMember(input: {email: $email, role: $role}) { id email role createdAt }
}"""

REMOVE = """mutation ($id: ID!) {
  removeTenantMember(input: {id: $id}) { id email role }
}"""

PLAN = """mutation ($plan: Plan!) {
  updateTenantPlan(input: {plan: $plan}) {
    id plan memberCount
    limits { members agents vms workspaces storageBytes toolCallsPerDay }
  }
}"""

PRO_LIMITS = {
    "members": 50,
    "agents": 50,
    "vms": 25,
    "workspaces": 100,
    "storageBytes": 100 * GIB,
    "toolCallsPerDay": 100_000,
}
FREE_LIMITS = {
    "members": 5,
    "agents": 3,
    "vms": 2,
    "workspaces": 5,
    "storageBytes": 1 * GIB,
    "toolCallsPerDay": 1_000,
}
ENTERPRISE_LIMITS = {
    "members": 1_000,
    "agents": 1_000,
    "vms": 500,
    "workspaces": 10_000,
    "storageBytes": 10_240 * GIB,
    "toolCallsPerDay": 10_000_000,
}


async def member_emails(caller, first: int = 100) -> list[str]:
    data = await caller.data(MEMBERS, {"first": first})
    return [edge["node"]["email"] for edge in data["tenantMembers"]["edges"]]


# ---------------------------------------------------------------------------- me


async def test_me_names_the_caller_their_role_and_their_tenant_with_its_limits(gateway):
    me = (await gateway.acme.data(ME))["me"]

    assert me["memberId"] == gateway.acme.member_id
    assert me["role"] == "OWNER"
    assert me["email"] == "owner@acme.io"
    assert me["tenant"] == {
        "id": gateway.acme.tenant_id,
        "name": "Acme",
        "slug": "acme",
        "plan": "PRO",
        "memberCount": 1,
        "limits": PRO_LIMITS,
    }


async def test_me_of_each_tenant_shows_its_own_plan_limits(gateway):
    me = (await gateway.globex.data(ME))["me"]

    assert me["tenant"]["id"] == gateway.globex.tenant_id
    assert me["tenant"]["slug"] == "globex"
    assert me["tenant"]["plan"] == "FREE"
    assert me["tenant"]["limits"] == FREE_LIMITS


async def test_me_of_another_members_key_is_that_member_with_the_keys_role(gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "vera@acme.io")

    me = (await viewer.data(ME))["me"]

    assert me["memberId"] == viewer.member_id
    assert me["role"] == "VIEWER"
    assert me["email"] == "vera@acme.io"
    assert me["tenant"]["id"] == gateway.acme.tenant_id
    assert me["tenant"]["memberCount"] == 2


# ---------------------------------------------------------------------------- tenantMembers


async def test_tenant_members_is_a_relay_connection_paged_oldest_first(gateway):
    emails = [f"m{i}@acme.io" for i in range(5)]
    for email in emails:
        await gateway.acme.data(ADD, {"email": email, "role": "MEMBER"})
    expected = ["owner@acme.io", *emails]

    seen: list[str] = []
    pages: list[int] = []
    after = None
    while True:
        data = await gateway.acme.data(MEMBERS, {"first": 2, "after": after})
        connection = data["tenantMembers"]
        edges = connection["edges"]
        pages.append(len(edges))
        seen.extend(edge["node"]["email"] for edge in edges)
        assert all(edge["cursor"] for edge in edges)
        assert connection["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == expected
    assert pages == [2, 2, 2]


async def test_tenant_members_last_page_says_there_is_no_next_page(gateway):
    data = await gateway.acme.data(MEMBERS, {"first": 100})

    connection = data["tenantMembers"]
    assert [edge["node"]["email"] for edge in connection["edges"]] == ["owner@acme.io"]
    assert connection["edges"][0]["node"]["id"] == gateway.acme.member_id
    assert connection["edges"][0]["node"]["role"] == "OWNER"
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_tenant_members_refuses_more_than_100_per_page(gateway):
    error = await gateway.acme.error(MEMBERS, {"first": 101})

    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "first"


async def test_tenant_members_refuses_a_page_of_zero(gateway):
    error = await gateway.acme.error(MEMBERS, {"first": 0})

    assert error["extensions"]["code"] == "INVALID_INPUT"


# ---------------------------------------------------------------------------- addTenantMember


async def test_an_owner_adds_a_member_and_the_tenant_lists_it(gateway):
    data = await gateway.acme.data(ADD, {"email": "ada@acme.io", "role": "ADMIN"})

    added = data["addTenantMember"]
    assert added["email"] == "ada@acme.io"
    assert added["role"] == "ADMIN"
    assert added["id"]
    assert added["createdAt"]
    assert await member_emails(gateway.acme) == ["owner@acme.io", "ada@acme.io"]
    assert (await gateway.acme.data(ME))["me"]["tenant"]["memberCount"] == 2


async def test_add_tenant_member_role_defaults_to_member(gateway):
    data = await gateway.acme.data(
        'mutation { addTenantMember(input: {email: "plain@acme.io"}) { email role } }'
    )

    assert data["addTenantMember"] == {"email": "plain@acme.io", "role": "MEMBER"}


async def test_an_admin_adds_members(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")

    data = await admin.data(ADD, {"email": "new@acme.io", "role": "VIEWER"})

    assert data["addTenantMember"]["role"] == "VIEWER"
    assert "new@acme.io" in await member_emails(gateway.acme)


async def test_members_and_viewers_cannot_add_members_and_are_told_why(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    for caller in (member, viewer):
        error = await caller.error(ADD, {"email": "nope@acme.io", "role": "VIEWER"})
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Only admins and owners can manage members."

    assert "nope@acme.io" not in await member_emails(gateway.acme)


async def test_adding_an_email_that_is_already_a_member_is_a_conflict(gateway):
    await gateway.acme.data(ADD, {"email": "twice@acme.io", "role": "MEMBER"})

    error = await gateway.acme.error(ADD, {"email": "twice@acme.io", "role": "ADMIN"})

    assert error["extensions"]["code"] == "CONFLICT"
    assert (await member_emails(gateway.acme)).count("twice@acme.io") == 1


async def test_emails_are_compared_without_case(gateway):
    error = await gateway.acme.error(ADD, {"email": "Owner@ACME.io", "role": "MEMBER"})

    assert error["extensions"]["code"] == "CONFLICT"


async def test_a_bad_email_is_invalid_input_on_the_email_field(gateway):
    for email in ("not-an-email", "two@@acme.io", "no-domain@", ""):
        error = await gateway.acme.error(ADD, {"email": email, "role": "MEMBER"})
        assert error["extensions"]["code"] == "INVALID_INPUT", email
        assert error["extensions"]["field"] == "email", email

    assert await member_emails(gateway.acme) == ["owner@acme.io"]


async def test_the_free_plan_allows_five_members_including_the_owner(gateway):
    for i in range(4):
        await gateway.globex.data(ADD, {"email": f"g{i}@globex.io", "role": "MEMBER"})

    error = await gateway.globex.error(ADD, {"email": "sixth@globex.io", "role": "MEMBER"})

    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    emails = await member_emails(gateway.globex)
    assert len(emails) == 5
    assert "sixth@globex.io" not in emails
    assert (await gateway.globex.data(ME))["me"]["tenant"]["memberCount"] == 5


async def test_removing_a_member_frees_a_seat_on_the_plan(gateway):
    added = []
    for i in range(4):
        data = await gateway.globex.data(ADD, {"email": f"g{i}@globex.io", "role": "MEMBER"})
        added.append(data["addTenantMember"]["id"])
    await gateway.globex.data(REMOVE, {"id": added[0]})

    data = await gateway.globex.data(ADD, {"email": "fifth@globex.io", "role": "MEMBER"})

    assert data["addTenantMember"]["email"] == "fifth@globex.io"
    error = await gateway.globex.error(ADD, {"email": "sixth@globex.io", "role": "MEMBER"})
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"


# ---------------------------------------------------------------------------- removeTenantMember


async def test_removing_a_member_returns_it_and_it_leaves_the_list(gateway):
    added = (await gateway.acme.data(ADD, {"email": "bye@acme.io", "role": "MEMBER"}))[
        "addTenantMember"
    ]

    data = await gateway.acme.data(REMOVE, {"id": added["id"]})

    assert data["removeTenantMember"] == {
        "id": added["id"],
        "email": "bye@acme.io",
        "role": "MEMBER",
    }
    assert await member_emails(gateway.acme) == ["owner@acme.io"]
    assert (await gateway.acme.data(ME))["me"]["tenant"]["memberCount"] == 1


async def test_an_admin_removes_members(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    added = (await gateway.acme.data(ADD, {"email": "bye@acme.io", "role": "MEMBER"}))[
        "addTenantMember"
    ]

    data = await admin.data(REMOVE, {"id": added["id"]})

    assert data["removeTenantMember"]["id"] == added["id"]


async def test_members_and_viewers_cannot_remove_members(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    for caller in (member, viewer):
        error = await caller.error(REMOVE, {"id": gateway.acme.member_id})
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Only admins and owners can manage members."

    assert len(await member_emails(gateway.acme)) == 3


async def test_the_last_owner_cannot_be_removed(gateway):
    error = await gateway.acme.error(REMOVE, {"id": gateway.acme.member_id})

    assert error["extensions"]["code"] == "CONFLICT"
    assert await member_emails(gateway.acme) == ["owner@acme.io"]
    assert (await gateway.acme.data(ME))["me"]["role"] == "OWNER"


async def test_an_owner_can_be_removed_while_another_owner_remains(gateway):
    second = (await gateway.acme.data(ADD, {"email": "co@acme.io", "role": "OWNER"}))[
        "addTenantMember"
    ]

    data = await gateway.acme.data(REMOVE, {"id": second["id"]})

    assert data["removeTenantMember"]["role"] == "OWNER"
    error = await gateway.acme.error(REMOVE, {"id": gateway.acme.member_id})
    assert error["extensions"]["code"] == "CONFLICT"


async def test_removing_an_unknown_member_is_not_found(gateway):
    error = await gateway.acme.error(REMOVE, {"id": new_id("mem")})

    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_removing_a_member_twice_is_not_found_the_second_time(gateway):
    added = (await gateway.acme.data(ADD, {"email": "bye@acme.io", "role": "MEMBER"}))[
        "addTenantMember"
    ]
    await gateway.acme.data(REMOVE, {"id": added["id"]})

    error = await gateway.acme.error(REMOVE, {"id": added["id"]})

    assert error["extensions"]["code"] == "NOT_FOUND"
    assert (await gateway.acme.data(ME))["me"]["tenant"]["memberCount"] == 1


# ---------------------------------------------------------------------------- updateTenantPlan


async def test_an_owner_changes_the_plan_and_gets_the_new_limits_back(gateway):
    data = await gateway.globex.data(PLAN, {"plan": "PRO"})

    assert data["updateTenantPlan"] == {
        "id": gateway.globex.tenant_id,
        "plan": "PRO",
        "memberCount": 1,
        "limits": PRO_LIMITS,
    }
    me = (await gateway.globex.data(ME))["me"]
    assert me["tenant"]["plan"] == "PRO"
    assert me["tenant"]["limits"] == PRO_LIMITS


async def test_plans_go_up_and_down(gateway):
    up = await gateway.acme.data(PLAN, {"plan": "ENTERPRISE"})
    assert up["updateTenantPlan"]["limits"] == ENTERPRISE_LIMITS

    down = await gateway.acme.data(PLAN, {"plan": "FREE"})
    assert down["updateTenantPlan"]["plan"] == "FREE"
    assert down["updateTenantPlan"]["limits"] == FREE_LIMITS


async def test_a_bigger_plan_raises_the_member_limit_at_once(gateway):
    for i in range(4):
        await gateway.globex.data(ADD, {"email": f"g{i}@globex.io", "role": "MEMBER"})
    full = await gateway.globex.error(ADD, {"email": "sixth@globex.io", "role": "MEMBER"})
    assert full["extensions"]["code"] == "LIMIT_EXCEEDED"

    await gateway.globex.data(PLAN, {"plan": "PRO"})

    data = await gateway.globex.data(ADD, {"email": "sixth@globex.io", "role": "MEMBER"})
    assert data["addTenantMember"]["email"] == "sixth@globex.io"


async def test_only_owners_change_the_plan(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    for caller in (admin, member, viewer):
        error = await caller.error(PLAN, {"plan": "ENTERPRISE"})
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Only owners can update the plan."

    assert (await gateway.acme.data(ME))["me"]["tenant"]["plan"] == "PRO"


async def test_an_unknown_plan_is_refused_before_anything_runs(gateway):
    body = await gateway.acme.gql(PLAN, {"plan": "PLATINUM"})

    assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_INPUT"]
    assert (await gateway.acme.data(ME))["me"]["tenant"]["plan"] == "PRO"


async def test_a_removed_members_keys_stop_working(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "leaver@acme.io")
    assert (await admin.data(ME))["me"]["memberId"] == admin.member_id

    await gateway.acme.data(REMOVE, {"id": admin.member_id})

    query = await admin.error(MEMBERS, {"first": 10})
    assert query["extensions"]["code"] == "UNAUTHENTICATED"
    mutation = await admin.error(ADD, {"email": "backdoor@acme.io", "role": "MEMBER"})
    assert mutation["extensions"]["code"] == "UNAUTHENTICATED"
    assert "backdoor@acme.io" not in await member_emails(gateway.acme)


async def test_concurrent_adds_at_the_limit_never_pass_it(gateway):
    bodies = await asyncio.gather(
        *(
            gateway.globex.gql(ADD, {"email": f"rush{i}@globex.io", "role": "MEMBER"})
            for i in range(10)
        )
    )

    codes = sorted(b["errors"][0]["extensions"]["code"] if "errors" in b else "OK" for b in bodies)
    assert codes == ["LIMIT_EXCEEDED"] * 6 + ["OK"] * 4
    assert len(await member_emails(gateway.globex)) == 5
    assert (await gateway.globex.data(ME))["me"]["tenant"]["memberCount"] == 5


async def test_nobody_adds_a_member_above_their_own_role(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")

    error = await admin.error(ADD, {"email": "boss@acme.io", "role": "OWNER"})

    assert error["extensions"] == {"code": "FORBIDDEN", "field": "role"}
    assert "boss@acme.io" not in await member_emails(gateway.acme)
    audit = await gateway.acme.data(
        "{ auditRecords(first: 1) { edges { node { action outcome errorCode } } } }"
    )
    assert audit["auditRecords"]["edges"][0]["node"] == {
        "action": "tenant.member.add",
        "outcome": "DENIED",
        "errorCode": "FORBIDDEN",
    }


async def test_nobody_removes_a_member_who_outranks_them(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    await gateway.acme.data(ADD, {"email": "second@acme.io", "role": "OWNER"})

    error = await admin.error(REMOVE, {"id": gateway.acme.member_id})

    assert error["extensions"] == {"code": "FORBIDDEN", "field": "role"}
    assert "owner@acme.io" in await member_emails(gateway.acme)
