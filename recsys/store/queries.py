"""Read queries the services share."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, select

from recsys.schemas import ScoredItem, StoreStatus
from recsys.store import catalog_cache
from recsys.store.engine import get_meta
from recsys.store.tables import SCHEMA_VERSION, product_catalog, user_item_rating


def store_status(engine: Engine, *, fresh: bool = True) -> StoreStatus:
    """Counts of the store. Distinct counts over 2M ratings take ~1 s, so they are kept under the
    revision numbers every ingest batch bumps, and never wait for a writer (store/counts.py):
    with `fresh=False` (the server) they may be the last known ones, marked `counts_stale`."""
    from recsys.store.counts import store_counts

    with engine.connect() as conn:
        revisions = read_revisions(conn)
        last = get_meta(conn, "last_ingest_at")
        counts, stale = store_counts(engine, conn, revisions, _count, fresh=fresh)
    return StoreStatus(
        database=engine.url.render_as_string(hide_password=True),
        schema_version=SCHEMA_VERSION,
        last_ingest_at=iso_time(float(last)) if last else None,
        counts_stale=stale,
        **counts,
    )


def read_revisions(conn: Connection) -> list[str | None]:
    """What every ingest batch moves: the ratings and products revisions."""
    return [get_meta(conn, "ratings_revision"), get_meta(conn, "products_revision")]


def _count(conn: Connection) -> dict[str, int]:
    r, p = user_item_rating.c, product_catalog.c
    orphans = (
        select(func.count())
        .select_from(user_item_rating)
        .where(~exists().where(p.item_id == r.item_id))
    )
    return {
        "products": conn.scalar(select(func.count()).select_from(product_catalog)) or 0,
        "ratings": conn.scalar(select(func.count()).select_from(user_item_rating)) or 0,
        "users": conn.scalar(select(func.count(r.user_id.distinct()))) or 0,
        "rated_items": conn.scalar(select(func.count(r.item_id.distinct()))) or 0,
        "ratings_without_product": conn.scalar(orphans) or 0,
    }


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


def products_by_id(engine: Engine, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Catalog fields for many items: from the server's in-memory snapshot when there is one,
    the rest in one query."""
    found, missing, absent = catalog_cache.lookup(engine, item_ids)
    if not missing:
        return found
    p = product_catalog.c
    cols = [p[field] for field in catalog_cache.FIELDS]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(p.item_id.in_(missing))).mappings().all()
    found.update((row["item_id"], dict(row)) for row in rows)
    catalog_cache.remember_missing(absent, [i for i in missing if i not in found])
    return found


_NO_PRODUCT: dict[str, Any] = dict.fromkeys(catalog_cache.FIELDS)


def result_line(
    item_id: str,
    score: float,
    product: dict[str, Any] | None,
    because: list[str] | None = None,
    model: str | None = None,
) -> ScoredItem:
    """One result line from a `products_by_id` row; an item missing from the catalog keeps its
    id and score with empty fields."""
    row = product or _NO_PRODUCT
    return ScoredItem(
        item_id, round(score, 6), row["title"], row["image_url"], row["price"],
        row["main_category"], because, model,
    )  # fmt: skip
