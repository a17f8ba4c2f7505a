"""Which parser reads a file: detected from its first lines, or forced by --format / --kind."""

from __future__ import annotations

import codecs
import csv
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from recsys.errors import InvalidInput
from recsys.ingest import amazon
from recsys.ingest.amazon import literal_eval
from recsys.ingest.files import read_head
from recsys.ingest.generic import (
    DelimitedParser,
    GenericOptions,
    GenericParser,
    JsonLinesParser,
    decide_kind,
    guess_delimiter,
    numeric_unmapped,
    resolve_mapping,
)

FORMATS = ("amazon2023", "amazon2018", "amazon2014", "generic")
KINDS = ("reviews", "products")


class _Sniffed:
    """The head lines that are JSON objects or Python dict literals (2014 meta), read together:
    `keys` is the union of their keys, the most frequent first (one line may lack optional keys,
    one broken line may carry odd ones), `common` those in at least half of the records, and
    `literal` is true when they parse only as Python literals."""

    def __init__(self, records: list[dict[str, Any]], literal: bool):
        self.records = records
        self.literal = literal
        counts = Counter(k for r in records for k in r if isinstance(k, str))
        self.keys = [k for k, _ in counts.most_common()]  # ties keep their first appearance
        self.common = [k for k in self.keys if 2 * counts[k] >= len(records)]


def _sniff_records(head: list[bytes]) -> _Sniffed | None:
    if not head[0].lstrip().startswith(b"{"):
        return None
    records, json_lines = [], 0
    for line in head:
        text = line.decode("utf-8", "replace").strip()
        for loads in (json.loads, literal_eval):
            try:
                record = loads(text)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(record, dict):
                records.append(record)
                json_lines += loads is json.loads
            break
    return _Sniffed(records, literal=json_lines == 0) if records else None


def _amazon_guess(keys: set[str], literal: bool) -> tuple[str, str] | None:
    if "parent_asin" in keys:
        return ("amazon2023", "reviews" if "user_id" in keys else "products")
    if "reviewerID" in keys:
        legacy_2014 = "helpful" in keys and not keys & {"verified", "vote", "style"}
        return ("amazon2014" if legacy_2014 else "amazon2018", "reviews")
    if "asin" in keys:
        if keys & {"imUrl", "related", "salesRank", "categories"} or literal:
            return ("amazon2014", "products")  # only 2014 metadata is written as Python literals
        if keys & {"main_cat", "feature", "also_buy", "also_view", "rank", "category", "imageURL"}:
            return ("amazon2018", "products")
    return None


def _vote(sniffed: _Sniffed) -> tuple[str, str] | None:
    """The format most head records look like (one broken line cannot flip it); when no single
    record tells, the union of their keys (a line may lack the telling keys)."""
    guesses = [_amazon_guess(set(r), sniffed.literal) for r in sniffed.records]
    known = [g for g in guesses if g is not None]
    if known:
        return max(dict.fromkeys(known), key=known.count)  # ties: the earliest
    return _amazon_guess(set(sniffed.keys), sniffed.literal)


def make_parser(
    path: Path,
    *,
    fmt: str | None,
    kind: str | None,
    generic: GenericOptions,
    rating_range: tuple[float, float] | None,
    amazon_range: tuple[float, float] = amazon.AMAZON_STARS,
) -> tuple[amazon.Parser, int]:
    """The parser for `path` and how many leading records it consumed (a CSV header).

    `rating_range`: the --rating-range filter, or None for each format's own rule (Amazon files:
    `amazon_range`; generic logs: any finite rating). A generic
    parser's `warnings` say what the mapping left out (no rating column, unmapped numbers)."""
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"--format {fmt}: use one of {', '.join(FORMATS)}")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"--kind {kind}: use one of {', '.join(KINDS)}")
    try:
        codecs.lookup(generic.encoding)
    except LookupError:
        raise InvalidInput(f"--encoding {generic.encoding}: unknown encoding") from None
    head = read_head(path)
    if not head:
        raise InvalidInput(f"{path}: empty file (or not readable)")
    sniffed = _sniff_records(head)
    guess = None
    if sniffed is not None and not generic.mapping:
        guess = _vote(sniffed)

    if fmt != "generic" and (fmt is not None or guess is not None):
        chosen_fmt = fmt or guess[0]  # type: ignore[index]
        chosen_kind = kind or (guess[1] if guess else None)
        if chosen_kind is None:
            raise InvalidInput(f"{path}: cannot tell reviews from products; pass --kind")
        return _amazon_parser(chosen_fmt, chosen_kind, rating_range or amazon_range), 0

    if sniffed is not None and sniffed.literal and fmt is None:
        raise InvalidInput(
            f"{path}: lines are Python literals (Amazon 2014 metadata?): "
            "pass --format amazon2014 --kind products"
        )
    if sniffed is not None and not generic.columns:  # JSON lines with arbitrary keys
        # keys most lines have first: a key of one broken line must not take a field
        common = resolve_mapping(sniffed.common, generic, strict=False)
        mapping = resolve_mapping(sniffed.keys, replace(generic, mapping=common), strict=False)
        parser = JsonLinesParser(decide_kind(mapping, kind, str(path)), mapping, rating_range)
        parser.warnings = _mapping_warnings(parser, sniffed.keys, sniffed.records, "keys")
        return parser, 0

    if b"\x00" in head[0]:
        raise InvalidInput(f"{path}: not a text file (NUL bytes in its first line)")
    first = head[0].decode(generic.encoding, "replace")
    delimiter = guess_delimiter(path.name, first, generic.delimiter)
    if generic.columns:
        columns = generic.columns  # named columns replace a header line, which is still skipped
    elif generic.header:
        try:
            columns = [c.strip() for c in DelimitedParser.split_with(first, delimiter)]
        except csv.Error as exc:
            raise InvalidInput(f"{path}:1: cannot read the header line: {exc}") from None
    else:
        raise InvalidInput(f"{path}: --no-header needs --columns (e.g. --columns user,item,rating)")
    skip = 1 if generic.header else 0
    mapping = resolve_mapping(columns, generic)
    chosen_kind = decide_kind(mapping, kind, str(path))
    delimited = DelimitedParser(chosen_kind, mapping, columns, generic, delimiter, rating_range)
    delimited.warnings = _mapping_warnings(
        delimited, columns, _head_rows(head[skip:], delimited), "columns"
    )
    return delimited, skip


def _head_rows(lines: list[bytes], parser: DelimitedParser) -> list[dict[str, Any]]:
    """The first data lines as column -> cell, for the warnings (lines that do not split are left
    out: the real read reports them)."""
    rows = []
    for line in lines:
        try:
            cells = parser.split_with(line.decode(parser.encoding), parser.delimiter)
        except (UnicodeDecodeError, csv.Error):
            continue
        rows.append(dict(zip(parser.columns, cells, strict=False)))
    return rows


def _mapping_warnings(
    parser: GenericParser, names: list[str], head: list[dict[str, Any]], what: str
) -> list[str]:
    warnings = []
    if parser.kind == "reviews" and "rating" not in parser.mapping:
        warnings.append(
            f"no rating column found among {', '.join(names)}: every row counts as rating 1 "
            "(implicit feedback); map one with --map rating=COLUMN"
        )
    unmapped = numeric_unmapped(head, parser.mapping, names)
    if unmapped:
        warnings.append(
            f"numeric {what} not mapped to any field: {', '.join(unmapped)} "
            "(map one with --map FIELD=NAME if it matters)"
        )
    return warnings


def _amazon_parser(fmt: str, kind: str, rating_range: tuple[float, float] | None) -> amazon.Parser:
    if kind == "reviews":
        if fmt == "amazon2023":
            return amazon.Reviews2023(rating_range)
        return amazon.ReviewsLegacy(fmt, rating_range)
    return {
        "amazon2023": amazon.Meta2023Parser,
        "amazon2018": amazon.Meta2018Parser,
        "amazon2014": amazon.Meta2014Parser,
    }[fmt](rating_range)
