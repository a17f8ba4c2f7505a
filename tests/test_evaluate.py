"""Splits and ranking metrics against hand-computed answers; `recsys evaluate mf` end to end."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.errors import InvalidInput
from recsys.evaluate import holdout_mask, ranking_metrics

from helpers import cli
from test_mf import SMALL_MODEL, ingest_taste_groups

cli_app = importlib.import_module("recsys.cli.app")


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    data = [(u, i) for u, items in enumerate(rows) for i in items]
    u, i = zip(*data, strict=True) if data else ((), ())
    return sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(len(rows), n_items))


def test_metrics_match_a_hand_computed_answer():
    # 6 items; scores rank items 0,1,2,3,4,5 for both users. User 0 trained on item 0 (masked),
    # so its top-3 is [1, 2, 3]; relevant {2, 5}. User 1 top-3 [0, 1, 2]; relevant {0}.
    train = csr([[0], []], 6)
    test = csr([[2, 5], [0]], 6)
    scores = np.tile(np.arange(6, 0, -1, dtype=np.float32), (2, 1))
    m = ranking_metrics(lambda rows: scores[rows], np.array([0, 1]), train, test, k=3)
    d = [1 / math.log2(r + 2) for r in range(3)]
    assert m["precision"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert m["recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["ndcg"] == pytest.approx((d[1] / (d[0] + d[1]) + 1.0) / 2)
    assert m["map"] == pytest.approx(((1 / 2) / 2 + 1.0) / 2)
    assert m["coverage"] == pytest.approx(4 / 6)  # items 0, 1, 2, 3 were recommended


def test_time_split_holds_out_the_latest_and_random_split_is_seeded():
    ts = np.array([50, 10, 40, 20, 30, 60, 0, 70, 80, 90])
    mask = holdout_mask(ts, 10, "time", 0.3, 0)
    assert sorted(ts[mask]) == [70, 80, 90]
    a, b = holdout_mask(None, 1000, "random", 0.2, 7), holdout_mask(None, 1000, "random", 0.2, 7)
    assert a.sum() == 200 and (a == b).all()
    with pytest.raises(InvalidInput):
        holdout_mask(ts, 10, "sideways", 0.2, 0)
    with pytest.raises(InvalidInput):
        holdout_mask(ts, 10, "time", 1.5, 0)


@pytest.fixture
def taste_groups(tmp_path, monkeypatch):
    for name, value in SMALL_MODEL.items():
        monkeypatch.setenv(name, value)
    ingest_taste_groups(tmp_path / "data")


@pytest.mark.parametrize("split", ["time", "random"])
def test_als_beats_popularity_on_two_taste_groups(taste_groups, split):
    report = cli("evaluate", "mf", "--split", split, "--json")
    als, popular = report["models"]["als"], report["models"]["popular"]
    assert set(als) == {"precision", "recall", "ndcg", "map", "coverage"}
    assert als["ndcg"] > popular["ndcg"] * 1.2 and als["precision"] > popular["precision"]
    assert als["coverage"] > popular["coverage"]
    assert report["k"] == 10 and report["split"] == split
    assert report["evaluated_users"] > 150 and report["test_interactions"] > 300
    total = report["train_interactions"] + report["test_interactions"]
    assert report["test_interactions"] == round(total * 0.2)


def test_cold_users_and_items_are_counted_not_dropped(taste_groups, tmp_path):
    late = tmp_path / "late.csv"
    late.write_text(
        "user,item,rating,timestamp\n"  # newest ratings: a new user and a new item
        "newbie,i01,5,1900000000\nnewbie,i02,4,1900000001\nu001,i77,5,1900000002\n"
    )
    cli("ingest", late, "-q")
    report = cli("evaluate", "mf", "--test-fraction", "0.1", "-k", "5", "--json")
    assert report["cold_users"] == 1 and report["cold_user_interactions"] == 2
    assert report["cold_items"] == 1 and report["cold_item_interactions"] == 1
    assert report["test_users"] > report["evaluated_users"] > 0 and report["k"] == 5
    text = " ".join(cli("evaluate", "mf", "--test-fraction", "0.1").output.split())
    assert "popular" in text and "1 users new in test (2 ratings)" in text


def test_evaluate_errors(recsys_home):
    assert "no ratings" in cli("evaluate", "mf", expect=1).output
    assert cli("evaluate", "mf", "--split", "sideways", expect=2).exit_code == 2


def test_evaluate_on_real_gift_cards(shared_data):
    folder = shared_data / "amazon2018-gift-cards-5core"
    cli("ingest", folder / "Gift_Cards_5.json", folder / "meta_Gift_Cards.json", "-q")
    report = cli("evaluate", "mf", "--split", "random", "--factors", "16", "--json")
    assert report["evaluated_users"] > 100
    assert set(report["models"]) == {"als", "popular"}
