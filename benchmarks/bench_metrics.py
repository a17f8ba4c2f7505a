"""Per-request cost of the /metrics bookkeeping: prometheus_client (in-process and multiprocess
mode, as `recsys serve` runs it) against the hand-written counters it replaced, in one run.

    python benchmarks/bench_metrics.py [--requests N]

Each request calls `Metrics.observe(route, method, status, seconds)` once; the figure is the
median over 5 rounds of N observations spread over 12 (route, method, status) series, like a
server's traffic. The scrape (`render`) is timed too: it runs once per scrape, not per request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SERIES = [
    (route, method, status)
    for route, method in [("/matrix_factor/similar", "POST"), ("/matrix_factor/user", "POST"),
                          ("/search", "POST"), ("/status", "GET")]
    for status in (200, 400, 404)
]  # fmt: skip


class HandWritten:
    """The counters /metrics used before prometheus_client (recsys/http/metrics.py until then):
    plain dicts, one worker's requests only."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[tuple[str, str], list] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.durations.get((route, method))
        if hist is None:
            hist = self.durations[(route, method)] = [[0] * len(BUCKETS), 0.0, 0]
        hist[1] += seconds
        hist[2] += 1
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                hist[0][i] += 1
                break


def per_observe_us(metrics, n: int) -> float:  # type: ignore[no-untyped-def]
    calls = [(*SERIES[i % len(SERIES)], 0.0004 * (1 + i % 30)) for i in range(n)]
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for route, method, status, seconds in calls:
            metrics.observe(route, method, status, seconds)
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(rounds)


def render_ms(metrics) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for _ in range(20):
        metrics.render(models={"mf": "v1", "ss": "v1"}, jobs={"running": 0}, ready=True)
    return (time.perf_counter() - started) / 20 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    from recsys.server.metrics import MULTIPROC_ENV, Metrics

    os.environ.pop(MULTIPROC_ENV, None)
    baseline = per_observe_us(HandWritten(), args.requests)
    in_process = Metrics()
    single = per_observe_us(in_process, args.requests)
    single_render = render_ms(in_process)
    folder = tempfile.mkdtemp(prefix="bench-metrics-")
    try:
        os.environ[MULTIPROC_ENV] = folder
        shared = Metrics()
        multi = per_observe_us(shared, args.requests)
        multi_render = render_ms(shared)
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"Per-request metrics cost, median of 5 x {args.requests:,} observations, 12 series:")
    print(f"  hand-written dict counters (before):       {baseline:6.2f} us / request")
    print(f"  prometheus_client, one process:            {single:6.2f} us / request "
          f"({single / baseline:.1f}x)   scrape {single_render:.2f} ms")  # fmt: skip
    print(f"  prometheus_client, multiprocess (serve):   {multi:6.2f} us / request "
          f"({multi / baseline:.1f}x)   scrape {multi_render:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
