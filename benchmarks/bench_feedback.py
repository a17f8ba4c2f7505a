"""Feedback over HTTP at reference scale: events/s, write latency, and what writes cost the
readers, on SQLite and PostgreSQL, next to the bare database doing the same upserts.

    python benchmarks/bench_feedback.py [--home DIR] [--data DIR] [--seconds S] [--no-postgres]

--home: a data home holding the reference sample and a trained `als` (e.g. the one
bench_http.py fills); it is never written: the store is copied, the models are hard-linked into a
temporary home. PostgreSQL: a throwaway cluster (tests/pgcluster.py) gets the same ratings by
`recsys ingest --db` (a few minutes) and the server reads the same models.

Printed per backend, one `recsys serve` worker:
- live history: the store query a user answer now makes (user_item_rating by user_id), p50/p99 in
  process, and one full user answer in process (the query's share of it);
- POST /feedback with batches of 100 events and with single events: events/s, p50/p99 per call,
  next to the bare database upserting the same events (SQLite: one INSERT .. ON CONFLICT per
  batch, executemany; PostgreSQL: the same through psycopg);
- /matrix_factor/user and /recommendations/user p99 idle, then while a second client writes
  single feedback events at 200 events/s (goal: at most 2x idle, 0 failed requests);
- the next request after a feedback call reflects it (checked for every one of 20 calls).
Goals from the issue: >= 5,000 events/s batched, single-event p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from bench_http import free_port, load, start  # noqa: E402

from common import RECSYS  # noqa: E402

GOAL_BATCH_EPS, GOAL_SINGLE_P99_MS = 5_000, 20.0
GENERATOR = "wrk" if shutil.which("wrk") else "python"


def working_home(source: Path, into: Path) -> Path:
    """A home with a copy of `source`'s store and its models hard-linked (read only)."""
    home = into / "home"
    home.mkdir(parents=True)
    print(f"copying the store of {source} ...", flush=True)
    with sqlite3.connect(source / "recsys.db") as src, sqlite3.connect(home / "recsys.db") as dst:
        src.backup(dst)
    shutil.copytree(source / "models", home / "models", copy_function=os.link)
    return home


def sample_ids(home: Path) -> tuple[list[str], list[str]]:
    with sqlite3.connect(home / "recsys.db") as db:
        items = [r[0] for r in db.execute("select item_id from product_catalog limit 50000")]
        users = [
            r[0]
            for r in db.execute(
                "select user_id from user_item_rating group by user_id having count(*) >= 2 "
                "limit 5000"
            )
        ]
    return items, users


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---- in process ------------------------------------------------------------------------------
def live_history_cost(home: Path, db: list[str], users: list[str]) -> str:
    """The store query a user answer makes, and a whole user answer, in process (ms)."""
    code = f"""
import json, sys, time
from recsys.config import load_settings
from recsys.service import recommend_user, engine_for
from sqlalchemy import select
from recsys.store.tables import user_item_rating as t
settings = load_settings(overrides={{"paths.home": {str(home)!r}, "store.url": {db[1] if db else ""!r}}})
users = json.loads(sys.stdin.read())
engine = engine_for(settings)
recommend_user(settings, users[0], 10, model="als")  # load the model
q, a = [], []
for u in users:
    s = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(select(t.c.item_id, t.c.rating).where(t.c.user_id == u)).all()
    q.append((time.perf_counter() - s) * 1000)
    s = time.perf_counter()
    recommend_user(settings, u, 10, model="als")
    a.append((time.perf_counter() - s) * 1000)
print(json.dumps([q, a]))
"""
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(users[:300]),
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        return f"live history: failed: {proc.stderr[-800:]}"
    q, a = json.loads(proc.stdout.strip().splitlines()[-1])
    return (
        f"live history query p50 {pct(q, 50):.2f} ms p99 {pct(q, 99):.2f} ms; whole user answer "
        f"p50 {pct(a, 50):.2f} ms p99 {pct(a, 99):.2f} ms (query = {pct(q, 50) / pct(a, 50):.0%} "
        "of the median answer)"
    )


def bare_upserts(url: str | None, home: Path, events: list[dict], batch: int) -> float:
    """events/s of the bare database upserting the same rows in transactions of `batch`."""
    rows = [(e["user_id"], e["item_id"], 5.0, int(time.time()), None, 0) for e in events]
    sql = (
        "INSERT INTO user_item_rating (user_id, item_id, rating, timestamp, verified, "
        "helpful_votes) VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (user_id, item_id) DO "
        "UPDATE SET rating = excluded.rating, timestamp = excluded.timestamp"
    )
    started = time.perf_counter()
    if url is None:
        conn = sqlite3.connect(home / "recsys.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        for lo in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql.format(p="?"), rows[lo : lo + batch])
            conn.execute("COMMIT")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            for lo in range(0, len(rows), batch):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql.format(p="%s"), rows[lo : lo + batch])
    return len(rows) / (time.perf_counter() - started)


# ---- over HTTP -------------------------------------------------------------------------------
def feedback_rate(
    url: str, events: list[dict], batch: int, seconds: float
) -> tuple[float, list[float], int]:
    """(events/s, per-call latencies in ms, failed calls) of one client posting back to back."""
    latencies, failed, sent = [], 0, 0
    stop = time.perf_counter() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        started = time.perf_counter()
        while time.perf_counter() < stop:
            chunk = [events[(i + k) % len(events)] for k in range(batch)]
            i += batch
            s = time.perf_counter()
            r = client.post("/feedback", json={"events": chunk})
            latencies.append((time.perf_counter() - s) * 1000)
            if r.status_code != 200 or r.json()["accepted"] != batch:
                failed += 1
            else:
                sent += batch
        elapsed = time.perf_counter() - started
    return sent / elapsed, latencies, failed


def reads(url: str, path: str, users: list[str], seconds: float) -> tuple[float, int]:
    """(p99 ms, failed requests) of one client asking for users' picks back to back, through
    bench_http's load generator (wrk when installed, else loadgen.py): a client in C (or on
    raw sockets) leaves the 2 cores to the server and the writer, where an HTTP library in
    Python took a core of its own."""
    bodies = [{"user_id": users[i % len(users)], "n": 10} for i in range(2000)]
    result = load(GENERATOR, url, path, bodies, 1, seconds)
    return result.p99_ms, result.failed


def paced_writer(
    url: str, events: list[dict], rate: float, stop: threading.Event, out: dict, threads: int = 4
) -> None:
    """Single events at `rate` per second in total, from `threads` connections (open loop: each
    keeps its own schedule, so one slow call does not lower the rate)."""
    counts = [[0, 0] for _ in range(threads)]  # sent, failed per thread

    def one(index: int) -> None:
        each = rate / threads
        started = time.perf_counter() + index / rate  # staggered
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                delay = started + counts[index][0] / each - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                event = events[(counts[index][0] * threads + index) % len(events)]
                r = client.post("/feedback", json={"events": [event]})
                counts[index][1] += r.status_code != 200
                counts[index][0] += 1

    began = time.perf_counter()
    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.update(
        sent=sum(c[0] for c in counts),
        failed=sum(c[1] for c in counts),
        seconds=time.perf_counter() - began,
    )


def paced_writer_process(url: str, events: list[dict], rate: float, stop, results) -> None:
    """paced_writer in a process of its own; puts its stats on `results`."""
    out: dict = {}
    paced_writer(url, events, rate, stop, out)
    results.put(out)


def next_answer_reflects(url: str, users: list[str], calls: int = 20) -> str:
    """For `calls` users: the top pick, a feedback event for it, then the very next answer."""
    ok = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for user in users[:calls]:
            top = client.post("/matrix_factor/user", json={"user_id": user, "n": 10}).json()
            pick = top["items"][0]["item_id"]
            client.post("/feedback", json={"events": [{"user_id": user, "item_id": pick}]})
            after = client.post("/matrix_factor/user", json={"user_id": user, "n": 10}).json()
            ok += pick not in {line["item_id"] for line in after["items"]}
    return f"next request reflects the feedback: {ok} of {calls} calls"


def measure(label: str, home: Path, db: list[str], seconds: float) -> None:
    items, users = sample_ids(home)
    rng = random.Random(7)
    # feedback from known users on random catalog items: new pairs, the usual case
    events = [{"user_id": rng.choice(users), "item_id": rng.choice(items)} for _ in range(200_000)]
    url_of_db = db[1] if db else None
    print(f"\n[{label}]", flush=True)
    print("  " + live_history_cost(home, db, users), flush=True)
    port = free_port()
    server = start(
        [*RECSYS, "--home", str(home), *db, "serve", "--port", str(port)], port,
        "/health/ready", home.parent / f"serve-{label}.log",
    )  # fmt: skip
    try:
        url = server.url
        reads(url, "/matrix_factor/user", users, 1.0)  # warm up
        idle = {
            p: reads(url, p, users, seconds)
            for p in ("/matrix_factor/user", "/recommendations/user")
        }
        eps_b, lat_b, fail_b = feedback_rate(url, events, 100, seconds)
        eps_1, lat_1, fail_1 = feedback_rate(url, events[100_000:], 1, seconds)
        bare_b = bare_upserts(url_of_db, home, events[150_000:170_000], 100)
        bare_1 = bare_upserts(url_of_db, home, events[170_000:172_000], 1)
        print(
            f"  POST /feedback, batches of 100: {eps_b:,.0f} events/s (p50 {pct(lat_b, 50):.1f} ms, "
            f"p99 {pct(lat_b, 99):.1f} ms per call, {fail_b} failed; goal >= {GOAL_BATCH_EPS:,}); "
            f"bare {label} upserts: {bare_b:,.0f} events/s"
        )
        print(
            f"  POST /feedback, single events: {eps_1:,.0f} events/s, p50 {pct(lat_1, 50):.1f} ms "
            f"p99 {pct(lat_1, 99):.1f} ms ({fail_1} failed; goal p99 <= {GOAL_SINGLE_P99_MS:.0f} ms); "
            f"bare {label} single-row transactions: {bare_1:,.0f} events/s"
        )
        for path, (p99_idle, fail_idle) in idle.items():
            # The writer is a process of its own: threads beside the reader would make the reader
            # wait for this client's GIL, and that wait is not the server's.
            context = multiprocessing.get_context("spawn")
            stop, results = context.Event(), context.Queue()
            writer = context.Process(
                target=paced_writer_process, args=(url, events[50_000:60_000], 200.0, stop, results)
            )
            writer.start()
            try:
                time.sleep(1.0)  # the writer's interpreter and connections are up
                p99_busy, fail_busy = reads(url, path, users, seconds)
            finally:
                stop.set()
                stats = results.get(timeout=60)
                writer.join()
            rate = stats["sent"] / stats["seconds"]
            print(
                f"  {path} p99 idle {p99_idle:.1f} ms, while writing {rate:.0f} events/s "
                f"{p99_busy:.1f} ms ({p99_busy / p99_idle:.2f}x, goal <= 2x; reads by {GENERATOR}); "
                f"failed: {fail_idle} idle, {fail_busy} busy, {stats['failed']} writes"
            )
        print("  " + next_answer_reflects(url, users[1000:]), flush=True)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="reference home with als trained")
    parser.add_argument("--data", type=Path, help="the reference sample (for PostgreSQL)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recsys-bench-feedback-") as tmp:
        home = working_home(args.home, Path(tmp))
        measure("sqlite", home, [], args.seconds)
        if args.no_postgres:
            return
        import pgcluster

        why = pgcluster.available()
        if why or args.data is None:
            print(f"\n[postgresql] skipped: {why or 'no --data to ingest'}")
            return
        with pgcluster.pg_cluster() as url:
            print("\ningesting the reference sample into PostgreSQL ...", flush=True)
            files = [str(args.data / "meta.jsonl.gz"), str(args.data / "reviews.jsonl.gz")]
            subprocess.run([*RECSYS, "--db", url, "ingest", *files, "-q"], check=True,
                           capture_output=True)  # fmt: skip
            measure("postgresql", home, ["--db", url], args.seconds)


if __name__ == "__main__":
    main()
