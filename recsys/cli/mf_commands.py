"""`recsys train mf`, `recommend item|user`, `evaluate mf`."""

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from recsys.cli.app import JsonOpt, command, err, out, print_json, settings
from recsys.cli.groups import evaluate_app, recommend_app, train_app
from recsys.cli.progress import progress_bar


class Confidence(str, Enum):
    linear = "linear"
    binary = "binary"


class Split(str, Enum):
    time = "time"
    random = "random"


FactorsOpt = Annotated[
    int | None, typer.Option("--factors", min=0, help="Latent factors, 0 = auto [mf.factors].")
]
IterationsOpt = Annotated[
    int | None, typer.Option("--iterations", min=1, help="ALS iterations [mf.iterations].")
]
RegOpt = Annotated[
    float | None,
    typer.Option("--regularization", min=0, help="L2 regularisation [mf.regularization]."),
]
AlphaOpt = Annotated[
    float | None, typer.Option("--alpha", min=0, help="confidence = 1 + alpha * rating [mf.alpha].")
]
ConfidenceOpt = Annotated[
    Confidence | None,
    typer.Option("--confidence", help="How a rating becomes confidence [mf.confidence]."),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed [mf.random_state].")]
MinUserOpt = Annotated[
    int | None,
    typer.Option(
        "--min-user-ratings", min=1,
        help="Fit only users with this many ratings; others are still served [mf.min_user_ratings].",
    ),
]  # fmt: skip
NOpt = Annotated[int, typer.Option("-n", min=1, help="Number of results.")]
CategoryOpt = Annotated[
    str | None, typer.Option("--category", help="Only items of this main category.")
]


def _mf_settings(factors, iterations, regularization, alpha, conf, seed, min_user, **more):  # type: ignore[no-untyped-def]
    return settings(
        **{
            "mf.min_user_ratings": min_user,
            "mf.factors": factors,
            "mf.iterations": iterations,
            "mf.regularization": regularization,
            "mf.alpha": alpha,
            "mf.confidence": conf.value if conf else None,
            "mf.random_state": seed,
            **more,
        }
    )


@command(train_app, "mf")
def train_mf_command(
    factors: FactorsOpt = None,
    iterations: IterationsOpt = None,
    regularization: RegOpt = None,
    alpha: AlphaOpt = None,
    conf: ConfidenceOpt = None,
    seed: SeedOpt = None,
    min_user_ratings: MinUserOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Retrain even when the model is up to date.")
    ] = False,
    evaluate: Annotated[
        bool,
        typer.Option("--evaluate", help="Also run `evaluate mf` and record it in the manifest."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the ALS model on every rating in the store and publish a new version.

    Skips (exit 0) when the current model was trained on the same data with the same
    hyperparameters, so a nightly cron can run it unconditionally. Exit 1 on an empty store.
    """
    from recsys import service

    cfg = _mf_settings(factors, iterations, regularization, alpha, conf, seed, min_user_ratings)
    with progress_bar(not quiet and err.is_terminal, "ALS iterations") as on_progress:
        result = service.train_mf(cfg, force=force, evaluate=evaluate, on_progress=on_progress)
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
        _render_evaluation_dict(result.metrics)


@command(recommend_app, "item")
def recommend_item_command(
    item_id: Annotated[str, typer.Argument(help="Item id (ASIN).")],
    n: NOpt = 10,
    category: CategoryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Items most similar to ITEM_ID ("customers who bought X also bought Y")."""
    from recsys import service

    result = service.similar_items(settings(), item_id, n, category=category)
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
    explain: Annotated[
        bool, typer.Option("--explain", help="Show which of the user's items drove each pick.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Personal picks for USER_ID; an unknown user gets the popular items (or --items fold-in)."""
    from recsys import service

    item_list = [i.strip() for i in items.split(",") if i.strip()] if items else None
    result = service.recommend_user(
        settings(), user_id, n, include_seen=include_seen, items=item_list, category=category,
        explain=explain,
    )  # fmt: skip
    _render_recommendations(result, as_json)


def _render_recommendations(result, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        print_json(result)
        return
    title = (
        f"{result.kind} {result.query} - strategy {result.strategy}, model {result.model_version}"
    )
    if result.message:
        err.print(f"[yellow]{result.message}[/]", highlight=False)
    if not result.items:
        return
    table = Table(title=title, title_justify="left")
    explain = any(item.because for item in result.items)
    for col in ("#", "item", "score", "title", "price", "category") + (
        ("because",) if explain else ()
    ):
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
        if explain:
            row.append("; ".join(item.because or []) or "-")
        table.add_row(*row)
    out.print(table)


@command(evaluate_app, "mf")
def evaluate_mf_command(
    k: Annotated[int, typer.Option("-k", min=1, help="Cut-off of the top-k metrics.")] = 10,
    split: Annotated[
        Split, typer.Option("--split", help="time: latest ratings are the test set; random.")
    ] = Split.time,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            "--test-fraction", min=0.01, max=0.99, help="Held-out share [mf.test_fraction]."
        ),
    ] = None,
    factors: FactorsOpt = None,
    iterations: IterationsOpt = None,
    regularization: RegOpt = None,
    alpha: AlphaOpt = None,
    conf: ConfidenceOpt = None,
    seed: SeedOpt = None,
    min_user_ratings: MinUserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train ALS on a split of the ratings and compare it with popularity on the rest."""
    from recsys import service

    cfg = _mf_settings(
        factors,
        iterations,
        regularization,
        alpha,
        conf,
        seed,
        min_user_ratings,
        **{"mf.test_fraction": test_fraction},
    )
    report = service.evaluate_mf(cfg, k=k, split=split.value)
    if as_json:
        print_json(report)
        return
    import msgspec

    _render_evaluation_dict(msgspec.to_builtins(report))


def _render_evaluation_dict(report: dict) -> None:
    k = report["k"]
    table = Table(
        title=f"evaluate mf - {report['split']} split, {report['test_fraction']:.0%} test, k={k}",
        title_justify="left",
    )
    table.add_column("model")
    for name in ("precision", "recall", "ndcg", "map", "coverage"):
        table.add_column(f"{name}@{k}" if name != "coverage" else name, justify="right")
    for model, metrics in report["models"].items():
        table.add_row(
            model,
            *(f"{metrics[m]:.4f}" for m in ("precision", "recall", "ndcg", "map", "coverage")),
        )
    out.print(table)
    out.print(
        f"train {report['train_interactions']:,} / test {report['test_interactions']:,} ratings; "
        f"{report['evaluated_users']:,} of {report['test_users']:,} test users evaluated; "
        f"not rankable: {report['cold_users']:,} users new in test "
        f"({report['cold_user_interactions']:,} ratings), {report['cold_items']:,} items new in test "
        f"({report['cold_item_interactions']:,} ratings); catalog {report['catalog_items']:,} items",
        highlight=False,
    )
