"""Per-actor counters and their frozen snapshot, plus the Prometheus text rendering."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class Counters:
    """Mutable counters of one supervised child; only its own task writes them."""

    __slots__ = ("errors", "expired", "failed", "handled", "handling_seconds", "restarts")

    def __init__(self) -> None:
        self.handled = 0  # messages answered (including contract errors)
        self.errors = 0  # of those, answered with a contract error
        self.failed = 0  # unexpected exceptions (each crashed the actor)
        self.expired = 0  # asks skipped because the asker had given up
        self.restarts = 0
        self.handling_seconds = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorStatistics:
    """A snapshot of one actor: state, mailbox depth and counters."""

    service: str
    state: str
    mailbox_depth: int
    mailbox_capacity: int
    handled: int
    errors: int
    failed: int
    expired: int
    restarts: int
    handling_seconds: float


_METRICS = (
    ("mailbox_depth", "gauge", "Messages waiting in the mailbox."),
    ("handled", "counter", "Messages handled (answered), including contract errors."),
    ("errors", "counter", "Messages answered with a contract error."),
    ("failed", "counter", "Messages whose handler raised unexpectedly (each crashed the actor)."),
    ("expired", "counter", "Asks skipped because the asker had already given up."),
    ("restarts", "counter", "Supervised restarts."),
    ("handling_seconds", "counter", "Time spent in handlers."),
)


def render_prometheus(stats: Iterable[ActorStatistics]) -> str:
    """The statistics in the Prometheus text exposition format (version 0.0.4)."""
    stats = list(stats)
    lines: list[str] = []
    for name, kind, help_text in _METRICS:
        metric = f"synapsex_actor_{name}" + ("_total" if kind == "counter" else "")
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")
        for s in stats:
            lines.append(f'{metric}{{service="{s.service}"}} {getattr(s, name)}')
    lines.append("# HELP synapsex_actor_up 1 when the actor is running.")
    lines.append("# TYPE synapsex_actor_up gauge")
    for s in stats:
        lines.append(f'synapsex_actor_up{{service="{s.service}"}} {int(s.state == "running")}')
    return "\n".join(lines) + "\n"
