"""Request counts and latencies by operation, in the Prometheus text format."""

from __future__ import annotations

import bisect
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Counters per (operation, outcome) and a latency histogram per operation."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, operation: str, outcome: str, seconds: float) -> None:
        self.requests[(operation, outcome)] += 1
        self.buckets[operation][bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[operation] += seconds

    def render(self) -> str:
        lines = [
            "# HELP synapsex_gateway_requests_total GraphQL requests by operation and outcome.",
            "# TYPE synapsex_gateway_requests_total counter",
        ]
        for (operation, outcome), count in sorted(self.requests.items()):
            lines.append(
                f'synapsex_gateway_requests_total{{operation="{_esc(operation)}",'
                f'outcome="{outcome}"}} {count}'
            )
        lines += [
            "# HELP synapsex_gateway_request_duration_seconds GraphQL request latency.",
            "# TYPE synapsex_gateway_request_duration_seconds histogram",
        ]
        for operation, counts in sorted(self.buckets.items()):
            label = f'operation="{_esc(operation)}"'
            cumulative = 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(
                    f'synapsex_gateway_request_duration_seconds_bucket{{{label},le="{le}"}} '
                    f"{cumulative}"
                )
            lines.append(
                f"synapsex_gateway_request_duration_seconds_sum{{{label}}} {self.sums[operation]}"
            )
            lines.append(f"synapsex_gateway_request_duration_seconds_count{{{label}}} {cumulative}")
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
