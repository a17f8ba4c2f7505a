"""`recsys evaluate`: one split, every chosen model side by side, scored through the code that
serves them (each test user's scores come from `Recommender.user_scores` on their train items,
exactly as a user's picks are computed when served)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from recsys.config import Settings
from recsys.errors import Conflict, InvalidInput
from recsys.evaluate import (
    describe_split,
    holdout_mask,
    paired_significance,
    ranking_metrics,
)
from recsys.models.interactions import Interactions, read_interactions, user_item_matrix
from recsys.models.kinds import KINDS, resolve
from recsys.models.tuning import EVALUATION_FILE, write_record
from recsys.schemas import EvaluationReport, RankingMetrics
from recsys.service.data import engine_for
from recsys.service.train import MIN_ITEMS, MIN_USERS, check_enough, model_params
from recsys.store.queries import iso_time


@dataclass
class Split:
    """A train part and a test part over the same user and item codes."""

    train: Any  # users x items CSR of raw ratings (train items only, compacted)
    test: Any  # users x items CSR, 1 per held-out rating of a train user on a train item
    users: np.ndarray  # train-matrix rows with at least one test item: the evaluated users
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_codes: np.ndarray  # compacted item -> index into the data's item ids
    facts: dict[str, Any]


def split_interactions(data: Interactions, rows: np.ndarray, is_test: np.ndarray) -> Split:
    """Train on rows[~is_test], test on rows[is_test] (both index `data`)."""
    users, items, ratings = data.users[rows], data.items[rows], data.ratings[rows]
    tr_u, tr_i = users[~is_test], items[~is_test]
    train_users, train_items = np.unique(tr_u), np.unique(tr_i)
    if len(train_users) < MIN_USERS or len(train_items) < MIN_ITEMS:
        raise Conflict("too little data left for training after the split")
    umap = np.full(data.n_users, -1, dtype=np.int64)
    umap[train_users] = np.arange(len(train_users))
    imap = np.full(data.n_items, -1, dtype=np.int64)
    imap[train_items] = np.arange(len(train_items))
    shape = (len(train_users), len(train_items))
    train = user_item_matrix(umap[tr_u], imap[tr_i], ratings[~is_test], shape)
    te_u, te_i = umap[users[is_test]], imap[items[is_test]]
    cold_user, cold_item = te_u < 0, te_i < 0
    warm = ~cold_user & ~cold_item
    test = user_item_matrix(te_u[warm], te_i[warm], np.ones(int(warm.sum()), np.float32), shape)
    facts = {
        "train_interactions": int((~is_test).sum()),
        "test_interactions": int(is_test.sum()),
        "test_users": int(len(np.unique(users[is_test]))),
        "cold_users": int(len(np.unique(users[is_test][cold_user]))),
        "cold_user_interactions": int(cold_user.sum()),
        "cold_items": int(len(np.unique(items[is_test][cold_item]))),
        "cold_item_interactions": int(cold_item.sum()),
        "catalog_items": len(train_items),
    }
    return Split(
        train=train,
        test=test,
        users=np.flatnonzero(np.diff(test.indptr) > 0),
        user_ids=data.user_ids[train_users],
        item_ids=data.item_ids[train_items],
        item_codes=train_items,
        facts=facts,
    )


def score_function(model: Any, train: Any):
    """users (train rows) -> scores (users x items), each row the model's served user scoring."""

    def score(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), train.shape[1]), dtype=np.float32)
        for pos, row in enumerate(rows):
            lo, hi = train.indptr[row], train.indptr[row + 1]
            out[pos] = model.user_scores(train.indices[lo:hi], train.data[lo:hi])
        return out

    return score


def fit_and_score(
    kind_name: str, params: dict[str, Any], split: Split, k: int, categories: np.ndarray | None
):
    """Fit one model on the split's train part and rank its test users: (RankingResult, s)."""
    from threadpoolctl import threadpool_limits

    cls = KINDS[kind_name].model_class()
    started = time.perf_counter()
    model, _ = cls.from_fit(split.train, params, split.user_ids, split.item_ids)
    with threadpool_limits(1, "blas"):  # per-user scoring is many small products
        result = ranking_metrics(
            score_function(model, split.train), split.users, split.train, split.test, k,
            item_category=categories,
        )  # fmt: skip
    return result, time.perf_counter() - started


def evaluate_models(
    settings: Settings,
    models: Sequence[str] | None = None,
    *,
    k: int | None = None,
    split: str | None = None,
    test_fraction: float | None = None,
    seed: int | None = None,
) -> EvaluationReport:
    """Hold out part of the ratings, fit every model (its current hyperparameters, see
    `model_params`) on the rest, and rank the full catalog for every test user. The report is
    also kept in the registry (`models/evaluation.json`) for the dashboard's overview.

    InvalidInput (400) for an unknown model, split or k; Conflict (409) for too little data."""
    cfg = settings.evaluate
    names = _model_names([*(models or cfg.models), "popularity"])  # always the baseline
    k = cfg.k if k is None else k
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    chosen = dataclasses.replace(
        cfg, split=split or cfg.split, k=k, seed=cfg.seed if seed is None else seed,
        test_fraction=cfg.test_fraction if test_fraction is None else test_fraction,
    )  # fmt: skip
    settings = dataclasses.replace(settings, evaluate=chosen)
    data = read_interactions(engine_for(settings), timestamps=True)
    check_enough(data)
    params = {name: model_params(settings, KINDS[name]) for name in names}
    report = evaluate_interactions(settings, data, names, params=params)
    record = {"evaluated_at": iso_time(time.time()), "report": msgspec.to_builtins(report)}
    write_record(settings.models_dir, EVALUATION_FILE, record)  # the dashboard shows the last
    return report


def _model_names(models: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(resolve(m, "recommender").name for m in models))
    if not names:
        raise InvalidInput("no models to evaluate")
    return names


def evaluate_interactions(
    settings: Settings,
    data: Interactions,
    names: Sequence[str],
    *,
    params: dict[str, dict[str, Any]] | None = None,
) -> EvaluationReport:
    """The report for `names` on `data` with the split of `settings.evaluate`."""
    cfg = settings.evaluate
    started = time.perf_counter()
    for name in names:
        KINDS[name].model_class().check_params((params or {}).get(name, {}))
    is_test = holdout_mask(data.timestamps, data.users, cfg.split, cfg.test_fraction, cfg.seed)
    cut = None
    if cfg.split == "time" and data.timestamps is not None and is_test.any():
        cut = int(data.timestamps[is_test].min())
    split = split_interactions(data, np.arange(len(data)), is_test)
    categories = _category_codes(settings, split.item_ids)
    results = {}
    seconds = {}
    for name in names:
        results[name], seconds[name] = fit_and_score(
            name, (params or {}).get(name, {}), split, cfg.k, categories
        )
    best = max(results, key=lambda name: results[name].metrics["ndcg"] or 0.0)
    metrics = {}
    for name in sorted(results, key=lambda name: -(results[name].metrics["ndcg"] or 0.0)):
        values = results[name].metrics
        p_value = (
            None
            if name == best
            else paired_significance(results[best].per_user_ndcg, results[name].per_user_ndcg)
        )
        metrics[name] = RankingMetrics(
            **{m: (round(v, 6) if v is not None else None) for m, v in values.items()},  # type: ignore[arg-type]
            p_value=p_value,  # unrounded: tiny p-values are the point
            fit_seconds=round(seconds[name], 3),
        )
    return EvaluationReport(
        k=cfg.k,
        split=cfg.split,
        split_description=describe_split(cfg.split, cfg.test_fraction, cfg.seed, cut),
        test_fraction=cfg.test_fraction,
        seed=cfg.seed,
        evaluated_users=int(len(split.users)),
        models=metrics,
        best=best,
        params={name: dict((params or {}).get(name, {})) for name in names},
        seconds=round(time.perf_counter() - started, 3),
        **split.facts,
    )


def _category_codes(settings: Settings, item_ids: np.ndarray) -> np.ndarray | None:
    """Main category code per item (-1 unknown), for intra-list diversity; None without any."""
    from sqlalchemy import select

    from recsys.models.interactions import lookup_many
    from recsys.store.tables import product_catalog

    p = product_catalog.c
    with engine_for(settings).connect() as conn:
        rows = conn.execute(
            select(p.item_id, p.main_category).where(p.main_category.is_not(None))
        ).all()
    if not rows:
        return None
    codes = np.full(len(item_ids), -1, dtype=np.int64)
    names: dict[str, int] = {}
    for idx, (_, main) in zip(lookup_many(item_ids, [r[0] for r in rows]), rows, strict=True):
        if idx is not None:
            codes[idx] = names.setdefault(main.strip().lower(), len(names))
    return codes if (codes >= 0).any() else None
