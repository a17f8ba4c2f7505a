"""Shared bits of the benchmark scripts: the reference-scale sample and timing of CLI runs."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REFERENCE = {"users": 1_700_000, "items": 90_000, "ratings": 2_000_000, "products": 94_000}
RECSYS = [sys.executable, "-m", "recsys"]


def reference_sample(data: Path, seed: int = 42) -> tuple[Path, Path]:
    """The gzipped reference-scale sample in `data`, generated once and reused."""
    reviews, meta = data / "reviews.jsonl.gz", data / "meta.jsonl.gz"
    if not (reviews.exists() and meta.exists()):
        from recsys.ingest.sample import generate_sample

        print(f"generating the reference sample in {data} ...", flush=True)
        generate_sample(data, seed=seed, gzip=True, **REFERENCE)
    return reviews, meta


def run_cli(args: list[str], env: dict[str, str] | None = None) -> tuple[float, dict, int]:
    """(wall seconds, parsed --json output, peak RSS of the child in bytes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        RECSYS + args, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"recsys {' '.join(args)} failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far; fine for one child per call,
    # reported as this run's peak only when it grew (earlier children were smaller).
    output = json.loads(proc.stdout) if "--json" in args else {}
    return seconds, output, max(peak, before) * 1024


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"
