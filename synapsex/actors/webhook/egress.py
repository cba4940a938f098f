"""Safe outbound HTTP for webhook deliveries: SSRF guards, bounded responses, one POST.

A webhook URL is chosen by a tenant, so a delivery is a request the tenant makes from inside our
network. The guard therefore runs twice (DESIGN.md, "Security rules"):

1. :func:`synapsex.actors.outbound.check_url` when an endpoint is created or changed: scheme,
   shape, and every address the host resolves to, by the address rules every service shares
   (:func:`~synapsex.actors.outbound.forbidden_reason`). It gives fast feedback as
   ``INVALID_INPUT``, nothing more, because DNS may answer differently later (DNS rebinding
   with a TTL of 0).
2. :func:`make_session` at delivery time, on the address actually connected to:
   :class:`SafeResolver` drops forbidden addresses from every lookup (so a name resolving to one
   public and one private address is dialled only on the public one), and a socket factory
   refuses a forbidden address just before ``connect()``. The second catches IP-literal URLs,
   which aiohttp never passes to a resolver.

Redirects are never followed (a 3xx is a failure), proxies from the environment are ignored, no
cookies are kept, and response bodies are read at most :data:`MAX_RESPONSE_BYTES`.
``SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true`` (:func:`allow_private_networks`) lifts the
address checks for development and tests; scheme and shape checks stay.

Nothing here logs, and no error text carries a header value or the URL's path or query (where
receivers sometimes put tokens).

"""

from __future__ import annotations

import codecs
import functools
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from synapsex.actors.outbound import (
    address_reason,
    parse_url,
)
from synapsex.config.settings import parse_flag
from synapsex.contracts.errors import InvalidInput

ALLOW_PRIVATE_ENV = "SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS"
DEFAULT_TIMEOUT_SECONDS = 15.0
#: at most this much of a response body is read from the network; the rest is discarded
#: with the connection
MAX_RESPONSE_BYTES = 64 * 1024
#: of what was read, this many bytes are kept as :attr:`AttemptResult.body_excerpt` for the
#: delivery log; a receiver's page of HTML is noise past its first kilobyte
BODY_EXCERPT_BYTES = 1024
MAX_ERROR_LENGTH = 500


class ForbiddenAddress(OSError):
    """A delivery was refused because the host's address is one webhooks may not reach.

    Raised by :class:`SafeResolver` and by the connect-time guard of :func:`make_session`;
    aiohttp wraps it in a ``ClientConnectorError`` and :func:`post` reports it as the attempt's
    ``error``.
    """

    def __init__(self, host: str, refused: list[tuple[str, str]]) -> None:
        if len(refused) == 1 and refused[0][0] == host:  # an IP literal or an address dialled
            message = f"{host} is {refused[0][1]}; webhooks may not reach it"
        elif not refused:
            message = f"{host} resolves to no address"
        else:
            shown = ", ".join(f"{address} ({reason})" for address, reason in refused[:3])
            message = f"{host} resolves only to addresses webhooks may not reach: {shown}"
        super().__init__(message)
        self.host = host
        self.refused = refused


# ---------------------------------------------------------------------------- configuration


def allow_private_networks(environ: Mapping[str, str]) -> bool:
    """Whether ``SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS`` lifts the address checks (a switch:
    :func:`~synapsex.config.settings.parse_flag`)."""
    return parse_flag(environ, ALLOW_PRIVATE_ENV)


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> URL:
    """:func:`~synapsex.actors.outbound.parse_url` for deliveries, remembered: a
    subscription's URL is parsed once."""
    return parse_url(url, "url")


# ---------------------------------------------------------------------------- connect-time guard


class SafeResolver(AbstractResolver):
    """Wraps a resolver and drops the addresses webhooks may not reach.

    Raises :class:`ForbiddenAddress` when nothing is left, so the connection is never attempted.
    The connector dials only what this returns, so the address checked is the address used.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: list[tuple[str, str]] = []
        for result in results:
            reason = address_reason(result["host"])
            if reason is None:
                allowed.append(result)
            else:
                refused.append((result["host"], reason))
        if not allowed:
            raise ForbiddenAddress(host, refused)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _guarded_socket(addr_info: aiohttp.AddrInfoType) -> socket.socket:
    """The connector's socket factory: the last check, on the exact address about to be dialled
    (an IP-literal URL reaches here without passing any resolver)."""
    family, type_, proto, _, sockaddr = addr_info
    address = str(sockaddr[0])
    reason = address_reason(address)
    if reason is not None:
        raise ForbiddenAddress(address, [(address, reason)])
    return socket.socket(family=family, type=type_, proto=proto)


def make_session(
    *,
    allow_private: bool,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    user_agent: str,
    connections: int = 100,
) -> aiohttp.ClientSession:
    """An HTTP session for deliveries; close it with ``await session.close()``.

    ``timeout`` bounds a whole attempt (connect, send, response and the bounded body read).
    ``connections`` caps the open connections; the caller keeps at most that many attempts in
    flight, so none waits for a connection (which would count against its timeout).
    Unless ``allow_private``, every connection passes :class:`SafeResolver` and the connect-time
    socket guard. Environment proxies and ``.netrc`` are ignored (``trust_env=False``), cookies
    are not kept. Must be called with an event loop running.
    """
    if allow_private:
        connector = aiohttp.TCPConnector(limit=connections)
    else:
        connector = aiohttp.TCPConnector(
            limit=connections, resolver=SafeResolver(), socket_factory=_guarded_socket
        )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"user-agent": user_agent},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


# ---------------------------------------------------------------------------- one attempt


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST to an endpoint gave."""

    #: the HTTP status, or ``None`` when no response arrived
    status: int | None
    #: from just before connecting until the body was read or the attempt failed
    duration_ms: float
    #: why the exchange did not complete (timeout, connection, forbidden address); ``None`` when
    #: a full response arrived, whatever its status. Never holds header values or the URL's
    #: path or query.
    error: str | None
    #: the first :data:`BODY_EXCERPT_BYTES` of the response body as text (invalid UTF-8 replaced)
    body_excerpt: str = ""
    #: bytes of the body read: at most :data:`MAX_RESPONSE_BYTES`, the rest is never read
    bytes_read: int = 0
    #: the delay a 429 or 503 asked for with ``Retry-After`` (seconds, >= 0); else ``None``
    retry_after_seconds: float | None = None

    @property
    def ok(self) -> bool:
        """The endpoint accepted the delivery: a 2xx and a complete exchange (a 3xx is a
        failure: redirects are not followed)."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str]
) -> AttemptResult:
    """POST ``body`` to ``url`` once, without following redirects; never raises for anything
    the endpoint or network does (cancellation propagates).

    Waits up to the session's timeout. At most :data:`MAX_RESPONSE_BYTES` of the response body
    are read; the connection is then closed rather than drained.
    """
    started = time.monotonic()
    status: int | None = None
    raw = b""
    retry_after: float | None = None
    try:
        target = _target(url)
        async with session.post(target, data=body, headers=headers, allow_redirects=False) as r:
            status = r.status
            if status in (429, 503):
                retry_after = parse_retry_after(r.headers.get("retry-after", ""))
            length = r.content_length
            if (
                length is not None
                and length <= MAX_RESPONSE_BYTES
                and not r.headers.get("content-encoding")
            ):  # announced, small and not compressed (which could expand): one read
                raw = await r.read()
            else:
                raw = await _read_bounded(r.content, MAX_RESPONSE_BYTES)
        error = None
    except InvalidInput as exc:
        error = f"invalid URL: {exc.problem}"
    except TimeoutError:
        error = f"timed out after {_timeout_of(session)}"
    except (aiohttp.ClientError, OSError) as exc:
        error = _describe_error(exc)
    return AttemptResult(
        status=status,
        duration_ms=(time.monotonic() - started) * 1000.0,
        error=error[:MAX_ERROR_LENGTH] if error is not None else None,
        body_excerpt=_excerpt(raw),
        bytes_read=len(raw),
        retry_after_seconds=retry_after,
    )


async def _read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _excerpt(raw: bytes) -> str:
    if not raw:
        return ""
    # final=False drops a multi-byte character cut in half by the limit instead of mangling it
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(raw[:BODY_EXCERPT_BYTES], final=False)


def _timeout_of(session: aiohttp.ClientSession) -> str:
    total = session.timeout.total
    return "the timeout" if total is None else f"{total:g} s"


def _describe_error(exc: BaseException) -> str:
    """A short, safe description of a failed attempt: our own words plus the OS error text,
    never ``str()`` of an aiohttp error (which may quote the URL)."""
    forbidden = _find_forbidden(exc)
    if forbidden is not None:
        return f"refused: {forbidden}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate verification failed for {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"could not resolve host {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        detail = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {detail}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection before responding"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was malformed or cut short"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"invalid HTTP response ({exc.status})"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connection error: {exc.strerror}"
    return f"connection error: {type(exc).__name__}"


def _find_forbidden(exc: BaseException | None) -> ForbiddenAddress | None:
    for _ in range(8):  # aiohttp wraps once or twice; never loop on a cyclic chain
        if exc is None:
            return None
        if isinstance(exc, ForbiddenAddress):
            return exc
        os_error = getattr(exc, "os_error", None)
        exc = os_error if isinstance(os_error, BaseException) else exc.__cause__
    return None


def parse_retry_after(value: str, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait: delay-seconds or an HTTP-date (a date in
    the past gives 0). ``None`` when it is absent or malformed. Not capped: the caller clamps
    it to its own schedule."""
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" in an HTTP-date means UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
