"""`recsys ingest`, `sample`, `status`, `config`, `feedback`, `items`."""

import math
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from recsys.cli.app import JsonOpt, app, command, err, out, print_json, settings
from recsys.cli.progress import progress_bar

if TYPE_CHECKING:
    from recsys.schemas import WriteReport


class Format(str, Enum):
    amazon2023 = "amazon2023"
    amazon2018 = "amazon2018"
    amazon2014 = "amazon2014"
    generic = "generic"


class Kind(str, Enum):
    reviews = "reviews"
    products = "products"


def _parse_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise typer.BadParameter(f"expected FIELD=COLUMN, got {pair!r}", param_hint="--map")
        mapping[field.strip()] = column.strip()
    return mapping


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(":"))
    except ValueError:
        raise typer.BadParameter(
            "expected MIN:MAX, e.g. 0.5:5", param_hint="--rating-range"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise typer.BadParameter(
            f"MIN and MAX must be finite numbers (got {text})", param_hint="--rating-range"
        )
    if low > high:
        raise typer.BadParameter(f"MIN must be <= MAX (got {text})", param_hint="--rating-range")
    return low, high


def _known_encoding(value: str) -> str:
    """--encoding must name a codec Python knows: a usage error (exit 2) before any file is read."""
    import codecs

    try:
        codecs.lookup(value)
    except LookupError:
        raise typer.BadParameter(f"unknown encoding {value!r}") from None
    return value


@command(app, "ingest")
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Review or product files (.gz or plain).")],
    kind: Annotated[Kind | None, typer.Option("--kind", help="Override detection.")] = None,
    fmt: Annotated[Format | None, typer.Option("--format", help="Override detection.")] = None,
    delimiter: Annotated[
        str | None, typer.Option(help="Generic logs: field delimiter (default by extension/sniff).")
    ] = None,
    header: Annotated[
        bool, typer.Option("--header/--no-header", help="Generic logs: first line names columns.")
    ] = True,
    columns: Annotated[
        str | None,
        typer.Option(help="Generic logs: comma-separated column names, e.g. user,item,rating."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN, e.g. --map user=userId (repeatable)."),
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="Generic logs: text encoding.", callback=_known_encoding)
    ] = "utf-8",
    rating_range: Annotated[
        str | None,
        typer.Option(
            help="Keep only ratings in MIN:MAX (e.g. 0.5:5); others are bad lines. Default: "
            "Amazon files ingest.rating_min:rating_max (1:5), generic logs any finite rating."
        ),
    ] = None,
    max_errors: Annotated[
        int | None,
        typer.Option(
            help="Stop with exit 1 once more than N bad lines were seen. Batches already "
            "committed are kept; the batch in progress is discarded."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per transaction.", min=1)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load review/rating files and product metadata into the store.

    Detects gzip, reviews vs products, and the format (Amazon 2023/2018/2014 or a generic
    CSV/TSV/JSONL log). Bad lines are skipped, counted and listed; exit 1 past --max-errors.
    """
    from recsys import service
    from recsys.ingest.generic import GenericOptions
    from recsys.ingest.pipeline import IngestAborted

    low_high = _parse_range(rating_range)
    cfg = settings(**{"ingest.batch_size": batch_size})
    generic = GenericOptions(
        delimiter=delimiter,
        header=header,
        columns=[c.strip() for c in columns.split(",")] if columns else None,
        mapping=_parse_map(mapping or []),
        encoding=encoding,
    )
    show_progress = not quiet and err.is_terminal
    with progress_bar(show_progress, "ingest", bytes_=True) as on_progress:
        try:
            report = service.ingest(
                cfg, paths, fmt=fmt and fmt.value, kind=kind and kind.value, generic=generic, max_errors=max_errors,
                rating_range=low_high, on_progress=on_progress,
            )  # fmt: skip
        except IngestAborted as exc:
            _render_report(exc.report, as_json)
            raise
    _render_report(report, as_json)


def _render_report(report, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    table = Table(title="ingest", title_justify="left")
    for col in ("file", "format", "kind", "lines", "rows", "bad", "cleaned"):
        table.add_column(col, justify="right" if col in ("lines", "rows", "bad") else "left")
    for f in report.files:
        cleaned = ", ".join(f"{k} {v}" for k, v in f.cleaned.items()) or "-"
        table.add_row(
            f.file,
            f.format,
            f.kind,
            f"{f.lines_read:,}",
            f"{f.rows:,}",
            f"{f.bad_lines:,}",
            cleaned,
        )
    out.print(table)
    for f in report.files:
        for warning in f.warnings:
            out.print(f"[yellow]{f.file}: {warning}[/]", highlight=False)
        if f.mapping:  # generic logs: which column became which field, and the scale seen
            used = ", ".join(f"{field}={name}" for field, name in f.mapping.items())
            low_high = f.rating_range if "rating" in f.mapping else None
            seen = f"; ratings {low_high[0]:g} to {low_high[1]:g}" if low_high else ""
            out.print(f"{f.file}: {used}{seen}", highlight=False, markup=False)
    out.print(
        f"ratings: {report.ratings.inserted:,} inserted, {report.ratings.updated:,} updated; "
        f"products: {report.products.inserted:,} inserted, {report.products.updated:,} updated; "
        f"{report.lines_read:,} lines in {report.seconds:.1f}s",
        highlight=False,
    )
    if report.bad_lines:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.bad_by_reason.items()))
        out.print(f"[yellow]{report.bad_lines:,} bad lines skipped[/] ({reasons})", highlight=False)
        for e in report.errors[:20]:
            detail = f" ({e.detail})" if e.detail else ""
            out.print(f"  {e.file}:{e.line}: {e.reason}{detail}", highlight=False, markup=False)
        more = report.bad_lines - min(20, len(report.errors))
        if more > 0:
            out.print(f"  ... and {more:,} more (--json lists up to ingest.max_reported_errors)")


@command(app, "sample")
def sample_command(
    outdir: Annotated[
        Path, typer.Argument(help="Folder for reviews.jsonl[.gz] and meta.jsonl[.gz].")
    ],
    users: Annotated[int, typer.Option(min=1, help="Users.")] = 2000,
    items: Annotated[int, typer.Option(min=1, help="Rated items.")] = 500,
    ratings: Annotated[int, typer.Option(min=1, help="Review lines.")] = 20000,
    products: Annotated[
        int | None, typer.Option(min=1, help="Catalog size (default: items + 4%).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    gzip: Annotated[bool, typer.Option("--gzip/--no-gzip", help="Write .gz files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write synthetic Amazon-2023-format review and meta files with a realistic shape.

    Reference scale: --users 1700000 --items 90000 --ratings 2000000 --products 94000.
    """
    from recsys.errors import InvalidInput
    from recsys.ingest.sample import generate_sample

    try:
        result = generate_sample(
            outdir, users=users, items=items, ratings=ratings, products=products, seed=seed,
            gzip=gzip,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if as_json:
        print_json({k: str(v) if isinstance(v, Path) else v for k, v in vars(result).items()})
    else:
        out.print(
            f"wrote {result.ratings:,} reviews by {result.users:,} users on {result.items:,} items "
            f"to {result.reviews_path}\nwrote {result.products:,} products to {result.meta_path}",
            highlight=False,
        )


@command(app, "status")
def status_command(as_json: JsonOpt = False) -> None:
    """Store counts, last ingest time and the published models."""
    from recsys import service

    st = service.status(settings())
    if as_json:
        print_json(st)
        return
    s = st.store
    table = Table(title="store", title_justify="left", show_header=False)
    for label, value in (
        ("database", s.database),
        ("products", f"{s.products:,}"),
        ("ratings", f"{s.ratings:,}"),
        ("users", f"{s.users:,}"),
        ("rated items", f"{s.rated_items:,}"),
        ("ratings without product", f"{s.ratings_without_product:,}"),
        ("last ingest", s.last_ingest_at or "never"),
    ):
        table.add_row(label, value)
    out.print(table)
    models = Table(title="models", title_justify="left")
    for col in ("kind", "version", "created", "size", "age"):
        models.add_column(col)
    for kind, info in st.models.items():
        if info is None:
            models.add_row(kind, "not trained", "-", "-", "-")
        else:
            models.add_row(
                kind, info.version, info.created_at, f"{info.size_bytes / 1e6:.1f} MB",
                f"{info.age_seconds / 3600:.1f} h",
            )  # fmt: skip
    out.print(models)


@command(app, "config")
def config_command(as_json: JsonOpt = False) -> None:
    """Print every effective setting and where its value came from."""
    from recsys.config import settings_table

    rows = settings_table(settings())
    if as_json:
        print_json(rows)
        return
    table = Table(title="config", title_justify="left")
    for col in ("setting", "value", "source"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["key"], repr(row["value"]), row["source"])
    out.print(table)


@command(app, "feedback")
def feedback_command(
    user_id: Annotated[str, typer.Argument(help="User id.")],
    item_ids: Annotated[list[str], typer.Argument(help="Item ids the user bought or rated.")],
    rating: Annotated[
        float | None, typer.Option(help="Rating of every item [feedback.default_rating].")
    ] = None,
    timestamp: Annotated[
        str | None, typer.Option(help="UTC seconds or ISO 8601 (default: now).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that USER_ID rated or bought ITEM_IDS (what POST /feedback does): written like an
    ingest (latest wins, idempotent), and the user's next recommendation reflects it."""
    from recsys import service

    stamp: int | str | None = int(timestamp) if timestamp and timestamp.isdigit() else timestamp
    events = [
        {k: v for k, v in (("user_id", user_id), ("item_id", item), ("rating", rating),
                            ("timestamp", stamp)) if v is not None}
        for item in item_ids
    ]  # fmt: skip
    _render_write(service.record_feedback(settings(), events), "ratings", as_json)


@command(app, "items")
def items_command(
    path: Annotated[
        Path, typer.Argument(help="JSON array or JSON lines of products; - reads stdin.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Insert or replace products {item_id, title, main_category, price, ...} (what POST /items
    does); keyword search and recommendation lines show them at once."""
    import msgspec

    from recsys import service
    from recsys.errors import InvalidInput

    name = "stdin" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{name}: {exc.strerror or exc}") from None
    try:
        stripped = text.lstrip()
        if stripped.startswith("["):
            items = msgspec.json.decode(stripped)
        else:
            items = [msgspec.json.decode(line) for line in text.splitlines() if line.strip()]
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{name}: not a JSON array or JSON lines ({exc})") from None
    _render_write(service.upsert_items(settings(), items), "products", as_json)


def _render_write(report: "WriteReport", table: str, as_json: bool) -> None:
    """Counts and one line per bad event; exit 1 when not one was written."""
    if as_json:
        print_json(report)
    else:
        _print_write(report, table)
    if not report.accepted:  # nothing written: a script must notice
        raise typer.Exit(1)


def _print_write(report: "WriteReport", table: str) -> None:
    out.print(
        f"{table}: {report.inserted:,} inserted, {report.updated:,} updated "
        f"({report.accepted:,} accepted)",
        highlight=False,
    )
    for e in report.errors:
        where = f" {e.field}" if e.field else ""
        err.print(f"[yellow]#{e.index}{where}: {e.message}[/]", highlight=False)
