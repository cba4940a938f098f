"""Relay-style connections: ``edges { cursor node }`` and ``pageInfo { hasNextPage endCursor }``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types import Info

from synapsex.contracts.common import Page, PageRequest
from synapsex.graphql.context import GatewayContext

T = TypeVar("T")
N = TypeVar("N")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


async def tenant_connection(
    info: Info[GatewayContext, Any],
    message: type[PageRequest],
    node: Callable[[Any], T],
    *,
    cursor: Callable[[Any], str] = lambda item: item.id,
    **fields: Any,
) -> Connection[T]:
    """Ask for one page of the caller's tenant (``message(tenant_id=…, **fields)``), as a
    connection of ``node``s."""
    principal = await info.context.principal()
    page = await info.context.ask(message(tenant_id=principal.tenant_id, **fields))
    return connection(page, node, cursor)


def connection(
    page: Page[N],
    node: Callable[[N], T],
    cursor: Callable[[N], str] = lambda item: item.id,  # type: ignore[attr-defined]
) -> Connection[T]:
    """A connection from a contract page; each item's id is its (opaque) cursor unless
    ``cursor`` says otherwise."""
    return Connection(
        edges=[Edge(cursor=cursor(item), node=node(item)) for item in page.items],
        page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
    )
