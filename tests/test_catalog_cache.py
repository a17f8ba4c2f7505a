"""The server's in-memory catalog snapshot follows ingests and falls back to SQL."""

from __future__ import annotations

import json

from recsys.config import load_settings
from recsys.service.data import engine_for
from recsys.store import catalog_cache
from recsys.store.queries import products_by_id

from helpers import cli


def _meta(path, titles: dict[str, str]) -> None:
    path.write_text("".join(
        json.dumps({"parent_asin": i, "title": t, "main_category": "Toys", "price": 3.5}) + "\n"
        for i, t in titles.items()
    ))  # fmt: skip


def test_snapshot_follows_ingest_and_falls_back_to_sql(tmp_path):
    meta = tmp_path / "meta.jsonl"
    _meta(meta, {"A": "Red kite", "B": "Blue kite"})
    cli("ingest", meta, "-q")
    engine = engine_for(load_settings())
    snapshot = catalog_cache.enable(engine)
    assert snapshot.refresh() and not snapshot.refresh()  # loads once, then only on change
    assert products_by_id(engine, ["A"])["A"]["title"] == "Red kite"

    _meta(meta, {"A": "Green kite", "C": "Yellow kite"})
    cli("ingest", meta, "-q")
    # until the next refresh: the snapshot answers for A, SQL for the new item C
    stale = products_by_id(engine, ["A", "C"])
    assert stale["A"]["title"] == "Red kite" and stale["C"]["title"] == "Yellow kite"
    assert snapshot.refresh()
    fresh = products_by_id(engine, ["A", "B", "C", "missing"])
    assert {k: v["title"] for k, v in fresh.items()} == {
        "A": "Green kite", "B": "Blue kite", "C": "Yellow kite"}  # fmt: skip
    assert fresh["A"] == {"item_id": "A", "title": "Green kite", "image_url": None, "price": 3.5,
                          "main_category": "Toys", "rating_count": None, "average_rating": None,
                          "categories": None}  # fmt: skip


def test_items_without_a_catalog_row_are_remembered_until_the_next_reload(tmp_path, monkeypatch):
    """A ratings-only store: ids SQL does not know are not queried again on every request."""
    meta = tmp_path / "meta.jsonl"
    _meta(meta, {"A": "Red kite"})
    cli("ingest", meta, "-q")
    engine = engine_for(load_settings())
    snapshot = catalog_cache.enable(engine)
    snapshot.refresh()
    queries: list[str] = []

    from sqlalchemy import event

    def count(conn, cursor, statement, *args):
        if "product_catalog" in statement:
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert set(products_by_id(engine, ["A", "X", "Y"])) == {"A"}
        assert len(queries) == 1  # X and Y asked once
        assert set(products_by_id(engine, ["A", "X", "Y"])) == {"A"}
        assert set(products_by_id(engine, ["Y", "X"])) == set()
        assert len(queries) == 1  # then remembered as missing
        _meta(meta, {"X": "Late kite"})
        cli("ingest", meta, "-q")
        assert snapshot.refresh()  # a catalog change forgets what was missing
        queries.clear()
        assert products_by_id(engine, ["X", "Y"])["X"]["title"] == "Late kite"
        assert len(queries) == 1  # Y asked again after the reload, X from the snapshot
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_no_garbage_collection_while_a_snapshot_is_built(tmp_path, monkeypatch):
    """Its many new objects set off full collections that stall every request thread."""
    import gc

    meta = tmp_path / "meta.jsonl"
    _meta(meta, {"A": "Red kite", "B": "Blue kite"})
    cli("ingest", meta, "-q")
    snapshot = catalog_cache.enable(engine_for(load_settings()))
    seen = []
    real_dict = dict

    def recording_dict(*args, **kwargs):  # the snapshot's rows are built with dict(zip(...))
        seen.append(gc.isenabled())
        return real_dict(*args, **kwargs)

    monkeypatch.setattr(catalog_cache, "dict", recording_dict, raising=False)
    assert gc.isenabled()
    assert snapshot.refresh()
    assert seen == [False, False] and gc.isenabled()  # paused for the build, on again after
