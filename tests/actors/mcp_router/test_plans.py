"""mcp-router-service's plans on both engines, against the real fixture MCP server
(tests/mcp_fixture.py): ranking into a stored plan with its explanation, missing arguments,
policy outcomes (ALLOW, REQUIRE_APPROVAL, DENY), approval bound to the arguments' hash,
execution with the result artifact and the tool-call allowance, the STALE refusal when the
server changes or drops the tool after approval, an unreachable server, one execution when two
race, the catalog cache following syncs, short-lived keys on synapsex-ops-mcp, events and
audit records, and tenant isolation."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from synapsex.contracts.audit import ListAuditRecords
from synapsex.contracts.auth import Authenticate, ListApiKeys
from synapsex.contracts.billing import GetToolCallAllowance
from synapsex.contracts.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Unauthenticated,
)
from synapsex.contracts.events import ListEvents
from synapsex.contracts.mcp import (
    ApproveMcpPlan,
    ExecuteMcpPlan,
    GetMcpPlan,
    ListMcpPlans,
    ListMcpServers,
    McpPlanView,
    PlanMcp,
    RegisterMcpServer,
    RejectMcpPlan,
    SyncMcpServer,
    UpdateMcpPlanArguments,
)
from synapsex.contracts.policy import SetPolicy
from synapsex.contracts.tenant import BootstrapTenant, UpdateTenantPlan
from synapsex.contracts.workspaces import CreateWorkspace, ReadArtifactChunk
from synapsex.runtime import Runtime
from tests.mcp_fixture import expected_text, mcp_fixture_server

pytestmark = pytest.mark.usefixtures("db_environ")

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "billing-service",
    "workspace-service",
    "api-gateway",
    "mcp-router-service",
]
PRIVATE_OK = {"SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS": "true", "SYNAPSEX_MCP_TIMEOUT": "5s"}


class World:
    """A runtime, two tenants (Acme pro, Globex free) and Acme's fixture server, synced."""

    def __init__(self, rt: Runtime, acme, globex, server_id: str) -> None:
        self.rt = rt
        self.a = acme.tenant.id
        self.owner = acme.owner.id
        self.b = globex.tenant.id
        self.server_id = server_id

    async def plan(self, intent: str, role: str = "owner", **kw) -> McpPlanView:
        return await self.rt.ask(
            PlanMcp(tenant_id=self.a, member_id=self.owner, role=role, intent=intent, **kw)
        )

    async def approve(self, plan: McpPlanView, **kw) -> McpPlanView:
        return await self.rt.ask(
            ApproveMcpPlan(tenant_id=self.a, id=plan.id, member_id=self.owner, role="owner", **kw)
        )

    async def execute(self, plan: McpPlanView, role: str = "owner") -> McpPlanView:
        return await self.rt.ask(
            ExecuteMcpPlan(tenant_id=self.a, id=plan.id, member_id=self.owner, role=role),
            timeout=30,
        )

    async def topics(self, prefix: str = "mcp.plan.#") -> list[tuple[str, dict]]:
        page = await self.rt.ask(ListEvents(tenant_id=self.a, topic=prefix, first=100))
        return [(e.topic, e.payload) for e in page.items]

    async def tool_calls_used(self) -> int:
        return (await self.rt.ask(GetToolCallAllowance(tenant_id=self.a))).used


async def start_world(rt: Runtime, url: str) -> World:
    acme = await rt.ask(BootstrapTenant(name="Acme", owner_email="o@acme.io", plan="pro"))
    globex = await rt.ask(BootstrapTenant(name="Globex", owner_email="o@globex.io"))
    server = await rt.ask(RegisterMcpServer(tenant_id=acme.tenant.id, name="fixture", url=url))
    await rt.ask(SyncMcpServer(tenant_id=acme.tenant.id, id=server.id), timeout=15)
    return World(rt, acme, globex, server.id)


def embedded(tmp_path: Path, environ: dict[str, str], **extra: str) -> Runtime:
    return Runtime.embedded(
        data_dir=tmp_path, services=SERVICES, environ={**environ, **PRIVATE_OK, **extra}
    )


@pytest.fixture
async def world(tmp_path, db_environ):
    async with mcp_fixture_server() as server, embedded(tmp_path, db_environ) as rt:
        w = await start_world(rt, server.url)
        w.server = server  # type: ignore[attr-defined]
        yield w


async def read_artifact(rt: Runtime, tenant_id: str, artifact_id: str) -> bytes:
    chunk = await rt.ask(ReadArtifactChunk(tenant_id=tenant_id, id=artifact_id))
    assert chunk.eof
    return chunk.data


# ---------------------------------------------------------------------------- planning


async def test_a_read_only_tool_runs_without_approval_and_its_result_is_an_artifact(world):
    rt = world.rt
    workspace = await rt.ask(CreateWorkspace(tenant_id=world.a, name="ops"))
    plan = await world.plan(
        'What is the weather in city "Paris"?', role="member", workspace_id=workspace.id
    )
    assert plan.status == "PROPOSED"
    assert plan.chosen is not None
    assert plan.chosen.tool == "fixture__get_weather"
    assert plan.chosen.server == "fixture"
    assert plan.chosen.arguments == {"city": "Paris"}
    assert plan.chosen.missing_arguments == ()
    assert plan.chosen.read_only
    assert not plan.requires_approval
    assert plan.policy is not None
    assert plan.policy.effect == "ALLOW"
    assert plan.explanation.startswith("Chose fixture__get_weather (score ")
    assert "No approval needed" in plan.explanation
    best = plan.candidates[0]
    assert best.tool == "fixture__get_weather"
    assert abs(sum(r.weight for r in best.reasons) - best.score) < 1e-3
    assert {"name", "title", "description"} <= {r.field for r in best.reasons}

    done = await world.execute(plan, role="member")
    assert done.status == "SUCCEEDED"
    assert done.error is None
    assert done.duration_ms is not None
    assert done.duration_ms > 0
    assert world.server.calls == [("get_weather", {"city": "Paris"})]
    content = await read_artifact(rt, world.a, done.result_artifact_id)
    document = json.loads(content)
    assert document["isError"] is False
    assert document["content"][0]["text"] == expected_text("get_weather", {"city": "Paris"})
    assert done.result_excerpt == content.decode()
    assert await world.tool_calls_used() == 1

    topics = await world.topics()
    assert [t for t, _ in topics] == [
        "mcp.plan.proposed",
        "mcp.plan.executing",
        "mcp.plan.executed",
    ]
    assert all(p["planId"] == plan.id for _, p in topics)
    assert topics[-1][1]["argumentsSha256"] == plan.chosen.arguments_sha256
    (usage,) = [p for _, p in await world.topics("usage.recorded") if p["kind"] == "TOOL_CALL"]
    assert usage["kind"] == "TOOL_CALL"
    assert usage["idempotencyKey"] == f"mcp-plan:{plan.id}"
    records = await rt.ask(ListAuditRecords(tenant_id=world.a, action="mcp_plan.executed"))
    assert [(r.resource_id, r.outcome) for r in records.items] == [(plan.id, "SUCCESS")]


async def test_missing_arguments_block_approval_until_supplied_and_approval_binds_them(world):
    plan = await world.plan("refund 500 cents of a card payment")
    assert plan.chosen.tool == "fixture__refund_payment"
    assert plan.requires_approval
    assert plan.chosen.arguments == {"amount_cents": 500}
    assert plan.chosen.missing_arguments == ("payment_id",)
    assert "Missing arguments: payment_id." in plan.explanation
    with pytest.raises(Conflict, match="needs approval"):
        await world.execute(plan)
    with pytest.raises(Conflict) as missing:
        await world.approve(plan)
    assert missing.value.details["field"] == "arguments"
    assert missing.value.details["missing"] == ["payment_id"]

    update = UpdateMcpPlanArguments(
        tenant_id=world.a, id=plan.id, member_id=world.owner, arguments={"payment_id": "P-1"}
    )
    filled = await world.rt.ask(update)
    assert filled.chosen.arguments == {"payment_id": "P-1", "amount_cents": 500}
    assert filled.chosen.missing_arguments == ()
    assert filled.chosen.arguments_sha256 != plan.chosen.arguments_sha256
    with pytest.raises(Conflict, match="changed since you read them"):
        await world.approve(filled, arguments_sha256=plan.chosen.arguments_sha256)
    approved = await world.approve(filled, arguments_sha256=filled.chosen.arguments_sha256)
    assert approved.status == "APPROVED"
    assert approved.approved_by == world.owner
    assert approved.approved_role == "owner"

    # new arguments after approval: back to PROPOSED, the approval is gone
    changed = await world.rt.ask(
        UpdateMcpPlanArguments(
            tenant_id=world.a, id=plan.id, member_id=world.owner, arguments={"payment_id": "P-2"}
        )
    )
    assert changed.status == "PROPOSED"
    assert changed.approved_by is None
    with pytest.raises(InvalidInput) as wrong:
        await world.rt.ask(
            UpdateMcpPlanArguments(
                tenant_id=world.a,
                id=plan.id,
                member_id=world.owner,
                arguments={"payment_id": "P-2", "amount_cents": "lots"},
            )
        )
    assert wrong.value.field == "arguments.amount_cents"

    await world.approve(changed)
    done = await world.execute(changed)
    assert done.status == "SUCCEEDED"
    assert world.server.calls == [("refund_payment", {"payment_id": "P-2", "amount_cents": 500})]
    assert done.result_artifact_id is None  # no workspace: the excerpt only
    assert "Refunded 500 cents of payment P-2" in done.result_excerpt
    with pytest.raises(Conflict, match="SUCCEEDED"):
        await world.execute(done)
    with pytest.raises(Conflict, match="SUCCEEDED"):
        await world.rt.ask(
            RejectMcpPlan(tenant_id=world.a, id=plan.id, member_id=world.owner, reason="late")
        )
    topics = [t for t, _ in await world.topics()]
    assert topics == [
        "mcp.plan.proposed",
        "mcp.plan.updated",
        "mcp.plan.approved",
        "mcp.plan.updated",
        "mcp.plan.approved",
        "mcp.plan.executing",
        "mcp.plan.executed",
    ]


async def test_policy_allow_require_approval_and_deny(world):
    rt = world.rt
    allowed = await world.plan("weather report documents", role="member")
    assert allowed.chosen.tool == "fixture__get_weather"
    assert not allowed.requires_approval

    await rt.ask(
        SetPolicy(
            tenant_id=world.a,
            action="mcp_tool.fixture__get_weather.call",
            effect="REQUIRE_APPROVAL",
            roles=("member",),
            reason="Weather lookups cost money.",
        )
    )
    gated = await world.plan("weather report documents", role="member")
    assert gated.chosen.tool == "fixture__get_weather"
    assert gated.requires_approval
    assert gated.policy.effect == "REQUIRE_APPROVAL"
    assert gated.policy.policy_id is not None
    assert "the policy requires it" in gated.explanation
    with pytest.raises(Conflict, match="needs approval"):
        await world.execute(gated, role="member")

    await rt.ask(
        SetPolicy(
            tenant_id=world.a,
            action="mcp_tool.fixture__get_weather.call",
            effect="DENY",
            roles=("member",),
            reason="No weather for members.",
        )
    )
    denied = await world.plan("weather report documents", role="member")
    assert denied.chosen.tool == "fixture__search_documents"
    weather = next(c for c in denied.candidates if c.tool == "fixture__get_weather")
    assert weather.policy.effect == "DENY"
    assert weather.policy.reason == "No weather for members."
    assert "Left out fixture__get_weather: the policy denies it" in denied.explanation
    # an owner is not named by the rule: the default applies
    assert (await world.plan("weather report documents")).chosen.tool == "fixture__get_weather"

    await rt.ask(
        SetPolicy(
            tenant_id=world.a,
            action="mcp_tool.#",
            effect="DENY",
            roles=("member",),
            reason="Members use no tools.",
        )
    )
    with pytest.raises(Forbidden, match="denies every matching tool"):
        await world.plan("weather report documents", role="member")
    with pytest.raises(Forbidden, match="Viewers can only read"):
        await world.plan("weather report documents", role="viewer")


# ---------------------------------------------------------------------------- execution


async def test_a_tool_changed_or_removed_after_approval_makes_the_plan_stale(world):
    changed = await world.approve(await world.plan("delete ticket ticket_id=T-9"))
    removed = await world.approve(
        await world.plan('open a support ticket with title "Broken" and body "It is."')
    )
    assert changed.chosen.tool == "fixture__delete_ticket"
    assert removed.chosen.tool == "fixture__create_ticket"
    world.server.change_tool("delete_ticket", description="Delete a ticket, and its customer.")
    world.server.remove_tool("create_ticket")

    stale = await world.execute(changed)
    assert stale.status == "STALE"
    assert "definition changed since the plan was made" in stale.error
    assert "nothing ran" in stale.error
    gone = await world.execute(removed)
    assert gone.status == "STALE"
    assert "no longer lists the tool create_ticket" in gone.error
    assert world.server.calls == []
    assert await world.tool_calls_used() == 0
    stale_events = [p["planId"] for t, p in await world.topics() if t == "mcp.plan.stale"]
    assert stale_events == [changed.id, removed.id]
    records = await world.rt.ask(ListAuditRecords(tenant_id=world.a, action="mcp_plan.stale"))
    assert {(r.resource_id, r.error_code) for r in records.items} == {
        (changed.id, "STALE"),
        (removed.id, "STALE"),
    }
    with pytest.raises(Conflict, match="STALE"):
        await world.execute(stale)


async def test_an_unreachable_server_at_execution_fails_the_plan_with_a_clear_error(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        async with mcp_fixture_server() as server:
            world = await start_world(rt, server.url)
            plan = await world.approve(await world.plan("delete ticket ticket_id=T-1"))
        failed = await world.execute(plan)  # the server is gone
        assert failed.status == "FAILED"
        assert failed.error.startswith("the tool's server could not be read: cannot connect")
        assert "127.0.0.1" in failed.error
        assert await world.tool_calls_used() == 0
        assert [t for t, _ in await world.topics()][-1] == "mcp.plan.failed"


async def test_a_tool_error_fails_the_plan_and_still_counts_the_call(world):
    plan = await world.plan("run the diagnostic tool that always reports an error", role="member")
    assert plan.chosen.tool == "fixture__fail_always"
    done = await world.execute(plan, role="member")
    assert done.status == "FAILED"
    assert done.error.startswith("the tool reported an error: ")
    assert "always fails" in done.error
    assert json.loads(done.result_excerpt)["isError"] is True
    assert await world.tool_calls_used() == 1


async def test_two_racing_executions_run_the_tool_once(world):
    plan = await world.approve(await world.plan("delete ticket ticket_id=T-5"))
    outcomes = await asyncio.gather(
        world.execute(plan), world.execute(plan), return_exceptions=True
    )
    succeeded = [o for o in outcomes if isinstance(o, McpPlanView)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(succeeded) == 1
    assert len(refused) == 1
    assert succeeded[0].status == "SUCCEEDED"
    assert world.server.calls == [("delete_ticket", {"ticket_id": "T-5"})]
    assert await world.tool_calls_used() == 1  # the loser gave its reservation back


async def test_the_daily_tool_call_limit_leaves_a_plan_approved_and_unrun(world):
    await world.rt.ask(
        UpdateTenantPlan(tenant_id=world.a, plan="pro", limits={"tool_calls_per_day": 1})
    )
    first = await world.approve(await world.plan("delete ticket ticket_id=T-1"))
    second = await world.approve(await world.plan("delete ticket ticket_id=T-2"))
    assert (await world.execute(first)).status == "SUCCEEDED"
    with pytest.raises(LimitExceeded) as limited:
        await world.execute(second)
    assert limited.value.details["limit"] == "tool_calls_per_day"
    assert (await world.rt.ask(GetMcpPlan(tenant_id=world.a, id=second.id))).status == "APPROVED"
    assert world.server.calls == [("delete_ticket", {"ticket_id": "T-1"})]


async def test_the_catalog_index_follows_syncs(world):
    def count_sheep(field: str) -> str:
        return f"12 sheep in {field}"

    with pytest.raises(InvalidInput, match="no tool matches"):
        await world.plan("count the sheep")
    world.server.add_tool(count_sheep, description="Count the sheep in a field.")
    with pytest.raises(InvalidInput, match="no tool matches"):
        await world.plan("count the sheep")  # not synced yet
    await world.rt.ask(SyncMcpServer(tenant_id=world.a, id=world.server_id), timeout=15)
    plan = await world.plan("count the sheep")
    assert plan.chosen.tool == "fixture__count_sheep"


async def test_bad_input_names_the_field(world):
    with pytest.raises(InvalidInput) as unknown:
        await world.plan("weather in Paris", arguments={"town": "Paris"})
    assert unknown.value.field == "arguments.town"
    with pytest.raises(NotFound) as workspace:
        await world.plan("weather in Paris", workspace_id="wsp_nope")
    assert workspace.value.details["field"] == "workspaceId"
    with pytest.raises(InvalidInput) as intent:
        PlanMcp(tenant_id=world.a, member_id=world.owner, role="owner", intent=" x")
    assert intent.value.field == "intent"


# ---------------------------------------------------------------------------- isolation


async def test_plans_and_servers_are_isolated_between_tenants(world):
    rt = world.rt
    plan = await world.plan("delete ticket ticket_id=T-2")
    for message in (
        GetMcpPlan(tenant_id=world.b, id=plan.id),
        ApproveMcpPlan(tenant_id=world.b, id=plan.id, member_id="mem_x", role="owner"),
        RejectMcpPlan(tenant_id=world.b, id=plan.id, member_id="mem_x", reason="mine"),
        ExecuteMcpPlan(tenant_id=world.b, id=plan.id, member_id="mem_x", role="owner"),
        UpdateMcpPlanArguments(tenant_id=world.b, id=plan.id, member_id="mem_x", arguments={}),
    ):
        with pytest.raises(NotFound):
            await rt.ask(message)
    assert (await rt.ask(ListMcpPlans(tenant_id=world.b))).items == ()
    assert [p.id for p in (await rt.ask(ListMcpPlans(tenant_id=world.a))).items] == [plan.id]
    with pytest.raises(NotFound) as server:
        await rt.ask(
            PlanMcp(
                tenant_id=world.b,
                member_id="mem_x",
                role="owner",
                intent="delete ticket",
                server_ids=(world.server_id,),
            )
        )
    assert server.value.details["field"] == "serverIds"
    with pytest.raises(InvalidInput, match="no tool matches"):  # Acme's tools are not Globex's
        await rt.ask(PlanMcp(tenant_id=world.b, member_id="m", role="owner", intent="ticket"))
    assert (await rt.ask(GetMcpPlan(tenant_id=world.a, id=plan.id))).status == "PROPOSED"


# ---------------------------------------------------------------------------- synapsex-ops-mcp


async def test_calls_on_ops_mcp_carry_a_short_lived_key_of_the_approver_revoked_after(
    tmp_path, db_environ
):
    async with (
        mcp_fixture_server(name="ops") as ops,
        embedded(tmp_path, db_environ, SYNAPSEX_OPS_MCP_URL=ops.url) as rt,
    ):
        acme = await rt.ask(BootstrapTenant(name="Acme", owner_email="o@acme.io", plan="pro"))
        tenant = acme.tenant.id
        servers = await rt.ask(ListMcpServers(tenant_id=tenant))
        (platform,) = [s for s in servers.items if s.name == "synapsex-ops-mcp"]
        await rt.ask(SyncMcpServer(tenant_id=tenant, id=platform.id), timeout=15)
        plan = await rt.ask(
            PlanMcp(
                tenant_id=tenant,
                member_id=acme.owner.id,
                role="owner",
                intent="delete ticket ticket_id=T-3",
            )
        )
        assert plan.chosen.tool == "synapsex-ops-mcp__delete_ticket"
        await rt.ask(
            ApproveMcpPlan(tenant_id=tenant, id=plan.id, member_id=acme.owner.id, role="admin")
        )
        ops.requests.clear()
        done = await rt.ask(
            ExecuteMcpPlan(tenant_id=tenant, id=plan.id, member_id=acme.owner.id, role="owner"),
            timeout=30,
        )
        assert done.status == "SUCCEEDED"
        bearers = {r.get("authorization") for r in ops.requests}
        (bearer,) = bearers - {None}
        key = bearer.removeprefix("Bearer ")
        assert key.startswith("sx_")
        with pytest.raises(Unauthenticated):
            await rt.ask(Authenticate(key=key))
        keys = await rt.ask(ListApiKeys(tenant_id=tenant))
        (short,) = [k for k in keys.items if k.name == f"mcp plan {plan.id}"]
        assert short.role == "admin"  # the approver's role at approval
        assert short.member_id == acme.owner.id
        assert short.expires_at is not None
        assert short.revoked_at is not None
        events = await rt.ask(ListEvents(tenant_id=tenant, first=100))
        published = json.dumps([e.payload for e in events.items])
        assert key not in published
        assert hashlib.sha256(key.encode()).hexdigest() not in published


async def test_events_reach_the_bus_in_order_for_a_rejected_plan(world):
    plan = await world.plan("delete ticket ticket_id=T-7")
    rejected = await world.rt.ask(
        RejectMcpPlan(tenant_id=world.a, id=plan.id, member_id=world.owner, reason="not today")
    )
    assert rejected.status == "REJECTED"
    assert rejected.rejected_reason == "not today"
    topics = await world.topics()
    assert [t for t, _ in topics] == ["mcp.plan.proposed", "mcp.plan.rejected"]
    assert topics[-1][1]["previousStatus"] == "PROPOSED"
    assert topics[-1][1]["rejectedBy"] == world.owner
