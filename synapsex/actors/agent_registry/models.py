"""Tables owned by agent-registry-service: ``agent_deployments`` and its
``agent_registry_outbox``.

A current deployment (not UNDEPLOYED) has ``slot`` set to ``<agent id>/<vm id>``, unique; an
UNDEPLOYED one has it NULL (both engines let NULLs repeat in a unique constraint). That is the
one current deployment per agent and VM, held by the database across processes, while the
undeployed ones stay as history.
"""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


def slot_of(agent_id: str, vm_id: str) -> str:
    return f"{agent_id}/{vm_id}"


class AgentDeployment(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    agent_id = fields.CharField(max_length=60)
    vm_id = fields.CharField(max_length=60)
    version = fields.CharField(max_length=100)
    #: PENDING or RUNNING or FAILED or UNDEPLOYED
    state = fields.CharField(max_length=12)
    #: what the VM said went wrong (FAILED)
    error = fields.TextField(null=True)
    #: agent id and VM id while current, NULL once UNDEPLOYED (one current per agent and VM)
    slot = fields.CharField(max_length=130, null=True, unique=True)
    #: the deployment this one replaced on the same VM
    replaces_id = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    #: when a report of the VM last changed the state
    reported_at = fields.DatetimeField(null=True)

    class Meta:
        app = "agent_registry"
        table = "agent_deployments"
        indexes = (("tenant_id", "agent_id"), ("tenant_id", "vm_id"))


class AgentRegistryOutbox(OutboxEvent):
    """Domain events staged with the change that caused them (see ``domain_events``)."""

    class Meta:
        app = "agent_registry"
        table = "agent_registry_outbox"
