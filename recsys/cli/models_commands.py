"""`recsys models list|show|rollback|prune`."""

from typing import Annotated

import typer
from rich.table import Table

from recsys.cli.app import JsonOpt, command, out, print_json, settings
from recsys.cli.groups import models_app
from recsys.models.kinds import KINDS

KindArg = Annotated[str, typer.Argument(help=f"Model kind: {', '.join(KINDS)}.")]
VersionArg = Annotated[
    str | None, typer.Argument(help="Version, e.g. 20261126T120000Z (default: current).")
]


@command(models_app, "list")
def models_list_command(
    kind: Annotated[str | None, typer.Argument(help="Only this kind.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every published model version; * marks the current one."""
    from recsys import service
    from recsys.models.registry import check_kind

    infos = service.list_models(settings(), check_kind(kind) if kind else None)
    if as_json:
        print_json(infos)
        return
    if not infos:
        out.print("no models yet: run `recsys train mf`")
        return
    table = Table(title="models", title_justify="left")
    for col in ("kind", "version", "", "created", "size", "ratings"):
        table.add_column(col, justify="right" if col in ("size", "ratings") else "left")
    for info in infos:
        table.add_row(
            info.kind, info.version, "*" if info.current else "", info.created_at,
            f"{info.size_bytes / 1e6:.1f} MB", f"{info.counts.get('ratings', 0):,}",
        )  # fmt: skip
    out.print(table)


@command(models_app, "show")
def models_show_command(
    kind: KindArg, version: VersionArg = None, as_json: JsonOpt = False
) -> None:
    """Manifest summary of one version: parameters, counts, metrics."""
    from recsys import service
    from recsys.errors import NotTrained

    info = service.model_info(settings(), kind, version)
    if info is None:
        raise NotTrained(f"no {kind} model yet: run `recsys train {kind}`")
    if as_json:
        print_json(info)
        return
    table = Table(title=f"{info.kind} {info.version}", title_justify="left", show_header=False)
    table.add_row("current", "yes" if info.current else "no")
    table.add_row("created", info.created_at)
    table.add_row("size", f"{info.size_bytes / 1e6:.1f} MB")
    for key, value in {**info.params, **info.counts}.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    models: dict[str, dict[str, object]] = info.metrics.get("models") or {}  # type: ignore[assignment]
    for model, metrics in models.items():
        text = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        table.add_row(f"{model} @{info.metrics.get('k')}", text)
    out.print(table)


@command(models_app, "rollback")
def models_rollback_command(
    kind: KindArg, version: VersionArg = None, as_json: JsonOpt = False
) -> None:
    """Point KIND's current model at VERSION (default: the version before the current one)."""
    from recsys import service

    info = service.rollback_model(settings(), kind, version)
    if as_json:
        print_json(info)
    else:
        out.print(f"{kind} now serves {info.version}", highlight=False)


@command(models_app, "prune")
def models_prune_command(
    kind: KindArg,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Newest versions to keep.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Delete all but the newest --keep versions (the current one is always kept)."""
    from recsys import service

    removed = service.prune_models(settings(), kind, keep)
    if as_json:
        print_json({"kind": kind, "removed": removed})
    else:
        out.print(
            f"removed {len(removed)} {kind} versions"
            + (f": {', '.join(removed)}" if removed else "")
        )
