from __future__ import annotations

import asyncio
import json
import os
import signal

import aiohttp

from .conftest import SYNAPSEX


async def start_serve(tmp_path, *args: str, env: dict[str, str] | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    environ.update(SYNAPSEX_DATA_DIR=str(tmp_path / "data"), SYNAPSEX_LOG_FORMAT="json")
    environ.update(env or {})
    return await asyncio.create_subprocess_exec(
        *SYNAPSEX, "serve", *args, env=environ, stderr=asyncio.subprocess.PIPE
    )


async def read_until(proc, event: str, deadline: float = 30.0) -> list[dict]:
    """Log lines up to and including the first whose event is ``event``."""
    lines: list[dict] = []

    async def scan() -> list[dict]:
        while raw := await proc.stderr.readline():
            line = json.loads(raw)
            lines.append(line)
            if line["event"] == event:
                return lines
        raise AssertionError(f"serve exited before {event!r}: {lines}")

    return await asyncio.wait_for(scan(), deadline)


async def test_serve_runs_the_gateway_and_stops_gracefully_on_sigterm(tmp_path):
    proc = await start_serve(tmp_path, "--port", "0")
    try:
        lines = await read_until(proc, "serving")
        serving = lines[-1]
        assert {"tenant-service", "auth-service", "policy-service", "audit-service"} <= set(
            serving["services"]
        )
        applied = {line["migration"] for line in lines if line["event"] == "migration applied"}
        assert {"tenant.0001_initial", "auth.0001_initial"} <= applied
        assert serving["url"] == f"http://127.0.0.1:{serving['port']}/graphql"

        bootstrap = await asyncio.create_subprocess_exec(
            *SYNAPSEX,
            "bootstrap",
            "--tenant",
            "Live",
            "--data-dir",
            str(tmp_path / "data"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(bootstrap.communicate(), 60)
        key = json.loads(out)["api_key"]
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                serving["url"],
                json={"query": "{ me { role tenant { name } } }"},
                headers={"Authorization": f"Bearer {key}"},
            )
            body = await response.json()
            assert body["data"] == {"me": {"role": "OWNER", "tenant": {"name": "Live"}}}
            trace_id = body["extensions"]["traceId"]
            assert response.headers["traceparent"].split("-")[1] == trace_id
        proc.send_signal(signal.SIGTERM)
        await read_until(proc, "runtime stopped")
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_on_postgres_refuses_pending_migrations_unless_told(tmp_path, pg_url):
    env = {"DATABASE_URL": pg_url}
    refused = await start_serve(tmp_path, env=env)
    _, stderr = await asyncio.wait_for(refused.communicate(), 60)
    assert refused.returncode == 1
    assert b"pending migrations" in stderr
    assert b"tenant.0001_initial" in stderr

    proc = await start_serve(tmp_path, "--migrate", "--port", "0", env=env)
    try:
        await read_until(proc, "serving")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_exits_2_naming_a_bad_service_setting(tmp_path):
    proc = await start_serve(
        tmp_path, "--port", "0", env={"SYNAPSEX_WEBHOOK_RETRY_SCHEDULE": "soon"}
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2
    assert b"synapsex: SYNAPSEX_WEBHOOK_RETRY_SCHEDULE: must be comma-separated seconds" in stderr
