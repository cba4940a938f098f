"""The commands as an operator runs them: ``synapsex serve --ops-mcp`` (the MCP server in the
gateway's process) and ``synapsex ops-mcp --gateway URL`` (alone, with a fallback key from
``SYNAPSEX_OPS_MCP_API_KEY``), both stopped by SIGTERM with exit 0; bad options are usage or
configuration errors (exit 2) naming the option."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from synapsex.cli import build_parser
from synapsex.cli import ops_mcp as ops_mcp_cli
from synapsex.config import ConfigError
from synapsex.opsmcp import OpsMcpConfig, OpsMcpServer
from tests.cli.conftest import SYNAPSEX
from tests.e2e.support import bootstrap, cli_environ

from .conftest import mcp_client

DEADLINE = 60.0


class Process:
    """One ``synapsex`` command; its JSON log lines are read all along into ``log``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[dict[str, Any]] = []
        self._lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, tmp_path: Path, *args: str, env: dict[str, str]) -> Process:
        proc = await asyncio.create_subprocess_exec(
            *SYNAPSEX, *args, env=cli_environ(tmp_path, env), stderr=asyncio.subprocess.PIPE
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": raw.decode(errors="replace").rstrip()}
            self.log.append(line)
            await self._lines.put(line)
        await self._lines.put(None)

    async def until(self, event: str) -> dict[str, Any]:
        """The next log line whose event is ``event``."""

        async def scan() -> dict[str, Any]:
            while (line := await self._lines.get()) is not None:
                if line["event"] == event:
                    return line
            raise AssertionError(f"exited before {event!r}: {self.log}")

        return await asyncio.wait_for(scan(), DEADLINE)

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), DEADLINE)
        await asyncio.wait_for(self._reader, DEADLINE)
        return code

    async def aclose(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reader, 10)


async def test_serve_with_ops_mcp_and_ops_mcp_alone_stop_on_sigterm(tmp_path):
    env: dict[str, str] = {}
    serve = await Process.start(
        tmp_path, "serve", "--port", "0", "--ops-mcp", "--ops-mcp-port", "0", env=env
    )
    alone: Process | None = None
    try:
        beside = await serve.until("ops-mcp serving")
        serving = await serve.until("serving")
        assert beside["gateway"] == serving["url"]
        assert beside["fallback_key"] is False
        key = await bootstrap(tmp_path, "Live", env)

        async with mcp_client(beside["url"], key) as mcp:
            event = await mcp.call("publish_event", topic="ops.hello", payload={"n": 1})
            seen = await mcp.call("list_events", topic="ops.hello")
            assert [e["id"] for e in seen["items"]] == [event["id"]]
        async with mcp_client(beside["url"]) as anonymous:
            assert "UNAUTHENTICATED" in await anonymous.error("list_events")

        alone = await Process.start(
            tmp_path,
            "ops-mcp",
            "--port",
            "0",
            "--gateway",
            serving["url"],
            env={"SYNAPSEX_OPS_MCP_API_KEY": key},
        )
        started = await alone.until("ops-mcp serving")
        assert started["fallback_key"] is True
        async with mcp_client(started["url"]) as anonymous:  # the fallback key acts
            seen = await anonymous.call("list_events", topic="ops.hello")
            assert [e["id"] for e in seen["items"]] == [event["id"]]

        assert await alone.stop() == 0
        assert any(line["event"] == "ops-mcp stopped" for line in alone.log)
        assert await serve.stop() == 0
        events = [line["event"] for line in serve.log]
        # the MCP server stops first (it calls the gateway), then the gateway and the runtime
        assert events.index("ops-mcp stopped") < events.index("runtime stopped")
        for process in (serve, alone):
            assert key not in json.dumps(process.log)
            assert not [line for line in process.log if line.get("level") == "error"]
    finally:
        for process in (alone, serve):
            if process is not None:
                await process.aclose()


def test_a_bad_gateway_url_or_port_is_a_usage_error(capsys):
    parser = build_parser()
    for option, value, problem in (
        ("--gateway", "ftp://gw", "is not an http(s) URL"),
        ("--port", "70000", "is not a port number"),
    ):
        args = ["ops-mcp", "--gateway", "http://127.0.0.1:8080", option, value]
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(args)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {option}: " in err
        assert problem in err
    args = parser.parse_args(["ops-mcp", "--gateway", "http://gw.internal:8080"])
    assert args.gateway == "http://gw.internal:8080/graphql"
    assert (args.host, args.port) == ("127.0.0.1", 8090)


async def test_a_taken_port_is_a_configuration_error_naming_the_option():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = OpsMcpServer(OpsMcpConfig(gateway_url="http://127.0.0.1:8080", port=port))
        with pytest.raises(ConfigError) as refused:
            await ops_mcp_cli._start(server, "--ops-mcp-port")
    assert refused.value.variable == "--ops-mcp-port"
    assert f"cannot listen on 127.0.0.1:{port}" in refused.value.problem
