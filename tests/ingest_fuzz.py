"""A seeded mutation fuzzer for `recsys ingest`, shared by the test suite (a bounded number of cases)
and benchmarks/fuzz_ingest.py (a long run that prints cases and crashes).

Each case writes one file of a format: good lines (keys unique to the case) with mutated lines
(random values in any field, deleted or added keys, flipped, inserted or cut bytes, NULs, CRs,
BOMs, quotes, huge numbers, deep nesting, lone surrogates, ...) interleaved after the first two,
sometimes gzipped, with LF or CRLF line ends. It ingests the file through `service.ingest` (the
CLI's own call), with format detection as a user gets it, and checks the contract:

* nothing but IngestAborted (only past a `--max-errors` the case set) escapes; any other exception
  is a crash (the CLI would print a traceback);
* every record is accounted for: rows + bad lines == the records of the file (blank ones aside);
* every good line is stored, with its rating or title;
* no bad line needed the pipeline's last-resort reason `unreadable:<Exception>`.
"""

from __future__ import annotations

import gzip
import json
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from recsys import service
from recsys.config import Settings, load_settings
from recsys.ingest.generic import GenericOptions
from recsys.ingest.pipeline import IngestAborted
from recsys.service.data import engine_for

FORMATS = (
    "r2023", "m2023", "r2018", "m2018", "r2014", "m2014",
    "csv", "tsv", "jsonl", "csv_products",
)  # fmt: skip

INTERESTING: list[Any] = [
    None, True, False, 0, -1, 1, 5, 6, 0.5, 2**31, 2**31 - 1, 2**63, 2**64, -(2**63) - 1, 10**30,
    10**400, 1e308, -1e308, 1e-320, "", " ", "5", "5.0", "1,234", "$1,250.00", "nan", "NaN", "inf",
    "-inf", "Infinity", "1e999", "\u0000", "a\u0000b", "\ufeff", "\ud7ff", "\U0001f600" * 3,
    "<span class='a'>x</span>", "&amp;&lt;&#0;&#x110000;&#99999999999;", "a" * 5000, "\u202e\u200b",
    [], {}, [[]], [1, [2, [3]]], {"a": {"b": {}}}, ["x"] * 100, "2020-01-01T00:00:00Z",
    "2020-13-45", "9" * 5000, "-" + "9" * 30, 1.5e21, -5, "\r", "a\rb", '"', 'a"b', "a,b", "a\tb",
]  # fmt: skip
LITERAL_ONLY: list[Any] = [(1, 2), {1, 2}, b"bytes", 1j, ..., frozenset(), {(1, 2): 3}, {1: "a"},
                           0x7F, -0.0, float("inf")]  # fmt: skip
BYTES = [b"\x00", b"\r", b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b'"', b"'", b"{",
         b"}", b"[", b",", b"\\", b"\\u0000", b"\\ud800", b"\t", b"\x1f\x8b", b"\n", b"\r\n",
         b"\x85", b"\xe2\x80\xa8"]  # fmt: skip


@dataclass
class Case:
    """One generated file and what a correct ingest of it stores."""

    fmt: str
    data: bytes
    records: int  # non-blank records (bad ones included), header excluded
    good: list[tuple]  # (user, item, rating) or (item, title)
    generic: GenericOptions | None = None
    max_errors: int | None = None
    gzipped: bool = False


@dataclass
class Outcome:
    kind: str  # ok | aborted | crash | violation
    detail: str = ""
    signature: tuple = ()
    reasons: dict[str, int] = field(default_factory=dict)


class Fuzzer:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    # --- values and mutations -------------------------------------------------------------------

    def value(self, literal: bool = False) -> Any:
        rng = self.rng
        r = rng.random()
        if r < 0.55:
            return rng.choice(INTERESTING)
        if r < 0.62:
            v: Any = []
            for _ in range(rng.choice([50, 500, 3000])):
                v = [v]
            return v
        if r < 0.72:
            return rng.randint(-(2**70), 2**70)
        if r < 0.82:
            chars = (chr(rng.randint(1, 0x2FFFF)) for _ in range(rng.randint(1, 40)))
            return "".join(c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF)
        if literal and r < 0.92:
            return rng.choice(LITERAL_ONLY)
        return rng.random() * 10 ** rng.randint(-5, 30)

    def mutate_record(self, record: dict, literal: bool) -> Any:
        rng = self.rng
        record = dict(record)
        for _ in range(rng.randint(1, 3)):
            op, keys = rng.random(), list(record)
            if op < 0.6 and keys:
                record[rng.choice(keys)] = self.value(literal)
            elif op < 0.75 and keys:
                del record[rng.choice(keys)]
            elif op < 0.93:
                key = rng.choice(["x", "rating", "overall", "timestamp", "vote", "helpful",
                                  "price", "details", "images", "categories", "title",
                                  "helpful_vote", "unixReviewTime", "verified", "main_cat",
                                  "category", "rating_number", "average_rating", "features"])  # fmt: skip
                record[key] = self.value(literal)
            else:
                return self.value(literal)  # not an object at all
        return record

    def mutate_bytes(self, data: bytes, forbid: bytes = b"") -> bytes:
        rng = self.rng
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            if not b:
                b += b"x"
            i, op = rng.randrange(len(b)), rng.random()
            if op < 0.25:
                b[i] = rng.randrange(256)
            elif op < 0.45:
                del b[i : i + rng.randint(1, 20)]
            elif op < 0.65:
                insert = rng.choice(BYTES + [bytes(rng.randrange(256) for _ in range(8))])
                b[i:i] = insert
            elif op < 0.8:
                del b[i:]
            else:
                j = rng.randrange(len(b))
                b[i:i] = b[j : j + rng.randint(1, 200)]
        out = bytes(b)
        for char in forbid:
            out = out.replace(bytes([char]), b"")
        return out

    # --- one case per format --------------------------------------------------------------------

    def case(self, fmt: str, tag: str) -> Case:
        rng = self.rng
        if fmt in ("csv", "tsv", "csv_products"):
            case = self._delimited(fmt, tag)
        else:
            case = self._json(fmt, tag)
        if rng.random() < 0.1:
            case.max_errors = rng.randint(0, 3)
        if rng.random() < 0.1:
            case.data, case.gzipped = gzip.compress(case.data), True
        return case

    def _json(self, fmt: str, tag: str) -> Case:
        rng = self.rng
        literal = fmt == "m2014"
        encode = _literal_line if literal else (lambda o: _json_line(o, rng.random() < 0.5))
        good_records, good = [], []
        for i in range(rng.randint(2, 6)):
            record, key = GOOD[fmt](f"G{tag}_{i}", rng)
            good_records.append(record)
            good.append(key)
        bad_lines = []
        for i in range(rng.randint(1, 5)):
            record, _ = GOOD[fmt](f"M{tag}_{i}", rng)
            if rng.random() < 0.5:
                bad_lines.append(encode(self.mutate_record(record, literal)))
            else:
                bad_lines.append(self.mutate_bytes(encode(record)))
        body = [encode(r) for r in good_records]
        lines = body[:2] + bad_lines + body[2:]
        eol = b"\r\n" if rng.random() < 0.2 else b"\n"
        data = eol.join(lines) + (eol if rng.random() < 0.8 else b"")
        physical = data.split(b"\n")
        records = sum(1 for line in physical if line.strip())
        generic = GenericOptions() if fmt == "jsonl" else None
        return Case(fmt, data, records, good, generic)

    def _delimited(self, fmt: str, tag: str) -> Case:
        rng = self.rng
        delim = "\t" if fmt == "tsv" else ","
        products = fmt == "csv_products"
        quoted_good = products or rng.random() < 0.3  # good records with quoted line breaks
        header = ["item", "title", "description", "price"] if products else \
            ["uid", "iid", "stars", "when", "label", "votes"]  # fmt: skip
        good, good_rows = [], []
        for i in range(rng.randint(2, 6)):
            if products:
                title = f"Title {tag} {i}"
                text = '"Line one,\nline two ""quoted""\n\nend"' if quoted_good else "plain"
                row = [f"G{tag}_{i}", title, text, rng.choice(["12.50", "$3", ""])]
                good.append((row[0], title))
            else:
                rating = rng.choice(["1", "4.5", "0.5", "10", "0", "-3"])
                label = '"two\nlines, quoted"' if quoted_good and rng.random() < 0.5 else f"t{i}"
                row = [f"GU{tag}_{i}", f"GI{tag}_{i}", rating, str(1_600_000_000 + i), label, "3"]
                good.append((row[0], row[1], float(rating)))
            good_rows.append(delim.join(row).encode())
        bad_rows, quote_lines = [], 0
        for i in range(rng.randint(1, 5)):
            cells = [f"MU{tag}_{i}", f"MI{tag}_{i}", "4", "1600000000", "x", "1"][: len(header)]
            for _ in range(rng.randint(1, 3)):
                k = rng.randrange(len(cells))
                v = self.value()
                try:
                    cells[k] = v if isinstance(v, str) else json.dumps(v)
                except (TypeError, ValueError, RecursionError):
                    cells[k] = "[[[["
            line = delim.join(cells).encode("utf-8", "surrogatepass")
            if rng.random() < 0.4:
                line = self.mutate_bytes(line)
            # A quote that opens a field in a bad line may, as in any CSV reader, take in the
            # lines up to the next quote. Keep the contract checkable: bad lines have no line
            # break, and quotes only when no good record has any and no other bad line has one.
            line = line.replace(b"\n", b"")
            if b'"' in line and (quoted_good or quote_lines):
                line = line.replace(b'"', b"")
            quote_lines += b'"' in line
            bad_rows.append(line)
        eol = b"\r\n" if rng.random() < 0.2 else b"\n"
        rows = good_rows[:2] + bad_rows + good_rows[2:]
        data = eol.join([delim.join(header).encode()] + rows) + eol
        records = len(good_rows) + sum(1 for line in bad_rows if line.strip())
        mapping = {} if products else {"user": "uid", "item": "iid", "rating": "stars",
                                       "timestamp": "when", "title": "label"}  # fmt: skip
        return Case(fmt, data, records, good, GenericOptions(mapping=mapping))


def _json_line(obj: Any, ascii_only: bool) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):
        return b'{"broken": '


def _literal_line(obj: Any) -> bytes:
    try:
        return repr(obj).encode("utf-8", "surrogatepass")
    except RecursionError:
        return b"{'broken': "


def _r2023(key: str, rng: random.Random) -> tuple[dict, tuple]:
    rating = rng.choice([1.0, 4.0, 5.0])
    return ({"rating": rating, "title": "Great", "text": "Works.\nReally", "images": [],
             "asin": f"A{key}", "parent_asin": f"I{key}", "user_id": f"U{key}",
             "timestamp": 1_600_000_000_000, "helpful_vote": 2, "verified_purchase": True},
            (f"U{key}", f"I{key}", rating))  # fmt: skip


def _m2023(key: str, rng: random.Random) -> tuple[dict, tuple]:
    return ({"main_category": "Health & Personal Care", "title": f"Pill cutter {key}",
             "average_rating": 4.2, "rating_number": 31, "features": ["Sharp", "Small"],
             "description": ["A cutter."], "price": 9.99, "store": "Acme",
             "images": [{"large": "https://x/y.jpg", "variant": "MAIN"}],
             "categories": ["Health", "Tools"], "details": {"Weight": "2 ounces"},
             "parent_asin": f"I{key}"}, (f"I{key}", f"Pill cutter {key}"))  # fmt: skip


def _r2018(key: str, rng: random.Random) -> tuple[dict, tuple]:
    return ({"overall": 5.0, "verified": True, "reviewTime": "09 1, 2015", "reviewerID": f"U{key}",
             "asin": f"I{key}", "style": {"Gift Amount:": " 50"}, "reviewerName": "Ann",
             "reviewText": "Nice", "summary": "Five", "unixReviewTime": 1441065600, "vote": "1,234"},
            (f"U{key}", f"I{key}", 5.0))  # fmt: skip


def _m2018(key: str, rng: random.Random) -> tuple[dict, tuple]:
    return ({"category": ["Gift Cards", "Gift Cards"], "description": ["A card."],
             "title": f"Gift card {key}", "brand": "Amazon", "feature": ["Never expires"],
             "main_cat": "Gift Cards", "price": "$25.00", "asin": f"I{key}",
             "details": {"\n    ASIN: ": f"I{key}"}, "imageURLHighRes": ["https://x/z.jpg"]},
            (f"I{key}", f"Gift card {key}"))  # fmt: skip


def _r2014(key: str, rng: random.Random) -> tuple[dict, tuple]:
    return ({"reviewerID": f"U{key}", "asin": f"I{key}", "reviewerName": "Bo", "helpful": [1, 2],
             "reviewText": "Good strings.", "overall": 4.0, "summary": "Good",
             "unixReviewTime": 1393545600, "reviewTime": "02 28, 2014"},
            (f"U{key}", f"I{key}", 4.0))  # fmt: skip


def _m2014(key: str, rng: random.Random) -> tuple[dict, tuple]:
    return ({"asin": f"I{key}", "title": f"Capo {key}", "price": 12.5, "imUrl": "http://x/y.jpg",
             "related": {"also_bought": ["B1", "B2"]}, "salesRank": {"Musical Instruments": 5},
             "categories": [["Musical Instruments", "Guitar"]], "brand": "Kyser"},
            (f"I{key}", f"Capo {key}"))  # fmt: skip


def _jsonl(key: str, rng: random.Random) -> tuple[dict, tuple]:
    rating = rng.choice([0.5, 3.0, 10.0])
    return ({"user": f"U{key}", "item": f"I{key}", "rating": rating, "time": "2023-05-01T12:00:00Z",
             "votes": 3}, (f"U{key}", f"I{key}", rating))  # fmt: skip


GOOD: dict[str, Callable[[str, random.Random], tuple[dict, tuple]]] = {
    "r2023": _r2023, "m2023": _m2023, "r2018": _r2018, "m2018": _m2018, "r2014": _r2014,
    "m2014": _m2014, "jsonl": _jsonl,
}  # fmt: skip


def run_case(case: Case, settings: Settings, folder: Path) -> Outcome:
    """Ingest `case` into the store of `settings` and check the contract."""
    suffix = {"csv": ".csv", "tsv": ".tsv", "csv_products": ".csv"}.get(case.fmt, ".json")
    path = folder / f"{case.fmt}{suffix}{'.gz' if case.gzipped else ''}"
    path.write_bytes(case.data)
    try:
        report = service.ingest(settings, [path], generic=case.generic, max_errors=case.max_errors)
    except IngestAborted as exc:
        bad = exc.report.bad_lines
        if case.max_errors is None or bad != case.max_errors + 1:
            return Outcome("violation", f"aborted with {bad} bad lines, limit {case.max_errors}")
        return Outcome("aborted", reasons=dict(exc.report.bad_by_reason))
    except BaseException as exc:  # noqa: BLE001 - a crash is what we are looking for
        frames = traceback.extract_tb(exc.__traceback__)
        frame = next((f for f in reversed(frames) if "/recsys/" in f.filename), frames[-1])
        signature = (type(exc).__name__, Path(frame.filename).name, frame.lineno)
        return Outcome("crash", f"{type(exc).__name__}: {str(exc)[:200]}", signature)
    file = report.files[0]
    problems = []
    unforeseen = {r: n for r, n in report.bad_by_reason.items() if r.startswith("unreadable:")}
    if unforeseen:
        problems.append(f"last-resort reasons {unforeseen}")
    if file.rows + file.bad_lines != case.records:
        problems.append(f"rows {file.rows} + bad {file.bad_lines} != records {case.records}")
    with engine_for(settings).connect() as conn:
        for key in case.good:
            if len(key) == 3:
                got = conn.execute(
                    text("select rating from user_item_rating where user_id = :u and item_id = :i"),
                    {"u": key[0], "i": key[1]},
                ).all()
                expected = [(key[2],)]
            else:
                got = conn.execute(
                    text("select title from product_catalog where item_id = :i"), {"i": key[0]}
                ).all()
                expected = [(key[1],)]
            if [tuple(r) for r in got] != expected:
                problems.append(f"good line {key} stored as {got}")
    if problems:
        return Outcome("violation", "; ".join(problems)[:500], (problems[0][:40],))
    return Outcome("ok", reasons=dict(report.bad_by_reason))


def settings_for(db_url: str) -> Settings:
    return load_settings(overrides={"store.url": db_url}, environ={})
