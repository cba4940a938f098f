"""The audit trail through the gateway: every mutation leaves a record (successful, failed or
denied) tied to its request, records are listed newest first, and the hash chain holds under
concurrent writes and exposes tampering."""

from __future__ import annotations

import asyncio

from synapsex.runtime import new_id

from .conftest import CORE_SERVICES, Caller

# the services these tests need (conftest.CORE_SERVICES)
GATEWAY_SERVICES = CORE_SERVICES

AUDIT = """query ($first: Int!, $after: String, $action: String, $outcome: AuditOutcome) {
  auditRecords(first: $first, after: $after, action: $action, outcome: $outcome) {
    edges { cursor node {
      id at actor { memberId keyId } action resourceType resourceId outcome errorCode requestId
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""

VERIFY = "{ verifyAuditChain { ok checked firstBrokenId } }"
ME = "{ me { memberId keyId } }"

ADD = """mutation ($email: String!, $role: Role!) {
  addTenantMember(input: {email: $email, role: $role}) { id }
}"""
REMOVE = "mutation ($id: ID!) { removeTenantMember(input: {id: $id}) { id } }"
PLAN = "mutation ($plan: Plan!) { updateTenantPlan(input: {plan: $plan}) { id plan } }"
CREATE_KEY = """mutation ($name: String!, $role: Role!) {
  createApiKey(input: {name: $name, role: $role}) { key apiKey { id } }
}"""
REVOKE_KEY = "mutation ($id: ID!) { revokeApiKey(input: {id: $id}) { id } }"
SET_POLICY = """mutation ($action: String!) {
  setPolicy(input: {action: $action, effect: DENY, roles: [VIEWER], reason: "No."}) { id }
}"""
DELETE_POLICY = "mutation ($id: ID!) { deletePolicy(input: {id: $id}) { id } }"


async def records(caller: Caller, **filters) -> list[dict]:
    """All of the tenant's audit records, newest first (following every page)."""
    out: list[dict] = []
    after = None
    while True:
        data = await caller.data(AUDIT, {"first": 100, "after": after, **filters})
        connection = data["auditRecords"]
        out.extend(edge["node"] for edge in connection["edges"])
        if not connection["pageInfo"]["hasNextPage"]:
            return out
        after = connection["pageInfo"]["endCursor"]


async def verify(caller: Caller) -> dict:
    return (await caller.data(VERIFY))["verifyAuditChain"]


async def key_id(caller: Caller) -> str:
    return (await caller.data(ME))["me"]["keyId"]


async def post(caller: Caller, query: str, variables: dict) -> tuple[str, dict]:
    """Send a request as ``caller``; its X-Request-Id header and its body."""
    response = await caller.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {caller.key}"},
    )
    assert response.status == 200
    return response.headers["X-Request-Id"], await response.json()


# ---------------------------------------------------------------------------- every mutation


async def test_a_tenant_starts_with_an_empty_valid_chain(gateway):
    assert await records(gateway.acme) == []
    assert await verify(gateway.acme) == {"ok": True, "checked": 0, "firstBrokenId": None}


async def test_a_successful_mutation_is_recorded_with_its_actor_and_resource(gateway):
    owner_key = await key_id(gateway.acme)

    added = await gateway.acme.data(ADD, {"email": "ada@acme.io", "role": "ADMIN"})

    [record] = await records(gateway.acme)
    assert record["action"] == "tenant.member.add"
    assert record["resourceType"] == "tenant_member"
    assert record["resourceId"] == added["addTenantMember"]["id"]
    assert record["outcome"] == "SUCCESS"
    assert record["errorCode"] is None
    assert record["actor"] == {"memberId": gateway.acme.member_id, "keyId": owner_key}
    assert record["at"]
    assert record["requestId"]


async def test_a_forbidden_mutation_is_recorded_as_denied(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")

    error = await member.error(ADD, {"email": "x@acme.io", "role": "MEMBER"})

    assert error["extensions"]["code"] == "FORBIDDEN"
    [record] = await records(gateway.acme)
    assert record["action"] == "tenant.member.add"
    assert record["outcome"] == "DENIED"
    assert record["errorCode"] == "FORBIDDEN"
    assert record["actor"] == {"memberId": member.member_id, "keyId": await key_id(member)}


async def test_a_failed_mutation_is_recorded_as_a_failure_with_its_code(gateway):
    await gateway.acme.data(ADD, {"email": "twice@acme.io", "role": "MEMBER"})

    error = await gateway.acme.error(ADD, {"email": "twice@acme.io", "role": "MEMBER"})

    assert error["extensions"]["code"] == "CONFLICT"
    conflict, success = await records(gateway.acme)
    assert (success["outcome"], success["errorCode"]) == ("SUCCESS", None)
    assert (conflict["outcome"], conflict["errorCode"]) == ("FAILURE", "CONFLICT")
    assert conflict["action"] == "tenant.member.add"


async def test_each_failure_code_is_recorded(gateway):
    errors = [
        await gateway.acme.error(ADD, {"email": "not-an-email", "role": "MEMBER"}),
        await gateway.acme.error(REMOVE, {"id": gateway.acme.member_id}),
        await gateway.acme.error(REMOVE, {"id": new_id("mem")}),
    ]
    for i in range(4):
        await gateway.globex.data(ADD, {"email": f"g{i}@globex.io", "role": "MEMBER"})
    errors.append(await gateway.globex.error(ADD, {"email": "sixth@globex.io", "role": "MEMBER"}))

    assert [e["extensions"]["code"] for e in errors] == [
        "INVALID_INPUT",
        "CONFLICT",
        "NOT_FOUND",
        "LIMIT_EXCEEDED",
    ]
    acme = await records(gateway.acme)
    assert [(r["action"], r["outcome"], r["errorCode"]) for r in acme] == [
        ("tenant.member.remove", "FAILURE", "NOT_FOUND"),
        ("tenant.member.remove", "FAILURE", "CONFLICT"),
        ("tenant.member.add", "FAILURE", "INVALID_INPUT"),
    ]
    assert acme[1]["resourceId"] == gateway.acme.member_id
    globex_latest = (await records(gateway.globex))[0]
    assert (globex_latest["outcome"], globex_latest["errorCode"]) == ("FAILURE", "LIMIT_EXCEEDED")


async def test_every_kind_of_mutation_writes_a_record(gateway):
    acme = gateway.acme
    member = (await acme.data(ADD, {"email": "m@acme.io", "role": "MEMBER"}))["addTenantMember"]
    await acme.data(REMOVE, {"id": member["id"]})
    await acme.data(PLAN, {"plan": "ENTERPRISE"})
    created = (await acme.data(CREATE_KEY, {"name": "ci", "role": "MEMBER"}))["createApiKey"]
    await acme.data(REVOKE_KEY, {"id": created["apiKey"]["id"]})
    policy = (await acme.data(SET_POLICY, {"action": "agent.create"}))["setPolicy"]
    await acme.data(DELETE_POLICY, {"id": policy["id"]})

    trail = [
        (r["action"], r["resourceType"], r["resourceId"], r["outcome"])
        for r in reversed(await records(acme))
    ]

    assert trail == [
        ("tenant.member.add", "tenant_member", member["id"], "SUCCESS"),
        ("tenant.member.remove", "tenant_member", member["id"], "SUCCESS"),
        ("tenant.plan.update", "tenant", acme.tenant_id, "SUCCESS"),
        ("apikey.create", "api_key", created["apiKey"]["id"], "SUCCESS"),
        ("apikey.revoke", "api_key", created["apiKey"]["id"], "SUCCESS"),
        ("policy.set", "policy", policy["id"], "SUCCESS"),
        ("policy.delete", "policy", policy["id"], "SUCCESS"),
    ]
    assert await verify(acme) == {"ok": True, "checked": 7, "firstBrokenId": None}


async def test_the_record_of_a_new_key_never_holds_the_key(gateway):
    created = (await gateway.acme.data(CREATE_KEY, {"name": "ci", "role": "MEMBER"}))[
        "createApiKey"
    ]

    body = await gateway.acme.gql(AUDIT, {"first": 100})

    assert created["key"] not in str(body)


# ---------------------------------------------------------------------------- request ids


async def test_a_records_request_id_is_the_x_request_id_of_its_request(gateway):
    request_id, body = await post(gateway.acme, ADD, {"email": "ada@acme.io", "role": "ADMIN"})

    assert "errors" not in body
    [record] = await records(gateway.acme)
    assert record["requestId"] == request_id


async def test_a_denied_records_request_id_is_the_x_request_id_of_its_request(gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    request_id, body = await post(viewer, PLAN, {"plan": "FREE"})

    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    [record] = await records(gateway.acme)
    assert record["outcome"] == "DENIED"
    assert record["requestId"] == request_id


async def test_each_request_has_its_own_request_id(gateway):
    sent = []
    for i in range(3):
        request_id, _ = await post(gateway.acme, ADD, {"email": f"m{i}@acme.io", "role": "MEMBER"})
        sent.append(request_id)

    assert len(set(sent)) == 3
    assert [r["requestId"] for r in await records(gateway.acme)] == sent[::-1]


# ---------------------------------------------------------------------------- listing


async def test_audit_records_are_listed_newest_first_in_pages(gateway):
    emails = [f"m{i}@acme.io" for i in range(5)]
    ids = [
        (await gateway.acme.data(ADD, {"email": e, "role": "MEMBER"}))["addTenantMember"]["id"]
        for e in emails
    ]

    seen: list[str | None] = []
    after = None
    pages = 0
    while True:
        data = await gateway.acme.data(AUDIT, {"first": 2, "after": after})
        connection = data["auditRecords"]
        pages += 1
        seen.extend(edge["node"]["resourceId"] for edge in connection["edges"])
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert seen == ids[::-1]
    assert pages == 3


async def test_audit_records_filter_by_action_and_outcome(gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    await gateway.acme.data(ADD, {"email": "a@acme.io", "role": "MEMBER"})
    await gateway.acme.error(ADD, {"email": "a@acme.io", "role": "MEMBER"})
    await viewer.error(ADD, {"email": "b@acme.io", "role": "MEMBER"})
    await gateway.acme.data(PLAN, {"plan": "PRO"})
    await viewer.error(PLAN, {"plan": "FREE"})

    adds = await records(gateway.acme, action="tenant.member.add")
    denied = await records(gateway.acme, outcome="DENIED")
    denied_adds = await records(gateway.acme, action="tenant.member.add", outcome="DENIED")

    assert [r["outcome"] for r in adds] == ["DENIED", "FAILURE", "SUCCESS"]
    assert [r["action"] for r in denied] == ["tenant.plan.update", "tenant.member.add"]
    assert [(r["action"], r["outcome"]) for r in denied_adds] == [("tenant.member.add", "DENIED")]
    assert await records(gateway.acme, action="policy.set") == []


async def test_audit_records_refuse_more_than_100_per_page(gateway):
    error = await gateway.acme.error(AUDIT, {"first": 101})

    assert error["extensions"]["code"] == "INVALID_INPUT"


async def test_an_unknown_audit_cursor_is_invalid_input(gateway):
    error = await gateway.acme.error(AUDIT, {"first": 10, "after": new_id("aud")})

    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "after"


async def test_every_member_can_read_and_verify_the_trail(gateway):
    await gateway.acme.data(ADD, {"email": "a@acme.io", "role": "MEMBER"})
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    assert len(await records(viewer)) == 1
    assert await verify(viewer) == {"ok": True, "checked": 1, "firstBrokenId": None}


# ---------------------------------------------------------------------------- the hash chain


async def test_the_chain_stays_valid_under_50_concurrent_mutations(gateway):
    acme = gateway.acme
    requests = (
        # 30 members: with the owner 31 of the pro plan's 50
        [acme.gql(ADD, {"email": f"c{i}@acme.io", "role": "MEMBER"}) for i in range(30)]
        + [acme.gql(PLAN, {"plan": "PRO"}) for _ in range(10)]
        + [acme.gql(SET_POLICY, {"action": f"res{i}.create"}) for i in range(10)]
    )

    bodies = await asyncio.gather(*requests)

    assert [b for b in bodies if "errors" in b] == []
    trail = await records(acme)
    assert len(trail) == 50
    assert {r["outcome"] for r in trail} == {"SUCCESS"}
    assert len({r["id"] for r in trail}) == 50
    assert len({r["requestId"] for r in trail}) == 50
    actions = [r["action"] for r in trail]
    assert (actions.count("tenant.member.add"), actions.count("tenant.plan.update")) == (30, 10)
    assert actions.count("policy.set") == 10
    assert await verify(acme) == {"ok": True, "checked": 50, "firstBrokenId": None}


async def test_concurrent_mutations_of_two_tenants_keep_both_chains_valid(gateway):
    requests = [gateway.acme.gql(PLAN, {"plan": "PRO"}) for _ in range(25)] + [
        gateway.globex.gql(PLAN, {"plan": "FREE"}) for _ in range(25)
    ]

    bodies = await asyncio.gather(*requests)

    assert [b for b in bodies if "errors" in b] == []
    assert await verify(gateway.acme) == {"ok": True, "checked": 25, "firstBrokenId": None}
    assert await verify(gateway.globex) == {"ok": True, "checked": 25, "firstBrokenId": None}


async def tamper(gateway, record_id: str) -> None:
    """Change a stored record behind the audit-service's back, with raw SQL."""
    db = next(d for d in gateway.runtime.databases() if d.service == "audit-service")
    await db.open()
    try:
        placeholder = "?" if db.config.is_sqlite else "$1"
        await db.client().execute_query(
            "UPDATE audit_records SET action = 'x' WHERE id = " + placeholder, [record_id]
        )
    finally:
        await db.aclose()


async def test_a_tampered_record_breaks_the_chain_at_that_record(gateway):
    for i in range(5):
        await gateway.acme.data(ADD, {"email": f"m{i}@acme.io", "role": "MEMBER"})
    oldest_first = list(reversed(await records(gateway.acme)))
    target = oldest_first[2]
    assert await verify(gateway.acme) == {"ok": True, "checked": 5, "firstBrokenId": None}

    await tamper(gateway, target["id"])

    result = await verify(gateway.acme)
    assert result["ok"] is False
    assert result["firstBrokenId"] == target["id"]
    assert result["checked"] == 3
    listed = {r["id"]: r for r in await records(gateway.acme)}
    assert listed[target["id"]]["action"] == "x"  # the tampering really reached the table


async def test_tampering_with_the_newest_record_is_found(gateway):
    for i in range(3):
        await gateway.acme.data(ADD, {"email": f"m{i}@acme.io", "role": "MEMBER"})
    newest = (await records(gateway.acme))[0]

    await tamper(gateway, newest["id"])

    result = await verify(gateway.acme)
    assert result["ok"] is False
    assert result["firstBrokenId"] == newest["id"]


async def test_tampering_with_one_tenants_chain_leaves_the_others_valid(gateway):
    await gateway.acme.data(ADD, {"email": "a@acme.io", "role": "MEMBER"})
    await gateway.globex.data(ADD, {"email": "g@globex.io", "role": "MEMBER"})
    [acme_record] = await records(gateway.acme)

    await tamper(gateway, acme_record["id"])

    assert (await verify(gateway.acme))["firstBrokenId"] == acme_record["id"]
    assert await verify(gateway.globex) == {"ok": True, "checked": 1, "firstBrokenId": None}


async def test_a_tampered_chain_is_still_reported_after_more_mutations(gateway):
    await gateway.acme.data(ADD, {"email": "a@acme.io", "role": "MEMBER"})
    [first] = await records(gateway.acme)
    await tamper(gateway, first["id"])

    await gateway.acme.data(ADD, {"email": "b@acme.io", "role": "MEMBER"})

    result = await verify(gateway.acme)
    assert result["ok"] is False
    assert result["firstBrokenId"] == first["id"]
    assert result["checked"] == 1


async def test_a_key_above_the_callers_role_is_audited_as_denied(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")

    error = await admin.error(CREATE_KEY, {"name": "escalate", "role": "OWNER"})

    assert error["extensions"]["code"] == "FORBIDDEN"
    [record] = await records(gateway.acme)
    assert record["action"] == "apikey.create"
    assert (record["outcome"], record["errorCode"]) == ("DENIED", "FORBIDDEN")
