"""Offline evaluation: train/test splits and top-k ranking metrics over the full catalog.

Every test user is ranked against every item the train part knows (no sampled negatives), with
the user's own train items removed. Relevant = the user's test items the train part knows; test
items and users the train part never saw cannot be ranked by any model, so they are counted and
reported by the caller instead of being silently dropped or silently scored as misses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recsys.errors import InvalidInput

SPLITS = ("time", "random")
ScoreFn = Callable[[np.ndarray], np.ndarray]  # user indexes -> scores (users x items), float32


def holdout_mask(
    timestamps: np.ndarray | None, n: int, split: str, test_fraction: float, seed: int
) -> np.ndarray:
    """Boolean mask of the test rows.

    time: one global cut, the latest `test_fraction` of interactions are the test set (what a
    model trained last night faces today). random: a seeded random `test_fraction` of them.
    """
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0 < test_fraction < 1:
        raise InvalidInput(f"test fraction must be between 0 and 1, got {test_fraction}")
    n_test = max(1, int(round(n * test_fraction)))
    mask = np.zeros(n, dtype=bool)
    if split == "time":
        assert timestamps is not None
        order = np.argsort(timestamps, kind="stable")
        mask[order[n - n_test :]] = True
    else:
        rng = np.random.default_rng(seed)
        mask[rng.choice(n, size=n_test, replace=False)] = True
    return mask


def ranking_metrics(
    score: ScoreFn,
    users: np.ndarray,
    train: object,
    test: object,
    k: int,
    batch: int = 512,
) -> dict[str, float]:
    """precision, recall, ndcg, map @k and coverage for `users` (rows of the CSR matrices
    `train` and `test`, users x items, same item space). Vectorised per batch of users."""
    n_items = train.shape[1]  # type: ignore[attr-defined]
    if not len(users):
        return dict.fromkeys(("precision", "recall", "ndcg", "map", "coverage"), 0.0)
    k = min(k, n_items)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    sums = dict.fromkeys(("precision", "recall", "ndcg", "map"), 0.0)
    recommended = np.zeros(n_items, dtype=bool)
    for start in range(0, len(users), batch):
        rows = users[start : start + batch]
        scores = np.array(score(rows), dtype=np.float32, copy=True)
        b = len(rows)
        seen = train[rows]  # type: ignore[index]
        scores[np.repeat(np.arange(b), np.diff(seen.indptr)), seen.indices] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
        valid = np.isfinite(np.take_along_axis(scores, top, axis=1))
        recommended[top[valid]] = True

        rel = test[rows]  # type: ignore[index]
        relevant = np.zeros((b, n_items), dtype=bool)
        relevant[np.repeat(np.arange(b), np.diff(rel.indptr)), rel.indices] = True
        hits = np.take_along_axis(relevant, top, axis=1) & valid
        n_rel = np.diff(rel.indptr).astype(np.float64)
        n_hits = hits.sum(axis=1)
        sums["precision"] += float((n_hits / k).sum())
        sums["recall"] += float((n_hits / n_rel).sum())
        dcg = (hits * discounts).sum(axis=1)
        sums["ndcg"] += float((dcg / ideal[np.minimum(n_rel, k).astype(int) - 1]).sum())
        precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
        sums["map"] += float(((precision_at * hits).sum(axis=1) / np.minimum(n_rel, k)).sum())
    result = {name: total / len(users) for name, total in sums.items()}
    result["coverage"] = float(recommended.sum() / n_items)
    return result
