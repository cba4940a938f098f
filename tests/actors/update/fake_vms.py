"""A stand-in vm-registry-service for the update-service's actor tests: a fleet set by the
test (versions, status, health; OFFLINE without waiting for missed heartbeats), answered
through the real contract (``GetVm``, ``ListVmFleet``). The gateway tests use the real one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import ClassVar

from synapsex.contracts.errors import NotFound
from synapsex.contracts.vms import SERVICE, GetVm, ListVmFleet, VmFleet, VmView
from synapsex.runtime import Actor, handler

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


class FakeVmRegistry(Actor, service=SERVICE):
    """Per tenant, its VMs by id (insertion order is the fleet's order)."""

    fleets: ClassVar[dict[str, dict[str, VmView]]] = {}

    @classmethod
    def add(
        cls,
        tenant_id: str,
        vm_id: str,
        labels: dict[str, str] | None = None,
        *,
        agent_version: str = "1.0.0",
        runtime_version: str = "1.0.0",
        status: str = "READY",
        health: str = "HEALTHY",
    ) -> VmView:
        view = VmView(
            id=vm_id,
            tenant_id=tenant_id,
            name=vm_id,
            labels=dict(labels or {}),
            runtime_version=runtime_version,
            agent_version=agent_version,
            status=status,
            last_heartbeat_at=CREATED,
            health=health,
            created_at=CREATED,
        )
        cls.fleets.setdefault(tenant_id, {})[vm_id] = view
        return view

    @classmethod
    def set(cls, tenant_id: str, vm_id: str, **changes: object) -> None:
        """Change what the VM reports (``agent_version``, ``status``, ``health``...)."""
        fleet = cls.fleets[tenant_id]
        fleet[vm_id] = replace(fleet[vm_id], **changes)

    @handler
    async def get(self, msg: GetVm) -> VmView:
        vm = self.fleets.get(msg.tenant_id, {}).get(msg.id)
        if vm is None:
            raise NotFound("VM not found", field="id")
        return vm

    @handler
    async def fleet(self, msg: ListVmFleet) -> VmFleet:
        vms = tuple(self.fleets.get(msg.tenant_id, {}).values())
        if msg.health is not None:
            vms = tuple(vm for vm in vms if vm.health == msg.health)
        return VmFleet(vms=vms)
