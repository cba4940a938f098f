"""Outbound requests to URLs a tenant chose (webhook endpoints, MCP servers): which addresses
they may not reach, and the check of such a URL when it is set.

A tenant's URL makes us send a request from inside our network, so the rules are the same for
every service that does it (DESIGN.md, "Security rules"): no loopback, private, link-local,
CGNAT, multicast, reserved, documentation or cloud metadata address, for IPv4 and IPv6,
including the IPv6 forms that carry an IPv4 address. :func:`forbidden_reason` is the one table;
:func:`check_url` the check at registration (fast feedback as ``INVALID_INPUT``). The check on
the address actually connected to, which DNS rebinding makes necessary, belongs to each
service's HTTP client (the webhook-service's aiohttp connector, the MCP router's httpx
transport), built on :func:`address_reason`.

A shared module of the services (like :mod:`synapsex.actors.domain_events`), not a service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket

from yarl import URL

from synapsex.contracts.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Table = tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]

MAX_URL_LENGTH = 2048
#: a lookup at registration that takes longer is refused as unresolvable
RESOLVE_TIMEOUT_SECONDS = 10.0

_HOST_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*\.?")
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


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
    """Why outbound requests may not reach ``ip`` (``"a loopback address"``), or ``None`` if
    they may.

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


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_reason(text: str) -> str | None:
    """:func:`forbidden_reason` of an address as a resolver or socket reports it; an address
    that cannot be parsed is refused (fail closed)."""
    ip = parse_ip(text)
    return "not an IP address" if ip is None else forbidden_reason(ip)


# ---------------------------------------------------------------------------- URL check


async def check_url(url: str, *, allow_private: bool, who: str, field: str = "url") -> None:
    """Check a URL a tenant chose (a webhook endpoint, an MCP server) when it is set.

    Refuses with :class:`InvalidInput` naming ``field``: a URL longer than
    :data:`MAX_URL_LENGTH`, a scheme other than ``http``/``https``, no host, credentials in the
    URL, a bad port, a host that does not resolve (within :data:`RESOLVE_TIMEOUT_SECONDS`), and,
    unless ``allow_private``, a host of which any address is forbidden (:func:`forbidden_reason`).
    ``who`` names the requests in that message (``"webhooks"``). Waits for DNS
    (``loop.getaddrinfo``); cancelling it abandons the lookup.
    """
    parsed = parse_url(url, field)
    host = parsed.raw_host
    assert host is not None  # parse_url refuses a URL without one
    literal = parse_ip(host)
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
            raise InvalidInput(field, f"{where} {reason}; {who} may not reach it")


def parse_url(url: str, field: str) -> URL:
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
    if parse_ip(host) is None:
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
    addresses = [ip for info in infos if (ip := parse_ip(str(info[4][0]))) is not None]
    if not addresses:
        raise InvalidInput(field, f"host {host} could not be resolved")
    return addresses
