"""Fresh answers, for every recommender of the model table: a user's picks come from their
history in the store at request time (ratings stored after training count at once, a user the
model never saw is folded in from the store), degenerate scores are never shown as personal
picks, and the filters (exclude, categories, price range) hold on every call.

The inputs are the cases of ../shared/cases (rated-after-training-recommended-again,
new-user-in-store-served-as-stranger, zero-vector-user-arbitrary-picks), copied here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from recsys.errors import InvalidInput
from recsys.models.kinds import RECOMMENDERS
from recsys.service.filters import Filters

from helpers import cli
from test_mf import write_taste_groups

cli_app = importlib.import_module("recsys.cli.app")
LEARNS = [name for name in RECOMMENDERS if name != "popularity"]

# rated-after-training-recommended-again/ratings.csv (= new-user-in-store-served-as-stranger's)
SHOP = """user,item,rating
u1,A,5
u1,B,4
u2,A,5
u2,B,4
u2,C,5
u3,B,5
u3,C,4
u3,D,3
u4,A,4
u4,C,5
u4,D,4
"""
# zero-vector-user-arbitrary-picks/ratings.csv: Z is bought only by two one-time buyers
ONE_TIME_BUYERS = """user,item,rating
u1,A,5
u1,B,4
u2,B,5
u2,C,4
u3,C,5
u3,D,3
u4,A,4
u4,D,5
u5,B,5
u5,D,4
once1,Z,5
once2,Z,4
"""


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


def ingest(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    cli("ingest", path, "-q")


def user_picks(user: str, model: str, *args: str) -> dict:
    return cli("recommend", "user", user, "--model", model, *args, "--json")  # type: ignore[no-any-return]


def ids(result: dict) -> list[str]:
    return [line["item_id"] for line in result["items"]]


@pytest.mark.parametrize("model", RECOMMENDERS)
def test_a_rating_stored_after_training_counts_at_the_next_request(tmp_path, model):
    ingest(tmp_path, "ratings.csv", SHOP)
    cli("train", model, "-q")
    before = user_picks("u1", model, "-n", "2")
    assert "C" in ids(before)  # u1 has not bought C yet: it is a pick
    ingest(tmp_path, "later.csv", "user,item,rating\nu1,C,5\n")  # u1 buys C
    after = user_picks("u1", model, "-n", "2")
    assert "C" not in ids(after)
    assert not {"A", "B", "C"} & set(ids(after))  # nothing the user rated comes back
    assert "1 rating newer than model" in after["message"]
    # include_seen keeps the stored rating as a candidate
    assert "C" in ids(user_picks("u1", model, "-n", "4", "--include-seen"))


@pytest.mark.parametrize("model", RECOMMENDERS)
def test_a_user_only_the_store_knows_is_folded_in_from_their_ratings(tmp_path, model):
    ingest(tmp_path, "ratings.csv", SHOP)
    cli("train", model, "-q")
    ingest(tmp_path, "later.csv", "user,item,rating\nnewbie,A,5\nnewbie,B,4\n")
    result = user_picks("newbie", model, "-n", "2")
    assert not {"A", "B"} & set(ids(result)), result  # never their own purchases
    assert len(result["items"]) == 2
    assert "folded in from their 2 stored ratings" in result["message"]
    # the same answer as folding the same items in by hand
    by_hand = user_picks("newbie2", model, "-n", "2", "--items", "A,B")
    assert ids(result) == ids(by_hand)
    assert result["strategy"] == by_hand["strategy"]


@pytest.mark.parametrize("model", RECOMMENDERS)
def test_stored_items_the_model_does_not_know_are_skipped_and_named(tmp_path, model):
    ingest(tmp_path, "ratings.csv", SHOP)
    cli("train", model, "-q")
    ingest(tmp_path, "later.csv", "user,item,rating\nu1,NEW1,5\nnewbie,NEW2,4\nnewbie,A,5\n")
    known = user_picks("u1", model, "-n", "2")
    assert "skipped 1 of the user's rated items unknown to model" in known["message"]
    assert "NEW1" in known["message"] and f"recsys train {model}" in known["message"]
    stranger = user_picks("newbie", model, "-n", "2")
    assert "NEW2" in stranger["message"] and "A" not in ids(stranger)


@pytest.mark.parametrize("model", RECOMMENDERS)
def test_zero_scores_are_never_presented_as_personal_picks(tmp_path, model):
    ingest(tmp_path, "ratings.csv", ONE_TIME_BUYERS)
    cli("train", model, "-q")
    for result in (
        user_picks("once1", model, "-n", "3"),
        user_picks("visitor", model, "-n", "3", "--items", "Z"),
    ):
        assert len(result["items"]) == 3 and "Z" not in ids(result)
        for line in result["items"]:  # a line in the model's name is a positive score
            assert line["model"] == "popularity" or line["score"] > 0, (model, result)
        if model in LEARNS:  # nothing co-occurs with Z: no model learned anything about it
            assert result["strategy"] == "popular", result
            assert "scores no item positively" in result["message"]
            assert {line["model"] for line in result["items"]} == {"popularity"}


@pytest.mark.parametrize("model", RECOMMENDERS)
def test_a_user_who_rated_everything_gets_a_short_list_that_says_why(tmp_path, model):
    ingest(tmp_path, "ratings.csv", SHOP)
    cli("train", model, "-q")
    ingest(tmp_path, "later.csv", "user,item,rating\nu1,C,5\nu1,D,3\n")
    result = user_picks("u1", model, "-n", "3")
    assert result["items"] == []
    assert "the user has rated the rest of the catalog" in result["message"]


# ---- filters ---------------------------------------------------------------------------------
@pytest.fixture
def taste_home(tmp_path):
    reviews, products = write_taste_groups(tmp_path / "data")
    cli("ingest", reviews, "-q")
    cli("ingest", products, "--kind", "products", "-q")
    return tmp_path


def price_of(item: str) -> float:
    return int(item[1:]) + 0.5  # write_taste_groups: item iNN costs NN.5


@pytest.mark.parametrize("model", RECOMMENDERS)
def test_filters_compose_on_user_picks_and_still_fill_n(taste_home, model):
    cli("train", model, "-q")
    plain = user_picks("u003", model, "-n", "5")
    assert len(plain["items"]) == 5
    excluded = ids(plain)[:2]
    result = user_picks(
        "u003", model, "-n", "5", "--exclude", ",".join(excluded),
        "--categories", "even", "--categories", "NoSuchCategory",
        "--price-min", "4", "--price-max", "40",
    )  # fmt: skip
    assert len(result["items"]) == 5, result  # enough items pass: n lines
    for item in ids(result):
        assert item not in excluded
        assert int(item[1:]) % 2 == 0  # "Even"
        assert 4 <= price_of(item) <= 40
    assert "NoSuchCategory" in result["message"]  # a name no item has is reported, not fatal
    # a single --category composes with --categories (any of) as an "and"
    odd_even = user_picks("u003", model, "--category", "Odd", "--categories", "Even")
    assert odd_even["items"] == [] and "pass the filters" in odd_even["message"]


@pytest.mark.parametrize("model", RECOMMENDERS)
def test_filters_hold_on_similar_items_fallback_included(taste_home, model):
    cli("train", model, "-q")
    for item in ("i04", "i99"):  # i99 is never rated: every line comes from the fallback chain
        result = cli(
            "recommend", "item", item, "--model", model, "-n", "6", "--exclude", "i00,i02",
            "--categories", "Even", "--price-max", "30", "--json",
        )  # fmt: skip
        assert len(result["items"]) == 6, result["message"]
        for found in ids(result):
            assert found not in ("i00", "i02", item)
            assert int(found[1:]) % 2 == 0 and price_of(found) <= 30


def test_an_empty_price_range_is_an_empty_answer_and_a_negative_price_an_error(taste_home):
    cli("train", "popularity", "-q")
    for kind, key in (("user", "u003"), ("item", "i04")):
        result = cli("recommend", kind, key, "--model", "popularity", "--price-min", "9",
                     "--price-max", "3", "--json")  # fmt: skip
        assert result["items"] == []
        assert "price_min (9) is above price_max (3): no item can pass" in result["message"]
        cli("recommend", kind, key, "--price-min", "-1", expect=2)
    with pytest.raises(InvalidInput, match="price_max must be a finite number >= 0"):
        Filters.of(price_max=float("nan"))


def test_live_history_on_every_backend(tmp_path, db_url):
    """The same answers with the store in PostgreSQL: the live history query runs there."""
    for name, text in (("ratings.csv", SHOP), ("later.csv", "user,item,rating\nu1,C,5\n")):
        (tmp_path / name).write_text(text)
    cli("--db", db_url, "ingest", tmp_path / "ratings.csv", "-q")
    cli("--db", db_url, "train", "als", "-q")
    cli("--db", db_url, "ingest", tmp_path / "later.csv", "-q")
    cli("--db", db_url, "feedback", "newbie", "A", "B")
    known = cli("--db", db_url, "recommend", "user", "u1", "-n", "2", "--json")
    assert "C" not in ids(known) and "1 rating newer than model" in known["message"]
    stranger = cli("--db", db_url, "recommend", "user", "newbie", "-n", "2", "--json")
    assert not {"A", "B"} & set(ids(stranger))
    assert "folded in from their 2 stored ratings" in stranger["message"]


def test_lookup_array_agrees_with_lookup():
    import numpy as np

    from recsys.models.interactions import lookup, lookup_array

    ids = np.array(sorted(s.encode() for s in ["A", "B2", "Ωmega", "zz", "i01"]))
    keys = ["A", "Ωmega", "zz", "zzz", "", "B", "B2", "i0", "x" * 50, "\udc80"]
    assert lookup_array(ids, keys).tolist() == [
        -1 if lookup(ids, k) is None else lookup(ids, k) for k in keys
    ]
    assert lookup_array(ids, []).tolist() == []


@pytest.mark.parametrize("mode", ["keyword"])  # semantic: the same post-filter (no ss model here)
def test_filters_hold_on_search(taste_home, mode):
    result = cli(
        "search", "product", "--mode", mode, "-k", "5", "--exclude", "i00,i02",
        "--categories", "even", "--price-min", "4", "--price-max", "30", "--json",
    )  # fmt: skip
    found = [hit["item_id"] for hit in result["hits"]]
    assert len(found) == 5, result
    for item in found:
        assert item not in ("i00", "i02") and int(item[1:]) % 2 == 0
        assert 4 <= price_of(item) <= 30
    few = cli("search", "product", "--mode", mode, "--price-min", "58", "--json")
    assert {h["item_id"] for h in few["hits"]} == {"i58", "i59", "i99"}  # all that cost >= 58
    assert "pass the filters" in few["message"]
