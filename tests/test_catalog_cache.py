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
