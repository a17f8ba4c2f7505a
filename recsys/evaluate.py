"""Offline evaluation: train/test splits and top-k ranking metrics over the full catalog.

Every test user is ranked against every item the train part knows (no sampled negatives), with
the user's own train items removed. Relevant = the user's test items the train part knows; test
items and users the train part never saw cannot be ranked by any model, so they are counted and
reported by the caller instead of being silently dropped or silently scored as misses.

Metrics follow their usual definitions (e.g. Microsoft Recommenders' python_evaluation, RecBole):
precision@k, recall@k, NDCG@k with binary relevance, MAP@k (average precision normalised by
min(relevant, k)), catalog coverage (share of items recommended to anyone), novelty (mean
self-information -log2(popularity share) of the recommended items; Zhou et al. 2010), the Gini
index of exposure (how unequally the top-k slots go to items: 0 equal, 1 all to one item;
Fleder & Hosanagar 2009) and intra-list diversity (share of pairs in a list whose main categories
differ; Ziegler et al. 2005), over users whose lists have at least two categorised items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recsys.errors import InvalidInput

SPLITS = ("time", "random")
ScoreFn = Callable[[np.ndarray], np.ndarray]  # user indexes -> scores (users x items), float32
METRICS = ("precision", "recall", "ndcg", "map", "coverage", "novelty", "gini", "diversity")


def holdout_mask(
    timestamps: np.ndarray | None,
    users: np.ndarray,
    split: str,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """Boolean mask of the test rows.

    time: one global cut, the latest `test_fraction` of interactions are the test set (what a
    model trained last night faces today). random: per user, a seeded random `test_fraction` of
    their interactions (round(n * fraction), and at least one stays in train), the protocol of
    most published tables.
    """
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0 < test_fraction < 1:
        raise InvalidInput(f"test fraction must be between 0 and 1, got {test_fraction}")
    n = len(users)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    if split == "time":
        assert timestamps is not None
        n_test = max(1, int(round(n * test_fraction)))
        order = np.argsort(timestamps, kind="stable")
        mask[order[n - n_test :]] = True
        return mask
    rng = np.random.default_rng(seed)
    # A random key per row, sorted within each user: a user's first n_test rows by key are test.
    order = np.lexsort((rng.random(n), users))
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[users[order]]  # position within the user's rows
    n_test = np.minimum(np.rint(counts * test_fraction).astype(np.int64), counts - 1)
    mask = rank < n_test[users]
    return mask


def describe_split(split: str, test_fraction: float, seed: int, cut: int | None = None) -> str:
    """The split, named precisely enough to repeat it."""
    if split == "time":
        when = ""
        if cut is not None:
            from datetime import datetime, timezone

            when = f" (from {datetime.fromtimestamp(cut, timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"
        return (
            f"global time split: the latest {test_fraction:.0%} of ratings are the test set{when}"
        )
    return (
        f"per-user random split: {test_fraction:.0%} of each user's ratings are the test set "
        f"(at least one stays in train), seed {seed}"
    )


@dataclass
class RankingResult:
    """Averages over the evaluated users, and each user's NDCG (for significance tests)."""

    metrics: dict[str, float | None]
    per_user_ndcg: np.ndarray


def ranking_metrics(
    score: ScoreFn,
    users: np.ndarray,
    train: object,
    test: object,
    k: int,
    item_category: np.ndarray | None = None,
    batch: int = 256,
) -> RankingResult:
    """Top-k metrics for `users` (rows of the CSR matrices `train` and `test`, users x items,
    same item space). `item_category`: an int code per item, -1 unknown (for diversity)."""
    n_items = train.shape[1]  # type: ignore[attr-defined]
    n_users_train = train.shape[0]  # type: ignore[attr-defined]
    if not len(users):
        return RankingResult(dict.fromkeys(METRICS, 0.0), np.zeros(0))
    k = min(k, n_items)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    popularity = np.diff(train.tocsc().indptr)  # type: ignore[attr-defined]
    self_info = -np.log2(np.maximum(popularity, 1) / max(n_users_train, 1))
    sums = dict.fromkeys(("precision", "recall", "map", "novelty"), 0.0)
    ndcg = np.zeros(len(users))
    exposure = np.zeros(n_items, dtype=np.int64)
    diversity: list[float] = []
    listed = 0
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
        np.add.at(exposure, top[valid], 1)
        listed += int(valid.sum())
        sums["novelty"] += float((self_info[top] * valid).sum())

        rel = test[rows]  # type: ignore[index]
        relevant = np.zeros((b, n_items), dtype=bool)
        relevant[np.repeat(np.arange(b), np.diff(rel.indptr)), rel.indices] = True
        hits = np.take_along_axis(relevant, top, axis=1) & valid
        n_rel = np.diff(rel.indptr).astype(np.float64)
        n_hits = hits.sum(axis=1)
        sums["precision"] += float((n_hits / k).sum())
        sums["recall"] += float((n_hits / n_rel).sum())
        dcg = (hits * discounts).sum(axis=1)
        ndcg[start : start + b] = dcg / ideal[np.minimum(n_rel, k).astype(int) - 1]
        precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
        sums["map"] += float(((precision_at * hits).sum(axis=1) / np.minimum(n_rel, k)).sum())
        if item_category is not None:
            diversity.extend(_intra_list_diversity(item_category[top], valid))
    result: dict[str, float | None] = {
        name: total / len(users) for name, total in sums.items() if name != "novelty"
    }
    result["ndcg"] = float(ndcg.mean())
    result["coverage"] = float((exposure > 0).sum() / n_items)
    result["novelty"] = sums["novelty"] / listed if listed else 0.0
    result["gini"] = gini(exposure)
    result["diversity"] = float(np.mean(diversity)) if diversity else None
    return RankingResult({name: result[name] for name in METRICS}, ndcg)


def gini(counts: np.ndarray) -> float:
    """Gini index of a non-negative distribution (0: all equal; near 1: all on one item)."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(values), values.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * values).sum() / (n * total))


def _intra_list_diversity(codes: np.ndarray, valid: np.ndarray) -> list[float]:
    out = []
    for row, ok in zip(codes, valid, strict=True):
        known = row[ok & (row >= 0)]
        m = len(known)
        if m < 2:
            continue
        same = np.bincount(known)
        same_pairs = float((same * (same - 1)).sum()) / 2
        out.append(1.0 - same_pairs / (m * (m - 1) / 2))
    return out


def paired_significance(best: np.ndarray, other: np.ndarray) -> float:
    """p-value of the Wilcoxon signed-rank test on paired per-user NDCG (two-sided, scipy);
    1.0 when the two models score every user the same."""
    from scipy.stats import wilcoxon

    if len(best) == 0 or np.allclose(best, other):
        return 1.0
    return float(wilcoxon(best, other, zero_method="wilcox").pvalue)
