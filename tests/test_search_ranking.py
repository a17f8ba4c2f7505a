"""The popularity prior of search and its category filter, on small catalogs copied from the real
ones: identical titles (the better-known listing wins), placeholder listings ("... Configuration
Asin") below the real product, popularity read from the catalog's rating counts or from the
stored ratings, and categories matched in any case, in `categories` too, with close names
suggested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cli

MODES = ("semantic", "keyword", "hybrid")

# Amazon 2023 meta lines: duplicated titles told apart only by their rating counts (real pairs of
# the Health & Personal Care file), plus unrelated products around them.
META_2023 = [
    ("B0741VYPQM", "Ellips Hair Vitamin", 2, 2.7, ["Beauty", "Hair Care"]),
    ("B0092JXEJY", "Ellips Hair Vitamin", 125, 4.2, ["Beauty", "Hair Care"]),
    ("B09665C7FS", "Equate Pure Cornstarch Baby Powder Aloe Vera and Vitamin E (15 oz 2 Pack)", 356, 4.7, []),
    ("B086V1QLSV", "Equate Pure Cornstarch Baby Powder Aloe Vera and Vitamin E (15 oz 2 Pack)", 359, 4.7, []),
    ("B07WLPTK89", "Micro Ingredients Organic Lime Powder, 1 Pound", 204, 4.6, ["Grocery"]),
    ("B078SVG1GX", "GNC Mega Women Sport One Daily Multivitamin for Women, 60 Count", 716, 4.5, []),
    ("B09F6RFX59", "Gummies X59", 68, 4.0, []),
]  # fmt: skip
# Amazon 2018 meta without rating counts: popularity comes from the stored reviews.
META_2018 = [
    ("B002MS7BPA", "Starbucks Gift Card", 0),
    ("B00AR51Y5I", "Starbucks Gift Card", 4),
    ("B00YD567IW", " Netflix Gift Cards Configuration Asin - E-mail Delivery", 0),
    ("B00X6G8J3A", "Netflix Gift Card", 0),
    ("B00MV9F2QU", " Petco Gift Cards Configuration Asin - E-mail Delivery", 3),
    ("B00BXLVFAO", "Petco Gift Card", 1),
    ("B00BXLTUBA", "Forever 21 Gift Card", 2),
]


def write_catalogs(folder: Path) -> list[Path]:
    meta23 = folder / "meta_2023.jsonl"
    meta23.write_text("".join(
        json.dumps({"parent_asin": item, "title": title, "rating_number": n, "average_rating": avg,
                    "main_category": "Health & Personal Care", "categories": cats}) + "\n"
        for item, title, n, avg, cats in META_2023
    ))  # fmt: skip
    meta18 = folder / "meta_Gift_Cards.json"
    meta18.write_text("".join(
        json.dumps({"asin": item, "title": title, "category": ["Gift Cards"], "main_cat": "Grocery",
                    "brand": "", "description": [], "price": ""}) + "\n"
        for item, title, _ in META_2018
    ))  # fmt: skip
    reviews = folder / "Gift_Cards_5.json"
    reviews.write_text("".join(
        json.dumps({"overall": 5.0, "verified": True, "reviewerID": f"U{item}{u}", "asin": item,
                    "unixReviewTime": 1500000000 + u, "reviewText": "fine"}) + "\n"
        for item, _, n in META_2018 for u in range(n)
    ))  # fmt: skip
    return [meta23, meta18, reviews]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ranking")
    home = folder / "home"
    cli("--home", home, "ingest", *write_catalogs(folder), "-q")
    cli("--home", home, "train", "ss", "-q")
    return home


def ranked(home: Path, query: str, mode: str, *args: str) -> list[str]:
    result = cli("--home", home, "search", query, "--mode", mode, "--json", *args)
    return [h["item_id"] for h in result["hits"]]


@pytest.mark.parametrize("mode", MODES)
def test_of_identical_titles_the_better_known_comes_first(home, mode):
    # catalog rating counts (Amazon 2023): 125 vs 2 ratings; 359 vs 356 (a near-tie)
    assert ranked(home, "ellips hair vitamin", mode)[:2] == ["B0092JXEJY", "B0741VYPQM"]
    assert ranked(home, "equate cornstarch baby powder aloe 2 pack", mode)[0] == "B086V1QLSV"
    # stored reviews (Amazon 2018 meta has no counts): 4 reviews vs none
    assert ranked(home, "starbucks gift card", mode)[:2] == ["B00AR51Y5I", "B002MS7BPA"]


@pytest.mark.parametrize("mode", MODES)
def test_placeholder_listings_never_outrank_the_real_product(home, mode):
    for query, real, placeholder in [
        ("netflix gift card", "B00X6G8J3A", "B00YD567IW"),  # neither has a review
        ("petco gift card", "B00BXLVFAO", "B00MV9F2QU"),  # the placeholder has more reviews
    ]:
        items = ranked(home, query, mode, "-k", "20")
        assert items[0] == real and items.index(placeholder) > items.index(real), (query, items)


def test_weight_zero_ranks_by_relevance_alone(home, monkeypatch):
    monkeypatch.setenv("RECSYS_SEARCH_POPULARITY_WEIGHT_SEMANTIC", "0")
    result = cli("--home", home, "search", "ellips hair vitamin", "--mode", "semantic", "--json")
    top = result["hits"][:2]
    # identical titles score the same: their order is the index's, not popularity's
    assert {h["item_id"] for h in top} == {"B0092JXEJY", "B0741VYPQM"}
    assert top[0]["score"] == top[1]["score"] == 1.0


def test_category_is_matched_ignoring_case_and_in_categories(home):
    # main category, any case
    upper = ranked(home, "vitamin", "keyword", "--category", "HEALTH & PERSONAL CARE")
    assert upper and set(upper) <= {item for item, *_ in META_2023}
    # a name only in the `categories` list, in every mode
    for mode in MODES:
        assert set(ranked(home, "vitamin powder", mode, "--category", "hair care")) == {
            "B0741VYPQM", "B0092JXEJY"
        }  # fmt: skip
    gift = ranked(home, "card", "semantic", "--category", "gift cards", "-k", "20")
    assert set(gift) == {item for item, *_ in META_2018}


def test_unknown_category_suggests_close_names(home):
    result = cli("--home", home, "search", "vitamin", "--category", "Hair Kare", "--json")
    assert result["hits"] == []
    assert "no product has category 'Hair Kare'; did you mean 'Hair Care'?" in result["message"]
    result = cli("--home", home, "search", "vitamin", "--category", "Toys & Games")
    assert result.exit_code == 0 and "no product has category 'Toys & Games'" in result.output


def test_keyword_category_filter_on_both_backends(tmp_path, db_url):
    cli("--db", db_url, "ingest", *write_catalogs(tmp_path), "-q")
    for category in ("hair care", "Beauty", "GIFT CARDS"):
        items = [
            h["item_id"]
            for h in cli("--db", db_url, "search", "vitamin gift card", "--mode", "keyword",
                         "--category", category, "-k", "20", "--json")["hits"]
        ]  # fmt: skip
        if category == "GIFT CARDS":
            assert set(items) == {item for item, *_ in META_2018}
            assert items[0] == "B00AR51Y5I" and items[-1] in ("B00YD567IW", "B00MV9F2QU")
        else:
            assert items == ["B0092JXEJY", "B0741VYPQM"], category


# ---- hybrid: the default mode ----------------------------------------------------------------
def test_convex_fusion_blends_min_max_normalised_pools():
    from importlib import import_module

    convex_fusion = import_module("recsys.service.search").convex_fusion
    semantic = [("a", 0.8), ("b", 0.6), ("c", 0.4)]  # cosines
    keyword = [("b", 12.0), ("d", 3.0)]  # bm25
    fused = dict(convex_fusion(semantic, keyword, 0.5))
    # a: semantic 1, keyword absent (0); b: semantic 0.5, keyword 1; c: 0 and 0; d: 0 and 0
    assert fused == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.0, "d": 0.0})
    assert [i for i, _ in convex_fusion(semantic, keyword, 0.5)] == ["b", "a", "c", "d"]
    assert convex_fusion(semantic, keyword, 1.0)[0] == ("a", 1.0)  # semantic alone
    # no title holds a query term: the semantic pool counts alone, whatever the share
    alone = convex_fusion(semantic, [], 0.5)
    assert [i for i, _ in alone] == ["a", "b", "c"]
    assert [s for _, s in alone] == pytest.approx([1.0, 0.5, 0.0])
    assert convex_fusion([], keyword, 0.5) == [("b", 1.0), ("d", 0.0)]
    assert convex_fusion([("x", 0.3), ("y", 0.3)], [], 0.5) == [("x", 1.0), ("y", 1.0)]


# MovieLens titles: remakes share a title and differ by year; the much better-known film is meant.
FILMS = [
    (2916, "Total Recall (1990)", "Action|Adventure|Sci-Fi|Thriller", 40),
    (95875, "Total Recall (2012)", "Action|Sci-Fi|Thriller", 3),
    (2288, "Thing, The (1982)", "Action|Horror|Sci-Fi|Thriller", 30),
    (90345, "Thing, The (2011)", "Horror|Mystery|Sci-Fi|Thriller", 2),
    (2985, "RoboCop (1987)", "Action|Crime|Drama|Sci-Fi|Thriller", 35),
    (108945, "RoboCop (2014)", "Action|Crime|Sci-Fi|IMAX", 2),
    (8870, "Forgotten, The (2004)", "Drama|Mystery|Sci-Fi|Thriller", 5),
    (6012, "Guy Thing, A (2003)", "Comedy|Romance", 4),
]


def test_default_search_finds_the_better_known_of_films_sharing_a_title(tmp_path):
    movies = tmp_path / "movies.csv"
    movies.write_text("movieId,title,genres\n" + "".join(
        f'{item},"{title}",{genres}\n' for item, title, genres, _ in FILMS
    ))  # fmt: skip
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{item},4.0,{1500000000 + u}\n" for item, _, _, n in FILMS for u in range(n)
    ))  # fmt: skip
    home = tmp_path / "home"
    cli("--home", home, "ingest", movies, "--map", "item=movieId", "--map", "title=title",
        "--map", "category=genres", "-q")  # fmt: skip
    cli("--home", home, "ingest", ratings, "--map", "user=userId", "--map", "item=movieId", "-q")
    cli("--home", home, "train", "ss", "-q")
    for query, meant in [("total recall", "2916"), ("the thing", "2288"), ("robocop", "2985")]:
        result = cli("--home", home, "search", query, "--json")  # the default mode: hybrid
        assert result["mode"] == "hybrid"
        assert result["hits"][0]["item_id"] == meant, (query, result["hits"][:3])
