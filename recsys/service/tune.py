"""`recsys tune`: a hyperparameter search per model with optuna's seeded TPE sampler (Bergstra
et al. 2011, "Algorithms for Hyper-Parameter Optimization"; optuna: Akiba et al. 2019).

Protocol: the ratings are split as `recsys evaluate` splits them (evaluate.split,
evaluate.test_fraction, evaluate.seed). The test part is never seen while tuning: trials fit on
the training part minus a validation part carved out of it the same way
(tune.validation_fraction) and are scored by NDCG@k on that validation part. The best parameters
are then fitted on the whole training part and scored once on the test part, next to the
parameters in force before tuning. The result is recorded in the registry (tuning.json), where
`train` and `recommend.model = auto` find it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import numpy as np

from recsys.config import Settings
from recsys.errors import InvalidInput, RecsysError
from recsys.evaluate import describe_split, holdout_mask
from recsys.models.interactions import read_interactions
from recsys.models.kinds import KINDS
from recsys.models.tuning import write_tuning
from recsys.schemas import TunedModel, TuneReport
from recsys.service.data import engine_for
from recsys.service.evaluation import _model_names, fit_and_score, split_interactions
from recsys.service.train import check_enough, model_params

TrialFn = Callable[[str, int, int, float], None]  # (model, trials done, trials planned, best)


def tune(
    settings: Settings,
    models: Sequence[str] | None = None,
    *,
    trials: int | None = None,
    time_budget: float | None = None,
    on_trial: TrialFn | None = None,
) -> TuneReport:
    """Tune each model; returns the table (best validation NDCG first) and records it.

    `trials` per model (default tune.trials, capped by what a model has to tune), `time_budget`
    seconds per model (default tune.time_budget_seconds; 0 = none). InvalidInput (400) for an
    unknown model or a bad budget; Conflict (409) for too little data."""
    import optuna

    cfg, tcfg = settings.evaluate, settings.tune
    names = _model_names(models or cfg.models)
    trials = tcfg.trials if trials is None else trials
    budget = tcfg.time_budget_seconds if time_budget is None else time_budget
    if trials < 1:
        raise InvalidInput(f"trials must be at least 1, got {trials}")
    if budget < 0:
        raise InvalidInput(f"time budget must not be negative, got {budget}")
    started = time.perf_counter()
    data = read_interactions(engine_for(settings), timestamps=True)
    check_enough(data)
    is_test = holdout_mask(data.timestamps, data.users, cfg.split, cfg.test_fraction, cfg.seed)
    train_rows = np.flatnonzero(~is_test)
    assert data.timestamps is not None
    is_validation = holdout_mask(
        data.timestamps[train_rows], data.users[train_rows], cfg.split,
        tcfg.validation_fraction, cfg.seed + 1,
    )  # fmt: skip
    validation = split_interactions(data, train_rows, is_validation)
    test = split_interactions(data, np.arange(len(data)), is_test)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuned: list[TunedModel] = []
    for name in names:
        kind = KINDS[name]
        cls = kind.model_class()
        before = model_params(settings, kind, use_tuned=False)
        planned = min(trials, cls.max_trials)
        model_started = time.perf_counter()

        def objective(trial, cls=cls, before=before, name=name):
            params = {**before, **cls.search_space(trial, before)}
            try:
                cls.check_params(params)
                result, _ = fit_and_score(name, params, validation, cfg.k, None)
            except RecsysError as exc:  # e.g. a size the machine cannot hold: skip the point
                raise optuna.TrialPruned(str(exc)) from None
            return float(result.metrics["ndcg"] or 0.0)

        def report(study, _trial, name=name, planned=planned):
            if on_trial is not None:
                done = len(study.trials)
                best = study.best_value if any(t.value is not None for t in study.trials) else 0.0
                on_trial(name, done, planned, best)

        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed)
        )
        study.optimize(
            objective, n_trials=planned, timeout=budget or None, callbacks=[report],
            catch=(),
        )  # fmt: skip
        completed = [t for t in study.trials if t.value is not None]
        best_params = {**before, **(study.best_params if completed else {})}
        validation_ndcg = study.best_value if completed else 0.0
        test_result, _ = fit_and_score(name, best_params, test, cfg.k, None)
        default_result, _ = fit_and_score(name, before, test, cfg.k, None)
        tuned.append(
            TunedModel(
                model=name,
                params=best_params,
                validation_ndcg=round(validation_ndcg, 6),
                test_ndcg=round(float(test_result.metrics["ndcg"] or 0.0), 6),
                default_test_ndcg=round(float(default_result.metrics["ndcg"] or 0.0), 6),
                trials=len(study.trials),
                seconds=round(time.perf_counter() - model_started, 3),
            )
        )
    tuned.sort(key=lambda t: -t.validation_ndcg)
    report_ = TuneReport(
        k=cfg.k,
        split_description=describe_split(cfg.split, cfg.test_fraction, cfg.seed),
        validation_description=(
            f"validation: {describe_split(cfg.split, tcfg.validation_fraction, cfg.seed + 1)} "
            "of the training part"
        ),
        models=tuned,
        best=tuned[0].model if tuned else None,
        seconds=round(time.perf_counter() - started, 3),
    )
    write_tuning(
        settings.models_dir,
        {
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "k": cfg.k,
            "split": report_.split_description,
            "validation": report_.validation_description,
            "data_fingerprint": data.fingerprint,
            "best": report_.best,
            "models": {
                t.model: {
                    "params": t.params, "validation_ndcg": t.validation_ndcg,
                    "test_ndcg": t.test_ndcg, "trials": t.trials,
                }
                for t in tuned
            },
        },
    )  # fmt: skip
    return report_
