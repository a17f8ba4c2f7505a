"""`recsys search` and `recsys train ss`."""

from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from recsys.cli.app import JsonOpt, app, command, err, out, print_json, settings
from recsys.cli.groups import train_app
from recsys.cli.progress import progress_bar
from recsys.cli.recommend_commands import (
    CategoriesOpt,
    ExcludeOpt,
    PriceMaxOpt,
    PriceMinOpt,
    filters_from_options,
)


class Mode(str, Enum):
    semantic = "semantic"
    keyword = "keyword"
    hybrid = "hybrid"


class IndexKind(str, Enum):
    auto = "auto"
    flat = "flat"
    hnsw = "hnsw"
    ivfpq = "ivfpq"


@command(app, "search")
def search_command(
    query: Annotated[str, typer.Argument(help="What the shopper typed.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Number of hits.")] = 10,
    mode: Annotated[
        Mode | None,
        typer.Option(help="hybrid | semantic | keyword (default: search.mode, hybrid)."),
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="Only products of this category (main or listed; any case).")
    ] = None,
    exclude: ExcludeOpt = None,
    categories: CategoriesOpt = None,
    price_min: PriceMinOpt = None,
    price_max: PriceMaxOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search the catalog: embeddings (semantic), full-text (keyword), or both blended (hybrid)."""
    from recsys.service.search import search

    results = search(
        settings(), query, k=k, mode=mode and mode.value, category=category,
        filters=filters_from_options(exclude, categories, price_min, price_max),
    )  # fmt: skip
    if as_json:
        print_json(results)
        return
    table = Table(
        title=f"{results.mode} search: {results.query!r}"
        + (f" (ss {results.model_version})" if results.model_version else ""),
        title_justify="left",
    )
    for col in ("#", "score", "item", "title", "price", "category"):
        table.add_column(col, justify="right" if col in ("#", "score", "price") else "left")
    for rank, hit in enumerate(results.hits, start=1):
        table.add_row(
            str(rank), f"{hit.score:.4f}", hit.item_id, hit.title or "-",
            f"{hit.price:.2f}" if hit.price is not None else "-", hit.category or "-",
        )  # fmt: skip
    out.print(table)
    if not results.hits:
        out.print(results.message or "no matches", highlight=False)


@command(train_app, "ss")
def train_ss_command(
    force: Annotated[
        bool, typer.Option("--force", help="Retrain even if the catalog is unchanged.")
    ] = False,
    fields: Annotated[
        str | None,
        typer.Option(help="Comma-separated product fields to embed (default: ss.fields = title)."),
    ] = None,
    index: Annotated[
        IndexKind | None,
        typer.Option(help="FAISS index: auto | flat | hnsw | ivfpq (default: ss.index)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Texts per encoder batch.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Embed product texts with all-MiniLM-L6-v2 (offline) into a FAISS index and publish it.

    Only new or changed texts are encoded (an embedding cache keyed by text hash). Skipped with
    exit 0 when the catalog is unchanged since the current version, unless --force.
    """
    from recsys.service.search import train_ss

    cfg = settings(**{"ss.batch_size": batch_size})
    field_list = [f.strip() for f in fields.split(",")] if fields else None
    with progress_bar(not quiet and err.is_terminal, "encoding") as on_progress:
        result = train_ss(
            cfg,
            force=force,
            fields=field_list,
            index=index and index.value,
            on_progress=on_progress,
        )
    if as_json:
        print_json(result)
        return
    out.print(result.message, highlight=False)
    if not result.skipped:
        c = result.counts
        out.print(
            f"{c['products_embedded']:,} products embedded ({c['newly_encoded']:,} encoded, "
            f"{c['reused_from_cache']:,} from cache, {c['skipped_no_text']:,} without text) "
            f"into a {result.params['index']} index in {result.seconds:.1f}s"
            + "".join(
                f"; {name} recall@10 {result.metrics[f'{name}_recall_at_10']}"
                for name in ("hnsw", "ivfpq")
                if f"{name}_recall_at_10" in result.metrics
            ),
            highlight=False,
        )
