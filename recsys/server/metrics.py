"""Prometheus metrics through `prometheus_client`: request counters and latency histograms, plus
gauges the app fills at scrape time (live model versions, training jobs, readiness).

With several uvicorn workers a scrape reaches one of them, so request metrics live in
prometheus_client's multiprocess mode: `recsys serve` points PROMETHEUS_MULTIPROC_DIR at a fresh
directory before the workers start, each worker writes its counts to its own memory-mapped files
there, and any worker's scrape sums every worker's (tested with 2 workers). Without that variable
(tests, `serve --get`) the counts live in this process's own registry. The scrape-time gauges
describe the worker that answered (`recsys_worker_pid`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric

disable_created_metrics()  # no `_created` series: the worker start time gauge says it once

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets in seconds: the model endpoints answer in about a millisecond, search in ~10 ms.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _WorkerGauges:
    """A collector of this worker's scrape-time gauges (set just before each scrape)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.models: dict[str, str | None] = {}
        self.jobs: dict[str, int] = {}
        self.ready = False

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "recsys_model_info", "the model version this worker answers with (1 = live)",
            labels=["kind", "version"],
        )  # fmt: skip
        for kind, version in sorted(self.models.items()):
            if version:
                info.add_metric([kind, version], 1)
        jobs = GaugeMetricFamily(
            "recsys_training_jobs", "training jobs recorded in the data home, by state",
            labels=["state"],
        )  # fmt: skip
        for state, n in sorted(self.jobs.items()):
            jobs.add_metric([state], n)
        yield info
        yield jobs
        yield GaugeMetricFamily("recsys_ready", "1 when /health/ready answers 200", int(self.ready))
        yield GaugeMetricFamily(
            "recsys_worker_pid", "the worker process that answered this scrape", os.getpid()
        )
        yield GaugeMetricFamily(
            "recsys_process_start_time_seconds", "start time of this worker (unix epoch)",
            self.started,
        )  # fmt: skip


class Metrics:
    """One per app (worker). `observe` is on every request's path: the labelled children are
    looked up once per (route, method, status) and kept, so a request costs a dict lookup and
    two increments (benchmarks/bench_metrics.py measures it against the hand-written counters
    this replaced)."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir()
        # prometheus_client picks file-backed values when first imported; the variable may have
        # been set after that (one worker runs in the `recsys serve` process itself)
        values.ValueClass = values.get_value_class()
        # In multiprocess mode the values go to files and are read back by the collector below;
        # otherwise a registry per app keeps test apps apart.
        self._own = None if self.multiprocess else CollectorRegistry()
        self.requests = Counter(
            "recsys_http_requests", "HTTP requests by route, method and status",
            ["route", "method", "status"], registry=self._own,
        )  # fmt: skip
        self.durations = Histogram(
            "recsys_http_request_duration_seconds",
            "time from request start to the last body byte sent",
            ["route", "method"], buckets=BUCKETS, registry=self._own,
        )  # fmt: skip
        self._children: dict[tuple[str, str, int], tuple[object, object]] = {}
        self.gauges = _WorkerGauges(time.time())

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.durations.labels(route, method),
            )
        counter, histogram = children
        counter.inc()  # type: ignore[attr-defined]
        histogram.observe(seconds)  # type: ignore[attr-defined]

    def render(self, *, models: dict[str, str | None], jobs: dict[str, int], ready: bool) -> str:
        """The text exposition: every worker's request metrics, this worker's gauges."""
        self.gauges.models, self.gauges.jobs, self.gauges.ready = dict(models), dict(jobs), ready
        registry = CollectorRegistry()
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry, path=self.multiprocess)
        else:
            registry.register(_Forward(self._own))
        registry.register(self.gauges)
        return generate_latest(registry).decode("utf-8")


class _Forward:
    """Collects another registry's metrics (this app's own, outside multiprocess mode)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect() if self.registry is not None else []
