"""The ingest fuzzer of the test suite (tests/ingest_fuzz.py), run for as long as asked.

    python benchmarks/fuzz_ingest.py [--minutes 30] [--seed 1] [--no-postgres] [--out DIR]

Cycles through every format, alternating SQLite and a throwaway PostgreSQL cluster, and prints
per format and backend: cases, crashes (an exception the CLI would show as a traceback),
violations (a good line lost, a record not counted, a last-resort `unreadable:` reason), runs
stopped by the case's own --max-errors, and the bad-line reasons seen. Each distinct crash or
violation is saved under --out with its input. (No peer library takes these files, so there is
no side-by-side figure: the figure is the count of crashes, which the issue wants at 0.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

import pgcluster  # noqa: E402
from ingest_fuzz import FORMATS, Fuzzer, run_case, settings_for  # noqa: E402


def _pg_database(base_url: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


def _round(fuzzer, backends, settings, work, number, stats, reasons, unique, out) -> int:
    """One case of every format on every backend; returns the last case number."""
    for fmt in FORMATS:
        for backend in backends:
            number += 1
            case = fuzzer.case(fmt, f"{number}")
            outcome = run_case(case, settings[backend], work)
            counts = stats[(fmt, backend)]
            counts["cases"] += 1
            counts[outcome.kind] += 1
            reasons.update(outcome.reasons)
            if outcome.kind in ("crash", "violation"):
                key = (fmt, outcome.kind, outcome.signature)
                if key not in unique:
                    saved = out / f"{fmt}-{backend}-{outcome.kind}-{len(unique)}.bin"
                    saved.write_bytes(case.data)
                    unique[key] = {"format": fmt, "backend": backend, "kind": outcome.kind,
                                   "detail": outcome.detail, "file": str(saved)}  # fmt: skip
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="recsys-fuzz-"))
    fuzzer = Fuzzer(args.seed)
    stats: dict[tuple[str, str], Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    unique: dict[tuple, dict] = {}
    with contextlib.ExitStack() as stack:
        backends = {"sqlite": f"sqlite:///{work / 'fuzz.db'}"}
        if not args.no_postgres and pgcluster.available() is None:
            backends["postgresql"] = _pg_database(stack.enter_context(pgcluster.pg_cluster()))
        settings = {name: settings_for(url) for name, url in backends.items()}
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        started = time.monotonic()
        deadline = started + args.minutes * 60
        number = 0
        last_print = time.monotonic()
        # SIGTERM stops the run like Ctrl-C: the figures so far are printed, the cluster stopped
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            while time.monotonic() < deadline:
                number = _round(
                    fuzzer, backends, settings, work, number, stats, reasons, unique, args.out
                )
                if time.monotonic() - last_print > 300:
                    last_print = time.monotonic()
                    total = sum((c for c in stats.values()), Counter())
                    print(f"... {total['cases']:,} cases, {total['crash']} crashes, "
                          f"{total['violation']} violations", flush=True)  # fmt: skip
    print(f"{'format':<14}{'backend':<12}{'cases':>8}{'crashes':>9}{'violations':>12}"
          f"{'aborted':>9}")  # fmt: skip
    for (fmt, backend), c in sorted(stats.items()):
        print(f"{fmt:<14}{backend:<12}{c['cases']:>8,}{c['crash']:>9}{c['violation']:>12}"
              f"{c['aborted']:>9}")  # fmt: skip
    total = sum((c for c in stats.values()), Counter())
    print(f"{'TOTAL':<26}{total['cases']:>8,}{total['crash']:>9}{total['violation']:>12}"
          f"{total['aborted']:>9}  in {(time.monotonic() - started) / 60:.1f} min, seed {args.seed}")  # fmt: skip
    print("bad-line reasons seen:", ", ".join(f"{r} {n:,}" for r, n in reasons.most_common()))
    for found in unique.values():
        print(json.dumps(found))
    summary = {"stats": {f"{f}/{b}": dict(c) for (f, b), c in stats.items()},
               "total": dict(total), "reasons": dict(reasons), "unique": list(unique.values())}  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
