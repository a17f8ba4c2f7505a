"""Splits and ranking metrics against hand-computed answers; `recsys evaluate mf` end to end."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.errors import InvalidInput
from recsys.evaluate import gini, holdout_mask, paired_significance, ranking_metrics

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
    categories = np.array([0, 0, 1, 1, -1, 2])  # item 4 has none
    result = ranking_metrics(
        lambda rows: scores[rows], np.array([0, 1]), train, test, k=3, item_category=categories
    )
    m = result.metrics
    d = [1 / math.log2(r + 2) for r in range(3)]
    assert m["precision"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert m["recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["ndcg"] == pytest.approx((d[1] / (d[0] + d[1]) + 1.0) / 2)
    assert list(result.per_user_ndcg) == pytest.approx([d[1] / (d[0] + d[1]), 1.0])
    assert m["map"] == pytest.approx(((1 / 2) / 2 + 1.0) / 2)
    assert m["coverage"] == pytest.approx(4 / 6)  # items 0, 1, 2, 3 were recommended
    # exposure over the 6 items: 0:1, 1:2, 2:2, 3:1, 4:0, 5:0 -> Gini of [0,0,1,1,2,2]
    assert m["gini"] == pytest.approx(gini_by_hand([0, 0, 1, 1, 2, 2]))
    # popularity in train: item 0 has 1 of 2 users, the others 0 (counted as 1): -log2(1/2) = 1
    assert m["novelty"] == pytest.approx((1 + 1 + 1 + 1 + 1 + 1) / 6)
    # lists [1,2,3] -> categories 0,1,1: 2 of 3 pairs differ; [0,1,2] -> 0,0,1: 2 of 3
    assert m["diversity"] == pytest.approx(2 / 3)


def gini_by_hand(values: list[float]) -> float:
    n, mean = len(values), sum(values) / len(values)
    return sum(abs(a - b) for a in values for b in values) / (2 * n * n * mean)


def test_gini_is_zero_for_equal_exposure_and_near_one_when_concentrated():
    assert gini(np.array([3, 3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)  # (n - 1) / n for one item
    assert gini(np.zeros(4)) == 0.0


def test_paired_significance():
    rng = np.random.default_rng(0)
    better = rng.random(200)
    assert paired_significance(better, better) == 1.0
    assert paired_significance(better, better - 0.1) < 1e-6
    assert paired_significance(better, better + rng.normal(0, 0.01, 200)) > 0.01


def test_time_split_holds_out_the_latest_and_random_split_is_per_user_and_seeded():
    ts = np.array([50, 10, 40, 20, 30, 60, 0, 70, 80, 90])
    users = np.zeros(10, dtype=np.int32)
    mask = holdout_mask(ts, users, "time", 0.3, 0)
    assert sorted(ts[mask]) == [70, 80, 90]
    users = np.repeat(np.arange(100), np.arange(1, 101) % 9 + 1).astype(np.int32)  # 1..9 each
    a = holdout_mask(None, users, "random", 0.25, 7)
    assert (a == holdout_mask(None, users, "random", 0.25, 7)).all()
    assert not (a == holdout_mask(None, users, "random", 0.25, 8)).all()
    counts = np.bincount(users)
    held = np.bincount(users[a], minlength=100)
    assert (held == np.minimum(np.rint(counts * 0.25), counts - 1)).all()  # per user
    assert (held < counts).all()  # everyone keeps at least one rating in train
    with pytest.raises(InvalidInput):
        holdout_mask(ts, users[:10], "sideways", 0.2, 0)
    with pytest.raises(InvalidInput):
        holdout_mask(ts, users[:10], "time", 1.5, 0)


@pytest.fixture
def taste_groups(tmp_path, monkeypatch):
    for name, value in SMALL_MODEL.items():
        monkeypatch.setenv(name, value)
    ingest_taste_groups(tmp_path / "data")


@pytest.mark.parametrize("split", ["time", "random"])
def test_als_beats_popularity_on_two_taste_groups(taste_groups, split):
    report = cli("evaluate", "mf", "--split", split, "--json")  # the old name of als
    als, popular = report["models"]["als"], report["models"]["popularity"]  # always the baseline
    assert set(report["models"]) == {"als", "popularity"} and report["best"] == "als"
    assert als["ndcg"] > popular["ndcg"] * 1.2 and als["precision"] > popular["precision"]
    assert als["coverage"] > popular["coverage"] and als["gini"] < popular["gini"]
    assert als["p_value"] is None and popular["p_value"] < 0.01  # the best has no test
    assert (
        report["k"] == 10
        and report["split"] == split
        and str(report["seed"])
        in (report["split_description"] if split == "random" else str(report["seed"]))
    )
    assert report["evaluated_users"] > 150 and report["test_interactions"] > 300
    total = report["train_interactions"] + report["test_interactions"]
    if split == "time":
        assert report["test_interactions"] == round(total * 0.2)
        assert "latest 20%" in report["split_description"]
    else:
        assert abs(report["test_interactions"] - total * 0.2) < 200  # rounded per user
        assert "per-user random" in report["split_description"]


def test_every_model_beats_popularity_on_two_taste_groups(taste_groups):
    report = cli("evaluate", "--models", "als,ease,itemknn,rp3beta", "--split", "random", "--json")
    assert list(report["models"])[0] == report["best"]  # best NDCG first
    popular = report["models"]["popularity"]["ndcg"]
    for name in ("als", "ease", "itemknn", "rp3beta"):
        assert report["models"][name]["ndcg"] > popular * 1.2, name
    assert report["params"]["ease"]["regularization"] == 500.0
    assert "p vs best" in cli("evaluate", "ease", "itemknn").output


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
    assert "popularity" in text and "1 users new in test (2 ratings)" in text


def test_evaluate_errors(recsys_home):
    assert "no ratings" in cli("evaluate", "mf", expect=1).output
    assert cli("evaluate", "mf", "--split", "sideways", expect=2).exit_code == 2
    assert "unknown model 'nope'" in cli("evaluate", "nope", expect=1).output
    assert (
        "unknown setting 'als.factorz'"
        in cli("evaluate", "--set", "als.factorz=3", expect=1).output
    )


def test_evaluate_on_real_gift_cards(shared_data):
    folder = shared_data / "amazon2018-gift-cards-5core"
    cli("ingest", folder / "Gift_Cards_5.json", folder / "meta_Gift_Cards.json", "-q")
    report = cli("evaluate", "mf", "--split", "random", "--set", "als.factors=16", "--json")
    assert report["evaluated_users"] > 100 and report["params"]["als"]["factors"] == 16
    assert set(report["models"]) == {"als", "popularity"}


def test_tune_records_the_best_parameters_that_train_and_auto_then_use(taste_groups):
    report = cli("tune", "ease", "rp3beta", "--trials", "3", "--set", "evaluate.split=random",
                 "--json")  # fmt: skip
    assert {t["model"] for t in report["models"]} == {"ease", "rp3beta"}
    assert report["best"] == report["models"][0]["model"]  # best validation NDCG first
    assert "of the training part" in report["validation_description"]
    for t in report["models"]:
        assert 1 <= t["trials"] <= 3 and 0 < t["validation_ndcg"] <= 1 and t["test_ndcg"] > 0
    best = report["models"][0]
    trained = cli("train", best["model"], "--json")
    assert trained["params"] == best["params"]  # train takes the tuned values...
    flagged = cli("train", "ease", "--regularization", "7", "--json")
    assert flagged["params"]["regularization"] == 7.0  # ...unless a flag says otherwise
    cli("train", "als", "-q")
    picks = cli("recommend", "user", "u003", "-n", "3", "--json")  # recommend.model = auto
    assert picks["model"] == report["best"]
    assert "0 = none" in cli("tune", "--help").output
    assert (
        "trials must be at least 1"
        in cli("tune", "ease", "--set", "tune.trials=0", expect=1).output
    )
