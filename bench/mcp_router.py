"""MCP router planning: plans per second over a catalog of 1,000 tools, and top-1 / top-3
accuracy on the labelled intents (``tests/mcp_intents.py``).

Setup, all in this process on SQLite files in a temporary folder: the services planning needs
(tenant, auth, policy, audit, event bus, billing, workspace, api-gateway, mcp-router) in one
``Runtime.embedded``, the gateway's GraphQL app on a free port of 127.0.0.1, and three real MCP
servers over streamable HTTP, registered and synced **through the real path**
(``registerMcpServer`` + ``syncMcpServer``: ``tools/list`` paged by the SDK client, then
api-gateway's ``SyncCatalog``):

* ``generated``: 1,000 tools made deterministically (``random.Random(SEED)``) from a
  vocabulary of 40 domains, 59 objects and 30 verbs: ``<verb>_<domain>_<object>`` with a title,
  a two-sentence description and 1-4 parameters;
* ``fixture``: the test server's 14 tools (``tests/mcp_fixture.py``);
* ``synapsex-ops-mcp``: the platform server, the real synapsex-ops-mcp's 10 tools (its tools
  are only listed here, never called).

Measured (each for ``--seconds``, default 4, after a warm-up):

* ``index_build_ms``: building the BM25 index of the 1,024 tools (what a plan costs when the
  cache misses), median of 5;
* ``ranking_only``: the baseline, ``parse_intent`` + ``CatalogIndex.search`` in a loop, no
  runtime;
* ``actor``: ``PlanMcp`` asked of the router by 8 concurrent askers (catalog read from the
  cache, 5 policy asks, one INSERT and its ``mcp.plan.proposed`` event through the outbox);
  ``actor_uncached``: the same with the cache disabled (``CATALOG_CACHE_SIZE = 0``: the tools
  are read from api-gateway and indexed on every plan);
* ``gateway``: ``planMcp`` over HTTP by 8 concurrent clients (adds authentication, the
  ``mcp_plan.create`` policy check and its audit record), with p50 / p99 latency.

Intents for throughput are made from the generated vocabulary (``"please <verb> the <object>
of <domain>"``), cycled. Accuracy: every labelled intent planned through the gateway over the
whole 1,024-tool catalog (``chosen.tool`` is top-1; the first three candidates are top-3), and
the same intents ranked over the 24 labelled tools alone (the figure ``tests/actors/mcp_router/
test_ranking.py`` asserts a floor on).

Prints one JSON line on stdout; logs go to stderr. Run:
``.venv/bin/python bench/mcp_router.py [--seconds 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from aiohttp import web
from mcp import types as mcp_types
from mcp.server.fastmcp import FastMCP

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synapsex.actors.mcp_router import plans as plans_module
from synapsex.actors.mcp_router.arguments import parse_intent
from synapsex.actors.mcp_router.ranking import CatalogIndex, tool_doc
from synapsex.config import configure_logging
from synapsex.contracts.auth import CreateApiKey
from synapsex.contracts.mcp import PlanMcp
from synapsex.contracts.mcp_tools import CatalogTools
from synapsex.contracts.tenant import BootstrapTenant
from synapsex.graphql import GatewayConfig, create_app
from synapsex.opsmcp import OpsMcpConfig, OpsMcpServer
from synapsex.runtime import Runtime
from tests.mcp_fixture import mcp_fixture_server
from tests.mcp_intents import INTENTS, labelled_catalog

SEED = 20261207
TOOLS = 1_000
CONCURRENCY = 8
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


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DOMAINS = _words(
    "billing crm storage network kubernetes github calendar payroll inventory shipping "
    "analytics marketing support identity logging monitoring backup search chat mail "
    "docs wiki finance tax legal hr recruiting sales procurement warehouse fleet iot "
    "security compliance audit cdn dns database queue cache"
)
OBJECTS = _words(
    "account invoice customer order ticket cluster node pod bucket object volume snapshot "
    "repository branch commit issue pull-request event meeting employee salary product "
    "stock shipment package report dashboard campaign lead contact user group role policy "
    "token certificate alert metric log trace incident backup index document page message "
    "channel thread file folder record table query job schedule webhook secret quota plan"
)
VERBS = _words(
    "list get create update delete archive restore export import sync approve cancel "
    "assign close reopen search count summarize validate rotate enable disable pause resume "
    "retry refresh tag untag share move"
)
ADJECTIVES = _words("recent active pending failed archived shared critical draft overdue open")
PARAM_WORDS = _words("id name limit status owner region since until tag format priority")

PLAN_QUERY = """mutation ($input: PlanMcpInput!) { planMcp(input: $input) {
  id chosen { tool } candidates { tool } } }"""
REGISTER = """mutation ($name: String!, $url: String!) {
  registerMcpServer(input: {name: $name, url: $url}) { id } }"""
SYNC = "mutation ($id: ID!) { syncMcpServer(input: {id: $id}) { toolCount } }"
SERVERS = "{ mcpServers(first: 100) { edges { node { id name } } } }"


# ---------------------------------------------------------------------------- the catalog


def generated_tools(n: int = TOOLS, seed: int = SEED) -> list[mcp_types.Tool]:
    """``n`` distinct tools from the vocabulary, the same for the same seed."""
    rng = random.Random(seed)
    names: set[str] = set()
    tools = []
    while len(tools) < n:
        verb, domain, obj = rng.choice(VERBS), rng.choice(DOMAINS), rng.choice(OBJECTS)
        name = f"{verb}_{domain}_{obj.replace('-', '_')}"
        if name in names:
            continue
        names.add(name)
        adjective = rng.choice(ADJECTIVES)
        params = rng.sample(PARAM_WORDS, rng.randint(1, 4))
        properties = {
            f"{obj.replace('-', '_')}_{p}" if p == "id" else p: {
                "type": "integer" if p == "limit" else "string"
            }
            for p in params
        }
        tools.append(
            mcp_types.Tool(
                name=name,
                title=f"{verb.capitalize()} {domain} {obj}",
                description=(
                    f"{verb.capitalize()} the {adjective} {obj}s of the {domain} system. "
                    f"Works on one {obj} or many; {rng.choice(ADJECTIVES)} ones are included "
                    f"when asked."
                ),
                inputSchema={
                    "type": "object",
                    "properties": properties,
                    "required": list(properties)[:1],
                },
                annotations=mcp_types.ToolAnnotations(
                    readOnlyHint=verb in ("list", "get", "search", "count", "summarize", "export")
                ),
            )
        )
    return tools


def throughput_intents(tools: list[mcp_types.Tool], n: int = 200) -> list[str]:
    rng = random.Random(SEED + 1)
    out = []
    for tool in rng.sample(tools, n):
        verb, domain, *obj = tool.name.split("_")
        out.append(f"please {verb} the {' '.join(obj)}s of {domain}")
    return out


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


@contextlib.asynccontextmanager
async def generated_server(tools: list[mcp_types.Tool]) -> AsyncIterator[str]:
    """A streamable HTTP MCP server listing ``tools`` in pages of 100; yields its URL."""
    mcp = FastMCP("generated", host="127.0.0.1", log_level="WARNING", stateless_http=True)

    async def list_tools(request: mcp_types.ListToolsRequest) -> mcp_types.ListToolsResult:
        cursor = request.params.cursor if request.params is not None else None
        start = int(cursor) if cursor else 0
        end = start + 100
        return mcp_types.ListToolsResult(
            tools=tools[start:end], nextCursor=str(end) if end < len(tools) else None
        )

    mcp._mcp_server.list_tools()(list_tools)
    config = uvicorn.Config(
        mcp.streamable_http_app(), host="127.0.0.1", port=0, log_level="warning", ws="none"
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------- measuring


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def rate(
    call: Callable[[str], Awaitable[Any]], intents: list[str], seconds: float, workers: int
) -> dict[str, Any]:
    """``workers`` tasks calling back to back for ``seconds``: calls/s and latency (ms)."""
    cycle = itertools.cycle(intents)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call(next(cycle))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    return {
        "plans_per_s": round(len(latencies) / elapsed, 1),
        "plans": len(latencies),
        "workers": workers,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


def accuracy(pairs: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """``pairs``: (label, ranked tools) per intent."""
    n = len(pairs)
    top1 = sum(ranked[:1] == [label] for label, ranked in pairs)
    top3 = sum(label in ranked[:3] for label, ranked in pairs)
    return {"intents": n, "top1": round(top1 / n, 3), "top3": round(top3 / n, 3)}


# ---------------------------------------------------------------------------- the run


async def run(seconds: float) -> dict[str, Any]:
    tools = generated_tools()
    intents = throughput_intents(tools)
    ops_port = free_port()  # the router reads the platform server's URL at start
    environ = {
        "SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS": "true",
        "SYNAPSEX_OPS_MCP_URL": f"http://127.0.0.1:{ops_port}/mcp",
        "SYNAPSEX_MCP_TIMEOUT": "60s",
    }
    with tempfile.TemporaryDirectory(prefix="sx-bench-mcp-") as tmp:
        async with (
            generated_server(tools) as generated_url,
            mcp_fixture_server() as fixture,
            Runtime.embedded(data_dir=Path(tmp), services=SERVICES, environ=environ) as rt,
        ):
            runner = web.AppRunner(create_app(rt, GatewayConfig()), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host = f"127.0.0.1:{runner.addresses[0][1]}"
            ops = OpsMcpServer(OpsMcpConfig(gateway_url=f"http://{host}/graphql", port=ops_port))
            await ops.start()
            try:
                return await measure(rt, host, generated_url, fixture.url, intents, seconds)
            finally:
                await ops.stop()
                await runner.cleanup()


async def measure(
    rt: Runtime, host: str, generated_url: str, fixture_url: str, intents: list[str], seconds: float
) -> dict[str, Any]:
    created = await rt.ask(BootstrapTenant(name="Bench", owner_email="o@bench.io", plan="pro"))
    tenant, owner = created.tenant.id, created.owner.id
    key = await rt.ask(CreateApiKey(tenant_id=tenant, member_id=owner, role="owner", name="b"))
    headers = {"Authorization": f"Bearer {key.key}"}
    async with aiohttp.ClientSession(f"http://{host}", headers=headers) as http:

        async def gql(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            async with http.post("/graphql", json={"query": query, "variables": variables}) as r:
                body = await r.json()
            if "errors" in body:
                raise RuntimeError(body["errors"])
            return body["data"]

        sync_started = time.perf_counter()
        for name, url in (("generated", generated_url), ("fixture", fixture_url)):
            server_id = (await gql(REGISTER, {"name": name, "url": url}))["registerMcpServer"]["id"]
            await gql(SYNC, {"id": server_id})
        servers = (await gql(SERVERS))["mcpServers"]["edges"]
        (ops_id,) = [e["node"]["id"] for e in servers if e["node"]["name"] == "synapsex-ops-mcp"]
        await gql(SYNC, {"id": ops_id})
        sync_seconds = round(time.perf_counter() - sync_started, 2)
        server_ids = tuple(e["node"]["id"] for e in servers)
        catalog = await rt.ask(CatalogTools(tenant_id=tenant, server_ids=server_ids))
        assert len(catalog.tools) == TOOLS + 24, len(catalog.tools)

        # the index alone
        docs = [
            tool_doc(t.name, t.original_name, t.title, t.description, t.input_schema, t.server_name)
            for t in catalog.tools
        ]
        builds = []
        for _ in range(5):
            started = time.perf_counter()
            index = CatalogIndex(docs)
            builds.append((time.perf_counter() - started) * 1000)

        async def rank_only(intent: str) -> None:
            index.search(parse_intent(intent).query_words, limit=5)

        ranking_only = await rate(rank_only, intents, seconds, 1)

        # the router
        async def ask_plan(intent: str) -> None:
            await rt.ask(PlanMcp(tenant_id=tenant, member_id=owner, role="owner", intent=intent))

        await rate(ask_plan, intents, 1.0, CONCURRENCY)  # warm-up: the cache is filled
        actor = await rate(ask_plan, intents, seconds, CONCURRENCY)
        cache_size = plans_module.CATALOG_CACHE_SIZE
        plans_module.CATALOG_CACHE_SIZE = 0
        try:
            actor_uncached = await rate(ask_plan, intents, max(1.0, seconds / 2), CONCURRENCY)
        finally:
            plans_module.CATALOG_CACHE_SIZE = cache_size

        # through the gateway
        async def http_plan(intent: str) -> None:
            await gql(PLAN_QUERY, {"input": {"intent": intent}})

        await rate(http_plan, intents, 1.0, CONCURRENCY)
        gateway = await rate(http_plan, intents, seconds, CONCURRENCY)

        # accuracy: the planner over the whole catalog, and ranking over the labelled tools
        planned = []
        for labelled in INTENTS:
            data = await gql(PLAN_QUERY, {"input": {"intent": labelled.intent}})
            chosen = data["planMcp"]["chosen"]["tool"]
            ranked = [c["tool"] for c in data["planMcp"]["candidates"]]
            planned.append((labelled.tool, [chosen, *[t for t in ranked if t != chosen]]))
        small = CatalogIndex(
            [
                tool_doc(f"{s}__{d.name}", d.name, d.title, d.description, d.input_schema, s)
                for s, d in await labelled_catalog()
            ]
        )
        alone = [
            (li.tool, [r.key for r in small.search(parse_intent(li.intent).query_words, 3)])
            for li in INTENTS
        ]
    return {
        "bench": "mcp_router",
        "catalog_tools": len(catalog.tools),
        "sync_seconds": sync_seconds,
        "index_build_ms": round(statistics.median(builds), 1),
        "ranking_only": ranking_only,
        "actor": actor,
        "actor_uncached": actor_uncached,
        "gateway": gateway,
        "cache_speedup": round(actor["plans_per_s"] / actor_uncached["plans_per_s"], 1),
        "accuracy_planner_1024_tools": accuracy(planned),
        "accuracy_ranking_24_tools": accuracy(alone),
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    configure_logging("warning", "json")
    out = asyncio.run(run(args.seconds))
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
