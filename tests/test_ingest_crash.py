"""kill -9 in the middle of an ingest: the database stays sound and holds whole batches only."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

BATCH = 5000


def _write_reviews(path, count: int) -> None:
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({
                "rating": float(1 + i % 5), "title": "t", "text": "x" * 50, "images": [],
                "asin": f"I{i % 997}", "parent_asin": f"I{i % 997}", "user_id": f"U{i}",
                "timestamp": 1_600_000_000_000 + i, "helpful_vote": 0, "verified_purchase": True,
            }) + "\n")  # fmt: skip


def _count(db) -> int:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("select count(*) from user_item_rating").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def _ingest(home, path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "recsys", "--home", str(home), "ingest", str(path),
         "--batch-size", str(BATCH), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _contents(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select * from user_item_rating order by user_id, item_id").fetchall()


def test_kill_9_mid_ingest_leaves_whole_batches_and_reingest_converges(tmp_path):
    total = 300_000
    path = tmp_path / "reviews.jsonl"
    _write_reviews(path, total)
    home = tmp_path / "crash"
    db = home / "recsys.db"

    proc = _ingest(home, path)
    deadline = time.monotonic() + 120
    while _count(db) < 3 * BATCH and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "ingest finished before it could be killed"

    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    stored = _count(db)
    assert 0 < stored < total and stored % BATCH == 0  # whole batches only

    rerun = _ingest(home, path)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode()
    clean_home = tmp_path / "clean"
    clean = _ingest(clean_home, path)
    assert clean.wait(timeout=300) == 0
    assert _contents(db) == _contents(clean_home / "recsys.db")
    assert len(_contents(db)) == total
