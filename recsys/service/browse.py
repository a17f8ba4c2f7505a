"""Reading the store and the registry for people looking at them: a product with all its fields,
a user's ratings, pictures of the data (long tail, ratings over time), the categories, and the
last evaluation. The dashboard (`recsys serve`, /) draws its pages from these; API clients may
call them too (GET /items/{id}, /users/{id}/ratings, /stats, /categories, /evaluations/latest).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import msgspec
import numpy as np
from sqlalchemy import Engine, Integer, desc, func, literal_column, select

from recsys.config import Settings
from recsys.errors import InvalidInput, NotFound
from recsys.models.tuning import EVALUATION_FILE, TUNING_FILE, read_record
from recsys.schemas import (
    CategoryCount,
    EvaluationReport,
    Evaluations,
    ProductDetails,
    RatedItem,
    Series,
    StoreCharts,
    UserRatings,
)
from recsys.service.data import engine_for
from recsys.store.queries import iso_time, products_by_id, read_revisions
from recsys.store.tables import product_catalog, user_item_rating

MAX_HISTORY = 500  # ratings one call returns
LONG_TAIL_POINTS = 120  # log-spaced popularity ranks the long-tail chart is drawn from
MAX_HISTOGRAM_BINS = 20  # distinct rating values beyond this are binned
DAY = 86400


def item_details(settings: Settings, item_id: str) -> ProductDetails:
    """Every catalog field of one product and its number of ratings in the store. An item known
    only from ratings comes back with `in_catalog` False and empty fields.

    Raises NotFound (404) for an id neither in the catalog nor rated."""
    p, r = product_catalog.c, user_item_rating.c
    with engine_for(settings).connect() as conn:
        row = conn.execute(select(product_catalog).where(p.item_id == item_id)).mappings().first()
        ratings = conn.scalar(select(func.count()).where(r.item_id == item_id)) or 0
    if row is None and not ratings:
        raise NotFound(f"item {item_id!r} is neither in the catalog nor rated")
    if row is None:
        return ProductDetails(item_id=item_id, ratings=ratings, in_catalog=False)
    return ProductDetails(
        item_id=item_id,
        title=row["title"],
        main_category=row["main_category"],
        store=row["store"],
        price=row["price"],
        average_rating=row["average_rating"],
        rating_count=row["rating_count"],
        image_url=row["image_url"],
        features=_as_list(row["features"]),
        description=_as_list(row["description"]),
        categories=_as_list(row["categories"]),
        details=row["details"] if isinstance(row["details"], dict) else {},
        ratings=ratings,
    )


def _as_list(value: Any) -> list[Any]:
    """Catalog files hold a field as a list, a single string or nothing."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list) else [value]


def user_ratings(settings: Settings, user_id: str, limit: int = 50) -> UserRatings:
    """A user's ratings as the store holds them now, newest first, with catalog fields.

    Raises InvalidInput (400) for a limit outside 1..MAX_HISTORY, NotFound (404) for a user
    with no ratings."""
    if not 1 <= limit <= MAX_HISTORY:
        raise InvalidInput(f"limit must be between 1 and {MAX_HISTORY}, got {limit}")
    r = user_item_rating.c
    engine = engine_for(settings)
    with engine.connect() as conn:  # the primary key (user_id, item_id) serves both
        total = conn.scalar(select(func.count()).where(r.user_id == user_id)) or 0
        rows = conn.execute(
            select(r.item_id, r.rating, r.timestamp)
            .where(r.user_id == user_id)
            .order_by(desc(r.timestamp), r.item_id)
            .limit(limit)
        ).all()
    if not total:
        raise NotFound(f"user {user_id!r} has no ratings in the store")
    catalog = products_by_id(engine, [row[0] for row in rows])
    items = []
    for item_id, rating, timestamp in rows:
        product = catalog.get(item_id) or {}
        items.append(RatedItem(
            item_id=item_id, rating=rating, rated_at=iso_time(timestamp),
            title=product.get("title"), image_url=product.get("image_url"),
            price=product.get("price"), category=product.get("main_category"),
        ))  # fmt: skip
    return UserRatings(user_id=user_id, total=total, ratings=items)


def top_categories(settings: Settings, limit: int = 50) -> list[CategoryCount]:
    """The `limit` main categories with the most products, most first (the search page's
    category choice). Raises InvalidInput (400) for a limit outside 1..1000."""
    if not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be between 1 and 1000, got {limit}")
    p = product_catalog.c
    count = func.count().label("products")
    with engine_for(settings).connect() as conn:
        rows = conn.execute(
            select(p.main_category, count)
            .where(p.main_category.is_not(None), p.main_category != "")
            .group_by(p.main_category)
            .order_by(desc(count), p.main_category)
            .limit(limit)
        ).all()
    return [CategoryCount(name=name, products=n) for name, n in rows]


# ---- charts --------------------------------------------------------------------------------
_charts: dict[Engine, tuple[list[str | None], StoreCharts]] = {}
_charts_lock = threading.Lock()


def store_charts(settings: Settings) -> StoreCharts:
    """The long tail (ratings per item by popularity rank), ratings per month and the rating
    histogram. Three GROUP BY scans (~1 s at 2M ratings on SQLite), so the answer is kept until
    an ingest or a write moves the store's revisions."""
    engine = engine_for(settings)
    with engine.connect() as conn:
        revisions = read_revisions(conn)
    cached = _charts.get(engine)
    if cached is not None and cached[0] == revisions:
        return cached[1]
    with _charts_lock:  # one computation at a time; a waiting caller takes its result
        cached = _charts.get(engine)
        if cached is not None and cached[0] == revisions:
            return cached[1]
        charts = _compute_charts(engine)
        _charts[engine] = (revisions, charts)
    return charts


def _compute_charts(engine: Engine) -> StoreCharts:
    r = user_item_rating.c
    with engine.connect() as conn:
        per_item = np.array(
            conn.scalars(
                select(func.count()).select_from(user_item_rating).group_by(r.item_id)
            ).all(),
            dtype=np.int64,
        )
        # a literal, not a bound parameter: PostgreSQL must see the same expression in GROUP BY
        day = r.timestamp // literal_column(str(DAY), Integer)
        days = conn.execute(select(day, func.count()).group_by(day))
        day_counts = np.array(days.all(), dtype=np.int64).reshape(-1, 2)
        values = conn.execute(
            select(r.rating, func.count()).group_by(r.rating).order_by(r.rating)
        ).all()
    return StoreCharts(
        long_tail=_long_tail(per_item),
        ratings_per_month=_per_month(day_counts),
        rating_histogram=_histogram(np.array(values, dtype=np.float64).reshape(-1, 2)),
        ratings=int(per_item.sum()),
        items=len(per_item),
    )


def _long_tail(per_item: np.ndarray) -> Series:
    """Ratings of the item at popularity rank x (1 = most rated), at log-spaced ranks."""
    if not len(per_item):
        return Series(x=[], y=[])
    counts = np.sort(per_item)[::-1]
    ranks = np.unique(np.geomspace(1, len(counts), LONG_TAIL_POINTS).round().astype(np.int64))
    return Series(x=ranks.astype(float).tolist(), y=counts[ranks - 1].astype(float).tolist())


def _per_month(day_counts: np.ndarray) -> Series:
    """(day number, ratings) pairs summed per calendar month, every month in range present."""
    if not len(day_counts):
        return Series(x=[], y=[])
    days = day_counts[:, 0].astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    first, last = months.min(), months.max()
    axis = np.arange(first, last + np.timedelta64(1, "M"), dtype="datetime64[M]")
    sums = np.zeros(len(axis), dtype=np.int64)
    np.add.at(sums, (months - first).astype(np.int64), day_counts[:, 1])
    starts = axis.astype("datetime64[s]").astype(np.int64)
    return Series(x=starts.astype(float).tolist(), y=sums.astype(float).tolist())


def _histogram(value_counts: np.ndarray) -> Series:
    """Ratings per rating value; many distinct values (continuous scores) are binned."""
    if not len(value_counts):
        return Series(x=[], y=[])
    values, counts = value_counts[:, 0], value_counts[:, 1]
    if len(values) <= MAX_HISTOGRAM_BINS:
        return Series(x=values.tolist(), y=counts.tolist())
    sums, edges = np.histogram(values, bins=MAX_HISTOGRAM_BINS, weights=counts)
    centres = (edges[:-1] + edges[1:]) / 2
    return Series(x=centres.round(4).tolist(), y=sums.tolist())


def clear() -> None:
    """Forget cached charts (tests that rebuild a store under the same URL)."""
    _charts.clear()


# ---- the registry's records ----------------------------------------------------------------
def latest_evaluations(settings: Settings) -> Evaluations:
    """The last `recsys evaluate` report and `recsys tune` record kept in the registry; fields
    are None where that command never ran (or its record cannot be read)."""
    record = read_record(settings.models_dir, EVALUATION_FILE)
    report = None
    # never evaluated, or a record from an older layout: nothing to show
    with contextlib.suppress(KeyError, msgspec.ValidationError):
        report = msgspec.convert(record["report"], EvaluationReport)
    tuning = read_record(settings.models_dir, TUNING_FILE) or None
    return Evaluations(
        evaluation=report,
        evaluated_at=record.get("evaluated_at") if report else None,
        tuning=tuning,
    )
