"""A small GraphQL client for the gateway, sending the caller's API key.

synapsex-ops-mcp acts **as the caller**: every request carries the bearer key the MCP client
sent (or the server's fallback key), so the gateway authenticates, authorises, audits and
isolates exactly as it would for that key used directly. The client holds no key itself: each
call is given one, and keys are never logged nor put into error messages.

Errors come back as :class:`GatewayError` with the gateway's ``extensions.code``
(``UNAUTHENTICATED``, ``FORBIDDEN``, ``NOT_FOUND``, ``INVALID_INPUT`` …), its message and, for
invalid input, the field; a gateway that cannot be reached or answers too slowly is
``UNAVAILABLE`` / ``TIMEOUT``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

DEFAULT_TIMEOUT_SECONDS = 30.0
#: how much of a GraphQL answer that is not JSON is quoted in the error
_QUOTE_CHARS = 200


class GatewayError(Exception):
    """The gateway refused or failed a request (or could not be reached)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field

    def describe(self) -> str:
        """``CODE: message`` (``CODE (field x): message`` for invalid input), for a person."""
        where = f" (field {self.field})" if self.field else ""
        return f"{self.code}{where}: {self.message}"


def check_gateway_url(url: str) -> str:
    """The GraphQL endpoint URL, validated: ``http(s)://host[:port]/path`` (``/graphql`` when
    the URL has no path). Raises :class:`ValueError` naming what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:8080/graphql")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/graphql")
    return parts._replace(fragment="").geturl()


class GatewayClient:
    """POSTs GraphQL documents to one gateway; one connection pool for every caller.

    Call :meth:`aclose` when done (the pool is opened on first use, in the running loop)."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = check_gateway_url(url)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                # the caller's key is in each request's headers, never in a cookie jar
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def _headers(key: str, traceparent: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        if traceparent:
            headers["traceparent"] = traceparent
        return headers

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        key: str,
        traceparent: str | None = None,
    ) -> dict[str, Any]:
        """The ``data`` of one GraphQL request made with ``key``; the first error of an answer
        with errors raises :class:`GatewayError`."""
        payload = {"query": query, "variables": variables or {}}
        try:
            async with self._http().post(
                self.url, json=payload, headers=self._headers(key, traceparent)
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError:
            raise GatewayError(
                "TIMEOUT", f"the gateway did not answer within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayError(
                "UNAVAILABLE", f"cannot reach the gateway at {self.url}: {exc}"
            ) from None
        try:
            body = json.loads(text)
        except ValueError:
            raise GatewayError(
                "UNAVAILABLE",
                f"the gateway answered HTTP {status} without JSON: {text[:_QUOTE_CHARS]!r}",
            ) from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            raise _error_of(errors[0])
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise GatewayError("UNAVAILABLE", f"the gateway answered HTTP {status} without data")
        return body["data"]

    async def read_prefix(
        self, path: str, *, key: str, limit: int, traceparent: str | None = None
    ) -> tuple[bytes, bool]:
        """The first ``limit`` bytes of ``GET path`` on the gateway (an artifact's
        ``downloadPath``), read as they stream in; returns them and whether more followed."""
        url = urljoin(self.url, path)
        try:
            async with self._http().get(url, headers=self._headers(key, traceparent)) as response:
                if response.status != 200:
                    text = await response.text()
                    try:
                        errors = json.loads(text)["errors"]
                    except (ValueError, KeyError, TypeError):
                        raise GatewayError(
                            "UNAVAILABLE", f"GET {path} answered HTTP {response.status}"
                        ) from None
                    raise _error_of(errors[0])
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > limit:
                        return bytes(data[:limit]), True
                return bytes(data), False
        except TimeoutError:
            raise GatewayError(
                "TIMEOUT", f"the gateway did not answer within {self.timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise GatewayError(
                "UNAVAILABLE", f"cannot reach the gateway at {self.url}: {exc}"
            ) from None


def _error_of(error: Any) -> GatewayError:
    if not isinstance(error, dict):
        return GatewayError("INTERNAL", str(error))
    extensions = error.get("extensions") or {}
    return GatewayError(
        str(extensions.get("code") or "INTERNAL"),
        str(error.get("message") or "the gateway refused the request"),
        field=extensions.get("field"),
    )


__all__ = ["DEFAULT_TIMEOUT_SECONDS", "GatewayClient", "GatewayError", "check_gateway_url"]
