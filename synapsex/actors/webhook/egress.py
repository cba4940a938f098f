"""Safe outbound HTTP for webhook deliveries: SSRF guards, bounded responses, one POST.

A webhook URL is chosen by a tenant, so a delivery is a request the tenant makes from inside our
network. The guard therefore runs twice (DESIGN.md, "Security rules"):

1. :func:`check_url` when an endpoint is created or changed: scheme, shape, and every address
   the host resolves to. It gives fast feedback as ``INVALID_INPUT``, nothing more, because DNS
   may answer differently later (DNS rebinding with a TTL of 0).
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

The module is longer than most because the address table, the URL check and the HTTP attempt
must agree on one notion of "forbidden"; sections below divide it.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import ipaddress
import re
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

from synapsex.config import ConfigError
from synapsex.contracts.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Table = tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]

ALLOW_PRIVATE_ENV = "SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS"
MAX_URL_LENGTH = 2048
DEFAULT_TIMEOUT_SECONDS = 15.0
#: a lookup at endpoint creation that takes longer is refused as unresolvable
RESOLVE_TIMEOUT_SECONDS = 10.0
#: at most this much of a response body is read from the network; the rest is discarded
#: with the connection
MAX_RESPONSE_BYTES = 64 * 1024
#: of what was read, this many bytes are kept as :attr:`AttemptResult.body_excerpt` for the
#: delivery log; a receiver's page of HTML is noise past its first kilobyte
BODY_EXCERPT_BYTES = 1024
MAX_ERROR_LENGTH = 500

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_HOST_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*\.?")
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


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


# ---------------------------------------------------------------------------- addresses


def _table(*rows: tuple[str, str]) -> _Table:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in rows)


_PRIVATE_V4 = "a private address (RFC 1918)"
_DOCUMENTATION = "a documentation address"
# first match wins: the specific metadata addresses come before the ranges that hold them
_V4_TABLE = _table(
    ("169.254.169.254/32", "a cloud metadata address"),
    ("169.254.170.2/32", "a cloud metadata address (AWS ECS)"),
    ("100.100.100.200/32", "a cloud metadata address (Alibaba Cloud)"),
    ("192.0.0.192/32", "a cloud metadata address (Oracle Cloud)"),
    ("0.0.0.0/8", "an unspecified address (0.0.0.0/8, 'this network')"),
    ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", _PRIVATE_V4),
    ("172.16.0.0/12", _PRIVATE_V4),
    ("192.168.0.0/16", _PRIVATE_V4),
    ("169.254.0.0/16", "a link-local address"),
    ("100.64.0.0/10", "a CGNAT shared address (RFC 6598)"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address (240.0.0.0/4)"),
    ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
    ("192.88.99.0/24", "a reserved address (6to4 relay anycast)"),
    ("198.18.0.0/15", "a reserved address (benchmarking)"),
    ("192.0.2.0/24", _DOCUMENTATION),
    ("198.51.100.0/24", _DOCUMENTATION),
    ("203.0.113.0/24", _DOCUMENTATION),
)
_V6_TABLE = _table(
    ("fd00:ec2::254/128", "a cloud metadata address (AWS)"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("fc00::/7", "a private address (unique local, fc00::/7)"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a reserved address (deprecated site-local)"),
    ("ff00::/8", "a multicast address"),
    ("100::/64", "a reserved address (discard prefix)"),
    ("64:ff9b:1::/48", "a reserved address (local-use NAT64)"),
    ("5f00::/16", "a reserved address (SRv6 SIDs)"),
    ("2001:db8::/32", _DOCUMENTATION),
    ("3fff::/20", _DOCUMENTATION),
)
# IPv6 forms that carry an IPv4 address in their last 32 bits (6to4 is handled apart)
_V4_EMBEDDINGS = _table(
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b::/96", "NAT64"),
    ("::/96", "IPv4-compatible"),
)


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why webhooks may not reach ``ip`` (``"a loopback address"``), or ``None`` if they may.

    IPv6 forms that embed an IPv4 address (mapped, translated, compatible, NAT64 ``64:ff9b::/96``
    and 6to4 ``2002::/16``) are judged by the IPv4 address they carry. Anything Python does not
    consider globally routable is refused as well, so a range missing from the tables fails
    closed.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return _judge(ip, _V4_TABLE)
    reason = _judge_table(ip, _V6_TABLE)
    if reason is not None:
        return reason
    embedded = _embedded_v4(ip)
    if embedded is not None:
        form, v4 = embedded
        inner = _judge(v4, _V4_TABLE)
        return None if inner is None else f"the {form} form of {v4}, {inner}"
    return None if ip.is_global else "a non-global (reserved) address"


def _judge(ip: IPAddress, table: _Table) -> str | None:
    reason = _judge_table(ip, table)
    if reason is not None:
        return reason
    return None if ip.is_global else "a non-global (reserved) address"


def _judge_table(ip: IPAddress, table: _Table) -> str | None:
    return next((reason for net, reason in table if ip in net), None)


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    for net, form in _V4_EMBEDDINGS:
        if ip in net:
            return form, ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _address_reason(text: str) -> str | None:
    """:func:`forbidden_reason` of an address as a resolver or socket reports it; an address
    that cannot be parsed is refused (fail closed)."""
    ip = _parse_ip(text)
    return "not an IP address" if ip is None else forbidden_reason(ip)


# ---------------------------------------------------------------------------- configuration


def allow_private_networks(environ: Mapping[str, str]) -> bool:
    """Whether ``SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS`` lifts the address checks.

    ``true``/``1``/``yes`` → ``True``; unset, empty, ``false``/``0``/``no`` → ``False`` (any
    case). Raises :class:`~synapsex.config.ConfigError` for anything else, so a typo never
    silently keeps or lifts the guard.
    """
    value = environ.get(ALLOW_PRIVATE_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise ConfigError(ALLOW_PRIVATE_ENV, f"{value!r} is not one of true, 1, yes, false, 0, no")


# ---------------------------------------------------------------------------- URL check


async def check_url(url: str, *, allow_private: bool, field: str = "url") -> None:
    """Check a webhook URL when an endpoint is created or changed.

    Refuses with :class:`InvalidInput` naming ``field``: a URL longer than
    :data:`MAX_URL_LENGTH`, a scheme other than ``http``/``https``, no host, credentials in the
    URL, a bad port, a host that does not resolve (within :data:`RESOLVE_TIMEOUT_SECONDS`), and,
    unless ``allow_private``, a host of which any address is forbidden (:func:`forbidden_reason`).
    Waits for DNS (``loop.getaddrinfo``); cancelling it abandons the lookup.
    """
    parsed = _parse_url(url, field)
    host = parsed.raw_host
    assert host is not None  # _parse_url refuses a URL without one
    literal = _parse_ip(host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = await _resolve(host, parsed.port or 0, field)
    if allow_private:
        return
    for ip in addresses:
        reason = forbidden_reason(ip)
        if reason is not None:
            where = f"{ip} is" if literal is not None else f"{host} resolves to {ip},"
            raise InvalidInput(field, f"{where} {reason}; webhooks may not reach it")


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> URL:
    """:func:`_parse_url` for deliveries, remembered: a subscription's URL is parsed once."""
    return _parse_url(url, "url")


def _parse_url(url: str, field: str) -> URL:
    """The URL as aiohttp will read it (yarl), after the checks that need no network."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(field, "must be an http or https URL")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parsed = URL(url)
        port = parsed.port
    except ValueError:
        raise InvalidInput(field, "is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidInput(field, "must be an http or https URL")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise InvalidInput(field, "must not contain credentials (user:password@)")
    host = parsed.raw_host
    if not host:
        raise InvalidInput(field, "must name a host")
    if _parse_ip(host) is None:
        if not _HOST_NAME_RE.fullmatch(host) or len(host) > 253:
            raise InvalidInput(field, "host is not a valid host name or IP address")
        # 127.1, 2130706433 and 0x7f.1 are IPv4 addresses to getaddrinfo: allow only the
        # canonical dotted form (aiohttp refuses the others at delivery time anyway)
        if _NUMERIC_LABEL_RE.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
            raise InvalidInput(field, "an IPv4 host must be written as four decimal numbers")
    if port is None or not 0 < port < 65536:
        raise InvalidInput(field, "port must be between 1 and 65535")
    return parsed


async def _resolve(host: str, port: int, field: str) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        infos = []
    addresses = [ip for info in infos if (ip := _parse_ip(str(info[4][0]))) is not None]
    if not addresses:
        raise InvalidInput(field, f"host {host} could not be resolved")
    return addresses


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
            reason = _address_reason(result["host"])
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
    reason = _address_reason(address)
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
