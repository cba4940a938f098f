"""agent-registry-service on both engines, with the real api-gateway (agents), tenant-service,
the event bus and a stand-in vm-registry: deploying, the states VMs report (and the reports
that are ignored), one current deployment per agent and VM (a redeploy replaces it),
undeploying (one, or all of an archived agent), events, validation naming the field, tenant
isolation, and concurrent deploys from two runtimes sharing one database."""

from __future__ import annotations

import asyncio

import pytest

from synapsex.contracts.agents import AgentView, ArchiveAgent, RegisterAgent, UpdateAgent
from synapsex.contracts.deployments import (
    DeployAgent,
    DeploymentReport,
    DeploymentView,
    GetDeployment,
    ListDeployments,
    ListVmDeployments,
    ReportDeploymentStates,
    UndeployAgent,
    UndeployAll,
)
from synapsex.contracts.errors import Conflict, InvalidInput, NotFound
from synapsex.contracts.events import ListEvents
from synapsex.contracts.tenant import CreateTenant
from synapsex.runtime import Runtime
from synapsex.runtime.testing import wait_until

from .fake_vms import FakeVmRegistry

SERVICES = ["tenant-service", "event-bus-service", "api-gateway", "agent-registry-service"]


@pytest.fixture(autouse=True)
def vms():
    FakeVmRegistry.vms.clear()
    yield FakeVmRegistry.vms
    FakeVmRegistry.vms.clear()


def embedded(tmp_path, db_environ) -> Runtime:
    return Runtime.embedded(
        data_dir=tmp_path, services=SERVICES, actors=[FakeVmRegistry], environ=db_environ
    )


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


async def tenant(rt: Runtime, name: str = "Acme") -> str:
    return (await rt.ask(CreateTenant(name=name, plan="pro"))).id


async def agent(
    rt: Runtime, tenant_id: str, name: str = "Bot", version: str = "1.0.0"
) -> AgentView:
    return await rt.ask(RegisterAgent(tenant_id=tenant_id, name=name, version=version))


def vm(tenant_id: str, vm_id: str) -> str:
    FakeVmRegistry.vms[vm_id] = tenant_id
    return vm_id


async def deploy(rt: Runtime, tenant_id: str, agent_id: str, vm_id: str, **kw) -> DeploymentView:
    return await rt.ask(DeployAgent(tenant_id=tenant_id, agent_id=agent_id, vm_id=vm_id, **kw))


async def report(rt: Runtime, tenant_id: str, vm_id: str, *reports: tuple) -> list[DeploymentView]:
    sent = tuple(
        DeploymentReport(deployment_id=r[0], state=r[1], error=r[2] if len(r) > 2 else None)
        for r in reports
    )
    reply = await rt.ask(ReportDeploymentStates(tenant_id=tenant_id, vm_id=vm_id, reports=sent))
    return list(reply.items)


async def events(rt: Runtime, tenant_id: str, topic: str = "agent.#") -> list[tuple[str, dict]]:
    page = await rt.ask(ListEvents(tenant_id=tenant_id, topic=topic, first=100))
    return [(e.topic, e.payload) for e in page.items]


async def deployments(rt: Runtime, tenant_id: str, **filters) -> list[DeploymentView]:
    items: list[DeploymentView] = []
    after = None
    while True:
        page = await rt.ask(ListDeployments(tenant_id=tenant_id, first=2, after=after, **filters))
        items += page.items
        if not page.has_next_page:
            return items
        after = page.end_cursor


async def test_a_deployment_goes_pending_running_failed_running_as_its_vm_reports(rt):
    acme = await tenant(rt)
    bot = await agent(rt, acme, version="2.1.0")
    node = vm(acme, "vm_node1")
    dep = await deploy(rt, acme, bot.id, node)
    assert (dep.state, dep.version, dep.error, dep.reported_at) == ("PENDING", "2.1.0", None, None)
    assert (dep.agent_id, dep.vm_id, dep.replaces_id) == (bot.id, node, None)
    assert await rt.ask(GetDeployment(tenant_id=acme, id=dep.id)) == dep
    assert (await rt.ask(ListVmDeployments(tenant_id=acme, vm_id=node))).items == (dep,)

    [running] = await report(rt, acme, node, (dep.id, "RUNNING"))
    assert (running.state, running.error) == ("RUNNING", None)
    assert running.reported_at is not None
    assert await report(rt, acme, node, (dep.id, "RUNNING")) == [running]  # no change
    [failed] = await report(rt, acme, node, (dep.id, "FAILED", "exit code 137"))
    assert (failed.state, failed.error) == ("FAILED", "exit code 137")
    [again] = await report(rt, acme, node, (dep.id, "FAILED", "exit code 1"))
    assert (again.state, again.error) == ("FAILED", "exit code 1")  # new text, same state
    [back] = await report(rt, acme, node, (dep.id, "RUNNING", "ignored"))
    assert (back.state, back.error) == ("RUNNING", None)

    published = [e for e in await events(rt, acme) if e[0].startswith("agent.deploy")]
    assert [t for t, _ in published] == [
        "agent.deployed",
        "agent.deployment.state_changed",
        "agent.deployment.state_changed",
        "agent.deployment.state_changed",
    ]
    assert published[0][1]["id"] == dep.id
    assert published[0][1]["version"] == "2.1.0"
    changes = [(p["from"], p["to"], p["error"]) for _, p in published[1:]]
    assert changes == [
        ("PENDING", "RUNNING", None),
        ("RUNNING", "FAILED", "exit code 137"),
        ("FAILED", "RUNNING", None),
    ]


async def test_reports_of_unknown_foreign_or_undeployed_deployments_are_ignored(rt):
    acme, globex = await tenant(rt), await tenant(rt, "Globex")
    bot = await agent(rt, acme)
    one, two = vm(acme, "vm_one"), vm(acme, "vm_two")
    on_one = await deploy(rt, acme, bot.id, one)
    on_two = await deploy(rt, acme, bot.id, two)
    gone = await deploy(rt, acme, (await agent(rt, acme, "Gone")).id, one)
    await rt.ask(UndeployAgent(tenant_id=acme, id=gone.id))

    current = await report(
        rt,
        acme,
        one,
        ("dep_unknown", "RUNNING"),
        (on_two.id, "FAILED", "not mine"),  # another VM's
        (gone.id, "RUNNING"),  # undeployed
        (on_one.id, "RUNNING"),
    )
    assert [(d.id, d.state) for d in current] == [(on_one.id, "RUNNING")]
    assert (await rt.ask(GetDeployment(tenant_id=acme, id=on_two.id))).state == "PENDING"
    assert (await rt.ask(GetDeployment(tenant_id=acme, id=gone.id))).state == "UNDEPLOYED"
    # another tenant reporting about this tenant's deployment on a VM id it names
    assert await report(rt, globex, one, (on_one.id, "FAILED", "spoofed")) == []
    assert (await rt.ask(GetDeployment(tenant_id=acme, id=on_one.id))).state == "RUNNING"
    assert await report(rt, acme, one) == current  # an empty report changes nothing


async def test_one_current_deployment_per_agent_and_vm_and_a_redeploy_replaces_it(rt):
    acme = await tenant(rt)
    bot = await agent(rt, acme)
    node = vm(acme, "vm_node")
    first = await deploy(rt, acme, bot.id, node)
    assert await deploy(rt, acme, bot.id, node) == first  # same version, pending: unchanged
    assert await deploy(rt, acme, bot.id, node, version="1.0.0") == first
    await report(rt, acme, node, (first.id, "RUNNING"))

    second = await deploy(rt, acme, bot.id, node, version="1.1.0")
    assert (second.state, second.version, second.replaces_id) == ("PENDING", "1.1.0", first.id)
    assert (await rt.ask(GetDeployment(tenant_id=acme, id=first.id))).state == "UNDEPLOYED"
    # a late report about the replaced deployment is not taken for the new version
    current = await report(rt, acme, node, (first.id, "FAILED", "late"))
    assert [(d.id, d.state) for d in current] == [(second.id, "PENDING")]

    await report(rt, acme, node, (second.id, "FAILED", "boom"))
    retry = await deploy(rt, acme, bot.id, node, version="1.1.0")  # same version after FAILED
    assert (retry.state, retry.replaces_id) == ("PENDING", second.id)

    assert [d.id for d in await deployments(rt, acme)] == [retry.id]
    assert [d.id for d in await deployments(rt, acme, state="UNDEPLOYED")] == [
        first.id,
        second.id,
    ]
    undeployed = await events(rt, acme, "agent.undeployed")
    assert [(p["id"], p["reason"]) for _, p in undeployed] == [
        (first.id, "REPLACED"),
        (second.id, "REPLACED"),
    ]
    # the agent's new version is what a deploy without one uses
    await rt.ask(UpdateAgent(tenant_id=acme, id=bot.id, version="3.0.0"))
    latest = await deploy(rt, acme, bot.id, node)
    assert (latest.version, latest.replaces_id) == ("3.0.0", retry.id)


async def test_lists_narrow_by_agent_vm_and_state(rt):
    acme = await tenant(rt)
    a, b = await agent(rt, acme, "A"), await agent(rt, acme, "B")
    one, two = vm(acme, "vm_l1"), vm(acme, "vm_l2")
    a1 = await deploy(rt, acme, a.id, one)
    a2 = await deploy(rt, acme, a.id, two)
    b1 = await deploy(rt, acme, b.id, one)
    await report(rt, acme, one, (a1.id, "RUNNING"))
    assert [d.id for d in await deployments(rt, acme)] == [a1.id, a2.id, b1.id]
    assert [d.id for d in await deployments(rt, acme, agent_id=a.id)] == [a1.id, a2.id]
    assert [d.id for d in await deployments(rt, acme, vm_id=one)] == [a1.id, b1.id]
    assert [d.id for d in await deployments(rt, acme, agent_id=a.id, vm_id=two)] == [a2.id]
    assert [d.id for d in await deployments(rt, acme, state="RUNNING")] == [a1.id]
    assert [d.id for d in await deployments(rt, acme, state="PENDING")] == [a2.id, b1.id]


async def test_undeploying_and_archiving_an_agent_undeploys_its_deployments(rt):
    acme = await tenant(rt)
    bot, other = await agent(rt, acme), await agent(rt, acme, "Other")
    one, two = vm(acme, "vm_u1"), vm(acme, "vm_u2")
    single = await deploy(rt, acme, bot.id, one)
    undone = await rt.ask(UndeployAgent(tenant_id=acme, id=single.id))
    assert undone.state == "UNDEPLOYED"
    assert await rt.ask(UndeployAgent(tenant_id=acme, id=single.id)) == undone  # idempotent
    assert (await rt.ask(ListVmDeployments(tenant_id=acme, vm_id=one))).items == ()

    d1 = await deploy(rt, acme, bot.id, one)
    d2 = await deploy(rt, acme, bot.id, two)
    kept = await deploy(rt, acme, other.id, two)
    await rt.ask(ArchiveAgent(tenant_id=acme, id=bot.id))

    async def archived_ones_undeployed() -> bool:
        return [d.id for d in await deployments(rt, acme)] == [kept.id]

    await wait_until(archived_ones_undeployed, deadline=10)
    reasons = [(p["id"], p["reason"]) for _, p in await events(rt, acme, "agent.undeployed")]
    assert reasons == [
        (single.id, "UNDEPLOYED"),
        (d1.id, "AGENT_ARCHIVED"),
        (d2.id, "AGENT_ARCHIVED"),
    ]
    with pytest.raises(Conflict) as err:
        await deploy(rt, acme, bot.id, one)
    assert err.value.details["field"] == "agentId"

    # a removed VM's deployments go too (what vm-registry may send)
    gone = await rt.ask(UndeployAll(tenant_id=acme, vm_id=two, reason="VM_REMOVED"))
    assert [d.id for d in gone.items] == [kept.id]
    assert await deployments(rt, acme) == []


async def test_unknown_or_foreign_agents_vms_and_deployments_are_not_found(rt):
    acme, globex = await tenant(rt), await tenant(rt, "Globex")
    bot = await agent(rt, acme)
    theirs = await agent(rt, globex, "Theirs")
    node, their_node = vm(acme, "vm_mine"), vm(globex, "vm_theirs")
    for agent_id, vm_id, field in (
        ("agt_unknown", node, "agentId"),
        (theirs.id, node, "agentId"),
        (bot.id, "vm_unknown", "vmId"),
        (bot.id, their_node, "vmId"),
    ):
        with pytest.raises(NotFound) as err:
            await deploy(rt, acme, agent_id, vm_id)
        assert err.value.details["field"] == field
    dep = await deploy(rt, acme, bot.id, node)
    for message in (
        GetDeployment(tenant_id=globex, id=dep.id),
        UndeployAgent(tenant_id=globex, id=dep.id),
    ):
        with pytest.raises(NotFound):
            await rt.ask(message)
    assert await deployments(rt, globex) == []
    assert await deployments(rt, globex, agent_id=bot.id) == []
    assert (await rt.ask(ListVmDeployments(tenant_id=globex, vm_id=node))).items == ()
    assert (await rt.ask(UndeployAll(tenant_id=globex, agent_id=bot.id))).items == ()
    assert (await rt.ask(GetDeployment(tenant_id=acme, id=dep.id))).state == "PENDING"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: DeployAgent(tenant_id="t", agent_id="", vm_id="vm_1"), "agentId"),
        (lambda: DeployAgent(tenant_id="t", agent_id="agt_1", vm_id=""), "vmId"),
        (lambda: DeployAgent(tenant_id="t", agent_id="a", vm_id="v", version="1.2"), "version"),
        (lambda: ListDeployments(tenant_id="t", state="GONE"), "state"),
        (lambda: ListDeployments(tenant_id="t", first=101), "first"),
        (lambda: UndeployAll(tenant_id="t"), "agentId"),
        (
            lambda: ReportDeploymentStates(
                tenant_id="t",
                vm_id="v",
                reports=(DeploymentReport(deployment_id="d", state="PENDING"),),
            ),
            "reports.state",
        ),
        (
            lambda: ReportDeploymentStates(
                tenant_id="t",
                vm_id="v",
                reports=(DeploymentReport(deployment_id="d", state="FAILED", error="e" * 2001),),
            ),
            "reports.error",
        ),
    ],
)
def test_bad_input_names_its_field(build, field):
    with pytest.raises(InvalidInput) as err:
        build()
    assert err.value.field == field


async def test_concurrent_deploys_from_two_runtimes_leave_one_current_deployment(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        acme = await tenant(a)
        bot = await agent(a, acme)
        node = vm(acme, "vm_race")
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            results = await asyncio.gather(
                *(deploy([a, b][i % 2], acme, bot.id, node, version=version) for i in range(8)),
                return_exceptions=True,
            )
            assert all(isinstance(r, (DeploymentView, Conflict)) for r in results), results
            assert any(isinstance(r, DeploymentView) for r in results)
            current = (await b.ask(ListVmDeployments(tenant_id=acme, vm_id=node))).items
            assert [d.version for d in current] == [version]
