"""API keys through the gateway: listing, creating (shown once), the role ceiling, revoking,
and how a request without a valid key is answered."""

from __future__ import annotations

import json

from synapsex.runtime import new_id

from .conftest import CORE_SERVICES, Caller

# the services these tests need (conftest.CORE_SERVICES)
GATEWAY_SERVICES = CORE_SERVICES

KEYS = """query ($first: Int!, $after: String) {
  apiKeys(first: $first, after: $after) {
    edges { cursor node { id name role prefix memberId createdAt lastUsedAt revokedAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""

CREATE = """mutation ($name: String!, $role: Role!) {
  createApiKey(input: {name: $name, role: $role}) {
    key
    apiKey { id name role prefix memberId createdAt lastUsedAt revokedAt }
  }
}"""

REVOKE = """mutation ($id: ID!) {
  revokeApiKey(input: {id: $id}) { id name revokedAt }
}"""

ME = "{ me { memberId keyId role tenant { id } } }"


async def create_key(caller: Caller, name: str, role: str) -> tuple[Caller, dict]:
    """Create a key as ``caller``; the new key as a Caller, and its ``apiKey``."""
    created = (await caller.data(CREATE, {"name": name, "role": role}))["createApiKey"]
    new = Caller(caller.client, created["key"], caller.tenant_id, caller.member_id)
    return new, created["apiKey"]


async def list_keys(caller: Caller) -> list[dict]:
    data = await caller.data(KEYS, {"first": 100})
    return [edge["node"] for edge in data["apiKeys"]["edges"]]


# ---------------------------------------------------------------------------- createApiKey


async def test_a_created_key_is_shown_once_with_its_record(gateway):
    data = await gateway.acme.data(CREATE, {"name": "ci", "role": "ADMIN"})

    created = data["createApiKey"]
    key, api_key = created["key"], created["apiKey"]
    assert key.startswith("sx_")
    assert api_key["name"] == "ci"
    assert api_key["role"] == "ADMIN"
    assert api_key["memberId"] == gateway.acme.member_id
    assert key.startswith(api_key["prefix"])
    assert len(api_key["prefix"]) < len(key)
    assert api_key["createdAt"]
    assert api_key["lastUsedAt"] is None
    assert api_key["revokedAt"] is None


async def test_a_created_key_works_for_requests_right_away(gateway):
    new, api_key = await create_key(gateway.acme, "ci", "MEMBER")

    me = (await new.data(ME))["me"]

    assert me == {
        "memberId": gateway.acme.member_id,
        "keyId": api_key["id"],
        "role": "MEMBER",
        "tenant": {"id": gateway.acme.tenant_id},
    }


async def test_a_key_acts_with_its_own_role_not_its_members(gateway):
    viewer_key, _ = await create_key(gateway.acme, "read-only", "VIEWER")

    error = await viewer_key.error(
        'mutation { addTenantMember(input: {email: "x@acme.io"}) { id } }'
    )

    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_api_keys_never_return_the_key_itself(gateway):
    new, api_key = await create_key(gateway.acme, "ci", "ADMIN")
    key = new.key
    assert key is not None

    body = await gateway.acme.gql(KEYS, {"first": 100})

    assert "errors" not in body
    assert key not in json.dumps(body)
    listed = {node["id"]: node for node in (e["node"] for e in body["data"]["apiKeys"]["edges"])}
    assert listed[api_key["id"]]["prefix"] == api_key["prefix"]
    assert listed[api_key["id"]]["name"] == "ci"
    introspection = await gateway.acme.data('{ __type(name: "ApiKey") { fields { name } } }')
    assert "key" not in {f["name"] for f in introspection["__type"]["fields"]}


async def test_api_keys_list_the_tenants_keys_oldest_first_in_pages(gateway):
    for name in ("a", "b", "c", "d"):
        await create_key(gateway.acme, name, "MEMBER")

    names: list[str] = []
    after = None
    pages = 0
    while True:
        data = await gateway.acme.data(KEYS, {"first": 2, "after": after})
        connection = data["apiKeys"]
        pages += 1
        names.extend(edge["node"]["name"] for edge in connection["edges"])
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert names == ["boot", "a", "b", "c", "d"]
    assert pages == 3


async def test_api_keys_refuse_more_than_100_per_page(gateway):
    error = await gateway.acme.error(KEYS, {"first": 101})

    assert error["extensions"]["code"] == "INVALID_INPUT"


async def test_using_a_key_sets_its_last_used_time(gateway):
    new, api_key = await create_key(gateway.acme, "ci", "MEMBER")
    before = {k["id"]: k for k in await list_keys(gateway.acme)}
    assert before[api_key["id"]]["lastUsedAt"] is None

    await new.data(ME)

    after = {k["id"]: k for k in await list_keys(gateway.acme)}
    assert after[api_key["id"]]["lastUsedAt"] is not None


async def test_an_owner_creates_keys_of_every_role(gateway):
    for role in ("OWNER", "ADMIN", "MEMBER", "VIEWER"):
        _, api_key = await create_key(gateway.acme, role.lower(), role)
        assert api_key["role"] == role


async def test_an_admin_creates_keys_up_to_admin_for_themselves(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")

    for role in ("ADMIN", "MEMBER", "VIEWER"):
        new, api_key = await create_key(admin, role.lower(), role)
        assert api_key["role"] == role
        assert api_key["memberId"] == admin.member_id
        assert (await new.data(ME))["me"]["memberId"] == admin.member_id


async def test_an_admin_cannot_create_an_owner_key(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    count = len(await list_keys(gateway.acme))

    error = await admin.error(CREATE, {"name": "escalate", "role": "OWNER"})

    assert error["extensions"]["code"] == "FORBIDDEN"
    assert len(await list_keys(gateway.acme)) == count


async def test_members_and_viewers_may_not_create_keys_at_all(gateway):
    # The default matrix: any write on `apikey` other than reads is for admins and owners.
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")

    attempts = [(member, "ADMIN"), (member, "MEMBER"), (viewer, "VIEWER"), (viewer, "OWNER")]
    for caller, role in attempts:
        error = await caller.error(CREATE, {"name": "mine", "role": role})
        assert error["extensions"]["code"] == "FORBIDDEN", role
        assert error["message"] == "Only admins and owners can manage API keys."


async def test_a_member_allowed_by_a_policy_still_cannot_create_a_key_above_their_role(gateway):
    await gateway.acme.data(
        """mutation { setPolicy(input: {action: "apikey.create", effect: ALLOW,
             roles: [MEMBER], reason: "Members manage their own keys."}) { id } }"""
    )
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")

    _, own = await create_key(member, "mine", "MEMBER")
    error = await member.error(CREATE, {"name": "escalate", "role": "ADMIN"})

    assert own["role"] == "MEMBER"
    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_a_key_with_an_empty_name_is_invalid_input(gateway):
    error = await gateway.acme.error(CREATE, {"name": "", "role": "MEMBER"})

    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == "name"


# ---------------------------------------------------------------------------- revokeApiKey


async def test_a_revoked_key_is_unauthenticated_on_its_next_request(gateway):
    new, api_key = await create_key(gateway.acme, "leaked", "ADMIN")
    assert (await new.data(ME))["me"]["keyId"] == api_key["id"]

    data = await gateway.acme.data(REVOKE, {"id": api_key["id"]})

    assert data["revokeApiKey"]["id"] == api_key["id"]
    assert data["revokeApiKey"]["revokedAt"] is not None
    error = await new.error(ME)  # asserts HTTP 200
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    error = await new.error('mutation { addTenantMember(input: {email: "x@acme.io"}) { id } }')
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_revoked_key_stays_listed_with_its_revocation_time(gateway):
    _, api_key = await create_key(gateway.acme, "old", "MEMBER")
    await gateway.acme.data(REVOKE, {"id": api_key["id"]})

    listed = {k["id"]: k for k in await list_keys(gateway.acme)}

    assert listed[api_key["id"]]["revokedAt"] is not None
    assert listed[api_key["id"]]["name"] == "old"


async def test_revoking_one_key_leaves_the_others_working(gateway):
    first, first_key = await create_key(gateway.acme, "one", "MEMBER")
    second, _ = await create_key(gateway.acme, "two", "MEMBER")

    await gateway.acme.data(REVOKE, {"id": first_key["id"]})

    assert (await first.error(ME))["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await second.data(ME))["me"]["role"] == "MEMBER"
    assert (await gateway.acme.data(ME))["me"]["role"] == "OWNER"


async def test_revoking_twice_is_harmless(gateway):
    _, api_key = await create_key(gateway.acme, "old", "MEMBER")
    once = (await gateway.acme.data(REVOKE, {"id": api_key["id"]}))["revokeApiKey"]

    twice = (await gateway.acme.data(REVOKE, {"id": api_key["id"]}))["revokeApiKey"]

    assert twice["revokedAt"] == once["revokedAt"]


async def test_a_key_can_revoke_itself(gateway):
    new, api_key = await create_key(gateway.acme, "self", "ADMIN")

    data = await new.data(REVOKE, {"id": api_key["id"]})

    assert data["revokeApiKey"]["id"] == api_key["id"]
    assert (await new.error(ME))["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_admin_revokes_another_members_key(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    member_key_id = (await member.data(ME))["me"]["keyId"]

    await admin.data(REVOKE, {"id": member_key_id})

    assert (await member.error(ME))["extensions"]["code"] == "UNAUTHENTICATED"


async def test_members_and_viewers_cannot_revoke_keys(gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    owner_key_id = (await gateway.acme.data(ME))["me"]["keyId"]

    for caller in (member, viewer):
        error = await caller.error(REVOKE, {"id": owner_key_id})
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Only admins and owners can manage API keys."

    assert (await gateway.acme.data(ME))["me"]["keyId"] == owner_key_id


async def test_revoking_an_unknown_key_is_not_found(gateway):
    error = await gateway.acme.error(REVOKE, {"id": new_id("key")})

    assert error["extensions"]["code"] == "NOT_FOUND"


# ---------------------------------------------------------------------------- authentication


async def post(gateway, query: str, headers: dict[str, str]):
    response = await gateway.client.post("/graphql", json={"query": query}, headers=headers)
    return response.status, await response.json()


def only_code(body: dict) -> str:
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]["extensions"]["code"]


async def test_a_request_without_a_key_is_unauthenticated_with_http_200(gateway):
    status, body = await post(gateway, ME, {})

    assert status == 200
    assert only_code(body) == "UNAUTHENTICATED"
    assert body["data"] is None


async def test_a_mutation_without_a_key_is_unauthenticated_and_changes_nothing(gateway):
    status, body = await post(
        gateway, 'mutation { addTenantMember(input: {email: "x@acme.io"}) { id } }', {}
    )

    assert status == 200
    assert only_code(body) == "UNAUTHENTICATED"
    members = await gateway.acme.data("{ tenantMembers { edges { node { email } } } }")
    assert [e["node"]["email"] for e in members["tenantMembers"]["edges"]] == ["owner@acme.io"]


async def test_malformed_keys_are_unauthenticated_with_http_200(gateway):
    owner_key = gateway.acme.key
    assert owner_key is not None
    malformed = [
        "Bearer",
        "Bearer ",
        "Bearer not-a-key",
        "Bearer sx_",
        f"Bearer {owner_key[:-1]}",  # one character short
        f"Bearer {owner_key}x",  # one character long
        f"Bearer {owner_key[:-1]}{'A' if owner_key[-1] != 'A' else 'B'}",  # right shape, unknown
        f"Basic {owner_key}",  # not a bearer token
        owner_key,  # no scheme
    ]
    for authorization in malformed:
        status, body = await post(gateway, ME, {"Authorization": authorization})
        assert status == 200, authorization
        assert only_code(body) == "UNAUTHENTICATED", authorization


async def test_a_revoked_key_is_unauthenticated_with_http_200(gateway):
    new, api_key = await create_key(gateway.acme, "gone", "MEMBER")
    await gateway.acme.data(REVOKE, {"id": api_key["id"]})

    status, body = await post(gateway, ME, {"Authorization": f"Bearer {new.key}"})

    assert status == 200
    assert only_code(body) == "UNAUTHENTICATED"


async def test_the_ceiling_is_the_calling_keys_role_not_its_members(gateway):
    # The owner's ADMIN key acts as an admin: it cannot mint an OWNER key.
    admin_key, _ = await create_key(gateway.acme, "admin-key", "ADMIN")

    error = await admin_key.error(CREATE, {"name": "escalate", "role": "OWNER"})

    assert error["extensions"]["code"] == "FORBIDDEN"
    assert {k["role"] for k in await list_keys(gateway.acme)} == {"OWNER", "ADMIN"}
