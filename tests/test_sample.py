"""Synthetic Amazon-2023-style sample generator: format, joins, shape and determinism."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from recsys.ingest import sample as sample_mod
from recsys.ingest.sample import SampleResult, generate_sample

SMALL = {"users": 1000, "items": 300, "ratings": 6000, "seed": 7}
REVIEW_KEYS = {
    "rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp",
    "helpful_vote", "verified_purchase",
}  # fmt: skip
META_KEYS = {
    "main_category", "title", "average_rating", "rating_number", "features", "description",
    "price", "images", "videos", "store", "categories", "details", "parent_asin",
    "bought_together",
}  # fmt: skip
ASIN = re.compile(r"^B0[0-9A-Z]{8}$")
USER_ID = re.compile(r"^A[0-9A-Z]{27}$")
IMG_URL = "https://m.media-amazon.com/images/I/"


def _read(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleResult, list, list]:
    res = generate_sample(tmp_path_factory.mktemp("small") / "nested" / "out", **SMALL)
    return res, _read(res.reviews_path), _read(res.meta_path)


def test_files_exist_and_counts_match(small: tuple[SampleResult, list, list]) -> None:
    res, reviews, meta = small
    assert res.reviews_path.name == "reviews.jsonl" and res.meta_path.name == "meta.jsonl"
    assert res.ratings == len(reviews) == SMALL["ratings"]
    assert res.products == len(meta) == SMALL["items"] + round(SMALL["items"] * 0.044)
    assert res.users == len({r["user_id"] for r in reviews}) == SMALL["users"]
    assert res.items == len({r["parent_asin"] for r in reviews}) == SMALL["items"]


def test_review_lines(small: tuple[SampleResult, list, list]) -> None:
    _, reviews, _ = small
    for r in reviews:
        assert set(r) == REVIEW_KEYS
        assert isinstance(r["rating"], float) and r["rating"] in {1.0, 2.0, 3.0, 4.0, 5.0}
        assert isinstance(r["title"], str) and r["title"]
        assert isinstance(r["text"], str) and r["text"]
        assert r["images"] == []
        assert ASIN.match(r["asin"]) and ASIN.match(r["parent_asin"])
        assert USER_ID.match(r["user_id"])
        ts = r["timestamp"]
        assert isinstance(ts, int) and 1_590_000_000_000 < ts <= 1_704_067_200_000  # ms, <2024
        assert isinstance(r["helpful_vote"], int) and r["helpful_vote"] >= 0
        assert isinstance(r["verified_purchase"], bool)
    assert sum(r["helpful_vote"] == 0 for r in reviews) / len(reviews) > 0.5
    assert sum(r["verified_purchase"] for r in reviews) / len(reviews) > 0.75
    assert any(r["asin"] != r["parent_asin"] for r in reviews)  # variants exist
    years = {time.gmtime(r["timestamp"] / 1000).tm_year for r in reviews}
    assert {2021, 2022, 2023} <= years


def test_meta_lines(small: tuple[SampleResult, list, list]) -> None:
    _, _, meta = small
    for m in meta:
        assert set(m) == META_KEYS
        assert isinstance(m["main_category"], str) and isinstance(m["title"], str)
        assert isinstance(m["average_rating"], float) and 1.0 <= m["average_rating"] <= 5.0
        assert isinstance(m["rating_number"], int) and m["rating_number"] >= 1
        for key in ("features", "description"):
            assert m[key] and all(isinstance(x, str) and x for x in m[key])
        assert m["price"] is None or (isinstance(m["price"], float) and m["price"] > 0)
        assert len(m["images"]) == 1 and m["images"][0]["variant"] == "MAIN"
        img = m["images"][0]
        assert set(img) == {"thumb", "large", "variant", "hi_res"}
        assert all(
            img[k].startswith(IMG_URL) and img[k].endswith(".jpg") for k in img if k != "variant"
        )
        assert m["videos"] == [] and m["bought_together"] is None
        assert isinstance(m["store"], str) and m["store"]
        assert m["categories"][0] == m["main_category"] and len(m["categories"]) == 2
        assert isinstance(m["details"], dict) and m["details"]
        assert ASIN.match(m["parent_asin"])
    assert len({m["parent_asin"] for m in meta}) == len(meta)
    assert 0.03 < sum(m["price"] is None for m in meta) / len(meta) < 0.35
    assert len({m["main_category"] for m in meta}) == len(sample_mod._CATALOG)


def test_reviews_join_meta_and_averages_agree(small: tuple[SampleResult, list, list]) -> None:
    _, reviews, meta = small
    by_asin = {m["parent_asin"]: m for m in meta}
    stars: defaultdict[str, list[float]] = defaultdict(list)
    for r in reviews:
        stars[r["parent_asin"]].append(r["rating"])
    assert set(stars) <= set(by_asin)
    assert len(by_asin) > len(stars)  # some products are never rated
    for asin, s in stars.items():
        assert by_asin[asin]["rating_number"] == len(s)
        assert by_asin[asin]["average_rating"] == pytest.approx(sum(s) / len(s), abs=0.051)


def test_titles_are_readable_and_varied(small: tuple[SampleResult, list, list]) -> None:
    _, _, meta = small
    titles = [m["title"] for m in meta]
    assert len(set(titles)) / len(titles) > 0.9
    assert all(t.isascii() and 3 <= len(t.split()) <= 25 for t in titles)
    assert sum(" - Model " in t for t in titles) > len(titles) * 0.15  # exact keyword tokens
    # A title names a noun of its own category (the semantic-search signal).
    cats = {c.name: c for c in sample_mod._CATALOG}
    for m in meta:
        nouns = re.split(r"[|;:]", cats[m["main_category"]].subcats)
        assert any(n.strip() and n.strip() in m["title"] for n in nouns), m["title"]


def test_vocabulary_is_json_safe() -> None:
    # Lines are written without escaping, so every vocabulary string must be JSON-safe.
    names = ("_NOUNS", "_ADJS", "_BRANDS", "_USES", "_SPECS", "_RT", "_RO", "_RB_PRE", "_RB_POST")
    pools = [getattr(sample_mod, n) for n in names]
    pools += [sample_mod._NOUN_SUB, sample_mod._GENERIC_FEATURES, sample_mod._PUBLISHERS]
    pools.append([c.name for c in sample_mod._CATALOG])
    for pool in pools:
        for s in pool:
            assert s and s.isascii() and '"' not in s and "\\" not in s, s


def test_popularity_is_skewed(small: tuple[SampleResult, list, list]) -> None:
    _, reviews, _ = small
    sizes = sorted(Counter(r["parent_asin"] for r in reviews).values(), reverse=True)
    top10 = sum(sizes[: len(sizes) // 10]) / len(reviews)
    assert top10 > 0.2  # uniform would be 0.1


def test_users_rate_within_preferred_categories(small: tuple[SampleResult, list, list]) -> None:
    _, reviews, meta = small
    cat = {m["parent_asin"]: m["main_category"] for m in meta}
    per_user: defaultdict[str, list[dict]] = defaultdict(list)
    for r in reviews:
        per_user[r["user_id"]].append(r)
    shares, liked, other = [], [], []
    for rs in per_user.values():
        if len(rs) < 5:
            continue
        counts = Counter(cat[r["parent_asin"]] for r in rs)
        top, n_top = counts.most_common(1)[0]
        shares.append(n_top / len(rs))
        for r in rs:
            (liked if cat[r["parent_asin"]] == top else other).append(r["rating"])
    assert len(shares) > 50
    assert sum(shares) / len(shares) > 0.5
    assert sum(liked) / len(liked) > sum(other) / len(other) + 0.2  # tastes show in the stars


def test_user_activity_is_heavy_tailed(tmp_path: Path) -> None:
    res = generate_sample(tmp_path, users=20_000, items=2_000, ratings=24_000, seed=3)
    per_user = Counter(r["user_id"] for r in _read(res.reviews_path))
    assert res.users == len(per_user) == 20_000
    ones = sum(v == 1 for v in per_user.values()) / len(per_user)
    assert ones > 0.7 and max(per_user.values()) >= 10


def test_repeat_reviews_are_rare_and_later(small: tuple[SampleResult, list, list]) -> None:
    _, reviews, _ = small
    by_pair: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for r in reviews:
        by_pair[(r["user_id"], r["parent_asin"])].append(r["timestamp"])
    repeated = [ts for ts in by_pair.values() if len(ts) > 1]
    assert 0 < len(repeated) < 0.02 * len(reviews)
    assert all(len(set(ts)) == len(ts) for ts in repeated)


def test_deterministic_for_seed(tmp_path: Path) -> None:
    a = generate_sample(tmp_path / "a", **SMALL)
    b = generate_sample(tmp_path / "b", **SMALL)
    c = generate_sample(tmp_path / "c", **{**SMALL, "seed": 8})
    for x, y, z in zip(
        (a.reviews_path, a.meta_path),
        (b.reviews_path, b.meta_path),
        (c.reviews_path, c.meta_path),
        strict=True,
    ):
        assert x.read_bytes() == y.read_bytes()
        assert x.read_bytes() != z.read_bytes()


def test_gzip_matches_plain(tmp_path: Path) -> None:
    plain = generate_sample(tmp_path / "plain", **SMALL)
    gz = generate_sample(tmp_path / "gz", gzip=True, **SMALL)
    assert gz.reviews_path.name == "reviews.jsonl.gz" and gz.meta_path.name == "meta.jsonl.gz"
    for p, g in ((plain.reviews_path, gz.reviews_path), (plain.meta_path, gz.meta_path)):
        with gzip.open(g, "rb") as f:
            assert f.read() == p.read_bytes()
    counts = ("users", "items", "ratings", "products")
    assert [getattr(gz, k) for k in counts] == [getattr(plain, k) for k in counts]


def test_categories_and_products_arguments(tmp_path: Path) -> None:
    res = generate_sample(tmp_path, users=200, items=60, ratings=1500, products=90, categories=3)
    meta = _read(res.meta_path)
    assert res.products == len(meta) == 90
    assert {m["main_category"] for m in meta} == {c.name for c in sample_mod._CATALOG[:3]}


def test_edge_sizes(tmp_path: Path) -> None:
    few = generate_sample(tmp_path / "few", users=100, items=10, ratings=50)
    assert few.users == 50 and few.ratings == 50  # fewer ratings than users: one each
    dense = generate_sample(tmp_path / "dense", users=5, items=4, ratings=20, categories=2)
    assert dense.ratings == len(_read(dense.reviews_path)) == 20
    tiny = generate_sample(tmp_path / "tiny", users=1, items=1, ratings=1)
    assert (tiny.users, tiny.items, tiny.ratings, tiny.products) == (1, 1, 1, 1)


def test_default_size(tmp_path: Path) -> None:
    res = generate_sample(tmp_path)
    assert (res.users, res.items, res.ratings, res.products) == (2000, 500, 20000, 522)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": 0},
        {"items": 0},
        {"ratings": 0},
        {"ratings": -5},
        {"items": 100, "products": 99},
        {"categories": 0},
        {"categories": 99},
        {"users": 2, "items": 3, "ratings": 7},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate_sample(tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()  # validated before touching the disk


@pytest.mark.slow
def test_reference_scale(tmp_path: Path) -> None:
    # Its time is measured by benchmarks/bench_sample.py, never asserted here.
    res = generate_sample(
        tmp_path, users=1_700_000, items=90_000, ratings=2_000_000, products=94_000, gzip=True
    )
    assert (res.users, res.items, res.ratings, res.products) == (
        1_700_000,
        90_000,
        2_000_000,
        94_000,
    )
