"""Shared bits of the benchmark scripts: the reference-scale sample and timing of CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = {"users": 1_700_000, "items": 90_000, "ratings": 2_000_000, "products": 94_000}
RECSYS = [sys.executable, "-m", "recsys"]


def timed(fn, inputs, warmup: int = 50) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds of fn(x) for each x of `inputs`, after `warmup` untimed calls."""
    for x in inputs[:warmup]:
        fn(x)
    samples = []
    for x in inputs:
        t = time.perf_counter()
        fn(x)
        samples.append(time.perf_counter() - t)
    return samples


def reference_sample(data: Path, seed: int = 42) -> tuple[Path, Path]:
    """The gzipped reference-scale sample in `data`, generated once and reused."""
    reviews, meta = data / "reviews.jsonl.gz", data / "meta.jsonl.gz"
    if not (reviews.exists() and meta.exists()):
        from recsys.ingest.sample import generate_sample

        print(f"generating the reference sample in {data} ...", flush=True)
        generate_sample(data, seed=seed, gzip=True, **REFERENCE)
    return reviews, meta


def run_cli(args: list[str], env: dict[str, str] | None = None) -> tuple[float, dict, int]:
    """(wall seconds, parsed --json output, peak RSS of that child process in bytes)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            RECSYS + args, stdout=out, stderr=err, env={**os.environ, **(env or {})}
        )
        _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this one child
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"recsys {' '.join(args)} failed:\n{err.read()}")
        output = json.loads(out.read()) if "--json" in args else {}
    return seconds, output, usage.ru_maxrss * 1024


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"
