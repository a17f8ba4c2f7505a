"""Generic logs: CSV / TSV / any delimiter, or JSONL with arbitrary keys, mapped to recsys fields."""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator
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
from recsys.ingest.files import TOO_LONG
from recsys.ingest.rows import BadLine, RatingRow, check_id, check_rating, product_row

REVIEW_FIELDS = ("user", "item", "rating", "timestamp", "verified", "helpful_votes")
PRODUCT_FIELDS = ("item", "title", "category", "store", "price", "image_url", "description")
ALL_FIELDS = tuple(dict.fromkeys(REVIEW_FIELDS + PRODUCT_FIELDS))

# Column names recognised without --map (compared lower-case, without "_" and " ").
SYNONYMS: dict[str, tuple[str, ...]] = {
    "user": ("user", "userid", "reviewerid", "customerid", "customer", "visitorid"),
    "item": ("item", "itemid", "movieid", "asin", "parentasin", "productid", "product", "sku"),
    "rating": ("rating", "overall", "score", "stars", "bookrating", "userrating", "starrating"),
    "timestamp": ("timestamp", "time", "ts", "unixreviewtime", "datetime", "date"),
    "verified": ("verified", "verifiedpurchase"),
    "helpful_votes": ("helpfulvotes", "helpfulvote", "votes", "vote"),
    "title": ("title", "name", "productname", "moviename"),
    "category": ("category", "categories", "maincategory", "maincat", "genres", "genre"),
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
    by_norm: dict[str, str] = {}
    for name in available:  # the first of two names that differ only in case or spacing wins
        by_norm.setdefault(_norm(name), name)
    for fld, names in SYNONYMS.items():
        if fld not in mapping:
            found = next((by_norm[n] for n in names if n in by_norm), None)
            if found is not None and found not in mapping.values():
                mapping[fld] = found
    if "rating" not in mapping:  # "Book-Rating", "movie_rating", "RatingValue"... (not averages)
        found = next((name for norm, name in by_norm.items() if _rating_like(norm)), None)
        if found is not None and found not in mapping.values():
            mapping["rating"] = found
    return mapping


def _rating_like(norm: str) -> bool:
    return (
        "rating" in norm
        and not norm.startswith(("avg", "average", "mean", "num", "count"))
        and (not norm.endswith(("count", "number", "num", "s")))
    )


def numeric_unmapped(
    head: list[dict[str, Any]], mapping: dict[str, str], names: list[str]
) -> list[str]:
    """Columns (or keys) that hold numbers in every sampled record but are mapped to no field."""
    mapped = set(mapping.values())
    found = []
    for name in names:
        values = [r.get(name) for r in head if r.get(name) not in (None, "")]
        if name not in mapped and values and all(_is_number(v) for v in values):
            found.append(name)
    return found


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value).strip())
    except ValueError:
        return False
    return True


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


MAX_RECORD_LINES = 1000  # a quoted field longer than this is an unclosed quote, not a text
CATEGORY_SEPARATOR = "|"  # MovieLens genres: "Animation|Children's|Musical"


class GenericParser(Parser):
    """Turns a record (dict of source name -> value) into a row, using the resolved mapping.

    Ratings: any finite number unless `rating_range` (the --rating-range filter) is given; a log
    with no rating column is implicit feedback (every row 1.0). A category cell holding several
    values ("Animation|Children's" or a JSON list) fills `categories`; `main_category` is the first.
    """

    name = "generic"
    default_range = None  # a generic log has its own scale (0.5..5, 0..10, ...): accept any finite

    def __init__(
        self, kind: str, mapping: dict[str, str], rating_range: tuple[float, float] | None = None
    ):
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
            timestamp = to_epoch_seconds(get(record, "timestamp") or 0)
            votes = parse_votes(get(record, "helpful_votes"))
            verified = get(record, "verified")
            if isinstance(verified, str):
                verified = verified.strip().lower() in ("1", "true", "yes", "y")
            return RatingRow(
                check_id(get(record, "user"), "user"),
                check_id(get(record, "item"), "item"),
                # a log with no rating column is pure implicit feedback: every event counts as 1
                1.0 if "rating" not in self.mapping else check_rating(rating, self.rating_range),
                timestamp,
                verified if isinstance(verified, bool) else None,
                votes,
            )
        t = self.tally
        description = clean_text(get(record, "description"), t, "text")
        categories = self._categories(get(record, "category"))
        return product_row(
            check_id(get(record, "item"), "item"),
            title=clean_text(get(record, "title"), t, "title"),
            main_category=categories[0] if categories else None,
            categories=categories,
            store=clean_text(get(record, "store"), t, "store"),
            price=parse_price(get(record, "price"), t),
            image_url=clean_text(get(record, "image_url"), t, "image_url"),
            description=[description] if description else None,
        )

    def _categories(self, value: Any) -> list[str] | None:
        values = value if isinstance(value, list) else [value]
        if len(values) == 1 and isinstance(values[0], str):
            values = values[0].split(CATEGORY_SEPARATOR)
        cleaned = (clean_category(v, self.tally) for v in values)
        return list(dict.fromkeys(c for c in cleaned if c)) or None


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
        rating_range: tuple[float, float] | None,
    ):
        super().__init__(kind, mapping, rating_range)
        self.encoding = options.encoding
        self.delimiter = delimiter
        self.columns = columns
        # Only the mapped columns are read: position -> source name.
        self.positions = [(columns.index(src), src) for src in set(mapping.values())]

    @staticmethod
    def split_with(text: str, delimiter: str) -> list[str]:
        """Cells of one record (text without its line end); raises csv.Error (e.g. a bare CR)."""
        if len(delimiter) > 1:  # e.g. MovieLens 1M "::"; csv only takes one character
            return text.split(delimiter)
        return next(csv.reader([text], delimiter=delimiter), [])

    def parse(self, line: bytes) -> Any:
        try:
            text = line.decode(self.encoding)
        except UnicodeDecodeError:
            raise BadLine("invalid_encoding") from None
        try:
            cells = self.split_with(text.rstrip("\r\n"), self.delimiter)
        except csv.Error as exc:  # e.g. a bare CR inside an unquoted field
            raise BadLine("invalid_csv", str(exc).split(" - ")[0]) from None
        record = {src: cells[pos] if pos < len(cells) else None for pos, src in self.positions}
        return self.row_from(record)

    def _open_quote(self, data: bytes) -> bool:
        """True when `data` ends inside a quoted field (RFC 4180: the record goes on next line)."""
        text = data.decode(self.encoding, "replace")
        try:
            for _ in csv.reader([text], delimiter=self.delimiter, strict=True):
                pass
        except csv.Error as exc:
            return "unexpected end of data" in str(exc)
        return False

    def records(
        self, lines: Iterable[tuple[int, Any]], max_bytes: int
    ) -> Iterable[tuple[int, Any]]:
        if len(self.delimiter) > 1:  # "::" has no quoting: a line is a record
            return lines
        return self._csv_records(lines, max_bytes)

    def _csv_records(
        self, lines: Iterable[tuple[int, Any]], max_bytes: int
    ) -> Iterator[tuple[int, Any]]:
        """(first line number, record bytes) from (line number, line): a quoted field may hold line
        breaks, so a record spans lines until its quote closes. A quote still open after
        MAX_RECORD_LINES lines, `max_bytes` or at the end of the file makes its first line a bad
        line (`unterminated_quote`), and reading goes on from the line after it."""
        source = iter(lines)
        replay: deque[tuple[int, Any]] = deque()  # lines to read again after an unterminated quote
        pending: list[tuple[int, bytes]] = []  # the lines of a record whose quote is open
        size = 0
        while True:
            nxt = replay.popleft() if replay else next(source, None)
            if nxt is None and not pending:
                return
            if nxt is not None and nxt[1] is not TOO_LONG and pending:
                number, line = nxt
                pending.append((number, line))
                size += len(line)
                if b'"' in line and not self._open_quote(b"".join(ln for _, ln in pending)):
                    yield pending[0][0], b"".join(ln for _, ln in pending)
                    pending, size = [], 0
                    continue
                if size <= max_bytes and len(pending) <= MAX_RECORD_LINES:
                    continue
                nxt = None  # the quote does not close within bounds
            if pending:  # give up on this record: its first line is bad, the rest is read again
                yield pending[0][0], BadLine("unterminated_quote", "a quoted field never closes")
                replay.extendleft(reversed(pending[1:] + ([nxt] if nxt is not None else [])))
                pending, size = [], 0
                continue
            assert nxt is not None  # None with nothing pending ended the loop above
            number, line = nxt
            if line is TOO_LONG or b'"' not in line or not self._open_quote(line):
                yield number, line
            else:
                pending, size = [(number, line)], len(line)


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
