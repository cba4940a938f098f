"""The policy contract without a runtime: the default matrix, action names and patterns."""

from __future__ import annotations

import pytest

from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.policy import (
    ALLOW,
    DENY,
    EFFECTS,
    CheckPolicy,
    DeletePolicy,
    ListPolicies,
    SetPolicy,
    action_matches,
    check_action,
    check_action_pattern,
    default_decision,
)
from synapsex.contracts.tenant import ROLES

A, D = ALLOW, DENY

# action, is_own_resource, expected effect for (viewer, member, admin, owner)
MATRIX = [
    ("tenant.read", False, (A, A, A, A)),
    ("tenant.member.list", False, (A, A, A, A)),
    ("apikey.list", False, (A, A, A, A)),
    ("policy.list", False, (A, A, A, A)),
    ("audit.list", False, (A, A, A, A)),
    ("audit.verify", False, (A, A, A, A)),
    ("agent.get", False, (A, A, A, A)),
    ("policy.check", False, (A, A, A, A)),
    ("tenant.plan.update", False, (D, D, D, A)),
    ("tenant.plan.update", True, (D, D, D, A)),
    ("tenant.delete", False, (D, D, D, A)),
    ("policy.set", False, (D, D, D, A)),
    ("policy.delete", True, (D, D, D, A)),
    ("tenant.member.add", False, (D, D, A, A)),
    ("tenant.member.remove", True, (D, D, A, A)),
    ("tenant.member.update", False, (D, D, A, A)),
    ("apikey.create", False, (D, D, A, A)),
    ("apikey.create", True, (D, D, A, A)),
    ("apikey.revoke", False, (D, D, A, A)),
    ("agent.create", False, (D, A, A, A)),
    ("event.publish", False, (D, A, A, A)),
    ("agent.update", True, (D, A, A, A)),
    ("agent.update", False, (D, D, A, A)),
    ("agent.delete", True, (D, A, A, A)),
    ("agent.delete", False, (D, D, A, A)),
    ("agent.deploy", False, (D, D, A, A)),
    ("workspace.file.write", True, (D, A, A, A)),
    ("tenant.update", False, (D, D, A, A)),
]


@pytest.mark.parametrize(("action", "own", "expected"), MATRIX)
def test_default_matrix(action, own, expected):
    got = tuple(
        default_decision(role, action, is_own_resource=own).effect
        for role in ("viewer", "member", "admin", "owner")
    )
    assert got == expected


def test_default_decisions_have_no_policy_id_and_readable_reasons():
    for action, own, _ in MATRIX:
        for role in ROLES:
            decision = default_decision(role, action, is_own_resource=own)
            assert decision.policy_id is None
            assert decision.effect in EFFECTS
            assert decision.reason[0].isupper()
            assert decision.reason.endswith(".")


@pytest.mark.parametrize(
    ("role", "action", "reason"),
    [
        ("admin", "tenant.plan.update", "Only owners can update the plan."),
        ("viewer", "tenant.plan.update", "Only owners can update the plan."),
        ("member", "policy.set", "Only owners can change policies."),
        ("viewer", "agent.create", "Viewers can only read."),
        ("viewer", "event.publish", "Viewers can only read."),
        ("member", "apikey.create", "Only admins and owners can manage API keys."),
        ("member", "tenant.member.add", "Only admins and owners can manage members."),
        ("member", "agent.delete", "Members can only change their own resources; ask an admin."),
    ],
)
def test_denials_explain_themselves(role, action, reason):
    decision = default_decision(role, action, is_own_resource=False)
    assert (decision.effect, decision.reason) == (DENY, reason)


def test_unknown_verbs_count_as_writes():
    assert default_decision("viewer", "agent.frobnicate", is_own_resource=True).effect == DENY
    assert default_decision("member", "agent.frobnicate", is_own_resource=True).effect == ALLOW


def test_default_decision_refuses_bad_input():
    with pytest.raises(InvalidInput) as err:
        default_decision("root", "tenant.read", is_own_resource=False)
    assert err.value.field == "role"
    with pytest.raises(InvalidInput) as err:
        default_decision("owner", "tenant.*", is_own_resource=False)
    assert err.value.field == "action"


@pytest.mark.parametrize(
    "action", ["tenant.read", "tenant.member.add", "a.b", "vm_pool.re-start", "x" * 98 + ".y"]
)
def test_valid_actions(action):
    check_action(action)
    check_action_pattern(action)


@pytest.mark.parametrize(
    "action",
    [
        "",
        "tenant",
        "Tenant.read",
        "tenant..read",
        "tenant.read.",
        ".tenant.read",
        "tenant read",
        "tenant.read\n",
        "tenant.*",
        "tenant.#",
        "x" * 99 + ".y",
    ],
)
def test_invalid_actions(action):
    with pytest.raises(InvalidInput) as err:
        check_action(action)
    assert err.value.field == "action"


@pytest.mark.parametrize("pattern", ["agent.*", "*.create", "*.*", "agent.#", "#", "a.*.#"])
def test_valid_patterns(pattern):
    check_action_pattern(pattern)


@pytest.mark.parametrize("pattern", ["*", "tenant", "#.read", "a.#.b", "a.**", "a.b*", "A.#"])
def test_invalid_patterns(pattern):
    with pytest.raises(InvalidInput) as err:
        check_action_pattern(pattern)
    assert err.value.field == "action"


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("agent.create", "agent.create", True),
        ("agent.create", "agent.delete", False),
        ("agent.*", "agent.create", True),
        ("agent.*", "agent.tool.call", False),
        ("*.create", "agent.create", True),
        ("*.create", "agent.tool.create", False),
        ("agent.#", "agent.create", True),
        ("agent.#", "agent.tool.call", True),
        ("agent.#", "agents.create", False),
        ("tenant.member.#", "tenant.read", False),
        ("#", "tenant.plan.update", True),
        ("*.*.#", "tenant.read", True),
        ("*.*.*", "tenant.read", False),
    ],
)
def test_action_matches(pattern, action, matches):
    assert action_matches(pattern, action) is matches


def test_messages_validate_their_fields():
    def field_of(build):
        with pytest.raises(InvalidInput) as err:
            build()
        return err.value.field

    ok = {"tenant_id": "ten_1", "action": "agent.#", "effect": "DENY", "roles": ("member",)}
    assert field_of(lambda: SetPolicy(**{**ok, "effect": "deny"}, reason="r")) == "effect"
    assert field_of(lambda: SetPolicy(**{**ok, "roles": ()}, reason="r")) == "roles"
    assert field_of(lambda: SetPolicy(**{**ok, "roles": ("root",)}, reason="r")) == "roles"
    assert field_of(lambda: SetPolicy(**{**ok, "roles": ["member"]}, reason="r")) == "roles"
    assert field_of(lambda: SetPolicy(**{**ok, "action": "Agent"}, reason="r")) == "action"
    assert field_of(lambda: SetPolicy(**ok, reason="")) == "reason"
    assert field_of(lambda: SetPolicy(**ok, reason="x" * 501)) == "reason"
    assert field_of(lambda: SetPolicy(**{**ok, "tenant_id": ""}, reason="r")) == "tenant_id"
    SetPolicy(**ok, reason="x" * 500)
    SetPolicy(**{**ok, "roles": ("member", "member", "viewer")}, reason="r")

    assert field_of(lambda: CheckPolicy(tenant_id="t", role="root", action="a.b")) == "role"
    assert field_of(lambda: CheckPolicy(tenant_id="t", role="owner", action="a.*")) == "action"
    assert (
        field_of(lambda: CheckPolicy(tenant_id="t", role="owner", action="a.b", is_own_resource=1))
        == "is_own_resource"
    )
    assert field_of(lambda: ListPolicies(tenant_id="t", first=0)) == "first"
    assert field_of(lambda: ListPolicies(tenant_id="", first=1)) == "tenant_id"
    assert field_of(lambda: DeletePolicy(tenant_id=" t", id="pol_1")) == "tenant_id"
