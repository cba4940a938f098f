"""Helpers for end-to-end tests: a real ``synapsex serve`` process and a GraphQL client.

Starting and reading the server's log reuse :mod:`tests.cli.test_serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.cli.conftest import SYNAPSEX
from tests.cli.test_serve import read_until, start_serve


def cli_environ(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment ``start_serve`` gives the server, for the other commands."""
    environ = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    environ.update(SYNAPSEX_DATA_DIR=str(tmp_path / "data"), SYNAPSEX_LOG_FORMAT="json")
    environ.update(env)
    return environ


async def run_cli(tmp_path: Path, *args: str, env: dict[str, str], timeout: float = 60) -> str:
    """Run ``synapsex ARGS`` to completion; returns its standard output (exit 0 asserted)."""
    proc = await asyncio.create_subprocess_exec(
        *SYNAPSEX,
        *args,
        env=cli_environ(tmp_path, env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"synapsex {' '.join(args)} exited {proc.returncode}: {err!r}"
    return out.decode()


async def bootstrap(tmp_path: Path, tenant: str, env: dict[str, str]) -> str:
    """A new tenant's owner API key."""
    out = await run_cli(
        tmp_path, "bootstrap", "--tenant", tenant, "--data-dir", str(tmp_path / "data"), env=env
    )
    return json.loads(out)["api_key"]


class Server:
    """One ``synapsex serve --port 0`` process; its log is read all along (so a full pipe
    never blocks it) and kept in ``log``."""

    def __init__(self, tmp_path: Path, env: dict[str, str]):
        self.tmp_path = tmp_path
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.log: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Start and wait for the "serving" line; returns the GraphQL URL."""
        self.proc = await start_serve(self.tmp_path, "--port", "0", env=self.env)
        self.log = await read_until(self.proc, "serving")
        self.url = self.log[-1]["url"]
        self._reader = asyncio.create_task(self._read_log())
        return self.url

    async def _read_log(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            try:
                self.log.append(json.loads(raw))
            except ValueError:
                self.log.append({"event": raw.decode(errors="replace").rstrip()})

    async def kill(self) -> int:
        """SIGKILL; returns the exit status once the process is gone."""
        assert self.proc is not None
        self.proc.kill()
        return await asyncio.wait_for(self.proc.wait(), 30)

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM; returns the exit status once the process is gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def aclose(self) -> None:
        """Kill the process if it still runs and stop reading its log."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):  # wait_for cancels it
                await asyncio.wait_for(self._reader, 10)

    def errors(self) -> list[dict[str, Any]]:
        """The log lines at level error or above."""
        return [line for line in self.log if line.get("level") in ("error", "critical")]


class GraphQLError(Exception):
    """The server answered, with errors."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(json.dumps(errors))
        self.errors = errors


class GraphQL:
    """POSTs GraphQL documents with an API key. Connection failures raise
    :class:`aiohttp.ClientError`; an answer with errors raises :class:`GraphQLError`."""

    def __init__(self, session: aiohttp.ClientSession, url: str, key: str):
        self.session = session
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        async with self.session.post(
            self.url, json={"query": query, "variables": variables}, headers=self.headers
        ) as response:
            body = await response.json()
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        return body["data"]
