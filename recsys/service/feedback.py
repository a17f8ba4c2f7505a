"""Writes from a live shop: feedback events (a rating, a purchase) and catalog upserts.

Both go through the ingest writer (recsys.ingest.writer.BatchWriter): one transaction per call, so
a reader sees all of a call's events or none; the latest event of a (user, item) pair wins and
re-sending the same event changes nothing, exactly as re-ingesting a file. Every event is
checked like an ingest line (recsys.ingest.rows); a bad one is reported with its index and the
good ones are kept. The next recommendation for the user reflects the events at once: picks are
computed from the user's ratings in the store at request time (service.recommend).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

import msgspec

from recsys.config import Settings
from recsys.errors import InvalidInput
from recsys.ingest.rows import (
    PRODUCT_FIELDS,
    BadLine,
    RatingRow,
    check_id,
    check_rating,
    check_timestamp,
    product_row,
)
from recsys.ingest.writer import BatchWriter
from recsys.schemas import WriteError, WriteReport
from recsys.service.data import engine_for
from recsys.store import catalog_cache

EVENT_FIELDS = ("user_id", "item_id", "rating", "timestamp")


def record_feedback(settings: Settings, events: list[Any]) -> WriteReport:
    """Write feedback events `{user_id, item_id, rating?, timestamp?}` (rating: any finite
    number, default feedback.default_rating; timestamp: UTC seconds or ISO 8601, default now).

    A call whose events are all bad writes nothing and says why for each (still a 200 over HTTP:
    the request itself was well formed). Raises InvalidInput (400) for no events or more than
    feedback.max_events."""
    _check_count(settings, events, "events")
    now = int(time.time())
    rows: list[RatingRow] = []
    errors: list[WriteError] = []
    for index, event in enumerate(events):
        try:
            rows.append(_event_row(event, settings.feedback.default_rating, now))
        except BadLine as bad:
            errors.append(_error(index, bad))
    writer = BatchWriter(engine_for(settings))
    writer.write_ratings(rows)
    inserted, updated = writer.totals()["ratings"]
    return WriteReport(len(rows), inserted, updated, errors)


def upsert_items(settings: Settings, items: list[Any]) -> WriteReport:
    """Insert or replace products (the catalog fields of PRODUCT_FIELDS; an item's fields are
    replaced as a whole, like a re-ingested catalog line). Keyword search sees them at once
    (the full-text index follows the table), and so do result lines (the server's catalog
    snapshot is updated in place).

    Raises InvalidInput (400) for no items or more than feedback.max_events (bad items are
    reported one by one, like bad events)."""
    _check_count(settings, items, "items")
    rows: list[dict[str, Any]] = []
    errors: list[WriteError] = []
    for index, item in enumerate(items):
        try:
            rows.append(_product(item))
        except BadLine as bad:
            errors.append(_error(index, bad))
    engine = engine_for(settings)
    writer = BatchWriter(engine)
    writer.write_products(rows)
    # the snapshot holds the JSON columns decoded, as SQL returns them
    catalog_cache.upsert(
        engine, [{**row, "categories": _decoded(row["categories"])} for row in rows]
    )
    inserted, updated = writer.totals()["products"]
    return WriteReport(len(rows), inserted, updated, errors)


def _check_count(settings: Settings, values: list[Any], name: str) -> None:
    limit = settings.feedback.max_events
    if not values:
        raise InvalidInput(f"{name}: give at least one")
    if len(values) > limit:
        raise InvalidInput(
            f"{name}: at most {limit} per call (feedback.max_events), got {len(values)}"
        )


def _event_row(event: Any, default_rating: float, now: int) -> RatingRow:
    if not isinstance(event, dict):
        raise BadLine("wrong_type:event", "an event is an object {user_id, item_id, ...}")
    unknown = sorted(set(event) - set(EVENT_FIELDS))
    if unknown:
        raise BadLine(f"unknown_field:{unknown[0]}", f"unknown field {unknown[0]!r}")
    user = check_id(event.get("user_id"), "user_id")
    item = check_id(event.get("item_id"), "item_id")
    raw = event.get("rating")
    rating = default_rating if raw is None else check_rating(raw, None)
    stamp = event.get("timestamp")
    return RatingRow(user, item, rating, now if stamp is None else _timestamp(stamp), None, 0)


def _timestamp(value: Any) -> int:
    """UTC seconds from an integer (or integral float) or an ISO 8601 string."""
    if isinstance(value, bool):
        raise BadLine("invalid_timestamp", "timestamp is a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return check_timestamp(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadLine(
                "invalid_timestamp", f"timestamp {value[:40]!r} is not ISO 8601"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return check_timestamp(int(parsed.timestamp()))
    raise BadLine("invalid_timestamp", "timestamp is UTC seconds or an ISO 8601 string")


def _product(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise BadLine("wrong_type:item", "an item is an object {item_id, title, ...}")
    unknown = sorted(set(item) - set(PRODUCT_FIELDS))
    if unknown:
        raise BadLine(f"unknown_field:{unknown[0]}", f"unknown field {unknown[0]!r}")
    fields = {k: v for k, v in item.items() if k != "item_id"}
    for name in ("title", "main_category", "store", "image_url"):
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise BadLine(f"wrong_type:{name}", f"{name} is text")
    for name in ("price", "average_rating"):
        value = fields.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadLine(f"wrong_type:{name}", f"{name} is a number")
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float
                number = math.inf
            if not (math.isfinite(number) and number >= 0):
                raise BadLine(
                    f"out_of_range:{name}", f"{name} {value!r:.40} is not a finite number >= 0"
                )
            fields[name] = number
    count = fields.get("rating_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise BadLine("wrong_type:rating_count", "rating_count is an integer")
    return product_row(check_id(item.get("item_id"), "item_id"), **fields)


def _error(index: int, bad: BadLine) -> WriteError:
    code, _, field = bad.reason.partition(":")
    if not field and bad.reason.startswith("missing_"):
        field = bad.reason.removeprefix("missing_")
    if not field:
        field = {"invalid_rating": "rating", "invalid_timestamp": "timestamp"}.get(code, "")
    message = bad.detail or bad.reason.replace("_", " ")
    return WriteError(index, bad.reason, message, field or None)


def _decoded(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)
