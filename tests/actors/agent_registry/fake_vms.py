"""A stand-in vm-registry-service for agent-registry's unit tests: VMs set by the test, answered
through the real contract (``GetVm``). The end-to-end tests use the real vm-registry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from synapsex.contracts.errors import NotFound
from synapsex.contracts.vms import SERVICE, GetVm, VmView
from synapsex.runtime import Actor, handler


class FakeVmRegistry(Actor, service=SERVICE):
    """VMs by id, each of one tenant."""

    #: vm id -> tenant id; set by the test, cleared by the fixture
    vms: ClassVar[dict[str, str]] = {}

    @handler
    async def get_vm(self, msg: GetVm) -> VmView:
        if self.vms.get(msg.id) != msg.tenant_id:
            raise NotFound("VM not found", field="id", id=msg.id)
        return VmView(
            id=msg.id,
            tenant_id=msg.tenant_id,
            name=msg.id,
            labels={},
            runtime_version="1.0.0",
            agent_version="1.0.0",
            status="READY",
            last_heartbeat_at=None,
            health="STALE",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
