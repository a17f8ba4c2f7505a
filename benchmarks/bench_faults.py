"""The server under faults (issue 11): latency while a big ingest writes into the served store, the
ratings-only catalog cliff, and a long schemathesis run. Each part prints its figures side by side
with its reference measured in the same run.

    python benchmarks/bench_faults.py [--part ingest,catalog,schemathesis] [--work DIR]
        [--ingest-reviews 1000000] [--base-ratings 150000] [--duration S] [--clients 16]
        [--schemathesis-examples 1000] [--before DIR]

ingest:       probes (one client per route, 5 req/s: /status, /matrix_factor/similar, keyword
              /search) plus 2 back-to-back load clients (similar, keyword search), first idle,
              then while `recsys ingest` of a fresh `recsys sample` (reviews + catalog) runs
              against the served SQLite store. p50 / p99 / max / failed per route, idle vs ingest.
catalog:      /matrix_factor/similar req/s on a ratings-only store, on the same store with its
              catalog, and a bare Litestar handler (benchmarks/bench_http.py's floor), each twice
              (forward, then reverse order), one run; plus the in-process cost of the service call.
              --before DIR adds the ratings-only store served by older code (before/after).
schemathesis: `schemathesis run` (all checks, examples + coverage + fuzzing) with
              --max-examples per operation against the served store (both training locks held,
              so generated POST /training bodies get the documented 409); prints the case count
              and failures.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_http import (  # noqa: E402
    HEADER,
    Server,
    free_port,
    load,
    request_bodies,
    row,
    start,
)

from common import RECSYS  # noqa: E402


def recsys(*args: str) -> str:
    proc = subprocess.run([*RECSYS, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"recsys {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def sample(folder: Path, ratings: int, seed: int) -> tuple[Path, Path]:
    reviews, meta = folder / "reviews.jsonl.gz", folder / "meta.jsonl.gz"
    if not reviews.exists():
        users, items = max(1000, ratings * 2 // 5), max(300, ratings // 33)
        print(f"generating {ratings:,} reviews in {folder} ...", flush=True)
        recsys("sample", str(folder), f"--users={users}", f"--items={items}",
               f"--ratings={ratings}", f"--products={items + items // 30}", f"--seed={seed}",
               "--gzip")  # fmt: skip
    return reviews, meta


def home_with(home: Path, files: list[Path]) -> Path:
    if not (home / "models" / "mf" / "current").exists():
        print(f"ingesting {', '.join(f.name for f in files)} into {home} and training mf ...")
        recsys("--home", str(home), "ingest", *map(str, files), "-q")
        recsys("--home", str(home), "train", "mf", "-q")
    return home


def serve(home: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    cmd = [*RECSYS, "--home", str(home), "serve", "--port", str(port), *extra]
    return start(cmd, port, "/health/ready", log, env=env)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---- part 1: latency while an ingest runs ------------------------------------------------------
class Probe(threading.Thread):
    """One keep-alive client on one route; `pause` seconds between requests (0: back to back).
    Records (time, latency ms, ok) per request."""

    def __init__(self, name: str, url: str, method: str, path: str, bodies: list, pause: float):
        super().__init__(daemon=True)
        self.name_, self.url, self.method, self.path = name, url, method, path
        self.bodies, self.pause = bodies, pause
        self.stop = threading.Event()
        self.seen: list[tuple[float, float, bool]] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                body = self.bodies[i % len(self.bodies)] if self.bodies else None
                i += 1
                started = time.perf_counter()
                try:
                    ok = client.request(self.method, self.path, json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.seen.append((time.monotonic(), (time.perf_counter() - started) * 1000, ok))
                if self.pause:
                    self.stop.wait(self.pause)


def summarize(seen: list[tuple[float, float, bool]], since: float, until: float) -> str:
    window = [(ms, ok) for t, ms, ok in seen if since <= t <= until]
    if not window:
        return f"{'-':>28}"
    lat = sorted(ms for ms, _ in window)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    failed = sum(not ok for _, ok in window)
    return f"{len(lat):>6} {lat[len(lat) // 2]:>7.1f} {p99:>8.1f} {lat[-1]:>8.1f} {failed:>4}"


def part_ingest(work: Path, base_ratings: int, ingest_reviews: int, idle_seconds: float) -> None:
    base = sample(work / "base-data", base_ratings, seed=1)
    big_reviews, big_meta = sample(work / f"ingest-data-{ingest_reviews}", ingest_reviews, seed=7)
    home = work / "ingest-home"
    if home.exists():  # a fresh copy of the served store every run: the ingest changes it
        subprocess.run(["rm", "-rf", str(home)], check=True)
    home_with(home, [base[1], base[0]])
    bodies = request_bodies(home)
    server = serve(home, work / "ingest-server.log")
    keyword = [{"query": b["query"], "top_k": 10, "mode": "keyword"} for b in bodies["/search"]]
    similar = bodies["/matrix_factor/similar"]
    probes = [
        Probe("/status (probe)", server.url, "GET", "/status", [], 0.2),
        Probe("similar (probe)", server.url, "POST", "/matrix_factor/similar", similar, 0.2),
        Probe("keyword (probe)", server.url, "POST", "/search", keyword, 0.2),
        Probe("similar (load)", server.url, "POST", "/matrix_factor/similar", similar, 0),
        Probe("keyword (load)", server.url, "POST", "/search", keyword, 0),
    ]
    try:
        for probe in probes:
            probe.start()
        t0 = time.monotonic()
        time.sleep(idle_seconds)
        t1 = time.monotonic()
        print(f"ingesting {ingest_reviews:,} reviews + their catalog into the served store "
              f"(load average before: {loadavg()}) ...", flush=True)  # fmt: skip
        recsys("--home", str(home), "ingest", str(big_meta), str(big_reviews), "-q")
        t2 = time.monotonic()
        load_during = loadavg()
        time.sleep(1)
    finally:
        for probe in probes:
            probe.stop.set()
        for probe in probes:
            probe.join()
        server.stop()
    print(f"\nidle {t1 - t0:.0f} s, then the ingest: {t2 - t1:.0f} s (load average at its end: "
          f"{load_during}); latency in ms")  # fmt: skip
    head = f"{'n':>6} {'p50':>7} {'p99':>8} {'max':>8} {'fail':>4}"
    print(f"{'route':<18} | {'idle':^37} | {'during the ingest':^37}")
    print(f"{'':<18} | {head} | {head}")
    for probe in probes:
        print(f"{probe.name_:<18} | {summarize(probe.seen, t0, t1)} | "
              f"{summarize(probe.seen, t1, t2)}")  # fmt: skip
    log = (work / "ingest-server.log").read_text()
    print(f"server log: {log.count('Traceback')} tracebacks, "
          f"{_server_errors(log)} 5xx access lines (readiness polls at start-up excluded)")  # fmt: skip


def _server_errors(log: str) -> int:
    return len([line for line in log.splitlines()
                if re.search(r" 5[0-9][0-9] ", line) and "/health/ready" not in line])  # fmt: skip


# ---- part 2: the ratings-only cliff ------------------------------------------------------------
def part_catalog(
    work: Path, base_ratings: int, clients: int, seconds: float, before: Path | None
) -> None:
    reviews, meta = sample(work / "base-data", base_ratings, seed=1)
    ratings_only = home_with(work / "ratings-only-home", [reviews])
    with_catalog = home_with(work / "catalog-home", [meta, reviews])
    bodies = request_bodies(with_catalog)["/matrix_factor/similar"]
    port = free_port()
    bare = start(
        [sys.executable, "-m", "uvicorn", "bench_http:bare_app", "--factory", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        port, "/bare", work / "bare.log", env={"PYTHONPATH": str(HERE)},
    )  # fmt: skip
    servers = {
        "ratings-only store": serve(ratings_only, work / "ratings-only.log"),
        "store with catalog": serve(with_catalog, work / "catalog.log"),
    }
    if before is not None:  # the same ratings-only store served by an older checkout's code
        servers["ratings-only, --before"] = serve(
            ratings_only, work / "before.log", env={"PYTHONPATH": str(before)}
        )
    results: dict[str, list] = {name: [] for name in ("bare litestar", *servers)}
    print(f"\n/matrix_factor/similar, {clients} clients, {seconds:.0f} s each, twice, "
          f"interleaved (load average: {loadavg()})")  # fmt: skip
    print(HEADER)
    try:
        for server in servers.values():
            load("python", server.url, "/matrix_factor/similar", bodies, 8, 2)  # warm-up
        order = [("bare litestar", bare, "/bare")] + [
            (name, server, "/matrix_factor/similar") for name, server in servers.items()
        ]
        for round_ in range(2):  # the second round in reverse order: drift hits all alike
            for name, server, path in order if round_ == 0 else order[::-1]:
                r = load("python", server.url, path, bodies, clients, seconds)
                results[name].append(r)
                print(row(name, clients, r), flush=True)
    finally:
        bare.stop()
        for server in servers.values():
            server.stop()
    in_process(ratings_only, with_catalog, bodies, before)
    rps = {name: statistics.mean(r.rps for r in rs) for name, rs in results.items()}
    only, cat, floor = rps["ratings-only store"], rps["store with catalog"], rps["bare litestar"]
    print(f"mean req/s: ratings-only {only:,.0f}, with catalog {cat:,.0f}, bare {floor:,.0f}; "
          f"ratings-only = {only / cat:.0%} of with-catalog (goal >= 90%), "
          f"{only / floor:.2f}x bare (goal >= 0.5x); failed: "
          f"{sum(r.failed for rs in results.values() for r in rs)}")  # fmt: skip


IN_PROCESS = """
import json, math, sys, time
from dataclasses import replace
from recsys import service
from recsys.config import Settings
from recsys.store import catalog_cache
settings = Settings()
settings.paths.home = sys.argv[1]
settings = replace(settings, server=replace(settings.server, reload_check_seconds=math.inf))
catalog_cache.enable(service.engine_for(settings)).refresh()  # as the server does
items = [b["item_id"] for b in json.loads(sys.stdin.read())]
for item in items:
    service.similar_items(settings, item)
best = math.inf
for _ in range(5):
    started = time.perf_counter()
    for i in range(2000):
        service.similar_items(settings, items[i % len(items)], n=10)
    best = min(best, (time.perf_counter() - started) / 2000)
print(f"{best * 1e6:.0f}")
"""


def in_process(ratings_only: Path, with_catalog: Path, bodies: list, before: Path | None) -> None:
    """The service call alone (no HTTP, best of 5 x 2,000 calls): steadier than req/s here."""
    runs = [("ratings-only store", ratings_only, None), ("store with catalog", with_catalog, None)]
    if before is not None:
        runs.append(("ratings-only, --before", ratings_only, before))
    cost = {}
    for name, home, code in runs:
        env = {**os.environ, **({"PYTHONPATH": str(code)} if code else {})}
        cost[name] = subprocess.run(
            [sys.executable, "-c", IN_PROCESS, str(home)], input=json.dumps(bodies[:300]),
            capture_output=True, text=True, check=True, env=env,
        ).stdout.strip()  # fmt: skip
    print("in process, similar_items with the server's catalog snapshot: "
          + ", ".join(f"{name} {us} us/call" for name, us in cost.items()))  # fmt: skip


# ---- part 3: schemathesis ----------------------------------------------------------------------
KEY = "bench-key"


def part_schemathesis(work: Path, base_ratings: int, examples: int) -> None:
    reviews, meta = sample(work / "base-data", base_ratings, seed=1)
    home = home_with(work / "catalog-home", [meta, reviews])
    jobs = home / "jobs"
    jobs.mkdir(exist_ok=True)
    config = work / "schemathesis.toml"
    config.write_text(
        '[[operations]]\ninclude-path-regex = "^/(matrix_factor|search)"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409"]\n'
    )  # the same configuration as tests/test_http_live.py
    with ExitStack() as stack:
        for kind in ("mf", "ss"):
            lock = stack.enter_context(open(jobs / f"{kind}.lock", "w"))
            fcntl.flock(lock, fcntl.LOCK_EX)
        server = serve(home, work / "schemathesis-server.log", env={"RECSYS_API_KEY": KEY})
        try:
            print(f"\nschemathesis, --max-examples {examples} per operation "
                  f"(load average: {loadavg()}) ...", flush=True)  # fmt: skip
            started = time.perf_counter()
            proc = subprocess.run(
                [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
                 "run", f"{server.url}/schema/openapi.json", "--checks", "all", "--seed", "11",
                 "--generation-database", "none", "--phases", "examples,coverage,fuzzing",
                 "--workers", "2", "--no-color", "--max-examples", str(examples),
                 "--header", f"X-API-Key: {KEY}"],
                capture_output=True, text=True, cwd=work,
            )  # fmt: skip
            seconds = time.perf_counter() - started
        finally:
            server.stop()
    out = proc.stdout
    summary = [line for line in out.splitlines() if re.search(r"test cases|passed|failed", line)]
    print("\n".join(summary[-6:]) or out[-3000:])
    cases = re.search(r"(\d[\d,]*) generated", out) or re.search(r"(\d[\d,]*) test cases", out)
    log = (work / "schemathesis-server.log").read_text()
    print(f"schemathesis exit {proc.returncode} in {seconds:.0f} s; cases: "
          f"{cases.group(1) if cases else '?'}; server log: {log.count('Traceback')} tracebacks, "
          f"{_server_errors(log)} 5xx access lines (readiness polls at start-up excluded)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="ingest,catalog,schemathesis")
    parser.add_argument("--work", type=Path, default=Path("/tmp/recsys-bench-faults"))
    parser.add_argument("--base-ratings", type=int, default=150_000)
    parser.add_argument("--ingest-reviews", type=int, default=1_000_000)
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load measurement")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--schemathesis-examples", type=int, default=1000)
    parser.add_argument(
        "--before", type=Path,
        help="catalog part: also serve the ratings-only store with the recsys package found in "
        "this folder (e.g. `git archive <commit> recsys | tar -x -C DIR`), for a before/after",
    )  # fmt: skip
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    # Children run from the work folder: from the repository root, `python -m recsys` would
    # import ./recsys ahead of PYTHONPATH, and --before would measure this checkout twice.
    args.before = args.before.resolve() if args.before else None
    args.work = args.work.resolve()
    os.chdir(args.work)
    parts = args.part.split(",")
    print(f"cores: {os.cpu_count()}; load average at start: {loadavg()}; work folder {args.work}")
    if "catalog" in parts:
        part_catalog(args.work, args.base_ratings, args.clients, args.duration, args.before)
    if "ingest" in parts:
        part_ingest(args.work, args.base_ratings, args.ingest_reviews, args.idle_seconds)
    if "schemathesis" in parts:
        part_schemathesis(args.work, args.base_ratings, args.schemathesis_examples)


if __name__ == "__main__":
    main()
