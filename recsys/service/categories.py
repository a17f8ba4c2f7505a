"""Category filters: which items of a model belong to a category.

A product belongs to its main category and to every entry of its `categories` list (Amazon's
category path, or the genres of a multi-valued column such as MovieLens's `Action|Comedy`).
Matching is case-insensitive; an unknown name is a 400 that suggests close names.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
from sqlalchemy import select

from recsys.config import Settings
from recsys.models.interactions import lookup_many
from recsys.service.data import engine_for
from recsys.store import catalog_cache
from recsys.store.categories import product_categories
from recsys.store.tables import product_catalog


def _model_categories(settings: Settings, model: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """(lower name -> display name, lower name -> model item indexes), read from the catalog
    once per loaded model and catalog revision of the server's snapshot, cached on the model."""
    revision = catalog_cache.revision(engine_for(settings))
    cached = model.extras.get("categories")
    if cached is not None and model.extras.get("categories_revision") == revision:
        return cached
    p = product_catalog.c
    with engine_for(settings).connect() as conn:
        rows = conn.execute(select(p.item_id, p.main_category, p.categories)).all()
    indexes = lookup_many(model.item_ids, [row[0] for row in rows])
    display: dict[str, str] = {}
    members: dict[str, list[int]] = {}
    for idx, (_, main, listed) in zip(indexes, rows, strict=True):
        if idx is None:
            continue
        for name in product_categories(main, listed):
            low = name.lower()
            display.setdefault(low, name)
            members.setdefault(low, []).append(idx)
    arrays = {low: np.array(sorted(set(m)), dtype=np.int64) for low, m in members.items()}
    model.extras["categories"] = (display, arrays)  # one reference assignment: thread-safe
    model.extras["categories_revision"] = revision
    return display, arrays


def category_mask(
    settings: Settings, model: Any, category: str | None
) -> tuple[np.ndarray | None, str | None]:
    """(boolean mask over the model's items in `category`, case-insensitive, any of a
    product's categories; None without a category) and, for a name no rated item has, a note
    that suggests close names. An unknown category is a valid question with an empty answer
    (200 with the note, as /search answers it), not an invalid request."""
    if not category:
        return None, None
    display, members = _model_categories(settings, model)
    wanted = category.strip().lower()
    mask = np.zeros(model.n_items, dtype=bool)
    if wanted not in members:
        close = difflib.get_close_matches(category, list(display.values()), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return mask, f"no rated item has category {category!r}{hint}"
    mask[members[wanted]] = True
    return mask, None


def main_category_mask(settings: Settings, model: Any, item_id: str) -> np.ndarray | None:
    """Mask of the items sharing `item_id`'s main category (None when it has none)."""
    p = product_catalog.c
    with engine_for(settings).connect() as conn:
        main = conn.scalar(select(p.main_category).where(p.item_id == item_id))
    if not isinstance(main, str) or not main.strip():
        return None
    _, members = _model_categories(settings, model)
    mask = np.zeros(model.n_items, dtype=bool)
    mask[members.get(main.strip().lower(), np.array([], dtype=np.int64))] = True
    return mask
