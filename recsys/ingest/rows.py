"""The two row shapes every parser produces, the bad-line exception, and the checks that make a row
storable on every backend.

Both stores must hold every row a parser returns, so the limits of the strictest one (PostgreSQL) are
checked here, per line, before a batch is written: no NUL in any text or JSON value (PostgreSQL text
and jsonb refuse it), valid UTF-8 (no lone surrogates, which 2014 literals can carry), counts within
`integer` (2^31 - 1), timestamps within `integer` too (1901-12-13..2038-01-19 UTC: the timestamp
column is `integer` on PostgreSQL, and SQLite would silently store a bigger one as REAL), finite
ratings, and JSON columns that JSON can represent (2014 literals can hold complex
numbers, `...`, tuple keys). A line that breaks one of them is a bad line; it can never fail a batch.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any, NamedTuple

import msgspec


class BadLine(Exception):
    """A line that cannot be stored; `reason` is a short code such as `invalid_json`, `detail` says
    more for one line (e.g. the rating and the accepted range)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class RatingRow(NamedTuple):
    user_id: str
    item_id: str
    rating: float
    timestamp: int
    verified: bool | None
    helpful_votes: int


PRODUCT_FIELDS = (
    "item_id", "title", "main_category", "store", "price", "average_rating", "rating_count",
    "image_url", "features", "description", "categories", "details", "images",
)  # fmt: skip
PRODUCT_JSON_FIELDS = ("features", "description", "categories", "details", "images")
_PRODUCT_TEXT_FIELDS = ("title", "main_category", "store", "image_url")

INT32_MAX = 2**31 - 1  # `integer` columns: helpful_votes, rating_count
MIN_TIMESTAMP = -(2**31)  # 1901-12-13T20:45:52Z: user_item_rating.timestamp is `integer`
MAX_TIMESTAMP = 2**31 - 1  # 2038-01-19T03:14:07Z
MAX_ID_CHARS = 1000  # an id longer than this is junk, not a key

_json = msgspec.json.Encoder()
# "\u0000" in encoded JSON that is an escaped NUL, not an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def check_text(value: str, field: str) -> str:
    """A text value both stores can hold: no NUL (`nul_byte`), encodable as UTF-8 (`invalid_utf8`)."""
    if "\x00" in value:
        raise BadLine("nul_byte", f"NUL character in {field}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadLine("invalid_utf8", f"lone surrogate in {field}") from None
    return value


def check_id(value: Any, field: str) -> str:
    """A user or item id: a non-empty string or an integer, as text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadLine(f"missing_{field}")
    if isinstance(value, int) and not isinstance(value, bool):
        if not -(10**18) < value < 10**18:
            raise BadLine(f"wrong_type:{field}", f"{field} {_short(value)} is not an id")
        return str(value)
    if not isinstance(value, str):
        raise BadLine(f"wrong_type:{field}")
    text = value.strip()
    if len(text) > MAX_ID_CHARS:
        raise BadLine(f"wrong_type:{field}", f"{field} longer than {MAX_ID_CHARS} characters")
    return check_text(text, field)


def check_rating(value: Any, rating_range: tuple[float, float] | None) -> float:
    """A finite number, within `rating_range` (low, high) when one is given."""
    if isinstance(value, bool):
        raise BadLine("invalid_rating", f"rating {value!r} is not a number")
    try:
        rating = float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadLine("invalid_rating", f"rating {_short(value)} is not a number") from None
    if not math.isfinite(rating):
        raise BadLine("invalid_rating", f"rating {_short(value)} is not finite")
    if rating_range is not None and not (rating_range[0] <= rating <= rating_range[1]):
        low, high = rating_range
        raise BadLine("invalid_rating", f"rating {rating:g} outside {low:g}..{high:g}")
    return rating


def check_count(value: Any, field: str) -> int:
    """A count for an `integer` column: 0..2^31-1 (`out_of_range:<field>` otherwise)."""
    if not 0 <= value <= INT32_MAX:
        raise BadLine(f"out_of_range:{field}", f"{field} {_short(value)} outside 0..{INT32_MAX}")
    return value


def check_timestamp(seconds: int) -> int:
    """UTC seconds the timestamp column holds, 1901-12-13..2038-01-19 (`invalid_timestamp`)."""
    if not MIN_TIMESTAMP <= seconds <= MAX_TIMESTAMP:
        raise BadLine(
            "invalid_timestamp", f"timestamp {_short(seconds)} s is outside 1901-12-13..2038-01-19"
        )
    return seconds


def product_row(item_id: str, **fields: Any) -> dict[str, Any]:
    """A product dict with every PRODUCT_FIELDS key, checked for both stores; the JSON columns
    hold their JSON text already (encoded here, per line, so no value can fail a whole batch)."""
    row = dict.fromkeys(PRODUCT_FIELDS)
    row.update(fields, item_id=item_id)
    for f in _PRODUCT_TEXT_FIELDS:
        value = row[f]
        if value is not None:
            check_text(value, f)
    if row["rating_count"] is not None:
        check_count(row["rating_count"], "rating_count")
    average = row["average_rating"]
    if average is not None and not math.isfinite(average):
        row["average_rating"] = None  # msgspec decodes no NaN/inf from JSON; a literal can hold one
    for f in PRODUCT_JSON_FIELDS:
        if row[f] is not None:
            row[f] = encode_json(row[f], f)
    return row


def encode_json(value: Any, field: str) -> str:
    """JSON text of a product's JSON column, or BadLine if JSON (or PostgreSQL's jsonb) cannot hold it."""
    try:
        text = _json.encode(value).decode()
    except UnicodeEncodeError:
        raise BadLine("invalid_utf8", f"lone surrogate in {field}") from None
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise BadLine(f"wrong_type:{field}", str(exc)[:200]) from None
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise BadLine("nul_byte", f"NUL character in {field}")
    return text


def _short(value: Any) -> str:
    """A value for a message: at most ~40 characters, safe for giant ints and deep lists."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(10**30) < value < 10**30:
        return f"<integer of ~{value.bit_length() * 0.30103:.0f} digits>"
    return reprlib.repr(value)
