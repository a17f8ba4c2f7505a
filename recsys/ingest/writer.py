"""Batched upserts: one transaction per batch, so a crash never leaves half a batch behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.sql.dml import Insert

from recsys.ingest.rows import PRODUCT_FIELDS, RatingRow
from recsys.store.engine import get_meta, set_meta, writer
from recsys.store.tables import product_catalog, user_item_rating



def _insert(engine: Engine, table: Any) -> Insert:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def ratings_upsert(engine: Engine) -> Insert:
    """Keep the latest review of a pair; an identical or older line changes nothing (idempotent)."""
    t = user_item_rating.c
    stmt = _insert(engine, user_item_rating)
    new = stmt.excluded  # type: ignore[attr-defined]
    return stmt.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=[t.user_id, t.item_id],
        set_={c: new[c] for c in ("rating", "timestamp", "verified", "helpful_votes")},
        where=or_(
            new.timestamp > t.timestamp,
            and_(
                new.timestamp == t.timestamp,
                or_(
                    new.rating != t.rating,
                    new.helpful_votes != t.helpful_votes,
                    new.verified.is_distinct_from(t.verified),
                ),
            ),
        ),
    )


def products_upsert(engine: Engine) -> Insert:
    """The latest description of a product replaces the stored one; an identical row changes nothing."""
    stmt = _insert(engine, product_catalog)
    new = stmt.excluded  # type: ignore[attr-defined]
    columns = [f for f in PRODUCT_FIELDS if f != "item_id"]
    return stmt.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=[product_catalog.c.item_id],
        set_={c: new[c] for c in columns},
        where=or_(*(new[c].is_distinct_from(product_catalog.c[c]) for c in columns)),
    )


def latest_per_pair(rows: list[RatingRow]) -> list[dict[str, Any]]:
    """One row per (user, item) within a batch, the latest winning (later lines win ties).

    PostgreSQL refuses to update the same row twice in one multi-row statement."""
    latest: dict[tuple[str, str], RatingRow] = {}
    for row in rows:
        key = (row.user_id, row.item_id)
        seen = latest.get(key)
        if seen is None or row.timestamp >= seen.timestamp:
            latest[key] = row
    return [row._asdict() for row in latest.values()]


class BatchWriter:
    """Writes batches and counts rows changed; inserted = growth of the table, the rest updated."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.ratings_stmt = ratings_upsert(engine)
        self.products_stmt = products_upsert(engine)
        self.changed = {"ratings": 0, "products": 0}
        self.start_counts = self.table_counts()

    def table_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                "ratings": conn.scalar(select(func.count()).select_from(user_item_rating)) or 0,
                "products": conn.scalar(select(func.count()).select_from(product_catalog)) or 0,
            }

    def write_ratings(self, rows: list[RatingRow]) -> None:
        if rows:
            self._write("ratings", self.ratings_stmt, latest_per_pair(rows))

    def write_products(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            unique = list({row["item_id"]: row for row in rows}.values())
            self._write("products", self.products_stmt, unique)

    def _write(self, table: str, stmt: Insert, params: list[dict[str, Any]]) -> None:
        with writer(self.engine) as conn:
            changed = conn.execute(stmt, params).rowcount
            if changed:
                # A revision number that moves with every change lets `train` see new data cheaply.
                revision = int(get_meta(conn, f"{table}_revision") or 0) + 1
                set_meta(conn, f"{table}_revision", str(revision))
        self.changed[table] += max(changed, 0)

    def totals(self) -> dict[str, tuple[int, int]]:
        """table -> (inserted, updated) since this writer was created."""
        end = self.table_counts()
        result = {}
        for table in ("ratings", "products"):
            inserted = end[table] - self.start_counts[table]
            result[table] = (inserted, max(self.changed[table] - inserted, 0))
        return result
