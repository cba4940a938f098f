"""synapsex-ops-mcp: an MCP server whose tools operate SynapseX through the gateway.

Built with the official ``mcp`` SDK (1.x, ``FastMCP``), served over streamable HTTP at
``/mcp``. Every tool is one or two GraphQL requests to the gateway **as the caller**: the
``Authorization: Bearer <key>`` of the MCP HTTP request is forwarded as is, so the gateway
authenticates, authorises (policy), audits and isolates tenants exactly as for that key used
directly. The server's own key (``--api-key`` / ``SYNAPSEX_OPS_MCP_API_KEY``) is only a
fallback for requests without one; with neither, a tool answers an ``UNAUTHENTICATED`` tool
error. Keys are never logged.

A gateway error becomes a tool error (``isError: true``) whose text carries the gateway's code
and message, e.g. ``NOT_FOUND: no VM vm_…`` or ``FORBIDDEN: Viewers can only read.``; a model
reads it and can tell a missing object from a refusal.

The server is stateless (``stateless_http``, JSON responses): each MCP request stands alone,
so several replicas can sit behind one URL and nothing is held between requests.
"""

from __future__ import annotations

import base64
import codecs
import time
from typing import Annotated, Any, Literal

import structlog
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from synapsex.opsmcp import operations as ops
from synapsex.opsmcp.gateway_client import GatewayClient, GatewayError

log = structlog.get_logger("synapsex.opsmcp")

SERVER_NAME = "synapsex-ops-mcp"
INSTRUCTIONS = (
    "Operate a SynapseX tenant: its VM fleet, release rollouts, events and workspace "
    "artifacts. Every tool acts as the API key the request carries, so results are that "
    "tenant's only and writes are subject to its role. Lists are paged: pass a result's "
    "nextCursor as `after` to read on."
)
#: the MCP endpoint's path
MCP_PATH = "/mcp"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: how much of an artifact ``read_artifact_text`` returns by default, and at most
DEFAULT_TEXT_BYTES = 64 * 1024
MAX_TEXT_BYTES = 1024 * 1024
#: the gateway inlines ``contentBase64`` up to this size (larger: stream ``downloadPath``)
INLINE_MAX_BYTES = 1024 * 1024

NO_KEY = (
    "UNAUTHENTICATED: no API key: send the MCP request with 'Authorization: Bearer "
    "<SynapseX API key>' (or start synapsex ops-mcp with SYNAPSEX_OPS_MCP_API_KEY)"
)
BAD_HEADER = "UNAUTHENTICATED: the Authorization header must be 'Bearer <SynapseX API key>'"

# ---------------------------------------------------------------------------- arguments

First = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"How many items to return (1-{MAX_PAGE_SIZE}).",
    ),
]
After = Annotated[
    str | None,
    Field(
        description="The nextCursor of the previous page, to continue after it; omit it "
        "for the first page."
    ),
]
Id = Annotated[str, Field(min_length=1, max_length=200)]

#: every read-only tool: it changes nothing (so it is neither destructive nor has effects to
#: repeat), and it reaches nothing but this SynapseX gateway
READ = ToolAnnotations(
    readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False
)


def _page(connection: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL connection as ``{items, nextCursor}`` (``nextCursor`` null on the last
    page)."""
    info = connection["pageInfo"]
    return {
        "items": [edge["node"] for edge in connection["edges"]],
        "nextCursor": info["endCursor"] if info["hasNextPage"] else None,
    }


def bearer_of(ctx: Context, fallback: str | None) -> str:
    """The API key to act with: the MCP request's bearer key, else ``fallback``.

    A present but malformed ``Authorization`` header is refused rather than replaced by the
    fallback: the caller meant to be someone."""
    request = ctx.request_context.request
    header = request.headers.get("authorization") if request is not None else None
    if header:
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ToolError(BAD_HEADER)
        return key.strip()
    if fallback:
        return fallback
    raise ToolError(NO_KEY)


def _traceparent(ctx: Context) -> str | None:
    request = ctx.request_context.request
    return request.headers.get("traceparent") if request is not None else None


def decode_text(content: bytes, *, truncated: bool) -> str:
    """UTF-8 text of ``content``; a prefix (``truncated``) may end inside a character, which
    is left out. Raises :class:`UnicodeDecodeError` for anything else that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    return decoder.decode(content, final=not truncated)


# ---------------------------------------------------------------------------- the server


def build_server(
    gateway: GatewayClient,
    *,
    fallback_key: str | None = None,
    host: str = "127.0.0.1",
) -> FastMCP:
    """A new FastMCP server (tools bound to ``gateway``); serve its
    ``streamable_http_app()``, once (the SDK's session manager runs once per instance).

    ``host`` is what it listens on: on a loopback address the SDK's DNS-rebinding protection
    (``Host``/``Origin`` must be local) is on."""
    server = FastMCP(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        host=host,
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
    )

    async def gql(ctx: Context, tool: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        outcome = "UNAUTHENTICATED"
        try:
            key = bearer_of(ctx, fallback_key)
            outcome = "ok"
            return await gateway.execute(query, variables, key=key, traceparent=_traceparent(ctx))
        except GatewayError as exc:
            outcome = exc.code
            raise ToolError(exc.describe()) from None
        finally:
            log.info(
                "tool call",
                tool=tool,
                outcome=outcome,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )

    # ------------------------------------------------------------------------ VMs

    @server.tool(
        name="list_vms",
        title="List VMs",
        description=(
            "List the tenant's VMs (the machines that run its agents), oldest first. Each VM "
            "has id, name, labels (a string map), runtimeVersion, agentVersion, status (what "
            "the VM reports: READY, BUSY, UPDATING or FAILED), health (derived from "
            "heartbeats: HEALTHY, STALE or OFFLINE), lastHeartbeatAt and createdAt. Filter by "
            "status, by health (e.g. OFFLINE to find machines that stopped reporting) or by a "
            "label such as 'zone=eu-west'. Returns {items, nextCursor}."
        ),
        annotations=READ,
    )
    async def list_vms(
        ctx: Context,
        status: Annotated[
            Literal["READY", "BUSY", "UPDATING", "FAILED"] | None,
            Field(description="Only VMs reporting this status."),
        ] = None,
        health: Annotated[
            Literal["HEALTHY", "STALE", "OFFLINE"] | None,
            Field(description="Only VMs of this health."),
        ] = None,
        label: Annotated[
            str | None,
            Field(
                max_length=400,
                description="Only VMs with this label and value: 'key=value', e.g. 'zone=eu-west'.",
            ),
        ] = None,
        first: First = DEFAULT_PAGE_SIZE,
        after: After = None,
    ) -> dict[str, Any]:
        variables = {
            "status": status,
            "health": health,
            "label": label,
            "first": first,
            "after": after,
        }
        return _page((await gql(ctx, "list_vms", ops.VMS, variables))["vms"])

    @server.tool(
        name="get_vm",
        title="Show a VM",
        description=(
            "Show one VM of the tenant by id: name, labels, runtimeVersion, agentVersion, "
            "status, health (HEALTHY, STALE or OFFLINE), lastHeartbeatAt, createdAt. An "
            "unknown id (or another tenant's) is NOT_FOUND."
        ),
        annotations=READ,
    )
    async def get_vm(
        ctx: Context, id: Annotated[Id, Field(description="The VM's id (vm_…).")]
    ) -> dict[str, Any]:
        return (await gql(ctx, "get_vm", ops.VM, {"id": id}))["vm"]

    # ------------------------------------------------------------------------ rollouts

    @server.tool(
        name="list_rollouts",
        title="List rollouts",
        description=(
            "List the tenant's release rollouts, oldest first. A rollout moves one release "
            "(component AGENT or RUNTIME, a semantic version) onto a share of the VM fleet. "
            "Each has id, component, version, previousVersion, status (RUNNING, PAUSED, "
            "HALTED, COMPLETED, ROLLED_BACK), percentage (share of VMs targeted), labels, "
            "rings, currentRing, the counters targeted / updated / failed, haltedReason and "
            "times. Returns {items, nextCursor}."
        ),
        annotations=READ,
    )
    async def list_rollouts(
        ctx: Context,
        status: Annotated[
            Literal["RUNNING", "PAUSED", "HALTED", "COMPLETED", "ROLLED_BACK"] | None,
            Field(description="Only rollouts in this status."),
        ] = None,
        component: Annotated[
            Literal["AGENT", "RUNTIME"] | None,
            Field(description="Only rollouts of this component."),
        ] = None,
        first: First = DEFAULT_PAGE_SIZE,
        after: After = None,
    ) -> dict[str, Any]:
        variables = {"status": status, "component": component, "first": first, "after": after}
        return _page((await gql(ctx, "list_rollouts", ops.ROLLOUTS, variables))["rollouts"])

    @server.tool(
        name="pause_rollout",
        title="Pause a rollout",
        description=(
            "Pause a RUNNING rollout: no new VM is given the release (VMs that already have "
            "it keep it). Reversible with resume_rollout. Pausing a rollout that is not "
            "RUNNING is refused (CONFLICT) and changes nothing. Needs a member, admin or "
            "owner key (viewers are FORBIDDEN). Returns the rollout."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False
        ),
    )
    async def pause_rollout(
        ctx: Context, id: Annotated[Id, Field(description="The rollout's id.")]
    ) -> dict[str, Any]:
        return (await gql(ctx, "pause_rollout", ops.PAUSE_ROLLOUT, {"id": id}))["pauseRollout"]

    @server.tool(
        name="resume_rollout",
        title="Resume a rollout",
        description=(
            "Resume a PAUSED or HALTED rollout: it targets VMs again, and the targeted VMs "
            "replace the version they run with the release's. A rollout halted by its health "
            "gate (too many updated VMs FAILED or OFFLINE) should be resumed only once the "
            "cause is understood. Resuming a RUNNING rollout is refused (CONFLICT) and "
            "changes nothing. Needs a member, admin or owner key. Returns the rollout."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False
        ),
    )
    async def resume_rollout(
        ctx: Context, id: Annotated[Id, Field(description="The rollout's id.")]
    ) -> dict[str, Any]:
        data = await gql(ctx, "resume_rollout", ops.RESUME_ROLLOUT, {"id": id})
        return data["resumeRollout"]

    # ------------------------------------------------------------------------ events

    @server.tool(
        name="list_events",
        title="List events",
        description=(
            "List the tenant's events in commit order (oldest first) from the event bus, "
            "which keeps them for its retention period (7 days by default). Each event has "
            "id, topic (dotted, e.g. 'rollout.halted' or 'vm.registered'), payload (JSON), "
            "key, occurredAt, source (a service name or apikey:<id>) and traceId. Filter "
            "with a topic or a pattern: '*' matches one segment, a final '#' the rest (e.g. "
            "'rollout.#'). Returns {items, nextCursor}; page on with nextCursor to reach the "
            "most recent events."
        ),
        annotations=READ,
    )
    async def list_events(
        ctx: Context,
        topic: Annotated[
            str | None,
            Field(max_length=255, description="A topic or pattern such as 'rollout.#'."),
        ] = None,
        first: First = DEFAULT_PAGE_SIZE,
        after: After = None,
    ) -> dict[str, Any]:
        variables = {"topic": topic, "first": first, "after": after}
        return _page((await gql(ctx, "list_events", ops.EVENTS, variables))["events"])

    @server.tool(
        name="publish_event",
        title="Publish an event",
        description=(
            "Publish an event on the tenant's event bus: consumer groups subscribed to its "
            "topic receive it, and webhook subscriptions deliver it to their URLs. Use a "
            "dotted topic such as 'ops.note' or 'deploy.requested' and a JSON payload. With "
            "idempotencyKey, publishing again with the same key within 24 hours returns the "
            "first event instead of a new one. Needs a member, admin or owner key. Returns "
            "the event (id, topic, payload, key, occurredAt, source)."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True
        ),
    )
    async def publish_event(
        ctx: Context,
        topic: Annotated[
            str, Field(min_length=1, max_length=255, description="A dotted topic, 'a.b.c'.")
        ],
        payload: Annotated[Any, Field(description="The event's body: any JSON value.")] = None,
        key: Annotated[
            str | None,
            Field(
                max_length=255,
                description="Events sharing a key are consumed one at a time, in order.",
            ),
        ] = None,
        idempotencyKey: Annotated[  # camelCase, as in GraphQL
            str | None,
            Field(
                max_length=255,
                description="The same key within 24 hours returns the first event.",
            ),
        ] = None,
    ) -> dict[str, Any]:
        event_input = {
            "topic": topic,
            "payload": payload,
            "key": key,
            "idempotencyKey": idempotencyKey,
        }
        data = await gql(ctx, "publish_event", ops.PUBLISH_EVENT, {"input": event_input})
        return data["publishEvent"]

    # ------------------------------------------------------------------------ workspaces

    @server.tool(
        name="list_workspaces",
        title="List workspaces",
        description=(
            "List the tenant's workspaces (where agents keep their artifacts), oldest first: "
            "id, name, agentId, status (ACTIVE or ARCHIVED), artifactCount and times. Use a "
            "workspace's id with list_artifacts. Returns {items, nextCursor}."
        ),
        annotations=READ,
    )
    async def list_workspaces(
        ctx: Context,
        status: Annotated[
            Literal["ACTIVE", "ARCHIVED"] | None,
            Field(description="Only workspaces in this status."),
        ] = None,
        first: First = DEFAULT_PAGE_SIZE,
        after: After = None,
    ) -> dict[str, Any]:
        variables = {"status": status, "first": first, "after": after}
        return _page((await gql(ctx, "list_workspaces", ops.WORKSPACES, variables))["workspaces"])

    @server.tool(
        name="list_artifacts",
        title="List workspace artifacts",
        description=(
            "List the artifacts (files) of one workspace, oldest first: id, name, kind "
            "(OUTPUT of an agent's run, FILE, or REPORT for people), mediaType, size in "
            "bytes, sha256, createdBy, createdAt. Read one's text with read_artifact_text. "
            "An unknown workspace (or another tenant's) is NOT_FOUND. Returns {items, "
            "nextCursor}."
        ),
        annotations=READ,
    )
    async def list_artifacts(
        ctx: Context,
        workspaceId: Annotated[  # camelCase, as in GraphQL
            Id, Field(description="The workspace's id (see list_workspaces).")
        ],
        kind: Annotated[
            Literal["OUTPUT", "FILE", "REPORT"] | None,
            Field(description="Only artifacts of this kind."),
        ] = None,
        first: First = DEFAULT_PAGE_SIZE,
        after: After = None,
    ) -> dict[str, Any]:
        variables = {"workspaceId": workspaceId, "kind": kind, "first": first, "after": after}
        return _page((await gql(ctx, "list_artifacts", ops.ARTIFACTS, variables))["artifacts"])

    @server.tool(
        name="read_artifact_text",
        title="Read an artifact's text",
        description=(
            "Read the content of one artifact as UTF-8 text (JSON, Markdown, logs, CSV …), "
            "up to maxBytes bytes (default 65536); a longer artifact comes back cut, with "
            "truncated true. Binary content that is not UTF-8 is refused (INVALID_INPUT). "
            "Returns id, name, workspaceId, kind, mediaType, size, sha256, text, truncated "
            "and bytesRead."
        ),
        annotations=READ,
    )
    async def read_artifact_text(
        ctx: Context,
        id: Annotated[Id, Field(description="The artifact's id (see list_artifacts).")],
        maxBytes: Annotated[  # camelCase, as the others
            int,
            Field(
                ge=1,
                le=MAX_TEXT_BYTES,
                description=f"Read at most this many bytes (1-{MAX_TEXT_BYTES}).",
            ),
        ] = DEFAULT_TEXT_BYTES,
    ) -> dict[str, Any]:
        meta = (await gql(ctx, "read_artifact_text", ops.ARTIFACT, {"id": id}))["artifact"]
        size = int(meta["size"])
        if size <= maxBytes and size <= INLINE_MAX_BYTES:
            data = await gql(ctx, "read_artifact_text", ops.ARTIFACT_CONTENT, {"id": id})
            content, truncated = base64.b64decode(data["artifact"]["contentBase64"]), False
        else:
            key = bearer_of(ctx, fallback_key)
            try:
                content, truncated = await gateway.read_prefix(
                    meta["downloadPath"], key=key, limit=maxBytes, traceparent=_traceparent(ctx)
                )
            except GatewayError as exc:
                raise ToolError(exc.describe()) from None
        try:
            text = decode_text(content, truncated=truncated)
        except UnicodeDecodeError as exc:
            raise ToolError(
                f"INVALID_INPUT: artifact {meta['id']} ({meta['mediaType']}) is not UTF-8 text "
                f"(byte {exc.start} is not valid UTF-8)"
            ) from None
        result = {k: v for k, v in meta.items() if k != "downloadPath"}
        result.update(text=text, truncated=truncated, bytesRead=len(content))
        return result

    return server


__all__ = [
    "DEFAULT_TEXT_BYTES",
    "MAX_TEXT_BYTES",
    "MCP_PATH",
    "SERVER_NAME",
    "bearer_of",
    "build_server",
    "decode_text",
]
