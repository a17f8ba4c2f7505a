"""Field cleaning shared by every format: titles, prices, vote counts, timestamps."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from typing import Any

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
        return float(value) if value >= 0 else None
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
    return float(match.group(1).replace(",", ""))


def parse_votes(value: Any) -> int:
    """2018 `vote` strings like "1,234" -> 1234; missing -> 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError("helpful votes must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip().replace(",", "")
    return int(text) if text else 0


def to_epoch_seconds(value: Any) -> int:
    """Seconds, milliseconds (anything past year 5138 in seconds is taken as ms) or an ISO date."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be a number or a date")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            return 0
        try:
            number = float(text)
        except ValueError:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return int(parsed.timestamp())
    if number > 1e11:
        number /= 1000.0
    return int(number)


def strip_keys(details: Any) -> Any:
    """2018 `details` keys carry stray whitespace and colons ("\\n  ASIN: ")."""
    if not isinstance(details, dict):
        return details
    return {
        _WS.sub(" ", str(k)).strip().rstrip(":").strip(): (v.strip() if isinstance(v, str) else v)
        for k, v in details.items()
    }
