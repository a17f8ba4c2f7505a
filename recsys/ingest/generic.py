"""Generic logs: CSV / TSV / any delimiter, or JSONL with arbitrary keys, mapped to recsys fields."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any

import msgspec

from recsys.errors import InvalidInput
from recsys.ingest.amazon import Parser
from recsys.ingest.clean import (
    clean_category,
    clean_text,
    parse_price,
    parse_votes,
    to_epoch_seconds,
)
from recsys.ingest.rows import BadLine, RatingRow, check_id, check_rating, product_row

REVIEW_FIELDS = ("user", "item", "rating", "timestamp", "verified", "helpful_votes")
PRODUCT_FIELDS = ("item", "title", "category", "store", "price", "image_url", "description")
ALL_FIELDS = tuple(dict.fromkeys(REVIEW_FIELDS + PRODUCT_FIELDS))

# Column names recognised without --map (compared lower-case, without "_" and " ").
SYNONYMS: dict[str, tuple[str, ...]] = {
    "user": ("user", "userid", "reviewerid", "customerid", "customer", "visitorid"),
    "item": ("item", "itemid", "movieid", "asin", "parentasin", "productid", "product", "sku"),
    "rating": ("rating", "overall", "score", "stars"),
    "timestamp": ("timestamp", "time", "ts", "unixreviewtime", "datetime", "date"),
    "verified": ("verified", "verifiedpurchase"),
    "helpful_votes": ("helpfulvotes", "helpfulvote", "votes", "vote"),
    "title": ("title", "name", "productname", "moviename"),
    "category": ("category", "maincategory", "maincat", "genres", "genre"),
    "store": ("store", "brand"),
    "price": ("price",),
    "image_url": ("imageurl", "image", "imurl"),
    "description": ("description",),
}


@dataclass
class GenericOptions:
    delimiter: str | None = None  # None: by extension (.csv ",", .tsv "\t") or sniffed
    header: bool = True
    columns: list[str] | None = None  # names for a file without header (extra columns ignored)
    mapping: dict[str, str] = field(default_factory=dict)  # recsys field -> column / key name
    encoding: str = "utf-8"


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "").replace(" ", "").replace("-", "")


def resolve_mapping(
    available: list[str], options: GenericOptions, *, strict: bool = True
) -> dict[str, str]:
    """recsys field -> source name: explicit --map first, then synonyms among the known names.

    `strict`: every mapped name must be among `available` (columns of a CSV; not for JSON lines,
    whose first record may lack optional keys)."""
    for key in options.mapping:
        if key not in ALL_FIELDS:
            raise InvalidInput(
                f"--map {key}=...: unknown field; use one of {', '.join(ALL_FIELDS)}"
            )
    mapping = dict(options.mapping)
    for fld, source in mapping.items():
        if strict and source not in available:
            raise InvalidInput(
                f"--map {fld}={source}: no such column (columns: {', '.join(available)})"
            )
    by_norm = {_norm(name): name for name in available}
    for fld, names in SYNONYMS.items():
        if fld not in mapping:
            found = next((by_norm[n] for n in names if n in by_norm), None)
            if found is not None and found not in mapping.values():
                mapping[fld] = found
    return mapping


def decide_kind(mapping: dict[str, str], kind: str | None, where: str) -> str:
    if kind is None:
        if "user" in mapping and "item" in mapping:
            kind = "reviews"
        elif "item" in mapping:
            kind = "products"
    need = {"reviews": ("user", "item"), "products": ("item",)}.get(kind or "")
    missing = [f for f in need or ("user", "item") if f not in mapping]
    if kind is None or missing:
        raise InvalidInput(
            f"{where}: cannot tell which columns hold {' and '.join(missing or ['user', 'item'])}; "
            "name them with --map FIELD=COLUMN (e.g. --map user=userId --map item=movieId)"
        )
    return kind


class GenericParser(Parser):
    """Turns a record (dict of source name -> value) into a row, using the resolved mapping."""

    name = "generic"

    def __init__(self, kind: str, mapping: dict[str, str], rating_range: tuple[float, float]):
        super().__init__(rating_range)
        self.kind = kind
        self.mapping = mapping

    def _get(self, record: dict[str, Any], fld: str) -> Any:
        source = self.mapping.get(fld)
        return record.get(source) if source is not None else None

    def row_from(self, record: dict[str, Any]) -> Any:
        get = self._get
        if self.kind == "reviews":
            rating = get(record, "rating")
            try:
                timestamp = to_epoch_seconds(get(record, "timestamp") or 0)
            except (ValueError, OverflowError):
                raise BadLine("invalid_timestamp") from None
            try:
                votes = parse_votes(get(record, "helpful_votes"))
            except ValueError:
                raise BadLine("wrong_type:helpful_votes") from None
            verified = get(record, "verified")
            if isinstance(verified, str):
                verified = verified.strip().lower() in ("1", "true", "yes", "y")
            return RatingRow(
                check_id(get(record, "user"), "user"),
                check_id(get(record, "item"), "item"),
                # a log with no rating column is pure implicit feedback: every event counts as 1
                1.0 if "rating" not in self.mapping else check_rating(rating, self.low, self.high),
                timestamp,
                verified if isinstance(verified, bool) else None,
                votes,
            )
        t = self.tally
        description = clean_text(get(record, "description"), t, "text")
        return product_row(
            check_id(get(record, "item"), "item"),
            title=clean_text(get(record, "title"), t, "title"),
            main_category=clean_category(get(record, "category"), t),
            store=clean_text(get(record, "store"), t, "store"),
            price=parse_price(get(record, "price"), t),
            image_url=clean_text(get(record, "image_url"), t, "image_url"),
            description=[description] if description else None,
        )


class JsonLinesParser(GenericParser):
    def parse(self, line: bytes) -> Any:
        try:
            record = msgspec.json.decode(line)
        except UnicodeDecodeError:
            raise BadLine("invalid_utf8") from None
        except msgspec.DecodeError:
            raise BadLine("invalid_json") from None
        if not isinstance(record, dict):
            raise BadLine("wrong_type")
        return self.row_from(record)


class DelimitedParser(GenericParser):
    def __init__(
        self,
        kind: str,
        mapping: dict[str, str],
        columns: list[str],
        options: GenericOptions,
        delimiter: str,
        rating_range: tuple[float, float],
    ):
        super().__init__(kind, mapping, rating_range)
        self.encoding = options.encoding
        self.delimiter = delimiter
        # Only the mapped columns are read: position -> source name.
        self.positions = [(columns.index(src), src) for src in set(mapping.values())]

    @staticmethod
    def split_with(text: str, delimiter: str) -> list[str]:
        if len(delimiter) > 1:  # e.g. MovieLens 1M "::"; csv only takes one character
            return text.split(delimiter)
        return next(csv.reader([text], delimiter=delimiter), [])

    def parse(self, line: bytes) -> Any:
        try:
            text = line.decode(self.encoding)
        except UnicodeDecodeError:
            raise BadLine("invalid_encoding") from None
        cells = self.split_with(text.rstrip("\r\n"), self.delimiter)
        record = {src: cells[pos] if pos < len(cells) else None for pos, src in self.positions}
        return self.row_from(record)


def guess_delimiter(path_name: str, first_line: str, explicit: str | None) -> str:
    if explicit:
        return "\t" if explicit in ("\\t", "tab", "TAB") else explicit
    lower = path_name.lower().removesuffix(".gz")
    if lower.endswith((".tsv", ".tab")):
        return "\t"
    if lower.endswith(".csv"):
        return ","
    counts = {d: first_line.count(d) for d in ("\t", "|", ",", ";")}
    if "::" in first_line:
        return "::"
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
