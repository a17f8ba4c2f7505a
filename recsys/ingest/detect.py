"""Which parser reads a file: detected from its first lines, or forced by --format / --kind."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from recsys.errors import InvalidInput
from recsys.ingest import amazon
from recsys.ingest.files import read_head
from recsys.ingest.generic import (
    DelimitedParser,
    GenericOptions,
    JsonLinesParser,
    decide_kind,
    guess_delimiter,
    resolve_mapping,
)

FORMATS = ("amazon2023", "amazon2018", "amazon2014", "generic")
KINDS = ("reviews", "products")


def _sniff_record(head: list[bytes]) -> dict[str, Any] | None:
    """The first head line that is a JSON object or a Python dict literal (2014 meta)."""
    for line in head:
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("{"):
            return None
        for loads in (json.loads, ast.literal_eval):
            try:
                record = loads(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(record, dict):
                return record
    return None


def _amazon_guess(keys: set[str]) -> tuple[str, str] | None:
    if "parent_asin" in keys:
        return ("amazon2023", "reviews" if "user_id" in keys else "products")
    if "reviewerID" in keys:
        legacy_2014 = "helpful" in keys and not keys & {"verified", "vote", "style"}
        return ("amazon2014" if legacy_2014 else "amazon2018", "reviews")
    if "asin" in keys:
        if keys & {"imUrl", "related", "salesRank", "categories"}:
            return ("amazon2014", "products")
        if keys & {"main_cat", "feature", "also_buy", "also_view", "rank", "category", "imageURL"}:
            return ("amazon2018", "products")
    return None


def make_parser(
    path: Path,
    *,
    fmt: str | None,
    kind: str | None,
    generic: GenericOptions,
    rating_range: tuple[float, float],
) -> tuple[amazon.Parser, int]:
    """The parser for `path` and how many leading lines it consumed (a CSV header)."""
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"--kind {kind}: use one of {', '.join(KINDS)}")
    head = read_head(path)
    if not head:
        raise InvalidInput(f"{path}: empty file (or not readable)")
    record = _sniff_record(head)
    guess = _amazon_guess(set(record)) if record is not None and not generic.mapping else None

    if fmt != "generic" and (fmt is not None or guess is not None):
        chosen_fmt = fmt or guess[0]  # type: ignore[index]
        chosen_kind = kind or (guess[1] if guess else None)
        if chosen_kind is None:
            raise InvalidInput(f"{path}: cannot tell reviews from products; pass --kind")
        return _amazon_parser(chosen_fmt, chosen_kind, rating_range), 0

    if record is not None and not generic.columns:  # JSON lines with arbitrary keys
        mapping = resolve_mapping(list(record), generic, strict=False)
        return JsonLinesParser(decide_kind(mapping, kind, str(path)), mapping, rating_range), 0

    first = head[0].decode(generic.encoding, "replace")
    delimiter = guess_delimiter(path.name, first, generic.delimiter)
    if generic.columns:
        columns = generic.columns  # named columns replace a header line, which is still skipped
    elif generic.header:
        columns = [c.strip().lstrip("\ufeff") for c in DelimitedParser.split_with(first, delimiter)]
    else:
        raise InvalidInput(f"{path}: --no-header needs --columns (e.g. --columns user,item,rating)")
    skip = 1 if generic.header else 0
    mapping = resolve_mapping(columns, generic)
    chosen_kind = decide_kind(mapping, kind, str(path))
    parser = DelimitedParser(chosen_kind, mapping, columns, generic, delimiter, rating_range)
    return parser, skip


def _amazon_parser(fmt: str, kind: str, rating_range: tuple[float, float]) -> amazon.Parser:
    if kind == "reviews":
        if fmt == "amazon2023":
            return amazon.Reviews2023(rating_range)
        return amazon.ReviewsLegacy(fmt, rating_range)
    return {
        "amazon2023": amazon.Meta2023Parser,
        "amazon2018": amazon.Meta2018Parser,
        "amazon2014": amazon.Meta2014Parser,
    }[fmt](rating_range)
