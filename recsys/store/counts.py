"""Store counts for `status` that never wait for a writer and are not recounted per request.

Distinct counts over millions of ratings take 1-2 s, and every ingest batch moves the revisions
they are kept under. Two ways to get them:
- `fresh=True` (the CLI): recount when the revisions moved; concurrent callers in one process
  share one recount (single flight).
- `fresh=False` (the server): answer at once with the last counts known (in memory, or those
  cached in recsys_meta by anyone), marked stale, and recount in ONE background thread, niced, at
  most every RECOUNT_EVERY_SECONDS: a monitoring poll of /status during an ingest stays instant
  and does not pile recounts onto the CPUs the other routes need.
Counts are cached in recsys_meta for other processes without ever waiting for the write lock
(an ingest holds it for seconds): when the lock is taken, the cache is simply not written.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from recsys.store.engine import get_meta, set_meta

RECOUNT_EVERY_SECONDS = 10.0
RECOUNT_NICE = 10
META_KEY = "store_counts"

Counter = Callable[[Connection], dict[str, int]]


@dataclass
class _Known:
    lock: threading.Lock = field(default_factory=threading.Lock)  # single flight of recounts
    flag_lock: threading.Lock = field(default_factory=threading.Lock)  # never held for long
    revisions: list[str | None] | None = None
    counts: dict[str, int] | None = None
    recounting: bool = False
    last_recount: float = -RECOUNT_EVERY_SECONDS


_known: dict[Engine, _Known] = {}
_known_lock = threading.Lock()


def _for(engine: Engine) -> _Known:
    with _known_lock:
        return _known.setdefault(engine, _Known())


def store_counts(
    engine: Engine, conn: Connection, revisions: list[str | None], count: Counter, *, fresh: bool
) -> tuple[dict[str, int], bool]:
    """(counts, stale) for the store at `revisions`, read on `conn`. Raises the driver's error
    when the store does not answer."""
    known = _for(engine)
    if known.revisions == revisions and known.counts is not None:
        return known.counts, False
    cached = json.loads(get_meta(conn, META_KEY) or "{}")
    if cached.get("revisions") == revisions:
        known.revisions, known.counts = revisions, cached["counts"]
        return known.counts, False
    last = known.counts or cached.get("counts")
    if not fresh and last is not None:
        _recount_in_background(engine, known, count)
        return last, True
    with known.lock:  # single flight: a concurrent caller waited for this very recount
        if known.revisions != revisions or known.counts is None:
            _recount(engine, known, conn, revisions, count)
    return known.counts, False  # type: ignore[return-value]


def _recount(
    engine: Engine, known: _Known, conn: Connection, revisions: list[str | None], count: Counter
) -> None:
    counts = count(conn)
    known.counts, known.revisions = counts, revisions  # readers compare revisions first
    known.last_recount = time.monotonic()
    _save_without_waiting(engine, revisions, counts)


def _recount_in_background(engine: Engine, known: _Known, count: Counter) -> None:
    with known.flag_lock:  # not known.lock, which a synchronous recount holds for seconds
        if known.recounting or time.monotonic() - known.last_recount < RECOUNT_EVERY_SECONDS:
            return
        known.recounting = True
        known.last_recount = time.monotonic()

    def run() -> None:
        from recsys.store.queries import read_revisions
        from recsys.system import lower_this_threads_priority

        lower_this_threads_priority(RECOUNT_NICE)
        try:
            with engine.connect() as conn:
                _recount(engine, known, conn, read_revisions(conn), count)
        except Exception:  # the store went away meanwhile: the next status tries again
            pass
        finally:
            known.recounting = False

    threading.Thread(target=run, name="recsys-status-counts", daemon=True).start()


def _save_without_waiting(engine: Engine, revisions: list[str | None], counts: dict) -> None:
    """Cache the counts in recsys_meta unless a writer holds the lock right now."""
    value = json.dumps({"revisions": revisions, "counts": counts})
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:  # no busy wait: BEGIN IMMEDIATE fails at once when an ingest writes
                previous = raw.execute("PRAGMA busy_timeout").fetchone()[0]  # type: ignore[union-attr]
                raw.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
            try:
                conn.info["writer"] = True
                with conn.begin():
                    if not sqlite:  # PostgreSQL: never queue behind a writer's row lock
                        conn.exec_driver_sql("SET LOCAL lock_timeout = '1ms'")
                    set_meta(conn, META_KEY, value)
            finally:
                conn.info.pop("writer", None)
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout={int(previous)}")  # type: ignore[union-attr]
    except OperationalError:
        pass  # a writer holds the lock: not cached this time


def clear() -> None:
    """Forget the counts known in memory (tests)."""
    with _known_lock:
        _known.clear()
