"""Talking to MCP servers with the official ``mcp`` SDK (1.x): streamable HTTP, one short session
per operation.

* :func:`list_tools` pages through ``tools/list`` (following ``nextCursor``) and returns every
  tool as a :class:`~synapsex.contracts.mcp_tools.ToolDefinition`.
* :func:`call_tool` calls one tool and returns a :class:`ToolCallResult`.
* :func:`definition_sha256` is the catalog's pin of a tool definition.

Both operations are bounded by ``timeout`` (seconds, connecting included) and raise only
contract errors with a clear message: ``TIMEOUT`` when the server did not answer in time,
``UNAVAILABLE`` when it could not be reached, refused the request (HTTP 401, 404, ...), or
answered something that is not MCP. Messages name the server's origin (scheme, host, port),
never the path, the query or a header, which may carry credentials. Nothing here logs.

Outbound address guard: with ``allow_private=False`` every connection passes the webhook
service's address rules (:func:`synapsex.actors.outbound.forbidden_reason`: loopback,
private, link-local, metadata and reserved addresses are refused) on the address actually
dialled, so a host name that re-resolves to a private address later (DNS rebinding) is still
refused. The router uses it for the servers tenants register; platform servers are configured
by the operator and are trusted (see ``docs/mcp.md``).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx
from mcp import ClientSession
from mcp import types as mcp_types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from synapsex.actors.outbound import forbidden_reason
from synapsex.contracts.errors import ContractError, Timeout, Unavailable
from synapsex.contracts.mcp_tools import (
    MAX_TOOLS_PER_SERVER,
    ToolDefinition,
    check_tool_definition,
)
from synapsex.contracts.mcp_tools import (
    definition_sha256 as _definition_sha256,
)

DEFAULT_TIMEOUT_SECONDS = 15.0
#: a server whose listing needs more pages than this is refused (a cursor loop)
MAX_PAGES = 200
USER_AGENT = "synapsex-mcp-router"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallResult:
    """What one ``tools/call`` answered."""

    #: the result's ``content`` blocks as a JSON list (text, images, resources, ...)
    content_json: str
    #: the text of its text blocks, joined by newlines
    text: str
    #: the tool reported an error (``isError``): the call happened and failed
    is_error: bool
    #: ``structuredContent`` when the tool gives it
    structured: dict[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListedTools:
    """A complete listing: the tools kept and the names skipped (invalid or repeated)."""

    tools: tuple[ToolDefinition, ...]
    skipped: tuple[str, ...]
    pages: int


def definition_sha256(tool: ToolDefinition) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no white space) of ``{name, title,
    description, inputSchema, annotations}``; see :mod:`synapsex.contracts.mcp_tools`."""
    return _definition_sha256(tool)


def tool_definition(tool: mcp_types.Tool) -> ToolDefinition:
    """The pinned part of an SDK ``Tool`` (plain JSON data only)."""
    annotations = (
        {}
        if tool.annotations is None
        else tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    return ToolDefinition(
        name=tool.name,
        title=tool.title,
        description=tool.description or "",
        input_schema=json.loads(json.dumps(tool.inputSchema or {})),
        annotations=annotations,
    )


# ---------------------------------------------------------------------------- operations


async def list_tools(
    url: str,
    headers: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    allow_private: bool = True,
) -> list[ToolDefinition]:
    """Every tool the server lists (all pages, in order); tools with an invalid MCP name or
    listed twice are left out (:func:`list_tools_detailed` says which)."""
    return list(
        (await list_tools_detailed(url, headers, timeout, allow_private=allow_private)).tools
    )


async def list_tools_detailed(
    url: str,
    headers: Mapping[str, str],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    allow_private: bool = True,
) -> ListedTools:
    """:func:`list_tools` with what was skipped and how many pages it took."""
    kept: list[ToolDefinition] = []
    skipped: list[str] = []
    seen: set[str] = set()
    pages = 0
    async with _session(url, headers, timeout, allow_private) as session:
        cursor: str | None = None
        cursors: set[str] = set()
        while True:
            params = None if cursor is None else mcp_types.PaginatedRequestParams(cursor=cursor)
            page = await session.list_tools(params=params)
            pages += 1
            for tool in page.tools:
                definition = tool_definition(tool)
                try:
                    check_tool_definition(definition)
                except ContractError:
                    skipped.append(tool.name[:140])
                    continue
                if definition.name in seen:
                    skipped.append(definition.name)
                    continue
                seen.add(definition.name)
                kept.append(definition)
            if len(kept) > MAX_TOOLS_PER_SERVER:
                raise Unavailable(
                    f"the MCP server at {_origin(url)} lists more than {MAX_TOOLS_PER_SERVER} tools"
                )
            cursor = page.nextCursor
            if not cursor:
                break
            if cursor in cursors or pages >= MAX_PAGES:
                raise Unavailable(
                    f"the MCP server at {_origin(url)} kept paging tools/list "
                    f"({pages} pages, a cursor repeated or too many pages)"
                )
            cursors.add(cursor)
    return ListedTools(tools=tuple(kept), skipped=tuple(skipped), pages=pages)


async def call_tool(
    url: str,
    headers: Mapping[str, str],
    name: str,
    arguments: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    allow_private: bool = True,
) -> ToolCallResult:
    """Call tool ``name`` (its name on the server, not the exposed one) once."""
    async with _session(url, headers, timeout, allow_private) as session:
        result = await session.call_tool(
            name, arguments, read_timeout_seconds=timedelta(seconds=timeout)
        )
    blocks = [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]
    text = "\n".join(
        block.text for block in result.content if isinstance(block, mcp_types.TextContent)
    )
    return ToolCallResult(
        content_json=json.dumps(blocks, ensure_ascii=False),
        text=text,
        is_error=bool(result.isError),
        structured=result.structuredContent,
    )


# ---------------------------------------------------------------------------- the session


class _session:
    """An initialised MCP session over streamable HTTP, everything within ``timeout``; errors
    leave it as :class:`Timeout` or :class:`Unavailable`."""

    def __init__(
        self, url: str, headers: Mapping[str, str], timeout: float, allow_private: bool
    ) -> None:
        self._url = url
        self._headers = {"user-agent": USER_AGENT, **headers}
        self._timeout = timeout
        self._allow_private = allow_private
        self._stack: Any = None

    async def __aenter__(self) -> ClientSession:
        from contextlib import AsyncExitStack

        stack = AsyncExitStack()
        try:
            deadline = stack.enter_context(anyio.fail_after(self._timeout))
            self._deadline = deadline
            transport = (
                httpx.AsyncHTTPTransport(trust_env=False)
                if self._allow_private
                else GuardedTransport()
            )
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    headers=self._headers,
                    timeout=httpx.Timeout(self._timeout),
                    transport=transport,
                    trust_env=False,
                    follow_redirects=False,
                )
            )
            read, write, _ = await stack.enter_async_context(
                streamable_http_client(self._url, http_client=http, terminate_on_close=True)
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
        except BaseException as exc:
            try:
                await stack.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseException as closing:
                raise self._translate(closing) from None
            raise self._translate(exc) from None
        self._stack = stack
        return session

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            await self._stack.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            raise self._translate(raised) from None
        if exc is not None:
            raise self._translate(exc) from None
        return False

    def _translate(self, exc: BaseException) -> BaseException:
        """The contract error for what went wrong (cancellation from outside propagates)."""
        origin = _origin(self._url)
        leaves = list(_leaves(exc))
        for leaf in leaves:
            if isinstance(leaf, ContractError):
                return leaf
        for leaf in leaves:
            if isinstance(leaf, TimeoutError | httpx.TimeoutException):
                return Timeout(
                    f"the MCP server at {origin} did not answer within {self._timeout:g} s"
                )
            if isinstance(leaf, McpError) and leaf.error.code == httpx.codes.REQUEST_TIMEOUT:
                return Timeout(
                    f"the MCP server at {origin} did not answer within {self._timeout:g} s"
                )
        for leaf in leaves:
            message = _describe(leaf, origin)
            if message is not None:
                return Unavailable(message)
        if any(isinstance(leaf, asyncio.CancelledError) for leaf in leaves):
            return exc
        if leaves and all(isinstance(leaf, Exception) for leaf in leaves):
            kind = type(leaves[0]).__name__
            return Unavailable(
                f"the MCP server at {origin} gave an answer that is not MCP ({kind})"
            )
        return exc


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _describe(exc: BaseException, origin: str) -> str | None:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        hint = " (check its auth header)" if status in (401, 403) else ""
        return f"the MCP server at {origin} answered HTTP {status}{hint}"
    if isinstance(exc, httpx.ConnectError):
        cause = _find(exc, RefusedAddress)
        if cause is not None:
            return f"refused to connect to the MCP server at {origin}: {cause}"
        return f"cannot connect to the MCP server at {origin}: {_short(exc)}"
    if isinstance(exc, httpx.HTTPError):
        return f"the connection to the MCP server at {origin} failed: {type(exc).__name__}"
    if isinstance(exc, McpError):
        return f"the MCP server at {origin} answered an error: {exc.error.message[:300]}"
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def _find(exc: BaseException, kind: type[BaseException]) -> Any:
    for _ in range(8):
        if exc is None:
            return None
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, what error messages may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "an invalid URL"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


# ---------------------------------------------------------------------------- address guard


class RefusedAddress(httpcore.ConnectError):
    """A connection the address guard refused (the host is or resolves to a forbidden
    address); httpx reports it as a ``ConnectError`` caused by this."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving names itself and dialling only addresses
    :func:`forbidden_reason` allows (TLS still verifies the host name: httpcore passes the
    request's host as the server name)."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        import ipaddress

        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve host {host}: {exc.strerror}") from exc
        refused: list[str] = []
        allowed: list[str] = []
        for info in infos:
            address = str(info[4][0])
            try:
                reason = forbidden_reason(ipaddress.ip_address(address))
            except ValueError:
                reason = "not an IP address"
            if reason is None:
                if address not in allowed:
                    allowed.append(address)
            else:
                refused.append(f"{address} ({reason})")
        if not allowed:
            shown = ", ".join(refused[:3]) or "no address"
            raise RefusedAddress(
                f"{host} resolves only to addresses the router may not reach: {shown}"
            )
        last: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`GuardedBackend` (no proxies from the environment)."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=GuardedBackend(),
        )
