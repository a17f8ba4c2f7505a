"""Filters a client puts on every recommendation: items to leave out, categories (any of several)
and a price range. They compose with the single `category` and `include_seen` of the callers.

A filter becomes one boolean mask over a model's items, applied before the top-n cut, so n
results still come back whenever n items pass. The price of every model item is read from the
catalog once per loaded model and catalog revision (cached on the model, like its categories).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from recsys.config import Settings
from recsys.errors import InvalidInput
from recsys.models.interactions import lookup_array
from recsys.service.categories import category_mask
from recsys.service.data import engine_for
from recsys.store import catalog_cache
from recsys.store.categories import in_categories, resolve_category
from recsys.store.queries import products_by_id
from recsys.store.tables import product_catalog


@dataclass(frozen=True)
class Filters:
    """exclude: item ids never to return; categories: keep items of any of them (case-insensitive);
    price_min / price_max: keep items whose catalog price lies in the range (an item without a
    price fails a price filter)."""

    exclude: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None

    @classmethod
    def of(
        cls,
        exclude: list[str] | None = None,
        categories: list[str] | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
    ) -> Filters:
        """Checked filters; InvalidInput (400) naming price_min / price_max when one is not a
        finite number >= 0. (price_min above price_max is a valid question whose answer is
        empty, as an unknown category's is.)"""
        for name, value in (("price_min", price_min), ("price_max", price_max)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidInput(f"{name} must be a finite number >= 0, got {value}")
        cats = tuple(dict.fromkeys(c.strip() for c in categories or [] if c.strip()))
        return cls(tuple(dict.fromkeys(exclude or [])), cats, price_min, price_max)

    @property
    def priced(self) -> bool:
        return self.price_min is not None or self.price_max is not None

    def __bool__(self) -> bool:
        return bool(self.exclude or self.categories or self.priced)


NONE = Filters()


def filter_mask(
    settings: Settings, model: Any, category: str | None, filters: Filters
) -> tuple[np.ndarray | None, str | None, list[str]]:
    """(mask over the model's items that pass `category` and `filters`, None when nothing
    filters; a note when no item can pass (an unknown category, price_min above price_max),
    notes on names ignored)."""
    notes: list[str] = []
    mask, empty = category_mask(settings, model, category)
    if empty:
        return mask, empty, notes
    if filters.categories:
        any_of = np.zeros(model.n_items, dtype=bool)
        unknown = []
        for name in filters.categories:
            one, missing = category_mask(settings, model, name)
            if missing:
                unknown.append(missing)
            else:
                any_of |= one  # a known category has a mask
        if len(unknown) == len(filters.categories):
            return any_of, "; ".join(unknown), notes
        notes += unknown
        mask = any_of if mask is None else mask & any_of
    if filters.priced:
        low, high = filters.price_min, filters.price_max
        if low is not None and high is not None and low > high:
            return (
                np.zeros(model.n_items, dtype=bool),
                (f"price_min ({low:g}) is above price_max ({high:g}): no item can pass"),
                notes,
            )
        prices = model_prices(settings, model)
        low = -np.inf if filters.price_min is None else filters.price_min
        high = np.inf if filters.price_max is None else filters.price_max
        with np.errstate(invalid="ignore"):  # NaN (no price) compares False: filtered out
            in_range = (prices >= low) & (prices <= high)
        mask = in_range if mask is None else mask & in_range
    if filters.exclude:
        found = lookup_array(model.item_ids, list(filters.exclude))
        found = found[found >= 0]  # ids the model does not know can never be a result anyway
        if len(found):
            mask = np.ones(model.n_items, dtype=bool) if mask is None else mask.copy()
            mask[found] = False
    return mask, None, notes


def model_prices(settings: Settings, model: Any) -> np.ndarray:
    """float64 catalog price of every model item (NaN without one), cached on the model per
    catalog revision of the server's snapshot (the CLI reads it once per run)."""
    engine = engine_for(settings)
    revision = catalog_cache.revision(engine)
    cached = model.extras.get("prices")
    if cached is not None and cached[0] == revision:
        return cached[1]
    p = product_catalog.c
    with engine.connect() as conn:
        rows = conn.execute(select(p.item_id, p.price).where(p.price.is_not(None))).all()
    prices = np.full(model.n_items, np.nan)
    found = lookup_array(model.item_ids, [r[0] for r in rows])
    known = found >= 0
    prices[found[known]] = np.array([r[1] for r in rows], dtype=np.float64)[known]
    model.extras["prices"] = (revision, prices)  # one reference assignment: thread-safe
    return prices


def passing_ids(
    settings: Settings, item_ids: list[str], category: str | None, filters: Filters
) -> set[str]:
    """The ids among `item_ids` (any catalog item, rated or not: the semantic fallback's and
    search's candidates) that pass `category` and `filters`, from their catalog rows (the
    server's snapshot, else one query)."""
    engine = engine_for(settings)
    excluded = set(filters.exclude)
    keep = [i for i in item_ids if i not in excluded]
    if not keep or not (category or filters.categories or filters.priced):
        return set(keep)
    rows = products_by_id(engine, keep)
    for names in ([category] if category else [], filters.categories):
        if names:
            spellings = _spellings(engine, names)
            keep = [i for i in keep if in_categories(rows.get(i), spellings)]
    if filters.priced:
        low = filters.price_min if filters.price_min is not None else -math.inf
        high = filters.price_max if filters.price_max is not None else math.inf
        keep = [i for i in keep if _priced_within((rows.get(i) or {}).get("price"), low, high)]
    return set(keep)


def _spellings(engine: Any, names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Every stored spelling of any of `names` (case-insensitive); unknown names add nothing."""
    found: set[str] = set()
    for name in names:
        try:
            found |= resolve_category(engine, name)
        except InvalidInput:
            continue
    return frozenset(found)


def _priced_within(price: Any, low: float, high: float) -> bool:
    return isinstance(price, int | float) and low <= price <= high
