"""Reading the ratings into numpy: both backends, odd ids, the fingerprint, compact id lookups."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from sqlalchemy import text

from recsys.models.interactions import (
    confidence,
    decode,
    lookup,
    read_interactions,
    store_fingerprint,
)
from recsys.store.engine import open_store

from helpers import cli

cli_app = importlib.import_module("recsys.cli.app")


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


RATINGS = [
    ("zoë", "B001", 5.0, 1_600_000_000),
    ("anna", "B002", 3.5, 1_600_000_100),
    ("anna", "B001", 1.0, 1_600_000_050),
    ("user,with,commas", "Ж-42", 4.0, 1_600_000_200),
]


def test_read_interactions_on_both_backends(db_url, tmp_path):
    reviews = tmp_path / "r.jsonl"
    reviews.write_text(
        "\n".join(
            f'{{"user": "{u}", "item": "{i}", "rating": {r}, "timestamp": {t}}}'
            for u, i, r, t in RATINGS
        )
        + "\n",
        encoding="utf-8",
    )
    cli("--db", db_url, "ingest", reviews, "-q")
    engine = open_store(db_url)
    try:
        data = read_interactions(engine, timestamps=True)
        fingerprint = store_fingerprint(engine)[0]
    finally:
        engine.dispose()
    assert decode(data.user_ids) == sorted(["anna", "user,with,commas", "zoë"], key=str.encode)
    got = {
        (decode(data.user_ids[[u]])[0], decode(data.item_ids[[i]])[0], float(r), int(t))
        for u, i, r, t in zip(data.users, data.items, data.ratings, data.timestamps, strict=True)
    }
    assert got == set(RATINGS)
    assert data.fingerprint == fingerprint and len(fingerprint) == 16
    assert lookup(data.item_ids, "Ж-42") is not None and lookup(data.item_ids, "nope") is None
    assert lookup(data.user_ids, "a-much-longer-id-than-any-stored-one") is None


def test_ids_containing_the_separator_take_the_slow_road(recsys_home):
    from recsys.config import load_settings
    from recsys.service.data import engine_for

    engine = engine_for(load_settings())
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO user_item_rating (user_id, item_id, rating, timestamp, helpful_votes) "
                "VALUES ('a\x1fb', 'i1', 4, 1, 0), ('c', 'i2', 5, 2, 0)"
            )  # fmt: skip
        )
    data = read_interactions(engine)
    assert decode(data.user_ids) == ["a\x1fb", "c"] and len(data) == 2


def test_fingerprint_moves_with_every_ingest(recsys_home, tmp_path):
    from recsys.config import load_settings
    from recsys.service.data import engine_for

    engine = engine_for(load_settings())
    before = store_fingerprint(engine)[0]
    csv = tmp_path / "r.csv"
    csv.write_text("user,item,rating,timestamp\nu1,i1,5,1\n")
    cli("ingest", csv, "-q")
    after = store_fingerprint(engine)[0]
    csv.write_text("user,item,rating,timestamp\nu1,i1,3,2\n")  # same row count, changed rating
    cli("ingest", csv, "-q")
    assert len({before, after, store_fingerprint(engine)[0]}) == 3


def test_confidence_kinds():
    ratings = np.array([1.0, 5.0], dtype=np.float32)
    assert confidence(ratings, "linear", 2.0).tolist() == [3.0, 11.0]
    assert confidence(ratings, "binary", 2.0).tolist() == [3.0, 3.0]
