"""The contract every recommender of the model table passes (in the spirit of implicit's shared
RecommenderBase test mixin). A new kind in recsys/models/kinds.py is run through all of it.

Known answer: two taste groups. Users 0-99 rate only items 0-29, users 100-199 only items 30-59,
with a popularity skew inside each group; item 60 is bought by one user (200) who bought nothing
else.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.config import Settings, setting_fields
from recsys.errors import InvalidInput
from recsys.models.base import ARTIFACT_FORMAT, Recommender
from recsys.models.kinds import KINDS, RECOMMENDERS

from helpers import cli
from test_mf import GROUP_A, GROUP_B, SMALL_MODEL, ingest_taste_groups

cli_app = importlib.import_module("recsys.cli.app")
LEARNS = [name for name in RECOMMENDERS if name != "popularity"]  # the baseline learns nothing
A, B = np.arange(30), np.arange(30, 60)


def taste_matrix(users: int = 200, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 31) ** 0.7
    weights /= weights.sum()
    rows, cols, vals = [], [], []
    for u in range(users):
        offset = 0 if u < users // 2 else 30
        for i in rng.choice(30, size=int(rng.integers(8, 13)), replace=False, p=weights):
            rows.append(u)
            cols.append(int(i) + offset)
            vals.append(float(rng.integers(3, 6)))
    rows.append(users)  # a one-time buyer of item 60: no co-occurrence to learn from
    cols.append(60)
    vals.append(5.0)
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(users + 1, 61), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def params_for(name: str) -> dict:
    """Each kind's default hyperparameters; ALS gets the small rank this answer supports."""
    section = KINDS[name].section
    params = dataclasses.asdict(getattr(Settings(), section)) if section else {}
    if name == "als":
        params.update(factors=4, regularization=5.0)
    return params


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[Recommender, sp.csr_matrix]]:
    matrix = taste_matrix()
    user_ids = np.array([f"u{u:03d}".encode() for u in range(matrix.shape[0])])
    item_ids = np.array([f"i{i:02d}".encode() for i in range(matrix.shape[1])])
    models = {}
    for name in RECOMMENDERS:
        cls = KINDS[name].model_class()
        model, _ = cls.from_fit(matrix, params_for(name), user_ids, item_ids)
        models[name] = (model, matrix)
    return models


def group_of(item: int) -> set[int]:
    return set(A) if item < 30 else set(B)


# ---- the table itself ----------------------------------------------------------------------
@pytest.mark.parametrize("name", RECOMMENDERS)
def test_kind_is_complete(name):
    kind = KINDS[name]
    cls = kind.model_class()
    assert issubclass(cls, Recommender) and cls.kind == name
    assert kind.summary and kind.role == "recommender"
    params = params_for(name)
    cls.check_params(params)  # the settings section's defaults are valid parameters
    if kind.section:
        assert {f.name for f in setting_fields(kind.section)} == set(params)
    import optuna

    # `recsys tune` may only suggest parameters of the section, and only valid ones
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = cls.search_space(study.ask())
    assert set(space) <= set(params)
    cls.check_params({**params, **space})


# ---- known answers -------------------------------------------------------------------------
@pytest.mark.parametrize("name", LEARNS)
def test_similar_items_stay_in_the_taste_group(fitted, name):
    model, _ = fitted[name]
    for item in (0, 5, 31, 44):
        picks, scores = model.similar(item, 10)
        assert len(picks) == 10 and item not in picks
        assert set(picks.tolist()) <= group_of(item), (name, item, picks)
        assert np.all(np.diff(scores) <= 1e-6) and np.all(np.isfinite(scores))


@pytest.mark.parametrize("name", LEARNS)
def test_user_picks_stay_in_the_group_and_skip_seen_items(fitted, name):
    model, matrix = fitted[name]
    for user in (3, 50, 150, 199):
        items, ratings = model.seen(user)
        assert list(items) == list(matrix[user].indices)
        picks, scores = model.recommend(items, ratings, 8, exclude=items)
        assert len(picks) == 8 and not set(picks.tolist()) & set(items.tolist())
        assert set(picks.tolist()) <= group_of(int(items[0])), (name, user, picks)
        assert np.all(np.diff(scores) <= 1e-6)


@pytest.mark.parametrize("name", LEARNS)
def test_fold_in_of_a_new_users_items(fitted, name):
    model, _ = fitted[name]
    items = np.array([31, 33, 40])
    picks, _ = model.recommend(items, np.full(3, model.typical_rating, np.float32), 6, items)
    assert len(picks) == 6 and set(picks.tolist()) <= set(B) - set(items.tolist())


def test_popularity_ranks_by_interactions(fitted):
    model, matrix = fitted["popularity"]
    counts = np.diff(matrix.tocsc().indptr)
    picks, scores = model.recommend(np.array([], np.int32), np.array([], np.float32), 5)
    assert list(scores) == sorted(counts, reverse=True)[:5]
    assert all(len(b) == 0 for b in model.explain(np.array([0]), np.array([5.0]), picks))


# ---- explanations ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in RECOMMENDERS if KINDS[n].model_class().explains])
def test_explanations_add_up_to_the_score(fitted, name):
    model, _ = fitted[name]
    items, ratings = model.seen(7)
    picks, _ = model.recommend(items, ratings, 5, exclude=items)
    scores = model.user_scores(items, ratings)
    parts = model.contributions(items, ratings, picks)
    assert parts.shape == (5, len(items))
    np.testing.assert_allclose(parts.sum(axis=1), scores[picks], rtol=1e-4, atol=1e-5)
    for pick, because in zip(picks, model.explain(items, ratings, picks), strict=True):
        assert 1 <= len(because) <= 3 and set(because.tolist()) <= set(items.tolist())
        assert because[0] == items[np.argmax(parts[list(picks).index(pick)])]


# ---- persistence -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", RECOMMENDERS)
def test_save_and_load_give_identical_answers(fitted, name, tmp_path: Path):
    model, _ = fitted[name]
    model.save(tmp_path)
    manifest = {"kind": name, "version": "v", "format": ARTIFACT_FORMAT, "params": model.params}
    again = type(model).load(tmp_path, manifest)
    assert not list(tmp_path.glob("*.pkl")) and all(p.suffix == ".npy" for p in tmp_path.iterdir())
    for item in (0, 31, 60):
        for got, want in zip(again.similar(item, 10), model.similar(item, 10), strict=True):
            np.testing.assert_array_equal(got, want)
    items, ratings = model.seen(3)
    np.testing.assert_array_equal(
        again.user_scores(items, ratings), model.user_scores(items, ratings)
    )
    old = {**manifest, "format": 1}
    with pytest.raises(Exception, match="older recsys"):
        type(model).load(tmp_path, old)


# ---- filters and bounds ------------------------------------------------------------------------
@pytest.mark.parametrize("name", RECOMMENDERS)
def test_allowed_mask_n_bounds_and_unknowns(fitted, name):
    model, _ = fitted[name]
    allowed = np.zeros(model.n_items, dtype=bool)
    allowed[0:30:2] = True  # even items of group A
    picks, _ = model.similar(4, 10, allowed)
    assert set(picks.tolist()) <= set(np.flatnonzero(allowed)) - {4}
    items, ratings = model.seen(3)
    picks, scores = model.recommend(items, ratings, 10, exclude=items, allowed=allowed)
    assert set(picks.tolist()) <= set(np.flatnonzero(allowed)) - set(items.tolist())
    # n beyond the catalog: never more than the items that can be answered, never -inf
    picks, scores = model.recommend(items, ratings, 1000, exclude=items)
    assert len(picks) <= model.n_items - len(items) and np.all(np.isfinite(scores))
    assert len(set(picks.tolist())) == len(picks)
    picks, scores = model.similar(0, 1000)
    assert 0 not in picks and np.all(np.isfinite(scores)) and len(picks) < model.n_items
    assert model.item_index("nope") is None and model.user_index("nobody") is None
    assert model.item_index("i05") == 5 and model.user_index("u003") == 3


@pytest.mark.parametrize("name", LEARNS)
def test_an_item_without_co_occurrence_has_no_neighbours(fitted, name):
    model, _ = fitted[name]
    assert len(model.similar(60, 10)[0]) == 0
    items, ratings = model.seen(200)  # that buyer's picks: nothing scores positively
    _, scores = model.recommend(items, ratings, 10, exclude=items)
    assert not np.any(scores > 1e-6)


@pytest.mark.parametrize("name", RECOMMENDERS)
def test_bad_hyperparameters_are_invalid_input(name):
    cls = KINDS[name].model_class()
    params = params_for(name)
    if not params:
        return  # nothing to get wrong
    key, value = next(iter(params.items()))
    bad = -5 if isinstance(value, (int, float)) else "sideways"
    with pytest.raises(InvalidInput):
        cls.check_params({**params, key: bad})


# ---- end to end: the CLI and the service, every model ------------------------------------------
@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


@pytest.fixture(scope="module")
def every_model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("contract") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSYS_HOME", str(home))
        mp.setattr(cli_app, "_globals", cli_app.GlobalOptions())
        for env, value in SMALL_MODEL.items():
            mp.setenv(env, value)
        from recsys.service import data

        data._engine.cache_clear()
        ingest_taste_groups(home.parent / "data")
        for name in RECOMMENDERS:
            cli("train", name, "-q")
        data._engine.cache_clear()
    return home


@pytest.fixture
def every_model(every_model_home: Path, recsys_home: Path, monkeypatch) -> Path:
    import shutil

    shutil.copytree(every_model_home, recsys_home)
    for env, value in SMALL_MODEL.items():
        monkeypatch.setenv(env, value)
    return recsys_home


@pytest.mark.parametrize("name", LEARNS)
def test_cli_answers_with_every_model(every_model, name):
    similar = cli("recommend", "item", "i00", "-n", "5", "--model", name, "--json")
    assert similar["model"] == name and similar["strategy"] == name
    assert {r["item_id"] for r in similar["items"]} <= GROUP_A
    assert {r["model"] for r in similar["items"]} == {name}
    picks = cli("recommend", "user", "u150", "-n", "5", "--model", name, "--explain", "--json")
    assert picks["model"] == name and {r["item_id"] for r in picks["items"]} <= GROUP_B
    assert all(r["because"] for r in picks["items"])
    odd = cli(
        "recommend", "user", "u003", "-n", "10", "--model", name, "--category", "odd", "--json"
    )
    assert len(odd["items"]) == 10 and {r["category"] for r in odd["items"]} == {"Odd"}
    assert cli("train", name, "--json")["skipped"] is True  # one up-to-date check for all


def test_unknown_model_is_one_line(every_model):
    result = cli("recommend", "item", "i00", "--model", "slope-one", expect=1)
    assert "unknown model 'slope-one'" in result.output and "ease" in result.output


@pytest.mark.parametrize("name", RECOMMENDERS)
def test_too_little_data_is_a_clear_error(name, recsys_home, tmp_path):
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("user,item,rating,timestamp\nu1,i1,5,1700000000\nu1,i2,4,1700000001\n")
    cli("ingest", tiny, "-q")
    result = cli("train", name, expect=1)
    assert "too little data" in result.output and len(result.output.strip().splitlines()) == 1


def test_ease_is_bounded_by_max_items_and_by_the_memory_available(monkeypatch):
    """EASE's matrix is items^2: it keeps the most popular `max_items` items, and a fit that
    would not fit in the memory this machine has left is refused before it starts."""
    from recsys.errors import Conflict
    from recsys.models import ease

    matrix = taste_matrix()
    ids = np.array([f"x{i}".encode() for i in range(matrix.shape[0])])
    items = np.array([f"i{i:02d}".encode() for i in range(matrix.shape[1])])
    model, counts = ease.EASEModel.from_fit(
        matrix, {"regularization": 50.0, "max_items": 20}, ids, items
    )
    popular = np.argsort(-np.diff(matrix.tocsc().indptr), kind="stable")[:20]
    assert counts == {"ease_items": 20, "rated_items": 61}
    assert set(np.flatnonzero(model.known).tolist()) == set(popular.tolist())
    assert len(model.similar(int(np.flatnonzero(~model.known)[0]), 5)[0]) == 0  # outside: none
    need = ease.fit_bytes(61)
    monkeypatch.setattr(ease, "available_memory_bytes", lambda: need)  # a nearly full machine
    with pytest.raises(Conflict, match=r"lower ease.max_items"):
        ease.EASEModel.from_fit(matrix, {"regularization": 50.0, "max_items": 100}, ids, items)


@pytest.mark.parametrize("name", RECOMMENDERS)
def test_recommend_ranks_like_the_full_catalog_scores(fitted, name):
    """Fast paths (item-item models rank only the neighbours of the user's items, EASE only its
    kept items) give the positive-scored top of `user_scores`, the path evaluation measures."""
    model, _ = fitted[name]
    allowed = np.ones(model.n_items, dtype=bool)
    allowed[1::3] = False
    for user in (3, 77, 150, 200):
        items, ratings = model.seen(user)
        for mask in (None, allowed):
            scores = model.user_scores(items, ratings)
            scores[items] = -np.inf
            if mask is not None:
                scores[~mask] = -np.inf
            picks, got = model.recommend(items, ratings, 10, exclude=items, allowed=mask)
            positive = got > 1e-6
            want = np.sort(scores[np.isfinite(scores) & (scores > 1e-6)])[::-1][:10]
            np.testing.assert_allclose(got[positive], want[: positive.sum()], rtol=1e-4)
            np.testing.assert_allclose(scores[picks[positive]], got[positive], rtol=1e-4)
