"""vm-registry-service: the tenant's VMs, their heartbeats and their VM tokens.

A VM is registered by a user (``RegisterVm``) with a ``name`` (unique in the tenant, compared
case-insensitively), ``labels`` (a bounded map, Kubernetes rules: see :func:`check_labels`) and
the semantic versions of its runtime and agent. Registration replies a **VM token**
(:data:`VM_TOKEN_PREFIX` then 43 URL-safe characters, 32 random bytes), shown once and stored
only as its SHA-256. The token lets that VM do two things: send heartbeats (``VmHeartbeat``) and
ask for its desired versions (update-service); anything else is ``FORBIDDEN`` at the gateway.
``RotateVmToken`` replaces it (the old one stops working at once); ``DeregisterVm`` removes the
VM (its token stops working, its name and its place under the plan's ``vms`` limit are freed).

Heartbeats: the VM reports its versions and its own ``status`` (:data:`VM_STATUSES`). Its
``health`` is derived from the time since its last heartbeat, on the database's clock, with the
heartbeat interval ``SYNAPSEX_VM_HEARTBEAT_INTERVAL`` (default 30 s):

* ``HEALTHY``: a heartbeat within :data:`STALE_AFTER_INTERVALS` intervals;
* ``STALE``: the last one is older than that, but within :data:`OFFLINE_AFTER_INTERVALS`; also a
  VM that never sent one, until that many intervals after its registration;
* ``OFFLINE``: nothing for :data:`OFFLINE_AFTER_INTERVALS` intervals (or never, that long after
  registration).

The plan's ``vms`` limit (tenant-service ``GetTenant`` → ``limits.vms``) counts registered VMs;
it is enforced by one conditional update of the tenant's counter in the registration's
transaction, so it holds across processes sharing PostgreSQL.

Domain events (through the service's outbox): ``vm.registered``, ``vm.deregistered`` and
``vm.status_changed`` (``from``, ``to``); each payload is the VM as :func:`vm_event` gives it
(never its token nor the token's hash).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from synapsex.contracts.agents import check_semver
from synapsex.contracts.common import PageRequest, check_choice, check_text, secret_field
from synapsex.contracts.deployments import MAX_REPORTS, DeploymentReport, check_report
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "vm-registry-service"

#: every VM token starts with this (API keys start with ``sx_``: one prefix check tells them apart)
VM_TOKEN_PREFIX = "sxvm_"
#: what the gateway answers when a VM token is used for anything but its own operations
VM_TOKEN_FORBIDDEN = "a VM token can only send heartbeats and ask for its desired versions"

#: what a VM reports about itself
VM_STATUSES: tuple[str, ...] = ("READY", "BUSY", "UPDATING", "FAILED")
#: derived from the time since the last heartbeat
VM_HEALTHS: tuple[str, ...] = ("HEALTHY", "STALE", "OFFLINE")
#: a VM whose last heartbeat is older than this many intervals is STALE
STALE_AFTER_INTERVALS = 3
#: ... and older than this many (or none this long after registration) OFFLINE
OFFLINE_AFTER_INTERVALS = 10
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30.0

MAX_NAME_LENGTH = 63
MAX_LABELS = 32
MAX_LABEL_NAME_LENGTH = 63
MAX_LABEL_PREFIX_LENGTH = 253
MAX_LABEL_VALUE_LENGTH = 63

VM_REGISTERED = "vm.registered"
VM_DEREGISTERED = "vm.deregistered"
VM_STATUS_CHANGED = "vm.status_changed"

_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", re.ASCII)
_LABEL_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)
_DNS_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*", re.ASCII
)


# ---------------------------------------------------------------------------- checks


def check_vm_name(value: str, field: str = "name") -> None:
    """1 to 63 letters, digits, ``.``, ``_`` or ``-``, starting and ending with a letter or digit
    (a host name fits)."""
    check_text(value, field, max_length=MAX_NAME_LENGTH)
    if not _NAME_RE.fullmatch(value):
        raise InvalidInput(
            field,
            "must be 1 to 63 letters, digits, '.', '_' or '-', starting and ending with a "
            "letter or digit (e.g. gpu-node-1)",
        )


def vm_name_key(name: str) -> str:
    """What VM names are compared by (``Node-1`` and ``node-1`` are one name)."""
    return name.lower()


def check_label_key(key: str, field: str = "labels") -> None:
    """``[prefix/]name`` as Kubernetes has it: ``name`` 1 to 63 characters of letters, digits,
    ``.``, ``_``, ``-``, starting and ending with a letter or digit; the optional ``prefix`` a
    lower-case DNS subdomain of at most 253 characters (``example.com/zone``)."""
    shown = repr(key[:80])
    prefix, slash, name = key.rpartition("/")
    if slash and not (
        len(prefix) <= MAX_LABEL_PREFIX_LENGTH and _DNS_SUBDOMAIN_RE.fullmatch(prefix)
    ):
        raise InvalidInput(
            field,
            f"label key {shown}: the prefix before '/' must be a lower-case DNS subdomain of at "
            f"most {MAX_LABEL_PREFIX_LENGTH} characters (e.g. example.com/zone)",
        )
    if not (len(name) <= MAX_LABEL_NAME_LENGTH and _LABEL_NAME_RE.fullmatch(name)):
        raise InvalidInput(
            field,
            f"label key {shown}: must be 1 to {MAX_LABEL_NAME_LENGTH} letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit, optionally after a "
            "prefix/ (e.g. zone, example.com/gpu)",
        )


def check_label_value(key: str, value: Any, field: str = "labels") -> None:
    """At most 63 characters; empty, or letters, digits, ``.``, ``_``, ``-`` starting and ending
    with a letter or digit. The error names ``<field>.<key>``."""
    where = f"{field}.{key}"
    if not isinstance(value, str):
        raise InvalidInput(where, "must be a string")
    if value and not (len(value) <= MAX_LABEL_VALUE_LENGTH and _LABEL_NAME_RE.fullmatch(value)):
        raise InvalidInput(
            where,
            f"must be empty or 1 to {MAX_LABEL_VALUE_LENGTH} letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit",
        )


def check_labels(labels: Any, field: str = "labels") -> None:
    """A JSON object of at most :data:`MAX_LABELS` labels, keys and values as
    :func:`check_label_key` and :func:`check_label_value` say."""
    if not isinstance(labels, dict):
        raise InvalidInput(field, "must be a JSON object of label keys to string values")
    if len(labels) > MAX_LABELS:
        raise InvalidInput(field, f"must hold at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(key, str):
            raise InvalidInput(field, "label keys must be strings")
        check_label_key(key, field)
        check_label_value(key, value, field)


def parse_label_selector(selector: str, field: str = "label") -> tuple[str, str]:
    """``"key=value"`` → ``(key, value)`` (the value may be empty: ``"key="``)."""
    key, eq, value = selector.partition("=")
    if not eq:
        raise InvalidInput(field, "must be key=value (e.g. zone=eu-west)")
    check_label_key(key, field)
    try:
        check_label_value(key, value, field)
    except InvalidInput as exc:  # name the argument, not the label
        raise InvalidInput(field, f"value {value[:80]!r}: {exc.problem}") from None
    return key, value


def check_vm_id(value: str, field: str = "id") -> None:
    check_text(value, field, max_length=60)


# ---------------------------------------------------------------------------- replies


class VmView(Reply):
    id: str
    tenant_id: str
    name: str
    labels: dict[str, str]
    runtime_version: str
    agent_version: str
    #: one of :data:`VM_STATUSES`: what the VM last reported (``READY`` until its first heartbeat)
    status: str
    #: the last heartbeat (database clock); ``None``: never
    last_heartbeat_at: datetime | None
    #: one of :data:`VM_HEALTHS`, derived when the view was made
    health: str
    created_at: datetime
    #: the member who registered it (``None``: registered by a service)
    created_by: str | None = None


class RegisteredVm(Reply):
    """A VM and its token: shown once (registration, rotation), never stored in clear."""

    vm: VmView
    token: str = secret_field()


class VmFleet(Reply):
    vms: tuple[VmView, ...]


class VmPrincipal(Reply):
    """Who a request carrying a VM token acts for."""

    tenant_id: str
    vm_id: str


class HeartbeatAck(Reply):
    """What a heartbeat changed: ``changed`` when it changed the VM's versions or status (the
    gateway audits only those heartbeats)."""

    vm: VmView
    changed: bool
    #: the status before this heartbeat
    previous_status: str
    #: the configured interval: the VM should send its next heartbeat within it
    heartbeat_interval_seconds: float


# ---------------------------------------------------------------------------- messages


class RegisterVm(Message, service=SERVICE):
    """Register a VM. Replies :class:`RegisteredVm` (with its token, shown once).
    ``CONFLICT`` on ``name`` when the tenant has a VM of that name; ``LIMIT_EXCEEDED`` at the
    plan's ``vms`` limit."""

    tenant_id: str
    name: str
    labels: dict[str, Any]
    runtime_version: str
    agent_version: str
    #: the member registering it (members may then rotate and deregister their own VMs)
    created_by: str | None = None

    def validate(self) -> None:
        check_vm_name(self.name)
        check_labels(self.labels)
        check_semver(self.runtime_version, "runtimeVersion")
        check_semver(self.agent_version, "agentVersion")


class GetVm(Message, service=SERVICE):
    """One VM of the tenant; ``NOT_FOUND`` (on ``id``) otherwise. Replies :class:`VmView`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_vm_id(self.id)


class ListVms(PageRequest, service=SERVICE):
    """Replies ``Page[VmView]``, oldest first, narrowed by ``status``, ``health`` and ``label``
    (``key=value``: the VM has that label with that value)."""

    tenant_id: str
    status: str | None = None
    health: str | None = None
    label: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.status is not None:
            check_choice(self.status, VM_STATUSES, "status")
        if self.health is not None:
            check_choice(self.health, VM_HEALTHS, "health")
        if self.label is not None:
            parse_label_selector(self.label)


class ListVmFleet(Message, service=SERVICE):
    """Every VM of the tenant, oldest first (at most the plan's ``vms`` limit), optionally only
    those of one ``health``: what the update-service targets rollouts with. Replies
    :class:`VmFleet`."""

    tenant_id: str
    health: str | None = None

    def validate(self) -> None:
        if self.health is not None:
            check_choice(self.health, VM_HEALTHS, "health")


class AuthenticateVm(Message, service=SERVICE):
    """Replies :class:`VmPrincipal`; ``UNAUTHENTICATED`` for a malformed, unknown, rotated or
    deregistered token."""

    token: str = secret_field()


class VmHeartbeat(Message, service=SERVICE):
    """A heartbeat of the authenticated VM ``vm_id``: stores its versions and status and the
    time (database clock). Replies :class:`HeartbeatAck`; ``UNAUTHENTICATED`` when the VM was
    deregistered meanwhile. After storing, the service tells agent-registry
    ``ReportDeploymentStates`` (when ``deployments`` is not empty) and update-service
    ``NoteVmHeartbeat``; neither can fail the heartbeat."""

    tenant_id: str
    vm_id: str
    runtime_version: str
    agent_version: str
    status: str
    deployments: tuple[DeploymentReport, ...] = ()

    def validate(self) -> None:
        check_vm_id(self.vm_id, "vmId")
        check_semver(self.runtime_version, "runtimeVersion")
        check_semver(self.agent_version, "agentVersion")
        check_choice(self.status, VM_STATUSES, "status")
        if len(self.deployments) > MAX_REPORTS:
            raise InvalidInput("deployments", f"must hold at most {MAX_REPORTS} reports")
        for index, report in enumerate(self.deployments):
            check_report(report, index, "deployments")


class RotateVmToken(Message, service=SERVICE):
    """Give the VM a new token (the old one stops working). Replies :class:`RegisteredVm`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_vm_id(self.id)


class DeregisterVm(Message, service=SERVICE):
    """Remove the VM: its token stops working, its name and its place under the plan's ``vms``
    limit are freed. Replies the removed :class:`VmView`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_vm_id(self.id)


def vm_event(view: VmView) -> dict[str, Any]:
    """The VM as the ``vm.*`` events carry it (never its token)."""
    return {
        "id": view.id,
        "tenantId": view.tenant_id,
        "name": view.name,
        "labels": dict(view.labels),
        "runtimeVersion": view.runtime_version,
        "agentVersion": view.agent_version,
        "status": view.status,
        "createdAt": view.created_at.isoformat(),
    }


__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL_SECONDS",
    "MAX_LABELS",
    "OFFLINE_AFTER_INTERVALS",
    "SERVICE",
    "STALE_AFTER_INTERVALS",
    "VM_DEREGISTERED",
    "VM_HEALTHS",
    "VM_REGISTERED",
    "VM_STATUSES",
    "VM_STATUS_CHANGED",
    "VM_TOKEN_FORBIDDEN",
    "VM_TOKEN_PREFIX",
    "AuthenticateVm",
    "DeregisterVm",
    "GetVm",
    "HeartbeatAck",
    "ListVmFleet",
    "ListVms",
    "RegisterVm",
    "RegisteredVm",
    "RotateVmToken",
    "VmFleet",
    "VmHeartbeat",
    "VmPrincipal",
    "VmView",
    "check_labels",
    "parse_label_selector",
    "vm_event",
    "vm_name_key",
]
