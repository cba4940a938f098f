"""A real MCP server for tests: FastMCP (the official ``mcp`` SDK, 1.x) over streamable HTTP
(stateless mode: every request stands alone, as the 2026-07-28 protocol has it),
served by uvicorn on ``127.0.0.1`` and a free port, in the test's own event loop.

::

    async with mcp_fixture_server() as server:
        server.url                      # http://127.0.0.1:<port>/mcp
        server.change_tool("get_weather", description="...")   # or input_schema=, title=, ...
        server.remove_tool("delete_ticket")
        server.page_size = 5            # tools/list now answers in pages of 5 (nextCursor)
        server.required_authorization = "Bearer s3cret"   # other requests get HTTP 401
        server.requests                 # headers of every HTTP request, oldest first
        server.calls                    # (tool name, arguments) of every tools/call

It holds :data:`TOOL_NAMES` (fourteen tools of varied names, descriptions, schemas and
annotations, listed in that order). Each answers deterministically: :func:`expected_text` says
what. ``divide`` with ``b = 0`` and ``fail_always`` answer ``isError``.

Also here: :func:`hanging_server` (accepts connections and never answers: timeouts) and
:func:`unreachable_url` (a port nobody listens on: connection refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import uvicorn
from mcp import types as mcp_types
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False)


# ---------------------------------------------------------------------------- the tools


def get_weather(city: str, units: Literal["metric", "imperial"] = "metric") -> str:
    return f"Weather in {city}: 21 degrees ({units}), clear sky"


def search_documents(query: str, limit: int = 10) -> str:
    return f"Found {min(limit, 3)} documents matching {query!r}"


def create_ticket(
    title: str, body: str, priority: Literal["low", "normal", "high"] = "normal"
) -> str:
    return f"Created ticket T-1001 ({priority}): {title}"


def delete_ticket(ticket_id: str) -> str:
    return f"Deleted ticket {ticket_id}"


def list_invoices(customer_id: str, status: Literal["open", "paid", "overdue"] = "open") -> str:
    return f"Invoices of {customer_id} ({status}): INV-1, INV-2"


def refund_payment(payment_id: str, amount_cents: int) -> str:
    return f"Refunded {amount_cents} cents of payment {payment_id}"


def send_email(to: str, subject: str, body: str) -> str:
    return f"Sent email to {to}: {subject}"


def translate_text(text: str, target_language: str) -> str:
    return f"[{target_language}] {text}"


def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    return f"{amount} {from_currency} = {amount * 2} {to_currency}"


def restart_service(service_name: str, force: bool = False) -> str:
    return f"Restarted {service_name}" + (" (forced)" if force else "")


def get_stock_price(symbol: str) -> dict[str, Any]:
    return {"symbol": symbol.upper(), "price": 123.45, "currency": "USD"}


def schedule_meeting(
    title: str, start_time: str, duration_minutes: int, attendees: list[str]
) -> str:
    return f"Scheduled {title!r} at {start_time} for {duration_minutes} min with {len(attendees)}"


def divide(a: float, b: float) -> str:
    if b == 0:
        raise ToolError("division by zero")
    return f"{a / b:g}"


def fail_always(reason: str = "on purpose") -> str:
    raise ToolError(f"this tool always fails ({reason})")


#: (function, title, description, annotations), in listing order
_TOOLS: tuple[tuple[Callable[..., Any], str, str, ToolAnnotations], ...] = (
    (
        get_weather,
        "Current weather",
        "Get the current weather for a city: temperature and sky conditions.",
        ToolAnnotations(
            readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=True
        ),
    ),
    (
        search_documents,
        "Search documents",
        "Full-text search over the knowledge base documents; returns matching titles.",
        READ_ONLY,
    ),
    (
        create_ticket,
        "Create support ticket",
        "Open a new support ticket with a title, a body and a priority.",
        WRITE,
    ),
    (
        delete_ticket,
        "Delete ticket",
        "Permanently delete a support ticket by its id.",
        DESTRUCTIVE,
    ),
    (
        list_invoices,
        "List invoices",
        "List the invoices of a customer, filtered by status (open, paid, overdue).",
        READ_ONLY,
    ),
    (
        refund_payment,
        "Refund payment",
        "Refund an amount in cents of a card payment back to the customer.",
        DESTRUCTIVE,
    ),
    (
        send_email,
        "Send email",
        "Send an email message to a recipient address with a subject and a body.",
        ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True
        ),
    ),
    (
        translate_text,
        "Translate text",
        "Translate a text into a target language (ISO code such as de or fr).",
        READ_ONLY,
    ),
    (
        convert_currency,
        "Convert currency",
        "Convert an amount of money from one currency to another at today's exchange rate.",
        READ_ONLY,
    ),
    (
        restart_service,
        "Restart service",
        "Restart a running service by name; force skips the graceful drain.",
        ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True),
    ),
    (
        get_stock_price,
        "Stock price",
        "Look up the latest stock price of a ticker symbol.",
        READ_ONLY,
    ),
    (
        schedule_meeting,
        "Schedule meeting",
        "Schedule a calendar meeting with a title, a start time, a duration and attendees.",
        WRITE,
    ),
    (
        divide,
        "Divide numbers",
        "Divide number a by number b and return the quotient.",
        READ_ONLY,
    ),
    (
        fail_always,
        "Always fails",
        "A diagnostic tool that always reports an error.",
        READ_ONLY,
    ),
)
TOOL_NAMES: tuple[str, ...] = tuple(fn.__name__ for fn, *_ in _TOOLS)


def expected_text(name: str, arguments: dict[str, Any]) -> str:
    """The text the fixture's tool ``name`` answers ``arguments`` with (for the tools that do
    not fail); ``get_stock_price`` answers structured content, shown here as its JSON text."""
    fn = next(fn for fn, *_ in _TOOLS if fn.__name__ == name)
    result = fn(**arguments)
    if isinstance(result, dict):
        import json

        return json.dumps(result, indent=2)
    return result


def build_server(name: str = "fixture") -> FastMCP:
    """A FastMCP server with :data:`TOOL_NAMES` (not paged, no auth)."""
    server = FastMCP(name, host="127.0.0.1", log_level="WARNING", stateless_http=True)
    for fn, title, description, hints in _TOOLS:
        server.add_tool(fn, title=title, description=description, annotations=hints)
    return server


# ---------------------------------------------------------------------------- the server


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (it runs inside the test's event loop)."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


class FixtureServer:
    """A running fixture server (see the module docstring)."""

    def __init__(self, mcp: FastMCP) -> None:
        self.mcp = mcp
        self.url = ""
        #: ``None``: tools/list answers everything at once; else pages of this many
        self.page_size: int | None = None
        #: when set, a request without exactly this ``Authorization`` header gets HTTP 401
        self.required_authorization: str | None = None
        #: headers (lower-case names) of every HTTP request received, oldest first
        self.requests: list[dict[str, str]] = []
        #: (tool name, arguments) of every tools/call, oldest first
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: how many tools/list requests were answered (pages count one each)
        self.list_requests = 0

    # ------------------------------------------------------------------ changes

    def tool_names(self) -> list[str]:
        return [tool.name for tool in self.mcp._tool_manager.list_tools()]

    def change_tool(
        self,
        name: str,
        *,
        description: str | None = None,
        title: str | None = None,
        input_schema: dict[str, Any] | None = None,
        annotations: ToolAnnotations | None = None,
    ) -> None:
        """Change how tool ``name`` is listed (calls keep working as before)."""
        manager = self.mcp._tool_manager
        tool = manager.get_tool(name)
        if tool is None:
            raise KeyError(name)
        update: dict[str, Any] = {}
        if description is not None:
            update["description"] = description
        if title is not None:
            update["title"] = title
        if input_schema is not None:
            update["parameters"] = input_schema
        if annotations is not None:
            update["annotations"] = annotations
        manager._tools[name] = tool.model_copy(update=update)

    def remove_tool(self, name: str) -> None:
        self.mcp.remove_tool(name)

    def add_tool(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
    ) -> None:
        self.mcp.add_tool(
            fn, name=name, title=title, description=description, annotations=annotations
        )

    def restore(self) -> None:
        """Back to the original fourteen tools, unpaged, without required auth."""
        self.mcp._tool_manager._tools.clear()
        for fn, title, description, hints in _TOOLS:
            self.mcp.add_tool(fn, title=title, description=description, annotations=hints)
        self.page_size = None
        self.required_authorization = None

    # ------------------------------------------------------------------ protocol

    async def _list_tools(self, request: mcp_types.ListToolsRequest) -> mcp_types.ListToolsResult:
        self.list_requests += 1
        tools = await self.mcp.list_tools()
        if self.page_size is None:
            return mcp_types.ListToolsResult(tools=tools)
        cursor = request.params.cursor if request.params is not None else None
        start = int(cursor) if cursor else 0
        end = start + self.page_size
        return mcp_types.ListToolsResult(
            tools=tools[start:end], nextCursor=str(end) if end < len(tools) else None
        )

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        self.calls.append((name, dict(arguments)))
        return await self.mcp.call_tool(name, arguments)

    def app(self) -> Any:
        """The ASGI app: FastMCP's streamable HTTP app behind a recorder of request headers
        and the optional ``Authorization`` check."""
        self.mcp._mcp_server.list_tools()(self._list_tools)
        self.mcp._mcp_server.call_tool(validate_input=False)(self._call_tool)
        inner = self.mcp.streamable_http_app()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                self.requests.append(headers)
                required = self.required_authorization
                if required is not None and headers.get("authorization") != required:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 401,
                            "headers": [(b"content-type", b"text/plain")],
                        }
                    )
                    await send({"type": "http.response.body", "body": b"unauthorized"})
                    return
            await inner(scope, receive, send)

        return app


async def _wait_for(condition: Callable[[], bool], deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} within {deadline} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def mcp_fixture_server(
    *, page_size: int | None = None, name: str = "fixture"
) -> AsyncIterator[FixtureServer]:
    """Serve a fresh fixture MCP server on ``127.0.0.1`` (see the module docstring)."""
    fixture = FixtureServer(build_server(name))
    fixture.page_size = page_size
    config = uvicorn.Config(
        fixture.app(),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=2,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(), name="mcp-fixture-server")
    try:
        await _wait_for(
            lambda: server.started or task.done(), 10.0, "the fixture MCP server started"
        )
        if task.done():
            task.result()  # raises what stopped it
        port = server.servers[0].sockets[0].getsockname()[1]
        fixture.url = f"http://127.0.0.1:{port}/mcp"
        yield fixture
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def hanging_server() -> AsyncIterator[str]:
    """A server that accepts connections and never answers; yields its ``/mcp`` URL."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def unreachable_url() -> str:
    """The ``/mcp`` URL of a local port nobody listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mcp"
