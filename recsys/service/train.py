"""Training any recommender of the model table: read the ratings, fit, publish a new version.

One "is the live model up to date?" check and one data fingerprint for every kind: a version is
up to date when its manifest records the same data fingerprint, the same hyperparameters and
the same artifact format, so a nightly cron can call `recsys train MODEL` unconditionally.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import msgspec

from recsys.config import Settings
from recsys.errors import Conflict
from recsys.models.base import ARTIFACT_FORMAT, ProgressFn
from recsys.models.interactions import (
    Interactions,
    read_interactions,
    store_fingerprint,
    user_item_matrix,
)
from recsys.models.kinds import ModelKind, resolve
from recsys.models.registry import Registry
from recsys.models.tuning import tuned_params
from recsys.schemas import TrainResult
from recsys.service.data import engine_for
from recsys.service.models import forget

MIN_USERS, MIN_ITEMS = 2, 2


def model_params(settings: Settings, kind: ModelKind, use_tuned: bool = True) -> dict[str, Any]:
    """The hyperparameters `train` uses. Precedence: CLI flag > RECSYS_* environment > config
    file > the values `recsys tune` recorded in the registry > built-in default."""
    if kind.section is None:
        return {}
    section = getattr(settings, kind.section)
    params = dataclasses.asdict(section)
    tuned = tuned_params(settings.models_dir, kind.name) if use_tuned else {}
    skip = kind.model_class().run_settings  # how/where to fit is not a tuned value
    for key, value in tuned.items():
        if (
            key in params
            and key not in skip
            and settings.sources.get(f"{kind.section}.{key}", "default") == "default"
        ):
            params[key] = value
    if params.get("spark_staging") == "":  # ALS on Spark: Parquet files under the data home
        params["spark_staging"] = str(settings.home / "spark")
    return params


def train(
    settings: Settings,
    model: str,
    *,
    force: bool = False,
    evaluate: bool = False,
    on_progress: ProgressFn | None = None,
) -> TrainResult:
    """Train `model` (any kind of the table, aliases accepted) and publish a new version.

    Raises InvalidInput (400) for a bad hyperparameter, Conflict (409) for an empty or too
    small store."""
    kind = resolve(model)
    if kind.role == "search":
        from recsys.service.search import train_ss

        return train_ss(settings, force=force, on_progress=on_progress)
    return train_recommender(
        settings, kind, force=force, evaluate=evaluate, on_progress=on_progress
    )


def train_recommender(
    settings: Settings,
    kind: ModelKind,
    *,
    force: bool = False,
    evaluate: bool = False,
    on_progress: ProgressFn | None = None,
) -> TrainResult:
    cls = kind.model_class()
    params = model_params(settings, kind)
    cls.check_params(params)
    engine = engine_for(settings)
    registry = Registry(settings.models_dir)
    started = time.perf_counter()
    if not force:
        skipped = up_to_date(
            registry, kind.name, store_fingerprint(engine)[0], params, evaluate, cls.placement
        )
        if skipped is not None:
            return skipped

    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = read_interactions(engine, timestamps=evaluate)
    timings["read"] = time.perf_counter() - t
    check_enough(data)

    t = time.perf_counter()
    matrix = user_item_matrix(data.users, data.items, data.ratings, (data.n_users, data.n_items))
    timings["matrix"] = time.perf_counter() - t

    t = time.perf_counter()
    fitted, fit_counts = cls.from_fit(matrix, params, data.user_ids, data.item_ids, on_progress)
    timings["fit"] = time.perf_counter() - t

    metrics: dict[str, Any] = {}
    if evaluate:
        from recsys.service.evaluation import evaluate_interactions

        t = time.perf_counter()
        report = evaluate_interactions(
            settings, data, [kind.name, "popularity"], params={kind.name: params}
        )
        metrics = msgspec.to_builtins(report)
        timings["evaluate"] = time.perf_counter() - t

    counts = {"users": data.n_users, "items": data.n_items, "ratings": len(data), **fit_counts}

    def build(folder):  # runs inside the registry's temp folder
        fitted.save(folder)
        return {
            "format": ARTIFACT_FORMAT,
            "params": params,
            "data_fingerprint": data.fingerprint,
            "counts": counts,
            "training_seconds": round(sum(timings.values()), 3),
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "metrics": metrics,
        }

    t = time.perf_counter()
    manifest = registry.publish(kind.name, build)
    timings["publish"] = time.perf_counter() - t
    forget(settings, kind.name)
    seconds = time.perf_counter() - started
    return TrainResult(
        kind=kind.name,
        version=manifest["version"],
        message=(
            f"trained {kind.name} {manifest['version']} on {len(data):,} ratings in {seconds:.1f}s"
        ),
        seconds=round(seconds, 3),
        counts=counts,
        params=params,
        metrics=metrics,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def up_to_date(
    registry: Registry,
    kind: str,
    fingerprint: str,
    params: dict[str, Any],
    evaluate: bool,
    placement: tuple[str, ...] = (),
) -> TrainResult | None:
    """A TrainResult saying "skipped" when the live version was trained on this data with these
    parameters (those named in `placement`, where the fit ran, aside) in this artifact format;
    None when a training is due."""
    manifest = registry.verified_current(kind)
    if manifest is None:
        return None  # nothing published, or a damaged current version: train

    def what(values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        return {k: v for k, v in values.items() if k not in placement}

    same = (
        manifest.get("format") == ARTIFACT_FORMAT
        and manifest.get("data_fingerprint") == fingerprint
        and what(manifest.get("params")) == what(params)
        and (not evaluate or manifest.get("metrics"))
    )
    if not same:
        return None
    return TrainResult(
        kind=kind,
        version=manifest["version"],
        skipped=True,
        message=(
            f"model is up to date: {kind} {manifest['version']} was trained on the same data with "
            "the same parameters (--force retrains anyway)"
        ),
        counts=manifest.get("counts", {}),
        params=manifest.get("params", {}),
        metrics=manifest.get("metrics", {}),
    )


def check_enough(data: Interactions) -> None:
    """Conflict (409) when the store has too few ratings to learn anything."""
    if len(data) == 0:
        raise Conflict("the store has no ratings: run `recsys ingest REVIEWS_FILE` first")
    if data.n_users < MIN_USERS or data.n_items < MIN_ITEMS:
        raise Conflict(
            f"too little data to train: {len(data):,} ratings by {data.n_users:,} users on "
            f"{data.n_items:,} items (need at least {MIN_USERS} users and {MIN_ITEMS} items)"
        )
