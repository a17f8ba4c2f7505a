"""Read queries the services share."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, exists, func, select

from recsys.schemas import StoreStatus
from recsys.store.engine import get_meta
from recsys.store.tables import SCHEMA_VERSION, product_catalog, user_item_rating


def store_status(engine: Engine) -> StoreStatus:
    r, p = user_item_rating.c, product_catalog.c
    with engine.connect() as conn:
        products = conn.scalar(select(func.count()).select_from(product_catalog)) or 0
        ratings = conn.scalar(select(func.count()).select_from(user_item_rating)) or 0
        users = conn.scalar(select(func.count(r.user_id.distinct()))) or 0
        items = conn.scalar(select(func.count(r.item_id.distinct()))) or 0
        orphans = (
            conn.scalar(
                select(func.count())
                .select_from(user_item_rating)
                .where(~exists().where(p.item_id == r.item_id))
            )
            or 0
        )
        last = get_meta(conn, "last_ingest_at")
    return StoreStatus(
        database=engine.url.render_as_string(hide_password=True),
        schema_version=SCHEMA_VERSION,
        products=products,
        ratings=ratings,
        users=users,
        rated_items=items,
        ratings_without_product=orphans,
        last_ingest_at=iso_time(float(last)) if last else None,
    )


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


def products_by_id(engine: Engine, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Catalog fields for many items in one query."""
    if not item_ids:
        return {}
    p = product_catalog.c
    cols = [p.item_id, p.title, p.image_url, p.price, p.main_category]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(p.item_id.in_(item_ids))).mappings().all()
    return {row["item_id"]: dict(row) for row in rows}
