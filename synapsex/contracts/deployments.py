"""agent-registry-service: which version of which agent runs on which VM, and its state.

A deployment puts one version of an ACTIVE agent (api-gateway ``GetAgent``) on one VM of the
same tenant (vm-registry-service ``GetVm``). States::

    PENDING ──(VM reports)──► RUNNING ◄──► FAILED
       │                         │            │
       └────────── undeploy / replaced ───────┴──► UNDEPLOYED (final)

A deployment starts ``PENDING``; the VM reports ``RUNNING`` or ``FAILED`` (with an error) in
its heartbeat, which vm-registry forwards as :class:`ReportDeploymentStates`. A VM's report is
what runs there, so ``RUNNING`` and ``FAILED`` may follow each other (a crash, a recovery).

One **current** (not UNDEPLOYED) deployment per agent and VM, held by a unique constraint.
Deploying an agent again on a VM where it has a current deployment:

* with the same version, while PENDING or RUNNING: nothing changes, the current one is replied;
* otherwise (another version, or the same one after a FAILED): the current deployment becomes
  UNDEPLOYED (``agent.undeployed`` with ``reason: "REPLACED"``) and a new PENDING one replaces
  it (``agent.deployed`` with ``replacesId``). A deployment's version never changes, so a late
  report about the old one is ignored, never taken for the new version.

Domain events: ``agent.deployed``, ``agent.deployment.state_changed`` (``from``, ``to``,
``error``) and ``agent.undeployed`` (``reason``: ``UNDEPLOYED``, ``REPLACED`` or
``AGENT_ARCHIVED``); each payload carries the deployment as :func:`deployment_event` gives it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from synapsex.contracts.agents import check_id, check_semver
from synapsex.contracts.common import PageRequest, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "agent-registry-service"

DEPLOYMENT_STATES: tuple[str, ...] = ("PENDING", "RUNNING", "FAILED", "UNDEPLOYED")
#: the states of a current deployment (not yet undeployed)
CURRENT_STATES: tuple[str, ...] = ("PENDING", "RUNNING", "FAILED")
#: what a VM may report about a deployment
REPORTED_STATES: tuple[str, ...] = ("RUNNING", "FAILED")
UNDEPLOY_REASONS: tuple[str, ...] = ("UNDEPLOYED", "REPLACED", "AGENT_ARCHIVED", "VM_REMOVED")
MAX_ERROR_LENGTH = 2000
#: reports one heartbeat may carry
MAX_REPORTS = 500

AGENT_DEPLOYED = "agent.deployed"
AGENT_DEPLOYMENT_STATE_CHANGED = "agent.deployment.state_changed"
AGENT_UNDEPLOYED = "agent.undeployed"


# ---------------------------------------------------------------------------- replies


class DeploymentView(Reply):
    id: str
    tenant_id: str
    agent_id: str
    vm_id: str
    version: str
    #: one of :data:`DEPLOYMENT_STATES`
    state: str
    #: what the VM said went wrong (FAILED), else ``None``
    error: str | None
    created_at: datetime
    updated_at: datetime
    #: when the VM last reported this deployment's state (``None``: not yet)
    reported_at: datetime | None = None
    #: the deployment this one replaced (a redeploy on the same VM), if any
    replaces_id: str | None = None


class DeploymentList(Reply):
    items: tuple[DeploymentView, ...]


class DeploymentReport(Reply):
    """What a VM says about one of its deployments (inside :class:`ReportDeploymentStates`)."""

    deployment_id: str
    #: ``RUNNING`` or ``FAILED``
    state: str
    error: str | None = None


def deployment_event(view: DeploymentView) -> dict[str, Any]:
    """The deployment as the ``agent.deployed`` / ``…state_changed`` / ``agent.undeployed``
    events carry it."""
    return {
        "id": view.id,
        "tenantId": view.tenant_id,
        "agentId": view.agent_id,
        "vmId": view.vm_id,
        "version": view.version,
        "state": view.state,
        "error": view.error,
        "replacesId": view.replaces_id,
        "createdAt": view.created_at.isoformat(),
        "updatedAt": view.updated_at.isoformat(),
    }


def check_report(report: Any, index: int, field: str = "reports") -> None:
    if not isinstance(report, DeploymentReport):
        raise InvalidInput(field, f"item {index} must be a DeploymentReport")
    check_text(report.deployment_id, f"{field}.deploymentId", max_length=60)
    check_choice(report.state, REPORTED_STATES, f"{field}.state")
    if report.error is not None:
        if not isinstance(report.error, str):
            raise InvalidInput(f"{field}.error", "must be a string")
        if len(report.error) > MAX_ERROR_LENGTH:
            raise InvalidInput(f"{field}.error", f"must be at most {MAX_ERROR_LENGTH} characters")


# ---------------------------------------------------------------------------- messages


class DeployAgent(Message, service=SERVICE):
    """Deploy ``version`` of an ACTIVE agent (``None``: its current version) on a VM of the
    tenant. Replies the current :class:`DeploymentView` (see the module doc for a redeploy).
    ``NOT_FOUND`` on ``agentId`` / ``vmId``; ``CONFLICT`` on ``agentId`` for an archived agent."""

    tenant_id: str
    agent_id: str
    vm_id: str
    version: str | None = None

    def validate(self) -> None:
        check_id(self.agent_id, "agentId")
        check_id(self.vm_id, "vmId")
        if self.version is not None:
            check_semver(self.version)


class GetDeployment(Message, service=SERVICE):
    """One deployment of the tenant; ``NOT_FOUND`` (on ``id``) otherwise."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


class ListDeployments(PageRequest, service=SERVICE):
    """Replies ``Page[DeploymentView]``, oldest first, of the tenant's deployments, narrowed by
    agent and VM; ``state`` ``None`` lists the current ones (not UNDEPLOYED)."""

    tenant_id: str
    agent_id: str | None = None
    vm_id: str | None = None
    state: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.agent_id is not None:
            check_id(self.agent_id, "agentId")
        if self.vm_id is not None:
            check_id(self.vm_id, "vmId")
        if self.state is not None:
            check_choice(self.state, DEPLOYMENT_STATES, "state")


class UndeployAgent(Message, service=SERVICE):
    """Undeploy one deployment (an UNDEPLOYED one is replied unchanged). Replies
    :class:`DeploymentView`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


class UndeployAll(Message, service=SERVICE):
    """Undeploy every current deployment of an agent (``agent_id``), of a VM (``vm_id``), or of
    that agent on that VM: what api-gateway sends when an agent is archived (``reason``
    ``AGENT_ARCHIVED``), and what a VM's removal would send (``VM_REMOVED``). Replies the
    :class:`DeploymentList` of what it undeployed."""

    tenant_id: str
    agent_id: str | None = None
    vm_id: str | None = None
    reason: str = "UNDEPLOYED"

    def validate(self) -> None:
        if self.agent_id is None and self.vm_id is None:
            raise InvalidInput("agentId", "give an agent, a VM or both")
        if self.agent_id is not None:
            check_id(self.agent_id, "agentId")
        if self.vm_id is not None:
            check_id(self.vm_id, "vmId")
        check_choice(self.reason, UNDEPLOY_REASONS, "reason")


class ReportDeploymentStates(Message, service=SERVICE):
    """A VM's report of its deployments' states (vm-registry sends it on each heartbeat that
    carries reports). Reports of unknown ids, of another VM's or tenant's deployments, or of
    UNDEPLOYED ones are ignored, never an error. Replies the VM's current deployments
    (:class:`DeploymentList`), as :class:`ListVmDeployments` does."""

    tenant_id: str
    vm_id: str
    reports: tuple[DeploymentReport, ...]

    def validate(self) -> None:
        check_id(self.vm_id, "vmId")
        if len(self.reports) > MAX_REPORTS:
            raise InvalidInput("reports", f"must hold at most {MAX_REPORTS} reports")
        for index, report in enumerate(self.reports):
            check_report(report, index)


class ListVmDeployments(Message, service=SERVICE):
    """The VM's current (not UNDEPLOYED) deployments, oldest first, for the heartbeat reply.
    Replies :class:`DeploymentList` (empty for an unknown VM)."""

    tenant_id: str
    vm_id: str

    def validate(self) -> None:
        check_id(self.vm_id, "vmId")


__all__ = [
    "AGENT_DEPLOYED",
    "AGENT_DEPLOYMENT_STATE_CHANGED",
    "AGENT_UNDEPLOYED",
    "CURRENT_STATES",
    "DEPLOYMENT_STATES",
    "REPORTED_STATES",
    "SERVICE",
    "DeployAgent",
    "DeploymentList",
    "DeploymentReport",
    "DeploymentView",
    "GetDeployment",
    "ListDeployments",
    "ListVmDeployments",
    "ReportDeploymentStates",
    "UndeployAgent",
    "UndeployAll",
    "deployment_event",
]
