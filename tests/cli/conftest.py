from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SYNAPSEX = [sys.executable, "-m", "synapsex.cli"]


@pytest.fixture
def cli(tmp_path: Path):
    """Run ``synapsex ARGS`` with a fresh data folder; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
        environ = {
            k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") or "TEST" in k
        }
        environ.update(SYNAPSEX_DATA_DIR=str(tmp_path / "data"), SYNAPSEX_LOG_FORMAT="json")
        environ.update(env or {})
        return subprocess.run(
            [*SYNAPSEX, *args], env=environ, capture_output=True, text=True, timeout=timeout
        )

    return run


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
