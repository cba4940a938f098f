"""The GraphQL documents synapsex-ops-mcp sends to the gateway, one per tool.

Field selections are what a model needs to reason about an object (ids, names, states,
counters, times); they follow the gateway's schema (``synapsex schema``).
"""

from __future__ import annotations

VM_FIELDS = """id name labels runtimeVersion agentVersion status health lastHeartbeatAt
  createdAt"""
ROLLOUT_FIELDS = """id releaseId component version previousVersion status percentage labels
  rings { name labels } currentRing targeted updated failed haltedReason createdAt updatedAt
  endedAt"""
EVENT_FIELDS = "id topic payload key occurredAt source traceId"
WORKSPACE_FIELDS = "id name agentId status artifactCount createdAt updatedAt archivedAt"
ARTIFACT_FIELDS = "id workspaceId name kind mediaType size sha256 createdBy createdAt"
PAGE_INFO = "pageInfo { hasNextPage endCursor }"

VMS = f"""query OpsMcpVms($status: VmStatus, $health: VmHealth, $label: String, $first: Int!,
    $after: String) {{
  vms(status: $status, health: $health, label: $label, first: $first, after: $after) {{
    edges {{ node {{ {VM_FIELDS} }} }} {PAGE_INFO}
  }}
}}"""
VM = f"""query OpsMcpVm($id: ID!) {{ vm(id: $id) {{ {VM_FIELDS} }} }}"""

ROLLOUTS = f"""query OpsMcpRollouts($status: RolloutStatus, $component: ReleaseComponent,
    $first: Int!, $after: String) {{
  rollouts(status: $status, component: $component, first: $first, after: $after) {{
    edges {{ node {{ {ROLLOUT_FIELDS} }} }} {PAGE_INFO}
  }}
}}"""
PAUSE_ROLLOUT = f"""mutation OpsMcpPauseRollout($id: ID!) {{
  pauseRollout(input: {{id: $id}}) {{ {ROLLOUT_FIELDS} }}
}}"""
RESUME_ROLLOUT = f"""mutation OpsMcpResumeRollout($id: ID!) {{
  resumeRollout(input: {{id: $id}}) {{ {ROLLOUT_FIELDS} }}
}}"""

EVENTS = f"""query OpsMcpEvents($topic: String, $first: Int!, $after: String) {{
  events(topic: $topic, first: $first, after: $after) {{
    edges {{ node {{ {EVENT_FIELDS} }} }} {PAGE_INFO}
  }}
}}"""
PUBLISH_EVENT = f"""mutation OpsMcpPublishEvent($input: PublishEventInput!) {{
  publishEvent(input: $input) {{ {EVENT_FIELDS} }}
}}"""

WORKSPACES = f"""query OpsMcpWorkspaces($status: WorkspaceStatus, $first: Int!, $after: String) {{
  workspaces(status: $status, first: $first, after: $after) {{
    edges {{ node {{ {WORKSPACE_FIELDS} }} }} {PAGE_INFO}
  }}
}}"""
ARTIFACTS = f"""query OpsMcpArtifacts($workspaceId: ID!, $kind: ArtifactKind, $first: Int!,
    $after: String) {{
  artifacts(workspaceId: $workspaceId, kind: $kind, first: $first, after: $after) {{
    edges {{ node {{ {ARTIFACT_FIELDS} }} }} {PAGE_INFO}
  }}
}}"""
ARTIFACT = f"""query OpsMcpArtifact($id: ID!) {{
  artifact(id: $id) {{ {ARTIFACT_FIELDS} downloadPath }}
}}"""
ARTIFACT_CONTENT = """query OpsMcpArtifactContent($id: ID!) {
  artifact(id: $id) { contentBase64 }
}"""
