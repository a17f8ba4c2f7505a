"""Field cleaning shared by every format: titles, prices, vote counts, timestamps."""

from __future__ import annotations

import html
import math
import re
from datetime import datetime, timezone
from typing import Any

from recsys.ingest.rows import MAX_TIMESTAMP, BadLine, check_count, check_timestamp

# A tag opening (`<span class=`, `<img src=`, `</div>`) or CSS (`.a-box{...}`): page junk, not text.
_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>?|\{[^}]*:[^}]*\}")
_ALT_TEXT = re.compile(r'alt\s*=\s*"([^"]+)"')
_PRICE = re.compile(r"^\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)")
_WS = re.compile(r"\s+")


class Tally:
    """Counts of values cleaned away, reported per file (e.g. junk_title, junk_price)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


def clean_text(value: Any, tally: Tally, what: str) -> str | None:
    """Trim, unescape HTML entities, collapse whitespace; markup junk becomes None (and is counted)."""
    if not isinstance(value, str):
        return None
    if "&" in value:
        value = html.unescape(value)
    text = " ".join(value.split())  # trim and collapse whitespace (faster than a regex)
    if not text:
        return None
    if _MARKUP.search(text):
        tally.add(f"junk_{what}")
        return None
    return text


def clean_category(value: Any, tally: Tally) -> str | None:
    """Like clean_text, but `<img ... alt="AMAZON FASHION"/>` keeps its alt text."""
    if isinstance(value, str) and "<" in value:
        alt = _ALT_TEXT.search(value)
        if alt:
            return clean_text(alt.group(1), tally, "category")
    return clean_text(value, tally, "category")


def parse_price(value: Any, tally: Tally) -> float | None:
    """Numbers pass; "$1,250.00" -> 1250.0; a range takes its low end; "" -> None; junk -> None, counted."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            price = float(value)
        except OverflowError:  # an int beyond a float's range (msgspec decodes any size)
            price = math.inf
        if not math.isfinite(price):
            tally.add("junk_price")
            return None
        return price if price >= 0 else None
    if not isinstance(value, str):
        tally.add("junk_price")
        return None
    text = value.strip()
    if not text:
        return None
    match = _PRICE.match(text)
    if not match:
        tally.add("junk_price")
        return None
    price = float(match.group(1).replace(",", ""))  # may be inf: "1" followed by 400 digits
    if not math.isfinite(price):
        tally.add("junk_price")
        return None
    return price


def parse_votes(value: Any, field: str = "helpful_votes") -> int:
    """2018 `vote` strings like "1,234" -> 1234; missing -> 0. Raises BadLine (`wrong_type:<field>`,
    `out_of_range:<field>` past the `integer` column)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadLine(f"wrong_type:{field}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadLine(f"wrong_type:{field}", f"{field} {value} is not finite")
        value = int(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text:
            return 0
        if len(text) > 20 or not text.lstrip("+-").isdigit():  # int() of 5000 digits is slow
            raise BadLine(f"wrong_type:{field}", f"{field} {text[:30]!r} is not a count")
        value = int(text)
    return check_count(value, field)


def to_epoch_seconds(value: Any) -> int:
    """Seconds, milliseconds (anything past year 5138 in seconds is taken as ms) or an ISO date.
    Raises BadLine(`invalid_timestamp`) for anything else, or a date the store cannot hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadLine(
            "invalid_timestamp", f"timestamp {type(value).__name__} is not a number or a date"
        )
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=timezone.utc)
                return check_timestamp(int(parsed.timestamp()))
            except (ValueError, OverflowError, OSError):
                raise BadLine(
                    "invalid_timestamp", f"timestamp {text[:40]!r} is not a date"
                ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise BadLine("invalid_timestamp", f"timestamp {value} is not finite")
    if isinstance(value, int) and abs(value) > 10**20:  # far past any date, ms or s
        return check_timestamp(MAX_TIMESTAMP + 1)
    if value > 1e11:
        return check_timestamp(
            int(value) // 1000 if isinstance(value, int) else int(value / 1000.0)
        )
    return check_timestamp(int(value))


def strip_keys(details: Any) -> Any:
    """2018 `details` keys carry stray whitespace and colons ("\\n  ASIN: ")."""
    if not isinstance(details, dict):
        return details
    return {
        _WS.sub(" ", str(k)).strip().rstrip(":").strip(): (v.strip() if isinstance(v, str) else v)
        for k, v in details.items()
    }
