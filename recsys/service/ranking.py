"""The popularity prior of search: known products first, placeholder listings last.

Every mode (semantic, keyword, hybrid) first ranks a pool of candidates by relevance alone; this
module re-orders the pool the same way for all three:

    score = relevance / best relevance of the pool  +  weight * prior

with `search.popularity_weight_semantic` (cosine) or `..._keyword` (bm25) as the weight, so the
best-matching candidate has relevance 1 whatever the mode's scale (cosine, bm25). Hybrid's
relevance is already in [0, 1] (service.search.convex_fusion of the min-max normalised pools) and
is used as it is, with `search.popularity_weight_hybrid`.
`prior` is in [0, 1]: 0.8 * log(1 + n) / log(1 + n_max) + 0.2 * (Bayesian average rating,
scaled to the rating range), where n is the product's number of ratings (the catalog's
`rating_count` and `average_rating` when it has them, as Amazon 2023 meta does: they count the
whole shop; else the ratings stored for it) and n_max the largest n of the pool. Listings with identical titles (same relevance) are thus ordered by popularity, a small
weight only re-orders near-ties, and equal scores go to the higher prior. The weights differ
because the scales do: MiniLM cosines of a descriptive query's good matches lie within ~1% of
each other, so a semantic weight above ~0.02 lets popularity override what the shopper described
(measured on the judged sets, benchmarks/bench_search.py), while bm25 gaps between a title and
its namesakes are wider (~10%, from document length) and keyword relevance stays as good up to
~0.5; min-max normalisation spreads hybrid's pool over [0, 1], and known-item hit@1 stays >= 0.95
for hybrid weights 0.1 to 0.3 (0.2 chosen, the middle). A listing whose title matches one of `search.placeholder_patterns`
(a test or placeholder listing, e.g. Amazon's "... Configuration Asin") ranks after every other
candidate. Ties keep the mode's own order.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, func, select

from recsys.store.engine import get_meta
from recsys.store.tables import user_item_rating

PRIOR_COUNT_SHARE = 0.8  # of the prior: how many rated it; the rest: how well
BAYES_RATINGS = 5  # average ratings are shrunk toward the scale's middle as if by 5 more ratings


@lru_cache(maxsize=16)
def placeholder_pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive regex of all patterns (None when there are none)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None


def is_placeholder(title: str | None, pattern: re.Pattern[str] | None) -> bool:
    return bool(pattern is not None and title and pattern.search(title))


class _StoreCounts:
    """Ratings stored per item (count, mean), memoised per `ratings_revision`: a server looks each
    item up once per ingest, not per query. Only the pool's items are read, through the item index."""

    def __init__(self) -> None:
        self.revision: str | None = None
        self.rows: dict[str, tuple[int, float]] = {}
        self.lock = threading.Lock()

    def lookup(self, engine: Engine, item_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
        r = user_item_rating.c
        with engine.connect() as conn:
            revision = get_meta(conn, "ratings_revision") or "0"
            with self.lock:
                if revision != self.revision:
                    self.revision, self.rows = revision, {}
                rows = self.rows
            missing = [i for i in dict.fromkeys(item_ids) if i not in rows]
            if missing:
                query = (
                    select(r.item_id, func.count(), func.avg(r.rating))
                    .where(r.item_id.in_(missing))
                    .group_by(r.item_id)
                )
                found = {item: (int(n), float(avg)) for item, n, avg in conn.execute(query)}
                rows.update((i, found.get(i, (0, 0.0))) for i in missing)
        return {i: rows[i] for i in item_ids}


_store_counts: dict[Engine, _StoreCounts] = {}


def store_counts(engine: Engine, item_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
    """item -> (ratings stored, their mean) for items the catalog gives no count; a server asks
    the store once per item and ingest."""
    counts = _store_counts.get(engine)
    if counts is None:
        counts = _store_counts.setdefault(engine, _StoreCounts())
    return counts.lookup(engine, item_ids)


def priors(
    catalog: dict[str, dict[str, Any]],
    stored: dict[str, tuple[int, float]],
    item_ids: Sequence[str],
    rating_range: tuple[float, float],
) -> dict[str, float]:
    """item -> prior in [0, 1] (see the module docstring); items without ratings get the
    scale's middle as their average."""
    low, high = rating_range
    middle = (low + high) / 2
    counted: dict[str, tuple[int, float]] = {}
    for item in item_ids:
        row = catalog.get(item) or {}
        if row.get("rating_count") is not None:
            counted[item] = (row["rating_count"], float(row.get("average_rating") or middle))
        else:
            counted[item] = stored.get(item, (0, 0.0))
    top = math.log1p(max((n for n, _ in counted.values()), default=0))
    out = {}
    for item, (n, avg) in counted.items():
        popularity = math.log1p(n) / top if top > 0 else 0.0
        bayes = (n * avg + BAYES_RATINGS * middle) / (n + BAYES_RATINGS)
        quality = min(1.0, max(0.0, (bayes - low) / (high - low))) if high > low else 0.5
        out[item] = PRIOR_COUNT_SHARE * popularity + (1 - PRIOR_COUNT_SHARE) * quality
    return out


def rerank(
    ranked: list[tuple[str, float]],
    catalog: dict[str, dict[str, Any]],
    prior: dict[str, float],
    weight: float,
    placeholders: re.Pattern[str] | None,
    *,
    normalise: bool = True,
) -> list[tuple[str, float]]:
    """The pool re-ordered by relevance / best + weight * prior, placeholders last, equal scores
    by prior, then in the given order. Each item's score is that blend (relevance / best alone
    when weight is 0; the relevance as given without `normalise`)."""
    if not ranked:
        return []
    best = max(score for _, score in ranked)
    scale = best if normalise and best > 0 else 1.0
    scored = []
    for position, (item, relevance) in enumerate(ranked):
        p = prior.get(item, 0.0)
        blended = relevance / scale + weight * p
        title = (catalog.get(item) or {}).get("title")
        scored.append((is_placeholder(title, placeholders), -blended, -p, position, item, blended))
    scored.sort()
    return [(item, blended) for *_, item, blended in scored]
