"""A labelled set of intents for the MCP router's ranking: what a person would type, and the tool
they mean, over a catalog of 24 tools from two servers: the test fixture's fourteen
(``tests/mcp_fixture.py``, exposed as ``fixture__<tool>``) and synapsex-ops-mcp's ten
(``synapsex-ops-mcp__<tool>``).

The intents were written from the tools' purposes, in everyday words (paraphrases, synonyms,
ids and values mixed in), before the ranking was measured on them, and were not edited to make
it score better. ``arguments`` is what the planner should take from the intent (only given
where the intent carries values); the planner may find nothing more.

:func:`labelled_catalog` builds the catalog in process (both servers' FastMCP objects list their
tools without a network), for the ranking test and ``bench/mcp_router.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synapsex.contracts.mcp_tools import ToolDefinition

FIXTURE = "fixture"
OPS = "synapsex-ops-mcp"

VM = "vm_01JD3Q6V0Z9X8Y7W6V5T4S3R2Q"
ROLLOUT = "rol_01JD3Q7A1B2C3D4E5F6G7H8J9K"
WORKSPACE = "wsp_01JD3Q8M0N1P2Q3R4S5T6V7W8X"
ARTIFACT = "art_01JD3Q9Y0Z1A2B3C4D5E6F7G8H"


@dataclass(frozen=True)
class LabelledIntent:
    intent: str
    #: the exposed name of the tool meant
    tool: str
    #: arguments the intent carries, as the planner should extract them
    arguments: dict[str, Any] = field(default_factory=dict)


def _f(tool: str) -> str:
    return f"{FIXTURE}__{tool}"


def _o(tool: str) -> str:
    return f"{OPS}__{tool}"


L = LabelledIntent

INTENTS: tuple[LabelledIntent, ...] = (
    # -- the fixture's tools
    L("What's the weather like in Paris today?", _f("get_weather")),
    L(
        'Current temperature in city "Berlin", in imperial units',
        _f("get_weather"),
        {"city": "Berlin", "units": "imperial"},
    ),
    L("Is the sky clear over Tokyo right now?", _f("get_weather")),
    L("Search the knowledge base for onboarding guides", _f("search_documents")),
    L(
        'find documents about "refund policy", at most 5 results',
        _f("search_documents"),
        {"query": "refund policy", "limit": 5},
    ),
    L("look up articles in our docs that mention SSO", _f("search_documents")),
    L("Open a support ticket: the login page is broken", _f("create_ticket")),
    L(
        "file a new high priority ticket about slow dashboards",
        _f("create_ticket"),
        {"priority": "high"},
    ),
    L("Delete ticket ticket_id=T-1001", _f("delete_ticket"), {"ticket_id": "T-1001"}),
    L("permanently remove the support ticket T-42", _f("delete_ticket")),
    L("Which invoices are overdue for customer C-17?", _f("list_invoices"), {"status": "overdue"}),
    L(
        "list the paid invoices of customer_id=C-9",
        _f("list_invoices"),
        {"customer_id": "C-9", "status": "paid"},
    ),
    L(
        "Refund 500 cents of payment payment_id=P-99",
        _f("refund_payment"),
        {"payment_id": "P-99", "amount_cents": 500},
    ),
    L("give the customer their money back for the card payment P-7", _f("refund_payment")),
    L(
        'Email bob@example.com with subject "Deploy done"',
        _f("send_email"),
        {"subject": "Deploy done"},
    ),
    L("send a message to alice@example.com saying the release shipped", _f("send_email")),
    # one quoted string, two free string parameters (text, target_language): left unfilled
    L("Translate 'good morning' into German", _f("translate_text")),
    L(
        "how do you say thank you in French? target_language=fr",
        _f("translate_text"),
        {"target_language": "fr"},
    ),
    L("Convert 100 euros to dollars", _f("convert_currency"), {"amount": 100}),
    L(
        "how much money is 250 USD in yen at today's exchange rate",
        _f("convert_currency"),
        {"amount": 250},
    ),
    L("Restart the billing service", _f("restart_service")),
    L(
        'bounce service_name="api-gateway", force it',
        _f("restart_service"),
        {"service_name": "api-gateway"},
    ),
    L("What is the AAPL ticker trading at?", _f("get_stock_price")),
    L("latest share price of symbol=MSFT", _f("get_stock_price"), {"symbol": "MSFT"}),
    L("Schedule a meeting with Ann and Bob tomorrow at 10 for 30 minutes", _f("schedule_meeting")),
    L("book a calendar slot for the team retro on Friday", _f("schedule_meeting")),
    L("Divide a=84 by b=12", _f("divide"), {"a": 84, "b": 12}),
    L("what is the quotient of 10 over 4", _f("divide")),
    L("run the diagnostic that always reports an error", _f("fail_always")),
    L("trigger a failing diagnostic tool on purpose", _f("fail_always")),
    # -- synapsex-ops-mcp's tools
    L("list all VMs", _o("list_vms")),
    L("which machines of the fleet are offline?", _o("list_vms")),
    L(f"show VM {VM}", _o("get_vm"), {"id": VM}),
    L(f"what is the health and last heartbeat of machine {VM}", _o("get_vm"), {"id": VM}),
    L("list the release rollouts", _o("list_rollouts")),
    L("which rollouts are running at the moment?", _o("list_rollouts")),
    L(f"pause rollout {ROLLOUT}", _o("pause_rollout"), {"id": ROLLOUT}),
    L(f"halt the rollout {ROLLOUT}, it is breaking things", _o("pause_rollout"), {"id": ROLLOUT}),
    L(f"resume rollout {ROLLOUT}", _o("resume_rollout"), {"id": ROLLOUT}),
    L(f"continue the paused rollout {ROLLOUT}", _o("resume_rollout"), {"id": ROLLOUT}),
    L("show the recent events on topic rollout.#", _o("list_events")),
    L("what happened on the event bus lately?", _o("list_events")),
    L('publish an event on topic "ops.note"', _o("publish_event"), {"topic": "ops.note"}),
    L("emit a deploy.requested event for the consumers", _o("publish_event")),
    L("list workspaces", _o("list_workspaces")),
    L("which workspaces are archived?", _o("list_workspaces")),
    L(
        f"list the artifacts of workspace {WORKSPACE}",
        _o("list_artifacts"),
        {"workspaceId": WORKSPACE},
    ),
    L(
        f"what files are in workspace {WORKSPACE}?",
        _o("list_artifacts"),
        {"workspaceId": WORKSPACE},
    ),
    L(f"read artifact {ARTIFACT}", _o("read_artifact_text"), {"id": ARTIFACT}),
    L(
        f"show me the text content of artifact {ARTIFACT}",
        _o("read_artifact_text"),
        {"id": ARTIFACT},
    ),
)


async def labelled_catalog() -> list[tuple[str, ToolDefinition]]:
    """``(server name, definition)`` of the 24 tools the intents are labelled over, listed
    from both servers' FastMCP objects in process (no network, no gateway)."""
    from synapsex.actors.mcp_router.client import tool_definition
    from synapsex.opsmcp.gateway_client import GatewayClient
    from synapsex.opsmcp.server import build_server as build_ops
    from tests.mcp_fixture import build_server as build_fixture

    out: list[tuple[str, ToolDefinition]] = []
    for tool in await build_fixture(FIXTURE).list_tools():
        out.append((FIXTURE, tool_definition(tool)))
    ops = build_ops(GatewayClient("http://127.0.0.1:8080"))
    for tool in await ops.list_tools():
        out.append((OPS, tool_definition(tool)))
    return out
