"""Pieces several services' contracts use: pages, secret fields, field checks."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message

T = TypeVar("T")

MAX_PAGE_SIZE = 100
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def secret_field() -> Any:
    """A message field that is never logged nor stored in dead letters (shown as ``***``)."""
    return dataclasses.field(metadata={"secret": True}, repr=False)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a list, oldest first; ``end_cursor`` is passed as ``after`` for the next."""

    items: tuple[T, ...]
    has_next_page: bool
    end_cursor: str | None


class PageRequest(Message, abstract=True):
    """Base of list messages: ``first`` items (1..100) after the cursor ``after``."""

    first: int = 50
    after: str | None = None

    def validate(self) -> None:
        if not 1 <= self.first <= MAX_PAGE_SIZE:
            raise InvalidInput("first", f"must be between 1 and {MAX_PAGE_SIZE}")


def check_text(value: str, field: str, *, max_length: int, min_length: int = 1) -> None:
    """A trimmed, non-empty string of at most ``max_length`` characters."""
    if value != value.strip():
        raise InvalidInput(field, "must not start or end with white space")
    if len(value) < min_length:
        raise InvalidInput(field, "must not be empty" if min_length == 1 else "is too short")
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")


def check_email(value: str, field: str = "email") -> None:
    if len(value) > 254 or not _EMAIL_RE.match(value):
        raise InvalidInput(field, "is not an email address")


def check_choice(value: str, choices: tuple[str, ...], field: str) -> None:
    if value not in choices:
        raise InvalidInput(field, f"must be one of {', '.join(choices)}")


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a time without an offset is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
