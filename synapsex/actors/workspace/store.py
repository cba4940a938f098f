"""Artifact content on disk: one file per blob, written durably, read in ranges.

Layout under the root (``SYNAPSEX_ARTIFACT_ROOT``, default ``<data dir>/artifacts``)::

    tmp/<random>.part                     an upload being written (never read)
    <tenant id>/<sha[:2]>/<sha256>-<blob id>

A file is written to ``tmp/`` and fsynced, then renamed into place (atomic on one file
system) and its folder fsynced, so a blob row never names a half-written file. The name
carries the blob row's id as well as the hash: ids are never reused, so removing the file of
a deleted blob (after its row's deletion committed) can never remove the file of a blob of
the same content created meanwhile. Every call here blocks: the actor runs them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from pathlib import Path

#: staged files older than this are leftovers of a crash, removed at start
STALE_TEMP_SECONDS = 3600.0
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,60}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def prepare(self) -> None:
        """Create the folders; remove staged files a crash left behind."""
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(OSError):
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)

    def path(self, tenant_id: str, sha256: str, blob_id: str) -> Path:
        """Where one blob's file lives (the parts are checked: never a path outside the root)."""
        if not (_SAFE.fullmatch(tenant_id) and _SAFE.fullmatch(blob_id)):
            raise ValueError("tenant and blob ids must be letters, digits, _ or -")
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a lower-case hex SHA-256")
        return self.root / tenant_id / sha256[:2] / f"{sha256}-{blob_id}"

    def stage(self, content: bytes) -> Path:
        """Write ``content`` to a new file in ``tmp/`` and fsync it."""
        path = self.tmp / f"{secrets.token_hex(16)}.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return path

    def install(self, staged: Path, final: Path) -> None:
        """Rename a staged file into place and fsync the folders that changed."""
        created = _make_dirs(final.parent)
        os.replace(staged, final)
        for folder in (final.parent, *created):
            _fsync_dir(folder)

    def read(self, path: Path, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (``FileNotFoundError`` when it is gone)."""
        with open(path, "rb", buffering=0) as f:
            f.seek(offset)
            return f.read(length)

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; the parents of what was created, to fsync."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    return [p.parent for p in missing]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
