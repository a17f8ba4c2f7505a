"""The interface every recommender implements, and what all of them share.

A recommender is fitted on a users x items sparse matrix of ratings (CSR, float32, one entry per
rated pair) and answers two questions over the same item space:

- `similar(item, n, allowed)`: the items most like one item ("customers who bought X also
  bought Y");
- `user_scores(items, ratings)`: a score for every item given a user's items and ratings: the
  user's history in the store, a fold-in list from a new visitor, or a test user's train part in
  `recsys evaluate` (one code path, so offline figures measure what is served).

plus `explain`, which decomposes a user's score of a pick over the user's items ("because you
rated X"). Every model turns ratings into its own weights (`weights`): ALS into confidences,
the item-item models into 1 per interaction (implicit feedback: a rating is a positive).

Artifacts are plain `.npy` arrays (no pickle): the shared ones below, written by `save`, plus
whatever `fit` returns. A loaded model is read-only and safe to share between threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recsys.errors import IntegrityError, InvalidInput
from recsys.models.interactions import decode, lookup
from recsys.models.popularity import passes, popular_order, top_popular

ProgressFn = Callable[[int, int], None]  # (steps done, total)
# Arrays every collaborative model stores: ids (sorted UTF-8 byte strings, index = row/column),
# interactions per item (popularity) and the training matrix of raw ratings as CSR arrays (each
# user's history; the models' weights are derived from it when loaded).
SHARED_ARRAYS = ("item_ids", "user_ids", "item_counts", "seen_indptr", "seen_items", "seen_ratings")
ARTIFACT_FORMAT = 2  # 1: the single-model "mf" layout (seen_confidence); 2: this interface

EMPTY_I = np.array([], dtype=np.int32)
EMPTY_F = np.array([], dtype=np.float32)


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indexes and scores of the n best finite scores, best first (argpartition: O(items))."""
    valid = np.isfinite(scores)
    n = min(n, int(valid.sum()))
    if n <= 0:
        return np.array([], dtype=np.int64), np.array([], dtype=scores.dtype)
    part = np.argpartition(-np.where(valid, scores, -np.inf), n - 1)[:n]
    part = part[np.argsort(-scores[part], kind="stable")]
    return part, scores[part]


def check_range(name: str, value: float, low: float, high: float | None = None) -> None:
    """InvalidInput (400) unless low <= value (<= high)."""
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{name} must be {bound}, got {value}")


class Recommender(ABC):
    """A loaded model. Subclasses set `kind`, implement `fit` (a classmethod returning the
    model's own arrays), `check_params`, `similar`, `user_scores` and `explain`."""

    kind: ClassVar[str]
    model_arrays: ClassVar[tuple[str, ...]] = ()  # the arrays `fit` returns, by name

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]):
        self.manifest = manifest
        self.version: str = manifest.get("version", "unpublished")
        self.params: dict[str, Any] = dict(manifest.get("params") or {})
        self.item_ids = arrays["item_ids"]
        self.user_ids = arrays["user_ids"]
        self.item_counts = arrays["item_counts"]
        self.seen_indptr = arrays["seen_indptr"]
        self.seen_items = arrays["seen_items"]
        self.seen_ratings = arrays["seen_ratings"]
        self.popular = popular_order(self.item_counts)
        # Items from a fold-in list (no rating given) count as a typical training rating.
        self.typical_rating = float(np.median(self.seen_ratings)) if len(self.seen_ratings) else 1.0
        # Items the model can say something about; the others are never a result.
        self.known = np.ones(self.n_items, dtype=bool)
        self.extras: dict[str, Any] = {}  # per-model caches filled by the service (categories)

    # ---- training ------------------------------------------------------------------------
    max_trials: ClassVar[int] = 1_000  # `recsys tune` never runs more trials than this

    # Settings of the section that say how or where to fit, not what (e.g. ALS's engine):
    # `train` never takes them from `recsys tune`'s record.
    run_settings: ClassVar[tuple[str, ...]] = ()
    # ...and those of them that only say where the fit runs (e.g. a Spark master): changing
    # them does not make the live model out of date.
    placement: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def search_space(cls, trial: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Hyperparameters an optuna trial suggests for `recsys tune` ({}: nothing to tune);
        `params` are those in force (the space may depend on one, e.g. ALS's engine)."""
        return {}

    @classmethod
    @abstractmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Raise InvalidInput (400) naming the bad hyperparameter."""

    @classmethod
    @abstractmethod
    def fit(
        cls, ratings: Any, params: dict[str, Any], on_progress: ProgressFn | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fit on a users x items CSR matrix of raw ratings; returns (the model's own arrays,
        facts for the manifest's counts, e.g. the resolved rank or the items kept)."""

    @classmethod
    def from_fit(
        cls,
        ratings: Any,
        params: dict[str, Any],
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        on_progress: ProgressFn | None = None,
    ) -> tuple[Recommender, dict[str, Any]]:
        """Fit and build the loaded model in memory (training publishes its arrays; evaluation
        and tuning use it directly). Returns (model, counts)."""
        cls.check_params(params)
        own, counts = cls.fit(ratings, params, on_progress)
        arrays = {**shared_arrays(ratings, user_ids, item_ids), **own}
        return cls(arrays, {"params": params, "kind": cls.kind}), counts

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: Path, manifest: dict[str, Any]) -> Recommender:
        """The model of a verified registry version; IntegrityError (500) for an old layout."""
        if manifest.get("format") != ARTIFACT_FORMAT:
            raise IntegrityError(
                f"model {manifest.get('kind')} {manifest.get('version')} was written by an older "
                f"recsys (artifact format {manifest.get('format', 1)}): retrain it"
            )
        names = (*SHARED_ARRAYS, *cls.model_arrays)
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in names}
        return cls(arrays, manifest)

    def save(self, folder: Path) -> None:
        """Write every array into `folder` (the registry's temporary folder)."""
        for name in (*SHARED_ARRAYS, *self.model_arrays):
            np.save(folder / f"{name}.npy", getattr(self, name), allow_pickle=False)

    def prepare_for_serving(self, depth: int) -> None:  # noqa: B027 (optional hook)
        """Build what makes a server's answers cheap (run once per loaded version, off the
        request path); `depth` is the deepest n a client may ask for. Default: nothing."""

    # ---- lookups -------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_index(self, item_id: str) -> int | None:
        return lookup(self.item_ids, item_id)

    def user_index(self, user_id: str) -> int | None:
        return lookup(self.user_ids, user_id)

    def item_id_list(self, indexes: np.ndarray) -> list[str]:
        return decode(self.item_ids[indexes])

    def seen(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's training items and ratings."""
        lo, hi = self.seen_indptr[user], self.seen_indptr[user + 1]
        return self.seen_items[lo:hi], self.seen_ratings[lo:hi]

    def why_unknown(self, item: int) -> str:
        """Why the model has nothing to say about an item it has seen (known[item] is False)."""
        return (
            f"model {self.kind} {self.version} learned nothing about item "
            f"{self.item_id_list(np.array([item]))[0]!r} ({int(self.item_counts[item])} ratings, "
            "none with co-occurrences it fitted)"
        )

    # ---- answers -------------------------------------------------------------------------
    @abstractmethod
    def similar(
        self, item: int, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(item indexes, scores) of the n items most like `item`, best first, never `item`
        itself nor an item outside `allowed` (a boolean mask over the items)."""

    @abstractmethod
    def user_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """float32 score of every item for a user with these items (int indexes) and raw
        ratings; -inf for items the model cannot score."""

    explains: ClassVar[bool] = True  # scores decompose over the user's items

    @abstractmethod
    def contributions(
        self, items: np.ndarray, ratings: np.ndarray, picks: np.ndarray
    ) -> np.ndarray:
        """(picks x user items) float64: how much each of the user's items adds to each pick's
        score; every row sums to the pick's `user_scores` value (an exact decomposition)."""

    def explain(
        self, items: np.ndarray, ratings: np.ndarray, picks: np.ndarray, top: int = 3
    ) -> list[np.ndarray]:
        """For each pick, up to `top` of the user's items that contributed most to its score
        (positive contributions only), most first."""
        if not len(items) or not len(picks) or not self.explains:
            return [EMPTY_I for _ in picks]
        result = []
        for row in self.contributions(items, ratings, picks):
            best = np.argsort(-row, kind="stable")[:top]
            result.append(items[best[row[best] > 0]])
        return result

    def recommend(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        n: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(picks, scores): the n best-scored items outside `exclude` and inside `allowed`."""
        scores = self.user_scores(items, ratings)
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        return top_n(scores, n)

    def top_popular(
        self, n: int, exclude: np.ndarray | None = None, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The n most-interacted items (scores: their interaction counts)."""
        picks = top_popular(self.popular, n, exclude=exclude, allowed=allowed)
        return picks, self.item_counts[picks].astype(np.float32)


def shared_arrays(ratings: Any, user_ids: np.ndarray, item_ids: np.ndarray) -> dict[str, Any]:
    """The arrays every model keeps, from the users x items CSR matrix of raw ratings."""
    return {
        "item_ids": item_ids,
        "user_ids": user_ids,
        "item_counts": np.diff(ratings.tocsc().indptr).astype(np.int32),
        "seen_indptr": ratings.indptr.astype(np.int64),
        "seen_items": ratings.indices.astype(np.int32),
        "seen_ratings": ratings.data.astype(np.float32),
    }


class ItemItemRecommender(Recommender):
    """Models whose answers come from one item x item weight matrix W: a user's score of item j
    is sum_i w_i W[i, j] over the user's items i (weights 1: implicit feedback), and the items
    most like i are row i of W. EASE keeps W dense over its kept items, item-kNN and RP3beta keep
    it sparse (top neighbours per item). Subclasses provide `_block(items, picks)` (for
    explanations) and `similar` / `user_scores` in their own storage."""

    def weights(self, ratings: np.ndarray) -> np.ndarray:
        return np.ones(len(ratings), dtype=np.float32)

    @abstractmethod
    def _block(self, items: np.ndarray, picks: np.ndarray) -> np.ndarray:
        """Dense float32 W[items][:, picks] (len(items) x len(picks)), zero where W holds no
        weight. Only this block: whole rows of a heavy user cost 100 MB at 90K items."""

    def contributions(
        self, items: np.ndarray, ratings: np.ndarray, picks: np.ndarray
    ) -> np.ndarray:
        block = self._block(items, picks).T.astype(np.float64)  # picks x user items
        return block * self.weights(ratings)


class SparseItemItem(ItemItemRecommender):
    """W kept as CSR arrays (sim_indptr, sim_indices, sim_data): item-kNN and RP3beta."""

    model_arrays: ClassVar[tuple[str, ...]] = ("sim_indptr", "sim_indices", "sim_data")

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]):
        super().__init__(arrays, manifest)
        import scipy.sparse

        self.sim_indptr = arrays["sim_indptr"]
        self.sim_indices = arrays["sim_indices"]
        self.sim_data = arrays["sim_data"]
        shape = (self.n_items, self.n_items)
        self.similarity = scipy.sparse.csr_matrix(
            (self.sim_data, self.sim_indices, self.sim_indptr), shape=shape
        )
        # An item without neighbours (rated by one user only, or pruned away) scores nothing.
        self.known = (np.diff(self.sim_indptr) > 0) | (
            np.bincount(self.sim_indices, minlength=self.n_items) > 0
        )

    def _block(self, items: np.ndarray, picks: np.ndarray) -> np.ndarray:
        return self.similarity[items][:, picks].toarray()

    def user_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        # A sparse vector-matrix product touches only the user's rows: ~0.1 ms at 90K items.
        if not len(items):
            scores = np.zeros(self.n_items, dtype=np.float32)
        else:
            scores = np.asarray(self.weights(ratings) @ self.similarity[items], dtype=np.float32)
            scores = scores.ravel()
        scores[~self.known] = -np.inf
        return scores

    def recommend(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        n: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Only the neighbours of the user's items can score above zero, so they alone are
        ranked: gathered from the CSR rows and summed per item (~40 us for a typical user,
        against ~1 ms for a full-catalog vector at 90K items). Items with no co-occurrence
        are not candidates. Heavy users fall back to the full-catalog product."""
        items = np.asarray(items, dtype=np.int64)
        starts, ends = self.sim_indptr[items], self.sim_indptr[items + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total > self.n_items:
            return super().recommend(items, ratings, n, exclude, allowed)
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        positions = offsets + np.arange(total)
        values = self.sim_data[positions] * np.repeat(self.weights(ratings), lengths)
        candidates, inverse = np.unique(self.sim_indices[positions], return_inverse=True)
        scores = np.bincount(inverse, weights=values, minlength=len(candidates))
        keep = passes(candidates, exclude, allowed)
        picks, scores = top_n(scores[keep].astype(np.float32), n)
        return candidates[keep][picks].astype(np.int64), scores

    def similar(
        self, item: int, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.sim_indptr[item], self.sim_indptr[item + 1]
        picks, scores = self.sim_indices[lo:hi], self.sim_data[lo:hi]
        keep = (picks != item) & (scores > 0)
        if allowed is not None:
            keep &= allowed[picks]
        picks, scores = picks[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[:n]
        return picks[order].astype(np.int64), scores[order].astype(np.float32)


def sparse_arrays(matrix: Any) -> dict[str, np.ndarray]:
    """CSR arrays of an item x item weight matrix, in the dtypes the loader expects."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    return {
        "sim_indptr": matrix.indptr.astype(np.int64),
        "sim_indices": matrix.indices.astype(np.int32),
        "sim_data": matrix.data.astype(np.float32),
    }


def keep_top_k(matrix: Any, k: int) -> Any:
    """Keep the k largest entries of every row of a CSR matrix (the neighbourhood size of
    item-based models); rows are processed in place of their data, no dense copy."""
    import scipy.sparse

    matrix = matrix.tocsr()
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    counts = np.diff(indptr)
    keep = np.ones(len(data), dtype=bool)
    for row in np.flatnonzero(counts > k):
        lo, hi = indptr[row], indptr[row + 1]
        drop = np.argpartition(-data[lo:hi], k - 1)[k:]
        keep[lo + drop] = False
    rows = np.repeat(np.arange(matrix.shape[0]), counts)[keep]
    return scipy.sparse.csr_matrix((data[keep], (rows, indices[keep])), shape=matrix.shape)
