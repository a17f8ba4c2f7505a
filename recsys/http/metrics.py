"""A tiny Prometheus text exposition: request counters and latency histograms, plus gauges the app
fills at scrape time (live model versions, training jobs, readiness).

Counters live in plain dicts: they are only touched from the event loop thread of one worker, so
no lock is needed. With several uvicorn workers each process counts its own requests (a scrape
sees one worker, told apart by the `recsys_worker_pid` gauge), the usual trade-off without a
shared-memory client library.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

# Latency buckets in seconds: the model endpoints answer in about a millisecond, search in ~10 ms.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(**labels: str) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{esc(str(v))}"' for k, v in labels.items()) + "}"


class _Histogram:
    __slots__ = ("counts", "sum", "count")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        self.count += 1
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[tuple[str, str], _Histogram] = {}
        self.started = time.time()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.durations.get((route, method))
        if hist is None:
            hist = self.durations[(route, method)] = _Histogram()
        hist.observe(seconds)

    def render(
        self,
        *,
        models: dict[str, str | None],
        jobs: dict[str, int],
        ready: bool,
    ) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help: str, samples: Iterable[str]) -> None:
            lines.append(f"# HELP {name} {help}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)

        family(
            "recsys_http_requests_total", "counter", "HTTP requests by route, method and status",
            (
                f"recsys_http_requests_total{_labels(route=r, method=m, status=str(s))} {n}"
                for (r, m, s), n in sorted(self.requests.items())
            ),
        )  # fmt: skip
        samples = []
        for (route, method), hist in sorted(self.durations.items()):
            cumulative = 0
            for bound, n in zip(BUCKETS, hist.counts, strict=True):
                cumulative += n
                le = _labels(route=route, method=method, le=repr(bound))
                samples.append(f"recsys_http_request_duration_seconds_bucket{le} {cumulative}")
            inf = _labels(route=route, method=method, le="+Inf")
            base = _labels(route=route, method=method)
            samples += [
                f"recsys_http_request_duration_seconds_bucket{inf} {hist.count}",
                f"recsys_http_request_duration_seconds_sum{base} {hist.sum:.6f}",
                f"recsys_http_request_duration_seconds_count{base} {hist.count}",
            ]
        family(
            "recsys_http_request_duration_seconds", "histogram",
            "time from request start to the last body byte sent", samples,
        )  # fmt: skip
        family(
            "recsys_model_info", "gauge", "the model version this worker answers with (1 = live)",
            (
                f"recsys_model_info{_labels(kind=kind, version=version)} 1"
                for kind, version in sorted(models.items()) if version
            ),
        )  # fmt: skip
        family(
            "recsys_training_jobs", "gauge", "training jobs recorded in the data home, by state",
            (f"recsys_training_jobs{_labels(state=s)} {n}" for s, n in sorted(jobs.items())),
        )  # fmt: skip
        family(
            "recsys_ready",
            "gauge",
            "1 when /health/ready answers 200",
            [f"recsys_ready {int(ready)}"],
        )
        family(
            "recsys_worker_pid", "gauge", "the worker process that answered this scrape",
            [f"recsys_worker_pid {os.getpid()}"],
        )  # fmt: skip
        family(
            "recsys_process_start_time_seconds", "gauge", "start time of this worker (unix epoch)",
            [f"recsys_process_start_time_seconds {self.started:.3f}"],
        )  # fmt: skip
        return "\n".join(lines) + "\n"
