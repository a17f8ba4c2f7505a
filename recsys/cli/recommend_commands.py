"""`recsys train MODEL`, `recommend item|user`, `evaluate`, `tune`: every recommender of the
model table (recsys.models.kinds), its flags generated from its settings section."""

import inspect
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from recsys.cli.app import JsonOpt, app, command, err, out, print_json, settings
from recsys.cli.groups import recommend_app, train_app
from recsys.cli.progress import progress_bar
from recsys.evaluate import SPLITS
from recsys.models.kinds import ALIASES, KINDS, RECOMMENDERS, ModelKind

if TYPE_CHECKING:
    from recsys.service.filters import Filters

# Flags whose name differs from their setting (kept from the single-model CLI).
FLAG_NAMES = {("als", "random_state"): "--seed", ("als", "spark_master"): "--master"}
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m",
        help=f"Model: {', '.join(RECOMMENDERS)} or auto [recommend.model].",
    ),
]  # fmt: skip
Split = Enum("Split", {c: c for c in SPLITS}, type=str)  # type: ignore[misc]
NOpt = Annotated[int, typer.Option("-n", min=1, help="Number of results.")]
CategoryOpt = Annotated[
    str | None,
    typer.Option("--category", help="Only items of this category (any of a product's, any case)."),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Item ids never to return (comma-separated, repeatable)."),
]
CategoriesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--categories", help="Only items of any of these categories (repeatable, any case)."
    ),
]
PriceMinOpt = Annotated[
    float | None, typer.Option("--price-min", min=0, help="Only items priced at least this.")
]
PriceMaxOpt = Annotated[
    float | None, typer.Option("--price-max", min=0, help="Only items priced at most this.")
]


def filters_from_options(
    exclude: list[str] | None, categories: list[str] | None, low: float | None, high: float | None
) -> "Filters":
    """The --exclude (comma-separated, repeatable), --categories and price flags as Filters."""
    from recsys.service.filters import Filters

    ids = [i.strip() for part in exclude or [] for i in part.split(",") if i.strip()]
    return Filters.of(ids, categories, low, high)


SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override any setting for this run, e.g. --set als.factors=32 (repeatable)."
    ),
]


def _param_options(kind: ModelKind) -> list[inspect.Parameter]:
    """One typed --flag per hyperparameter of the kind's settings section, default None (only
    flags the user typed override the config and the tuned values)."""
    if kind.section is None:
        return []
    from recsys.config import setting_fields

    params = []
    for f in setting_fields(kind.section):
        flag = FLAG_NAMES.get((kind.name, f.name), "--" + f.name.replace("_", "-"))
        kind_type: Any = type(f.default)
        if f.metadata["choices"]:  # a vocabulary: typer shows and checks the choices (exit 2)
            kind_type = Enum(  # type: ignore[misc,no-redef]  # built from the settings' choices
                f"{kind.name}_{f.name}", {c: c for c in f.metadata["choices"]}, type=str
            )
        annotation = Annotated[
            kind_type | None,
            typer.Option(flag, help=f"{f.metadata['help']} [{kind.section}.{f.name}]."),
        ]
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
    return params


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    from recsys.errors import InvalidInput

    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise InvalidInput(f"--set wants SECTION.KEY=VALUE, got {pair!r}")
        result[key.strip()] = value.strip()
    return result


def _settings_with(overrides: dict[str, Any]):
    """Settings where --set values count as flags (strings are parsed like environment values;
    a bad key or value is a ConfigError naming it)."""
    return settings(**overrides)


def _register_train(kind: ModelKind, name: str, hidden: bool = False) -> None:
    param_opts = _param_options(kind)

    def train_command(**kw: Any) -> None:
        from recsys import service

        force, evaluate, quiet, as_json = (
            kw.pop(k) for k in ("force", "evaluate", "quiet", "as_json")
        )
        flags = {
            f"{kind.section}.{key}": value.value if isinstance(value, Enum) else value
            for key, value in kw.items()
        }
        with progress_bar(not quiet and err.is_terminal, f"{kind.name} fit") as on_progress:
            result = service.train(
                settings(**flags),
                kind.name,
                force=force,
                evaluate=evaluate,
                on_progress=on_progress,
            )
        if as_json:
            print_json(result)
            return
        if result.skipped:
            out.print(result.message, highlight=False)
            return
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
        out.print(
            f"[green]{result.message}[/] ({result.counts['users']:,} users, "
            f"{result.counts['items']:,} items; {timings})",
            highlight=False,
        )
        if result.metrics:
            import msgspec

            from recsys.schemas import EvaluationReport

            _render_evaluation(msgspec.convert(result.metrics, EvaluationReport))

    common = [
        inspect.Parameter("force", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--force", help="Retrain even when the model is up to date.")]),
        inspect.Parameter("evaluate", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--evaluate", help="Also evaluate it against popularity and record that in the manifest.")]),
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress bar.")]),
        inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt),
    ]  # fmt: skip
    train_command.__signature__ = inspect.Signature([*param_opts, *common])  # type: ignore[attr-defined]
    train_command.__annotations__ = {p.name: p.annotation for p in (*param_opts, *common)}
    train_command.__doc__ = (
        f"Train {kind.summary} on every rating in the store and publish a new version.\n\n"
        "Skips (exit 0) when the live version was trained on the same data with the same "
        "parameters, so a nightly cron can run it unconditionally. Parameters: flag > "
        "environment > config file > `recsys tune`'s record > default. Exit 1 on an empty store."
    )
    train_command.__name__ = f"train_{name}"
    command(train_app, name, hidden=hidden)(train_command)


for _kind in (KINDS[name] for name in RECOMMENDERS):
    _register_train(_kind, _kind.name)
for _alias, _target in ALIASES.items():
    if KINDS[_target].role == "recommender":
        _register_train(KINDS[_target], _alias, hidden=True)


@command(recommend_app, "item")
def recommend_item_command(
    item_id: Annotated[str, typer.Argument(help="Item id (ASIN).")],
    n: NOpt = 10,
    category: CategoryOpt = None,
    exclude: ExcludeOpt = None,
    categories: CategoriesOpt = None,
    price_min: PriceMinOpt = None,
    price_max: PriceMaxOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Items most similar to ITEM_ID ("customers who bought X also bought Y"); items the model
    cannot place are answered by the recommend.fallback chain (each line names its model)."""
    from recsys import service

    result = service.similar_items(
        settings(), item_id, n, category=category, model=model,
        filters=filters_from_options(exclude, categories, price_min, price_max),
    )  # fmt: skip
    _render_recommendations(result, as_json)


@command(recommend_app, "user")
def recommend_user_command(
    user_id: Annotated[str, typer.Argument(help="User id.")],
    n: NOpt = 10,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Keep items the user already rated.")
    ] = False,
    items: Annotated[
        str | None,
        typer.Option(
            "--items", help="Comma-separated item ids the user likes (cold start: folded in)."
        ),
    ] = None,
    category: CategoryOpt = None,
    exclude: ExcludeOpt = None,
    categories: CategoriesOpt = None,
    price_min: PriceMinOpt = None,
    price_max: PriceMaxOpt = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show which of the user's items drove each pick.")
    ] = False,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Personal picks for USER_ID from their ratings in the store now (ratings stored since the
    model was trained count at once); a user the model does not know is folded in from their
    stored ratings (or --items), a user without any gets the popular items."""
    from recsys import service

    item_list = [i.strip() for i in items.split(",") if i.strip()] if items else None
    result = service.recommend_user(
        settings(), user_id, n, include_seen=include_seen, items=item_list, category=category,
        explain=explain, model=model,
        filters=filters_from_options(exclude, categories, price_min, price_max),
    )  # fmt: skip
    _render_recommendations(result, as_json)


def _render_recommendations(result, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    title = (
        f"{result.kind} {result.query} - model {result.model} {result.model_version}, "
        f"strategy {result.strategy}"
    )
    if result.message:
        err.print(f"[yellow]{result.message}[/]", highlight=False)
    if not result.items:
        return
    table = Table(title=title, title_justify="left")
    explain = any(item.because for item in result.items)
    mixed = any(item.model != result.model for item in result.items)
    columns: tuple[str, ...] = ("#", "item", "score", "title", "price", "category")
    columns += ("model",) if mixed else ()
    columns += ("because",) if explain else ()
    for col in columns:
        table.add_column(col, justify="right" if col in ("#", "score", "price") else "left")
    for rank, item in enumerate(result.items, 1):
        row = [
            str(rank),
            item.item_id,
            f"{item.score:.3f}",
            item.title or "-",
            f"{item.price:.2f}" if item.price is not None else "-",
            item.category or "-",
        ]
        if mixed:
            row.append(item.model or "-")
        if explain:
            row.append("; ".join(item.because or []) or "-")
        table.add_row(*row)
    out.print(table)


def _model_list(positional: list[str] | None, option: str | None) -> list[str] | None:
    names = [m.strip() for part in [*(positional or []), option or ""] for m in part.split(",")]
    names = [m for m in names if m]
    return names or None


@command(app, "evaluate")
def evaluate_command(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="Models to compare (names or comma lists) [evaluate.models]."),
    ] = None,
    models_opt: Annotated[
        str | None, typer.Option("--models", help="Comma-separated models [evaluate.models].")
    ] = None,
    k: Annotated[int | None, typer.Option("-k", min=1, help="Cut-off [evaluate.k].")] = None,
    split: Annotated[
        Split | None,
        typer.Option("--split", help="time (latest ratings are the test set) or random (per user) [evaluate.split]."),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option("--test-fraction", min=0.01, max=0.99, help="Held-out share [evaluate.test_fraction]."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the random split [evaluate.seed].")] = None,
    overrides: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Fit every model on one split of the ratings and rank the full catalog for each test user:
    precision, recall, NDCG, MAP@k, coverage, novelty, Gini of exposure, category diversity,
    and a Wilcoxon signed-rank p-value of each model's per-user NDCG against the best."""
    from recsys import service

    report = service.evaluate_models(
        _settings_with(_overrides(overrides)), _model_list(models, models_opt), k=k,
        split=split.value if split else None, test_fraction=test_fraction, seed=seed,
    )  # fmt: skip
    if as_json:
        print_json(report)
        return
    _render_evaluation(report)


def _render_evaluation(report) -> None:
    """Two narrow tables (they fit an 80-column terminal): accuracy, then beyond accuracy."""
    k = report.k
    out.print(f"evaluate - {report.split_description}, k={k}", highlight=False)
    groups = (
        [("precision", f"P@{k}"), ("recall", f"R@{k}"), ("ndcg", f"NDCG@{k}"),
         ("map", f"MAP@{k}"), ("p_value", "p vs best")],
        [("coverage", "coverage"), ("novelty", "novelty"), ("gini", "gini"),
         ("diversity", "diversity"), ("fit_seconds", "fit s")],
    )  # fmt: skip
    for columns in groups:
        table = Table()
        table.add_column("model")
        for _, label in columns:
            table.add_column(label, justify="right")
        for name, metrics in report.models.items():
            cells = [_cell(field, getattr(metrics, field)) for field, _ in columns]
            table.add_row(name + (" *" if name == report.best else ""), *cells)
        out.print(table)
    out.print(
        f"train {report.train_interactions:,} / test {report.test_interactions:,} ratings; "
        f"{report.evaluated_users:,} of {report.test_users:,} test users evaluated; "
        f"not rankable: {report.cold_users:,} users new in test "
        f"({report.cold_user_interactions:,} ratings), {report.cold_items:,} items new in test "
        f"({report.cold_item_interactions:,} ratings); catalog {report.catalog_items:,} items. "
        "* best NDCG; p: Wilcoxon signed-rank on per-user NDCG against it.",
        highlight=False,
    )


@command(app, "tune")
def tune_command(
    models: Annotated[
        list[str] | None, typer.Argument(help="Models to tune [evaluate.models].")
    ] = None,
    models_opt: Annotated[str | None, typer.Option("--models", help="Comma-separated models.")] = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials per model [tune.trials].")] = None,
    time_budget: Annotated[
        float | None,
        typer.Option("--time-budget", min=0, help="Seconds per model, 0 = none [tune.time_budget_seconds]."),
    ] = None,
    overrides: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Search each model's hyperparameters (optuna TPE, seeded) on a validation part of the
    training split, then score the best once on the test split. The result is recorded in the
    registry: `train` uses it unless a flag, the environment or the config file says otherwise,
    and recommend.model = auto serves the model that validated best."""
    from recsys import service

    with progress_bar(not quiet and err.is_terminal and not as_json, "tune") as update:

        def on_trial(model: str, done: int, planned: int, best: float) -> None:
            if update is not None:  # one bar per model, trials as steps
                update(done, planned, name=f"tune {model}")

        report = service.tune(
            _settings_with(_overrides(overrides)), _model_list(models, models_opt),
            trials=trials, time_budget=time_budget, on_trial=on_trial,
        )  # fmt: skip
    if as_json:
        print_json(report)
        return
    table = Table(
        title=f"tune - {report.split_description}; {report.validation_description}",
        title_justify="left",
    )
    for col in ("model", "best parameters", f"validation NDCG@{report.k}", f"test NDCG@{report.k}",
                "test, before", "trials", "seconds"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("model", "best parameters") else "right")
    for t in report.models:
        params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        table.add_row(
            t.model + (" *" if t.model == report.best else ""), params or "-",
            f"{t.validation_ndcg:.4f}", f"{t.test_ndcg:.4f}", f"{t.default_test_ndcg:.4f}",
            str(t.trials), f"{t.seconds:.0f}",
        )  # fmt: skip
    out.print(table)
    out.print(
        "* validated best: served by recommend.model = auto. Tuned parameters are recorded in "
        "the registry (models/tuning.json) and used by `recsys train`.",
        highlight=False,
    )


def _cell(field: str, value: float | None) -> str:
    if value is None:
        return "-"
    if field == "fit_seconds":
        return f"{value:.1f}"
    return f"{value:.2g}" if field == "p_value" else f"{value:.4f}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
