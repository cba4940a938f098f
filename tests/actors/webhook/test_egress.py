"""Deliveries never reach internal networks: URLs are checked at creation and again on the address
actually connected to (DNS rebinding), redirects are not followed, responses are bounded, and
every outcome of an attempt is reported rather than raised."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from standardwebhooks.webhooks import Webhook

from synapsex.actors.outbound import MAX_URL_LENGTH, forbidden_reason
from synapsex.actors.outbound import check_url as check_any_url
from synapsex.actors.webhook.egress import (
    BODY_EXCERPT_BYTES,
    MAX_RESPONSE_BYTES,
    ForbiddenAddress,
    SafeResolver,
    allow_private_networks,
    make_session,
    parse_retry_after,
    post,
)
from synapsex.actors.webhook.signing import new_secret, webhook_headers
from synapsex.config import ConfigError
from synapsex.contracts.errors import InvalidInput
from synapsex.runtime.testing import wait_until

UA = "SynapseX-Webhooks/0.1.0"


async def check_url(url: str, **kw) -> None:
    """The check as the webhook-service makes it."""
    await check_any_url(url, who="webhooks", **kw)


BODY = b'{"type":"tenant.member.added","data":{"id":"m_1"}}'
SECRET = new_secret()
PUBLIC_V4 = "93.184.216.34"


def headers() -> dict[str, str]:
    return webhook_headers([SECRET], "msg_1", int(time.time()), BODY, UA)


# ---------------------------------------------------------------------------- address classes


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("192.0.0.9", "reserved"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("192.0.2.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "non-global"),  # Teredo: not in a table, refused as not globally routable
    ],
)
def test_address_class_is_refused_and_named(address, named):
    reason = forbidden_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert named in reason


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, a loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, a private"),
        ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254, a cloud metadata"),
        ("::ffff:100.64.0.1", "IPv4-mapped form of 100.64.0.1, a CGNAT"),
        ("::ffff:0:127.0.0.1", "IPv4-translated form of 127.0.0.1, a loopback"),
        ("::127.0.0.1", "IPv4-compatible form of 127.0.0.1, a loopback"),
        ("::10.0.0.1", "IPv4-compatible form of 10.0.0.1, a private"),
        ("64:ff9b::127.0.0.1", "NAT64 form of 127.0.0.1, a loopback"),
        ("64:ff9b::169.254.169.254", "NAT64 form of 169.254.169.254, a cloud metadata"),
        ("2002:7f00:1::", "6to4 form of 127.0.0.1, a loopback"),
        ("2002:a9fe:a9fe::1", "6to4 form of 169.254.169.254, a cloud metadata"),
        ("64:ff9b:1::1", "local-use NAT64"),
    ],
)
def test_ipv6_forms_of_forbidden_ipv4_addresses_are_unwrapped_and_refused(address, named):
    reason = forbidden_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert named in reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", PUBLIC_V4, "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8"],
)
def test_public_address_is_allowed(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is None


# ---------------------------------------------------------------------------- check_url


@dataclass
class FakeDNS:
    """Stands in for ``loop.getaddrinfo``: each name answers its queued addresses in turn."""

    real: object
    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[tuple[str, list[str]]] = field(default_factory=list)

    async def __call__(self, host, port, *, family=0, type=0, proto=0, flags=0):
        if host not in self.answers:
            return await self.real(host, port, family=family, type=type, proto=proto, flags=flags)
        queue = self.answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        self.lookups.append((host, addresses))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_addrinfo(a, port) for a in addresses]


def _addrinfo(address: str, port: int):
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture
async def dns(monkeypatch) -> FakeDNS:
    loop = asyncio.get_running_loop()
    fake = FakeDNS(real=loop.getaddrinfo)
    monkeypatch.setattr(loop, "getaddrinfo", fake)
    return fake


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("https://10.0.0.5:8443/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 form of 169.254.169.254"),
    ],
)
async def test_check_url_refuses_forbidden_ip_literals(url, named):
    with pytest.raises(InvalidInput) as info:
        await check_url(url, allow_private=False, field="input.url")
    assert info.value.field == "input.url"
    assert named in info.value.problem


async def test_check_url_refuses_localhost_by_its_resolved_address():
    with pytest.raises(InvalidInput, match=r"localhost resolves to .*, a loopback address"):
        await check_url("http://localhost:8080/hook", allow_private=False)


async def test_check_url_allows_localhost_when_private_networks_are_allowed():
    await check_url("http://localhost:8080/hook", allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "http://[2606:4700:4700::1111]:8080/",
        "http://[::ffff:8.8.8.8]/",
    ],
)
async def test_check_url_allows_public_ip_literals_without_dns(url, dns):
    await check_url(url, allow_private=False)
    assert dns.lookups == []


async def test_check_url_allows_a_host_resolving_only_to_public_addresses(dns):
    dns.answers["hooks.example.test"] = [[PUBLIC_V4, "2606:4700:4700::1111"]]
    await check_url("https://hooks.example.test/in?token=abc", allow_private=False)


async def test_check_url_refuses_a_host_with_any_forbidden_address(dns):
    dns.answers["mixed.example.test"] = [[PUBLIC_V4, "10.0.0.7"]]
    with pytest.raises(InvalidInput, match=r"mixed.example.test resolves to 10.0.0.7, a private"):
        await check_url("https://mixed.example.test/", allow_private=False)


async def test_check_url_refuses_an_unresolvable_host_even_when_private_is_allowed(dns):
    dns.answers["gone.example.test"] = [[]]
    for allow_private in (False, True):
        with pytest.raises(InvalidInput, match=r"gone\.example\.test could not be resolved"):
            await check_url("https://gone.example.test/", allow_private=allow_private)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.com/hook", "http or https"),
        ("", "http or https"),
        ("http:///path-only", "must name a host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("https://example.com:0/", "port"),
        ("https://example.com:99999/", "not a valid URL"),
        ("http://a b.example/", "not a valid host name"),
        ("http://127.1/", "four decimal numbers"),
        ("http://2130706433/", "four decimal numbers"),
        ("http://0x7f.0.0.1/", "four decimal numbers"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, f"at most {MAX_URL_LENGTH}"),
    ],
)
async def test_check_url_refuses_malformed_urls_whatever_the_network_policy(url, problem, dns):
    for allow_private in (False, True):
        with pytest.raises(InvalidInput) as info:
            await check_url(url, allow_private=allow_private, field="url")
        assert problem in info.value.problem
        assert info.value.field == "url"
    assert dns.lookups == []


async def test_check_url_accepts_a_url_of_exactly_the_maximum_length(dns):
    dns.answers["example.test"] = [[PUBLIC_V4]]
    url = "https://example.test/"
    url += "a" * (MAX_URL_LENGTH - len(url))
    await check_url(url, allow_private=False)


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("true", True),
        ("1", True),
        ("YES", True),
        (" True ", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("", False),
        (None, False),
    ],
)
def test_allow_private_networks_reads_the_environment(value, allowed):
    environ = {} if value is None else {"SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS": value}
    assert allow_private_networks(environ) is allowed


@pytest.mark.parametrize("value", ["ture", "on", "2"])
def test_allow_private_networks_refuses_an_unknown_value(value):
    with pytest.raises(ConfigError, match="SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS") as info:
        allow_private_networks({"SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS": value})
    assert info.value.variable == "SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS"


# ---------------------------------------------------------------------------- Retry-After


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Fri, 02 Jan 2026 03:06:05 GMT", 120.0),
        ("Fri, 02 Jan 2026 03:06:05 -0000", 120.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),  # in the past
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


# ---------------------------------------------------------------------------- SafeResolver


class StubResolver(AbstractResolver):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for a in self.addresses
        ]

    async def close(self):
        self.closed = True


async def test_safe_resolver_keeps_only_allowed_addresses():
    stub = StubResolver(["127.0.0.1", PUBLIC_V4, "::ffff:10.0.0.1", "2606:4700:4700::1111"])
    resolver = SafeResolver(stub)
    results = await resolver.resolve("mixed.example.test", 443)
    assert [r["host"] for r in results] == [PUBLIC_V4, "2606:4700:4700::1111"]
    await resolver.close()
    assert stub.closed


async def test_safe_resolver_raises_forbidden_address_when_nothing_is_left():
    resolver = SafeResolver(StubResolver(["127.0.0.1", "169.254.169.254"]))
    with pytest.raises(ForbiddenAddress) as info:
        await resolver.resolve("internal.example.test", 80)
    assert info.value.host == "internal.example.test"
    assert info.value.refused == [
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a cloud metadata address"),
    ]
    assert isinstance(info.value, OSError)


async def test_safe_resolver_refuses_an_empty_answer():
    with pytest.raises(ForbiddenAddress, match="resolves to no address"):
        await SafeResolver(StubResolver([])).resolve("empty.example.test", 80)


# ---------------------------------------------------------------------------- a real receiver


@dataclass
class Receiver:
    port: int
    hits: list[tuple[str, dict[str, str], bytes]]
    release: asyncio.Event
    gone: asyncio.Event
    streamed: list[int]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.hits]


@pytest.fixture
async def receiver(aiohttp_server):
    hits: list[tuple[str, dict[str, str], bytes]] = []
    release, gone = asyncio.Event(), asyncio.Event()
    streamed = [0]

    async def record(request: web.Request) -> None:
        hits.append((request.path, dict(request.headers), await request.read()))

    async def ok(request):
        await record(request)
        return web.Response(status=204)

    async def fail(request):
        await record(request)
        return web.Response(status=500, text="boom: database down")

    async def throttle_seconds(request):
        return web.Response(status=429, headers={"Retry-After": "120"})

    async def throttle_date(request):
        when = datetime.now(UTC) + timedelta(seconds=120)
        return web.Response(status=503, headers={"Retry-After": format_datetime(when, True)})

    async def bad_request_with_retry_after(request):
        return web.Response(status=400, headers={"Retry-After": "5"})

    async def redirect(request):
        await record(request)
        raise web.HTTPFound("/ok")

    async def slow(request):
        await record(request)
        await release.wait()
        return web.Response(status=200)

    async def big(request):
        return web.Response(status=200, body=b"x" * (1024 * 1024))

    async def utf8(request):
        return web.Response(status=200, body=("a" + "é" * 1000).encode())

    async def gzip_bomb(request):  # about 1 KiB on the wire, 1 MiB once decompressed
        body = gzip.compress(b"z" * (1024 * 1024))
        return web.Response(status=200, body=body, headers={"Content-Encoding": "gzip"})

    async def endless(request):
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        chunk = b"y" * 16384
        try:
            while streamed[0] < 256 * 1024 * 1024:  # bounded, so a broken client cannot hang us
                await response.write(chunk)
                streamed[0] += len(chunk)
        finally:  # the write fails or the handler is cancelled when the client goes
            gone.set()
        return response

    app = web.Application()
    for path, handler in [
        ("/ok", ok),
        ("/fail", fail),
        ("/throttle-seconds", throttle_seconds),
        ("/throttle-date", throttle_date),
        ("/bad-request", bad_request_with_retry_after),
        ("/redirect", redirect),
        ("/slow", slow),
        ("/big", big),
        ("/utf8", utf8),
        ("/gzip-bomb", gzip_bomb),
        ("/endless", endless),
    ]:
        app.router.add_post(path, handler)
    server = await aiohttp_server(app)
    yield Receiver(server.port, hits, release, gone, streamed)
    release.set()


@pytest.fixture
async def open_session():
    sessions = []

    def open_(*, allow_private: bool, timeout: float = 15.0):
        session = make_session(allow_private=allow_private, timeout=timeout, user_agent=UA)
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        await session.close()


async def test_2xx_is_success_and_the_receiver_verifies_the_signature(receiver, open_session):
    result = await post(open_session(allow_private=True), receiver.url("/ok"), BODY, headers())
    assert result.ok
    assert (result.status, result.error, result.body_excerpt) == (204, None, "")
    assert result.retry_after_seconds is None
    assert result.duration_ms > 0
    [(path, received, raw)] = receiver.hits
    assert path == "/ok"
    assert raw == BODY
    assert received["Content-Type"] == "application/json"
    assert received["User-Agent"] == UA
    assert Webhook(SECRET).verify(raw, received)["data"]["id"] == "m_1"


async def test_500_is_a_failure_with_the_body_excerpt(receiver, open_session):
    result = await post(open_session(allow_private=True), receiver.url("/fail"), BODY, headers())
    assert not result.ok
    assert (result.status, result.error) == (500, None)
    assert result.body_excerpt == "boom: database down"
    assert result.retry_after_seconds is None


async def test_429_retry_after_seconds_is_reported(receiver, open_session):
    session = open_session(allow_private=True)
    result = await post(session, receiver.url("/throttle-seconds"), BODY, headers())
    assert (result.ok, result.status, result.retry_after_seconds) == (False, 429, 120.0)


async def test_503_retry_after_http_date_is_reported_as_seconds(receiver, open_session):
    session = open_session(allow_private=True)
    result = await post(session, receiver.url("/throttle-date"), BODY, headers())
    assert (result.ok, result.status) == (False, 503)
    assert result.retry_after_seconds is not None
    assert 110.0 <= result.retry_after_seconds <= 120.0  # HTTP-dates have 1 s resolution


async def test_retry_after_is_ignored_on_other_statuses(receiver, open_session):
    session = open_session(allow_private=True)
    result = await post(session, receiver.url("/bad-request"), BODY, headers())
    assert (result.status, result.retry_after_seconds) == (400, None)


async def test_redirect_is_not_followed_and_is_a_failure(receiver, open_session):
    session = open_session(allow_private=True)
    result = await post(session, receiver.url("/redirect"), BODY, headers())
    assert (result.ok, result.status, result.error) == (False, 302, None)
    assert receiver.paths() == ["/redirect"]


async def test_slow_receiver_hits_the_timeout(receiver, open_session):
    session = open_session(allow_private=True, timeout=0.2)
    result = await post(session, receiver.url("/slow"), BODY, headers())
    assert not result.ok
    assert result.status is None
    assert result.error == "timed out after 0.2 s"
    assert receiver.paths() == ["/slow"]


async def test_large_response_is_read_only_up_to_the_limit(receiver, open_session):
    result = await post(open_session(allow_private=True), receiver.url("/big"), BODY, headers())
    assert result.ok
    assert result.bytes_read == MAX_RESPONSE_BYTES == 64 * 1024
    assert result.body_excerpt == "x" * BODY_EXCERPT_BYTES


async def test_a_small_compressed_response_is_read_only_up_to_the_limit_once_expanded(
    receiver, open_session
):
    session = open_session(allow_private=True)
    result = await post(session, receiver.url("/gzip-bomb"), BODY, headers())
    assert result.ok
    assert result.bytes_read == MAX_RESPONSE_BYTES
    assert result.body_excerpt == "z" * BODY_EXCERPT_BYTES


async def test_endless_response_is_abandoned_after_the_limit(receiver, open_session):
    session = open_session(allow_private=True)
    result = await post(session, receiver.url("/endless"), BODY, headers())
    assert (result.ok, result.bytes_read) == (True, MAX_RESPONSE_BYTES)
    await wait_until(receiver.gone.is_set, deadline=5.0, message="the server saw the client go")
    assert receiver.streamed[0] < 256 * 1024 * 1024


async def test_excerpt_never_ends_in_half_a_character(receiver, open_session):
    result = await post(open_session(allow_private=True), receiver.url("/utf8"), BODY, headers())
    # 1 + 511 * 2 bytes fit in the first 1024; the 512th "é" is cut and dropped, not mangled
    assert result.body_excerpt == "a" + "é" * 511


async def test_connection_refused_is_reported_without_the_url_query(open_session):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe is closed
    session = open_session(allow_private=True)
    result = await post(session, f"http://127.0.0.1:{port}/in?token=s3cr3t", BODY, headers())
    assert not result.ok
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith(f"cannot connect to 127.0.0.1:{port}")
    assert "s3cr3t" not in result.error


async def test_invalid_url_is_reported_not_raised(open_session):
    result = await post(open_session(allow_private=True), "ftp://example.com/", BODY, headers())
    assert (result.ok, result.status) == (False, None)
    assert result.error == "invalid URL: must be an http or https URL"


# ------------------------------------------------------------------------ the connect-time guard


async def test_private_receiver_is_refused_at_connect_without_allow_private(receiver, open_session):
    sent = headers()
    result = await post(open_session(allow_private=False), receiver.url("/ok"), BODY, sent)
    assert (result.ok, result.status) == (False, None)
    assert result.error is not None
    assert "refused" in result.error
    assert result.error == "refused: 127.0.0.1 is a loopback address; webhooks may not reach it"
    assert sent["webhook-signature"] not in result.error
    assert receiver.hits == []


async def test_dns_rebinding_after_the_check_is_refused_on_the_address_connected_to(
    receiver, dns, open_session
):
    # the name looks public when the endpoint is created, then rebinds to the receiver's loopback
    dns.answers["rebind.example.test"] = [[PUBLIC_V4], ["127.0.0.1"]]
    url = receiver.url("/ok", host="rebind.example.test")
    await check_url(url, allow_private=False)

    result = await post(open_session(allow_private=False), url, BODY, headers())

    assert dns.lookups == [
        ("rebind.example.test", [PUBLIC_V4]),
        ("rebind.example.test", ["127.0.0.1"]),
    ]
    assert (result.ok, result.status) == (False, None)
    assert result.error is not None
    assert "rebind.example.test resolves only to addresses webhooks may not reach" in result.error
    assert "127.0.0.1 (a loopback address)" in result.error
    assert receiver.hits == []


async def test_same_rebinding_name_reaches_the_receiver_when_private_is_allowed(
    receiver, dns, open_session
):
    # the control for the test above: the fake DNS does route to the receiver
    dns.answers["rebind.example.test"] = [["127.0.0.1"]]
    url = receiver.url("/ok", host="rebind.example.test")
    result = await post(open_session(allow_private=True), url, BODY, headers())
    assert result.ok
    [(_, received, _)] = receiver.hits
    assert received["Host"] == f"rebind.example.test:{receiver.port}"


async def test_ipv4_mapped_literal_is_refused_at_connect(receiver, open_session):
    url = f"http://[::ffff:127.0.0.1]:{receiver.port}/ok"
    result = await post(open_session(allow_private=False), url, BODY, headers())
    assert result.error is not None
    assert result.error == (
        "refused: ::ffff:7f00:1 is the IPv4-mapped form of 127.0.0.1, a loopback address;"
        " webhooks may not reach it"
    )
    assert receiver.hits == []
