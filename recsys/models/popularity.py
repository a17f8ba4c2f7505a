"""The popularity baseline: items ranked by how many users interacted with them.

It answers for users the ALS model has never seen, and is the yardstick `recsys evaluate` holds
ALS against: a model that cannot beat "everyone buys the bestsellers" has learned nothing.
"""

from __future__ import annotations

import numpy as np


def item_counts(items: np.ndarray, n_items: int) -> np.ndarray:
    """Interactions per item index (int32)."""
    return np.bincount(items, minlength=n_items).astype(np.int32)


def popularity_scores(counts: np.ndarray) -> np.ndarray:
    """A score per item: the count, with a tiny tie-break by index so rankings are deterministic."""
    n = len(counts)
    return counts.astype(np.float64) + (n - np.arange(n)) / (n + 1.0) * 1e-3


def popular_order(counts: np.ndarray) -> np.ndarray:
    """Item indexes, most popular first (ties: lower index first). Computed once per model."""
    return np.argsort(-popularity_scores(counts), kind="stable")


def top_popular(
    order: np.ndarray,
    n: int,
    *,
    exclude: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """The first `n` items of `order` not in `exclude` and, if given, with allowed[item] True."""
    if allowed is None:
        # Only the head can matter: at most len(exclude) of its items are dropped.
        order = order[: n + (0 if exclude is None else len(exclude))]
    return order[passes(order, exclude, allowed)][:n]


def passes(items: np.ndarray, exclude: np.ndarray | None, allowed: np.ndarray | None) -> np.ndarray:
    """Boolean mask: which of `items` (item indexes) are outside `exclude` and inside `allowed`
    (a boolean mask over all items). For candidate lists; a full-catalog score vector is
    filtered faster by assigning -inf."""
    keep = np.ones(len(items), dtype=bool)
    if exclude is not None and len(exclude):
        keep &= ~np.isin(items, exclude)
    if allowed is not None:
        keep &= allowed[items]
    return keep
