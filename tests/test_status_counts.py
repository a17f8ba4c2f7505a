"""`status` while an ingest holds the write lock: the server answers at once with the last
counts (marked stale), the CLI recounts but never waits for the lock to cache them (case
status-stalls-during-ingest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from recsys import service
from recsys.config import load_settings
from recsys.store.engine import set_meta, writer


def ingest(tmp_path, name: str, rows: int) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_text("user,item,rating\n" + "".join(f"{name}{i},i{i % 7},4\n" for i in range(rows)))
    service.ingest(load_settings(), [path])


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run fn in a thread; fail (instead of hanging) when it blocks for a minute."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(60)
    assert result, "status blocked behind the writer"
    return result[0]


def test_status_never_waits_for_an_ingest_holding_the_write_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_STORE_BUSY_TIMEOUT_MS", "600000")  # a writer waits 10 minutes
    settings = load_settings()
    ingest(tmp_path, "a", 30)
    assert service.status(settings).store.ratings == 30
    ingest(tmp_path, "b", 20)  # the revisions moved: the counts are out of date
    with writer(service.engine_for(settings)) as conn:  # an ingest's batch in progress
        set_meta(conn, "ingest_in_progress", "1")
        served = in_thread(lambda: service.status(settings, fresh=False))
        assert served.store.ratings == 30 and served.store.counts_stale
        cli_view = in_thread(lambda: service.status(settings))
        assert cli_view.store.ratings == 50 and not cli_view.store.counts_stale
    again = service.status(settings, fresh=False)  # recounted once: known now
    assert again.store.ratings == 50 and not again.store.counts_stale
