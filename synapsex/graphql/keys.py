"""Typed keys for what the gateway stores on aiohttp requests and responses."""

from __future__ import annotations

from aiohttp import web

from synapsex.graphql.context import GatewayContext

REQUEST_ID = web.RequestKey("request_id", str)
CONTEXT = web.RequestKey("gateway_context", GatewayContext)
SUB_RESPONSE = web.RequestKey("sub_response", web.Response)
MEDIA_TYPE = web.ResponseKey("media_type", str)
