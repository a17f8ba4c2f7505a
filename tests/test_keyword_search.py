"""Keyword search's common-terms pruning (SQLite): terms held by more than
search.keyword_common_docs products are only scored in products holding a rarer query term, with
the bm25 scores the plain OR of all terms gives, and the OR itself whenever a pruned try finds
fewer products than asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert

from recsys.store.engine import open_store
from recsys.store.fulltext import keyword_search
from recsys.store.tables import product_catalog


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """300 products: "set" in all, "kitchen" in every second, "knife" in 30, "garden" and
    "hose" in 60 each (20 hold both), "teak" in 2."""
    path: Path = tmp_path_factory.mktemp("keyword") / "store.db"
    engine = open_store(f"sqlite:///{path}")
    products = []
    for n in range(300):
        words = ["set"]
        words += ["kitchen"] if n % 2 == 0 else []
        words += ["knife"] if n % 10 == 0 else []
        words += ["garden"] if n % 5 == 1 else []
        words += ["hose"] if n % 5 == 1 and n < 100 or n % 5 == 3 and n >= 100 and n < 240 else []
        words += ["teak"] if n in (7, 8) else []
        words += ["filler"] * (n % 7)  # titles of several lengths: bm25 tells them apart
        products.append({"item_id": f"p{n:03}", "title": " ".join(words)})
    with engine.begin() as conn:
        conn.execute(insert(product_catalog), products)
    return engine


def full_or(engine, query: str) -> dict[str, float]:
    return dict(keyword_search(engine, query, 1000, None, common_docs=0))


def test_pruned_search_keeps_the_or_querys_top_and_scores(engine):
    exact = keyword_search(engine, "kitchen knife set", 10, None, common_docs=0)
    pruned = keyword_search(engine, "kitchen knife set", 10, None, common_docs=100)
    assert pruned == exact  # the ten best all hold "knife", the rare term
    everything = full_or(engine, "kitchen knife set")
    assert all(everything[item] == score for item, score in pruned)


def test_a_short_pruned_pool_falls_back_to_the_or_query(engine):
    # "teak" (2 products) is the only rare term: 2 < 10 asked for, so the OR query answers
    assert keyword_search(engine, "teak set", 10, None, common_docs=100) == keyword_search(
        engine, "teak set", 10, None, common_docs=0
    )


def test_when_every_term_is_common_products_with_all_of_them_come_first(engine):
    found = keyword_search(engine, "garden hose", 10, None, common_docs=40)
    both = {f"p{n:03}" for n in range(300) if n % 5 == 1 and n < 100}
    assert {item for item, _ in found} <= both and len(found) == 10
    everything = full_or(engine, "garden hose")
    assert all(everything[item] == score for item, score in found)
    # fewer products with all terms than asked for: those with the rarest, then the OR query
    assert len(keyword_search(engine, "garden hose", 50, None, common_docs=40)) == 50


def test_pruning_applies_within_a_category_filter(engine):
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE product_catalog SET main_category = 'Tools'")
    exact = keyword_search(engine, "kitchen knife set", 10, ["Tools"], common_docs=0)
    assert keyword_search(engine, "kitchen knife set", 10, ["Tools"], common_docs=100) == exact
    assert len(exact) == 10


def test_the_expressions_tried_in_turn(engine):
    from recsys.store.fulltext import _sqlite_matches

    with engine.connect() as conn:
        # "knife" (30 products) is rare, "kitchen" (150) and "set" (300) common
        assert _sqlite_matches(conn, ["kitchen", "knife", "set"], 100) == [
            ['("knife") AND ("kitchen" OR "set")', '("knife") NOT ("kitchen" OR "set")'],
            ['"kitchen" OR "knife" OR "set"'],
        ]
        # every term common: all of them, then the rarest ("hose": 48 < "garden": 60)
        assert _sqlite_matches(conn, ["garden", "hose"], 40) == [
            ['"garden" AND "hose"'],
            ['("hose") AND ("garden")', '("hose") NOT ("garden")'],
            ['"garden" OR "hose"'],
        ]
        # nothing common, off, or one term: the OR query alone
        assert _sqlite_matches(conn, ["kitchen", "knife"], 1000) == [['"kitchen" OR "knife"']]
        assert _sqlite_matches(conn, ["kitchen", "knife"], 0) == [['"kitchen" OR "knife"']]
        assert _sqlite_matches(conn, ["set"], 100) == [['"set"']]
