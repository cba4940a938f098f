from __future__ import annotations

import asyncio
import json
import os
import signal

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


async def test_serve_starts_every_service_and_stops_gracefully_on_sigterm(tmp_path):
    proc = await start_serve(tmp_path)
    try:
        lines = await read_until(proc, "serving")
        assert {"tenant-service", "auth-service"} <= set(lines[-1]["services"])
        applied = {line["migration"] for line in lines if line["event"] == "migration applied"}
        assert applied == {"tenant.0001_initial", "auth.0001_initial"}
        assert (tmp_path / "data" / "tenant.db").exists()
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

    proc = await start_serve(tmp_path, "--migrate", env=env)
    try:
        await read_until(proc, "serving")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
