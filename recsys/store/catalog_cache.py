"""An in-memory snapshot of the catalog fields every result line shows (and search ranks and
filters by), for the server.

A result line needs title, image, price and category of ~10 items: one SQL query costs ~0.3 ms of
a ~1.4 ms recommendation. The server's refresher thread (never a request) reloads the snapshot
whenever an ingest moved `products_revision`, so answers lag a catalog change by at most
`server.reload_check_seconds`. Items missing from the snapshot come from SQL, and an id SQL does
not know either is remembered as missing until the next reload: a ratings-only store (or a shop
whose catalog arrives later) otherwise paid one SQL query per request for items that have no
catalog row, halving the throughput of /matrix_factor/similar. The CLI does not use it: loading
94K rows for one answer would cost more than it saves.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, select

from recsys.store.engine import get_meta
from recsys.store.tables import product_catalog

# rating_count, average_rating: the popularity prior of search; categories: its category filter
FIELDS = (
    "item_id", "title", "image_url", "price", "main_category", "rating_count", "average_rating",
    "categories",
)  # fmt: skip

# Keyed by the engine object, which lives as long as the process (one per database URL, see
# service.data.engine_for): rendering its URL as a key took longer than the lookup itself.
_snapshots: dict[Engine, CatalogSnapshot] = {}
_lock = threading.Lock()


class CatalogSnapshot:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.revision: str | None = None
        self.rows: dict[str, dict[str, Any]] = {}
        # ids without a catalog row at this revision; replaced (not cleared) by each reload, so
        # a lookup that raced a reload only ever adds to the discarded set
        self.missing: set[str] = set()
        # held by a reload and by `upsert`: a reload that read the table before a write committed
        # must not swap its older rows in over the write's upsert (lookups never take it)
        self.swapping = threading.Lock()

    def refresh(self) -> bool:
        """Reload when the catalog changed since the last load; True when it did."""
        with self.swapping:
            with self.engine.connect() as conn:
                revision = get_meta(conn, "products_revision") or "0"
                if revision == self.revision:
                    return False
                p = product_catalog.c
                with _collector_paused():
                    rows = conn.execute(select(*(p[f] for f in FIELDS))).all()
                    fresh = {row[0]: dict(zip(FIELDS, row, strict=True)) for row in rows}
            self.rows = fresh  # one swap
            self.missing = set()
            self.revision = revision
        return True


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a snapshot is built: its ~200K new objects set off
    five full collections of 100-200 ms each at reference scale, every request thread waiting
    through each (the objects are acyclic; the server freezes them after the load)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def enable(engine: Engine) -> CatalogSnapshot:
    """Serve catalog fields of `engine` from memory (call refresh() periodically)."""
    with _lock:
        snapshot = _snapshots.get(engine)
        if snapshot is None:
            snapshot = _snapshots[engine] = CatalogSnapshot(engine)
    return snapshot


MAX_MISSING = 1_000_000  # remembered absent ids per snapshot (bounded: ids come from clients too)


def lookup(
    engine: Engine, item_ids: list[str]
) -> tuple[dict[str, dict[str, Any]], list[str], set[str] | None]:
    """(rows found in the snapshot, ids still to fetch, the set to `remember_missing` the ids
    the fetch does not find in). Ids known to be absent are neither found nor to fetch.
    Without a snapshot everything is to fetch and the set is None."""
    snapshot = _snapshots.get(engine) if _snapshots else None
    if snapshot is None or snapshot.revision is None:
        return {}, item_ids, None
    rows, missing = snapshot.rows, snapshot.missing
    found = {i: rows[i] for i in item_ids if i in rows}
    return found, [i for i in item_ids if i not in found and i not in missing], missing


def remember_missing(missing: set[str] | None, item_ids: list[str]) -> None:
    """Record ids that SQL found no catalog row for (until the snapshot's next reload)."""
    if missing is None or not item_ids:
        return
    if len(missing) > MAX_MISSING:
        missing.clear()
    missing.update(item_ids)


def clear() -> None:
    with _lock:
        _snapshots.clear()


def revision(engine: Engine) -> str | None:
    """The catalog revision the snapshot of `engine` holds (None without a snapshot): caches
    derived from the catalog (categories, prices per model) are rebuilt when it moves."""
    snapshot = _snapshots.get(engine) if _snapshots else None
    return None if snapshot is None else snapshot.revision


def upsert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Put freshly written products into the snapshot of `engine` at once (POST /items), so the
    next result line shows them before the refresher's next reload. One dict swap: readers see
    the old or the new rows, never a mix within one lookup of an item."""
    snapshot = _snapshots.get(engine) if _snapshots else None
    if snapshot is None:
        return
    with snapshot.swapping:  # after a reload in progress (it may have read the table before us)
        if snapshot.revision is None:
            return  # not loaded: lookups go to SQL, and the first load reads our rows
        fresh = dict(snapshot.rows)
        fresh.update((row["item_id"], {f: row.get(f) for f in FIELDS}) for row in rows)
        snapshot.rows = fresh
        # no longer absent: a lookup must find them (the set is replaced, never shrunk in place)
        snapshot.missing = snapshot.missing - {row["item_id"] for row in rows}
