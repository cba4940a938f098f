"""Dead letters: messages that could not be handled, kept with their error for an operator.

A service with a database keeps them in its own table ``<slug>_dead_letters`` (runtime
bookkeeping, created by the runtime like Tortoise's migration history); an actor without models
keeps them in memory for the life of the runtime. Fields marked secret
(:func:`synapsex.contracts.secret_field`) are stored as ``"***"``; such a dead letter can be
inspected but not redriven.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from synapsex.contracts.message import REDACTED, message_type_name
from synapsex.runtime.envelope import Envelope
from synapsex.runtime.ids import new_id
from synapsex.runtime.persistence import ServiceDatabase


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """One dead-lettered message."""

    id: str
    service: str
    message_type: str
    payload: dict[str, Any]
    error: str
    error_type: str
    attempts: int
    was_ask: bool
    correlation_id: str | None
    trace_id: str | None
    created_at: datetime

    @property
    def redacted(self) -> bool:
        return REDACTED in self.payload.values()


def dead_letter_from(envelope: Envelope, error: BaseException | str) -> DeadLetter:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return DeadLetter(
        id=new_id("dl"),
        service=envelope.service,
        message_type=message_type_name(type(envelope.message)),
        payload=envelope.message.to_dict(),
        error=text[:4000],
        error_type="str" if isinstance(error, str) else type(error).__qualname__,
        attempts=envelope.attempt,
        was_ask=envelope.is_ask,
        correlation_id=envelope.correlation_id or envelope.message_id,
        trace_id=envelope.trace_id,
        created_at=datetime.now(UTC),
    )


class DeadLetterStore(Protocol):
    async def add(self, letter: DeadLetter) -> None: ...
    async def list(self, limit: int = 100) -> list[DeadLetter]: ...
    async def get(self, letter_id: str) -> DeadLetter | None: ...
    async def delete(self, letter_id: str) -> bool: ...


class MemoryDeadLetters:
    """Dead letters of an actor without a database, oldest first."""

    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}

    async def add(self, letter: DeadLetter) -> None:
        self._letters[letter.id] = letter

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        return list(self._letters.values())[:limit]

    async def get(self, letter_id: str) -> DeadLetter | None:
        return self._letters.get(letter_id)

    async def delete(self, letter_id: str) -> bool:
        return self._letters.pop(letter_id, None) is not None


_COLUMNS = (
    "id",
    "message_type",
    "payload",
    "error",
    "error_type",
    "attempts",
    "was_ask",
    "correlation_id",
    "trace_id",
    "created_at",
)


class SqlDeadLetters:
    """Dead letters in the service's own database, table ``<slug>_dead_letters``."""

    def __init__(self, db: ServiceDatabase) -> None:
        self._db = db
        self._service = db.service
        self.table = f"{db.slug}_dead_letters"
        self._ph = (lambda n: "?") if db.config.is_sqlite else (lambda n: f"${n}")

    async def ensure_table(self) -> None:
        await self._db.create_if_missing(
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "id VARCHAR(40) PRIMARY KEY, message_type VARCHAR(255) NOT NULL, "
            "payload TEXT NOT NULL, error TEXT NOT NULL, error_type VARCHAR(255) NOT NULL, "
            "attempts INT NOT NULL, was_ask INT NOT NULL, correlation_id VARCHAR(64), "
            "trace_id VARCHAR(32), created_at VARCHAR(40) NOT NULL)"
        )

    async def add(self, letter: DeadLetter) -> None:
        values = [
            letter.id,
            letter.message_type,
            json.dumps(letter.payload, default=str),
            letter.error,
            letter.error_type,
            letter.attempts,
            int(letter.was_ask),
            letter.correlation_id,
            letter.trace_id,
            letter.created_at.isoformat(),
        ]
        marks = ", ".join(self._ph(i + 1) for i in range(len(values)))
        await self._db.client().execute_query(
            f"INSERT INTO {self.table} ({', '.join(_COLUMNS)}) VALUES ({marks})", values
        )

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self._db.client().execute_query_dict(
            f"SELECT * FROM {self.table} ORDER BY id LIMIT {int(limit)}"
        )
        return [self._letter(r) for r in rows]

    async def get(self, letter_id: str) -> DeadLetter | None:
        rows = await self._db.client().execute_query_dict(
            f"SELECT * FROM {self.table} WHERE id = {self._ph(1)}", [letter_id]
        )
        return self._letter(rows[0]) if rows else None

    async def delete(self, letter_id: str) -> bool:
        count, _ = await self._db.client().execute_query(
            f"DELETE FROM {self.table} WHERE id = {self._ph(1)}", [letter_id]
        )
        return bool(count)

    def _letter(self, row: dict[str, Any]) -> DeadLetter:
        return DeadLetter(
            id=row["id"],
            service=self._service,
            message_type=row["message_type"],
            payload=json.loads(row["payload"]),
            error=row["error"],
            error_type=row["error_type"],
            attempts=int(row["attempts"]),
            was_ask=bool(row["was_ask"]),
            correlation_id=row["correlation_id"],
            trace_id=row["trace_id"],
            created_at=datetime.fromisoformat(row["created_at"]),
        )
