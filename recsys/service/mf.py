"""Collaborative filtering as the adapters see it: train, similar items, user picks, evaluate.

Reads are served from a process-wide cached model (recsys.service.models) and are thread-safe:
the model's arrays are never written after load. implicit and scipy are imported only by the
functions that train.
"""

from __future__ import annotations

import difflib
import time
from typing import Any

import msgspec
import numpy as np
from sqlalchemy import func, select

from recsys.config import Settings
from recsys.errors import Conflict, InvalidInput, NotFound
from recsys.models.interactions import (
    Interactions,
    confidence,
    read_interactions,
    store_fingerprint,
    user_item_matrix,
)
from recsys.models.mf import ALSParams, MFModel, ProgressFn, fit_als, fit_rows, save_artifacts
from recsys.models.registry import Registry
from recsys.schemas import EvaluationReport, Recommendations, ScoredItem, TrainResult
from recsys.service.data import engine_for
from recsys.service.models import forget, loaded
from recsys.store.queries import products_by_id, result_line
from recsys.store.tables import product_catalog, user_item_rating

KIND = "mf"
MAX_N = 1000
MIN_USERS, MIN_ITEMS = 2, 2


# ---- training ----------------------------------------------------------------------------
def train_mf(
    settings: Settings,
    *,
    force: bool = False,
    evaluate: bool = False,
    on_progress: ProgressFn | None = None,
) -> TrainResult:
    """Train ALS on every rating in the store and publish a new version.

    Without `force`, nothing happens when the current model was trained on exactly this data
    (same store, same ratings revision and row count) with the same hyperparameters: a nightly
    cron can call this unconditionally.
    """
    params = ALSParams.from_settings(settings.mf)
    engine = engine_for(settings)
    registry = Registry(settings.models_dir)
    started = time.perf_counter()
    if not force:
        skipped = _up_to_date(registry, store_fingerprint(engine)[0], params, evaluate)
        if skipped is not None:
            return skipped

    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = read_interactions(engine, timestamps=evaluate)
    timings["read"] = time.perf_counter() - t
    _check_enough(data)

    t = time.perf_counter()
    values = confidence(data.ratings, params.confidence, params.alpha)
    matrix = user_item_matrix(data.users, data.items, values, (data.n_users, data.n_items))
    fit_matrix = fit_rows(matrix, params.min_user_ratings)
    _check_fit(fit_matrix, params)
    timings["matrix"] = time.perf_counter() - t

    t = time.perf_counter()
    model = fit_als(fit_matrix, params, on_progress)
    timings["fit"] = time.perf_counter() - t

    metrics: dict[str, Any] = {}
    if evaluate:
        t = time.perf_counter()
        report = evaluate_interactions(
            data, params, k=10, split="time", test_fraction=settings.mf.test_fraction,
            seed=settings.mf.random_state,
        )  # fmt: skip
        metrics = msgspec.to_builtins(report)
        timings["evaluate"] = time.perf_counter() - t

    counts = {
        "users": data.n_users,
        "items": data.n_items,
        "ratings": len(data),
        "fit_users": fit_matrix.shape[0],
        "fit_ratings": int(fit_matrix.nnz),
        "factors": int(model.item_factors.shape[1]),  # the resolved value when mf.factors = 0
    }

    def build(folder):  # runs inside the registry's temporary folder
        save_artifacts(
            folder, user_ids=data.user_ids, item_ids=data.item_ids, matrix=matrix,
            item_factors=model.item_factors,
        )  # fmt: skip
        return {
            "params": params.as_dict(),
            "data_fingerprint": data.fingerprint,
            "counts": counts,
            "training_seconds": round(sum(timings.values()), 3),
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "metrics": metrics,
        }

    t = time.perf_counter()
    manifest = registry.publish(KIND, build)
    timings["publish"] = time.perf_counter() - t
    forget(settings, KIND)
    seconds = time.perf_counter() - started
    return TrainResult(
        kind=KIND,
        version=manifest["version"],
        message=f"trained mf {manifest['version']} on {len(data):,} ratings in {seconds:.1f}s",
        seconds=round(seconds, 3),
        counts=counts,
        params=params.as_dict(),
        metrics=metrics,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def _up_to_date(
    registry: Registry, fingerprint: str, params: ALSParams, evaluate: bool
) -> TrainResult | None:
    manifest = registry.verified_current(KIND)
    if manifest is None:
        return None  # nothing published, or a damaged current version: train
    same = (
        manifest.get("data_fingerprint") == fingerprint
        and manifest.get("params") == params.as_dict()
        and (not evaluate or manifest.get("metrics"))
    )
    if not same:
        return None
    return TrainResult(
        kind=KIND,
        version=manifest["version"],
        skipped=True,
        message=(
            f"model is up to date: mf {manifest['version']} was trained on the same data with the "
            "same parameters (--force retrains anyway)"
        ),
        counts=manifest.get("counts", {}),
        params=manifest.get("params", {}),
        metrics=manifest.get("metrics", {}),
    )


def _check_enough(data: Interactions) -> None:
    if len(data) == 0:
        raise Conflict("the store has no ratings: run `recsys ingest REVIEWS_FILE` first")
    if data.n_users < MIN_USERS or data.n_items < MIN_ITEMS:
        raise Conflict(
            f"too little data to train: {len(data):,} ratings by {data.n_users:,} users on "
            f"{data.n_items:,} items (need at least {MIN_USERS} users and {MIN_ITEMS} items)"
        )


def _check_fit(fit_matrix, params: ALSParams) -> None:  # type: ignore[no-untyped-def]
    if fit_matrix.shape[0] < MIN_USERS:
        raise Conflict(
            f"too little data to train: only {fit_matrix.shape[0]} users have at least "
            f"{params.min_user_ratings} ratings (lower --min-user-ratings to use more users)"
        )


# ---- serving -----------------------------------------------------------------------------
def current_model(settings: Settings) -> MFModel:
    return loaded(settings, KIND, MFModel.load).model


def similar_items(
    settings: Settings, item_id: str, n: int = 10, category: str | None = None
) -> Recommendations:
    """Items most similar to `item_id` by the cosine of their learned factors (itself excluded)."""
    _check_n(n)
    model = current_model(settings)
    item = model.item_index(item_id)
    if item is None:
        return _unrated_item(settings, model, item_id)
    if not model.trained[item]:
        return Recommendations(
            kind="similar", query=item_id, strategy="none", model_version=model.version, items=[],
            message=(
                f"item {item_id!r} was only rated by one-time buyers ({model.item_counts[item]}), "
                "so there is no co-occurrence to learn from; try `recsys search` for items like it"
            ),
        )  # fmt: skip
    allowed = _category_mask(settings, model, category)
    picks, scores = model.similar(item, n, allowed)
    return Recommendations(
        kind="similar",
        query=item_id,
        strategy="als",
        model_version=model.version,
        items=_scored(settings, model, picks, scores),
        message=_short_message(len(picks), n, category, model),
    )


def recommend_user(
    settings: Settings,
    user_id: str,
    n: int = 10,
    *,
    include_seen: bool = False,
    items: list[str] | None = None,
    category: str | None = None,
    explain: bool = False,
) -> Recommendations:
    """Personal picks for a user the model knows (strategy "als"); for one it does not, the
    popularity ranking ("popular"), or with `items` a vector folded in from those ("fold_in")."""
    _check_n(n)
    model = current_model(settings)
    allowed = _category_mask(settings, model, category)
    user = model.user_index(user_id)
    notes: list[str] = []

    seen_items, seen_conf = model.seen(user) if user is not None else (_EMPTY_I, _EMPTY_F)
    extra = _fold_in_items(model, items or [], notes)
    if len(extra):
        extra = extra[~np.isin(extra, seen_items)]
        seen_items = np.concatenate([seen_items, extra])
        seen_conf = np.concatenate(
            [seen_conf, np.full(len(extra), model.typical_confidence, dtype=np.float32)]
        )
    if not len(seen_items):  # unknown user, nothing to fold in
        picks, scores = model.top_popular(n, allowed=allowed)
        notes.insert(0, f"user {user_id!r} is not in model {model.version}: most popular items")
        if short := _short_message(len(picks), n, category, model):
            notes.append(short)
        return Recommendations(
            kind="user", query=user_id, strategy="popular", model_version=model.version,
            items=_scored(settings, model, picks, scores), message="; ".join(notes) or None,
        )  # fmt: skip

    strategy = "fold_in" if items else "als"
    vector, system = model.solve_user(seen_items, seen_conf)
    exclude = None if include_seen else seen_items
    picks, scores = model.recommend(vector, n, exclude, allowed)
    because = model.explain(system, seen_items, seen_conf, picks) if explain else None
    short = _short_message(len(picks), n, category, model)
    if short:
        notes.append(short)
    return Recommendations(
        kind="user",
        query=user_id,
        strategy=strategy,
        model_version=model.version,
        items=_scored(settings, model, picks, scores, because),
        message="; ".join(notes) or None,
    )


_EMPTY_I = np.array([], dtype=np.int32)
_EMPTY_F = np.array([], dtype=np.float32)


def _fold_in_items(model: MFModel, item_ids: list[str], notes: list[str]) -> np.ndarray:
    if not item_ids:
        return _EMPTY_I
    found = {i: model.item_index(i) for i in dict.fromkeys(item_ids)}
    unknown = [i for i, idx in found.items() if idx is None]
    known = np.array([idx for idx in found.values() if idx is not None], dtype=np.int32)
    if unknown and not len(known):
        raise NotFound(
            f"none of the given items are known to model {model.version}: {', '.join(unknown)}"
        )
    if unknown:
        notes.append(f"ignored items unknown to the model: {', '.join(unknown)}")
    return known


def _check_n(n: int) -> None:
    if not 1 <= n <= MAX_N:
        raise InvalidInput(f"n must be between 1 and {MAX_N}, got {n}")


def _short_message(found: int, n: int, category: str | None, model: MFModel) -> str | None:
    if found < n and category:
        if not found:
            return _unknown_category(model, category)
        return f"only {found} items in category {category!r} qualify"
    return None


def _unknown_category(model: MFModel, category: str) -> str:
    """Why a category filter left nothing: no rated item has it (with a did-you-mean hint)."""
    names = (model.extras.get("categories") or ([], None))[0]
    if category.strip().lower() in (name.lower() for name in names):
        return f"no item in category {category!r} qualifies"
    close = difflib.get_close_matches(category, names, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"no rated item has main category {category!r}{hint}"


def _unrated_item(settings: Settings, model: MFModel, item_id: str) -> Recommendations:
    """An id the model does not know: unknown everywhere (NotFound) or a catalog item without
    ratings in this model (an empty answer that says why)."""
    engine = engine_for(settings)
    with engine.connect() as conn:
        ratings = conn.scalar(
            select(func.count())
            .select_from(user_item_rating)
            .where(user_item_rating.c.item_id == item_id)
        )
        in_catalog = conn.scalar(
            select(func.count())
            .select_from(product_catalog)
            .where(product_catalog.c.item_id == item_id)
        )
    if ratings:
        message = (
            f"item {item_id!r} has {ratings} ratings that model {model.version} predates: "
            "run `recsys train mf`"
        )
    elif in_catalog:
        message = (
            f"item {item_id!r} is in the catalog but nobody has rated it, so collaborative "
            f"filtering knows nothing about it; try `recsys search` for items like it"
        )
    else:
        raise NotFound(f"unknown item {item_id!r}: not in the catalog and never rated")
    return Recommendations(
        kind="similar", query=item_id, strategy="none", model_version=model.version, items=[],
        message=message,
    )  # fmt: skip


def _category_mask(settings: Settings, model: MFModel, category: str | None) -> np.ndarray | None:
    """Boolean mask over the model's items: main category equals `category` (case-insensitive).
    Categories are read from the catalog once per loaded model (one query)."""
    if not category:
        return None
    names, codes = model.extras.get("categories") or _load_categories(settings, model)
    wanted = category.strip().lower()
    lowered = [name.lower() for name in names]
    if wanted not in lowered:  # schema-valid, so not a 400: no item qualifies (message says why)
        return np.zeros(model.n_items, dtype=bool)
    wanted_codes = [i for i, name in enumerate(lowered) if name == wanted]
    return np.isin(codes, wanted_codes)


def _load_categories(settings: Settings, model: MFModel) -> tuple[list[str], np.ndarray]:
    """(category names of rated items, code per model item or -1), cached on the model."""
    from recsys.models.interactions import lookup_many

    p = product_catalog.c
    with engine_for(settings).connect() as conn:
        rows = conn.execute(
            select(p.item_id, p.main_category).where(p.main_category.is_not(None))
        ).all()
    indexes = lookup_many(model.item_ids, [item_id for item_id, _ in rows])
    rated = [(idx, cat) for idx, (_, cat) in zip(indexes, rows, strict=True) if idx is not None]
    names = sorted({cat for _, cat in rated})
    code_of = {name: code for code, name in enumerate(names)}
    codes = np.full(model.n_items, -1, dtype=np.int32)
    for idx, cat in rated:
        codes[idx] = code_of[cat]
    model.extras["categories"] = (names, codes)  # one reference assignment: safe under threads
    return names, codes


def _scored(
    settings: Settings,
    model: MFModel,
    picks: np.ndarray,
    scores: np.ndarray,
    because: list[np.ndarray] | None = None,
) -> list[ScoredItem]:
    """Result lines with catalog fields, fetched in ONE query for picks and explanations."""
    ids = model.item_id_list(picks)
    because_ids = [model.item_id_list(b) for b in because] if because is not None else None
    wanted = ids if because_ids is None else list({*ids, *(i for g in because_ids for i in g)})
    catalog = products_by_id(engine_for(settings), wanted)
    return [
        result_line(
            item_id, score, catalog.get(item_id),
            None if because_ids is None
            else [(catalog.get(b) or {}).get("title") or b for b in because_ids[pos]],
        )
        for pos, (item_id, score) in enumerate(zip(ids, scores.tolist(), strict=True))
    ]  # fmt: skip


# ---- evaluation --------------------------------------------------------------------------
def evaluate_mf(
    settings: Settings,
    *,
    k: int = 10,
    split: str = "time",
    test_fraction: float | None = None,
    seed: int | None = None,
) -> EvaluationReport:
    """Hold out part of the ratings, train ALS (current hyperparameters) and a popularity
    baseline on the rest, and rank the full catalog for every test user."""
    params = ALSParams.from_settings(settings.mf)
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    data = read_interactions(engine_for(settings), timestamps=True)
    _check_enough(data)
    return evaluate_interactions(
        data, params, k=k, split=split,
        test_fraction=settings.mf.test_fraction if test_fraction is None else test_fraction,
        seed=settings.mf.random_state if seed is None else seed,
    )  # fmt: skip


def evaluate_interactions(
    data: Interactions, params: ALSParams, *, k: int, split: str, test_fraction: float, seed: int
) -> EvaluationReport:
    from threadpoolctl import threadpool_limits

    from recsys.evaluate import holdout_mask, ranking_metrics
    from recsys.models.popularity import item_counts, popularity_scores

    started = time.perf_counter()
    is_test = holdout_mask(data.timestamps, len(data), split, test_fraction, seed)
    tr_u, tr_i = data.users[~is_test], data.items[~is_test]
    train_users, train_items = np.unique(tr_u), np.unique(tr_i)
    if len(train_users) < MIN_USERS or len(train_items) < MIN_ITEMS:
        raise Conflict("too little data left for training after the split")
    umap = np.full(data.n_users, -1, dtype=np.int64)
    umap[train_users] = np.arange(len(train_users))
    imap = np.full(data.n_items, -1, dtype=np.int64)
    imap[train_items] = np.arange(len(train_items))
    shape = (len(train_users), len(train_items))
    values = confidence(data.ratings[~is_test], params.confidence, params.alpha)
    train = user_item_matrix(umap[tr_u], imap[tr_i], values, shape)
    fit_matrix = fit_rows(train, params.min_user_ratings)
    _check_fit(fit_matrix, params)

    te_u, te_i = umap[data.users[is_test]], imap[data.items[is_test]]
    cold_user, cold_item = te_u < 0, te_i < 0
    warm = ~cold_user & ~cold_item
    test = user_item_matrix(te_u[warm], te_i[warm], np.ones(int(warm.sum()), np.float32), shape)
    users = np.flatnonzero(np.diff(test.indptr) > 0)

    als = fit_als(fit_matrix, params)
    item_factors = als.item_factors
    untrained = ~item_factors.any(axis=1)

    def score_als(rows: np.ndarray) -> np.ndarray:
        with threadpool_limits(1, "blas"):
            vectors = als.recalculate_user(rows, train[rows])  # the serving path's user step
        scores = vectors @ item_factors.T
        scores[:, untrained] = -np.inf  # as served: items without factors are never picked
        return scores

    popular = popularity_scores(item_counts(imap[tr_i], len(train_items))).astype(np.float32)

    def score_popular(rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(popular, (len(rows), len(popular)))

    models = {
        "als": ranking_metrics(score_als, users, train, test, k),
        "popular": ranking_metrics(score_popular, users, train, test, k),
    }
    return EvaluationReport(
        kind=KIND,
        k=k,
        split=split,
        test_fraction=test_fraction,
        seed=seed,
        train_interactions=int((~is_test).sum()),
        test_interactions=int(is_test.sum()),
        test_users=int(len(np.unique(data.users[is_test]))),
        evaluated_users=int(len(users)),
        cold_users=int(len(np.unique(data.users[is_test][cold_user]))),
        cold_user_interactions=int(cold_user.sum()),
        cold_items=int(len(np.unique(data.items[is_test][cold_item]))),
        cold_item_interactions=int(cold_item.sum()),
        catalog_items=len(train_items),
        models={name: _metrics(m) for name, m in models.items()},
        params=params.as_dict(),
        seconds=round(time.perf_counter() - started, 3),
    )


def _metrics(values: dict[str, float]):
    from recsys.schemas import RankingMetrics

    return RankingMetrics(**{name: round(v, 6) for name, v in values.items()})
