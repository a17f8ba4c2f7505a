"""The two row shapes every parser produces, and the bad-line exception."""

from __future__ import annotations

from typing import Any, NamedTuple


class BadLine(Exception):
    """A line that cannot be stored; `reason` is a short code such as `invalid_json`."""

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


def product_row(item_id: str, **fields: Any) -> dict[str, Any]:
    row = dict.fromkeys(PRODUCT_FIELDS)
    row.update(fields, item_id=item_id)
    return row


def check_id(value: Any, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadLine(f"missing_{field}")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise BadLine(f"wrong_type:{field}")
    return str(value).strip()


def check_rating(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise BadLine("invalid_rating")
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise BadLine("invalid_rating") from None
    if not (low <= rating <= high):  # also rejects NaN
        raise BadLine("invalid_rating")
    return rating
