"""Implicit-feedback matrix factorisation (implicit's ALS): fit, artifacts, and the loaded model.

Artifacts (plain .npy, loaded with allow_pickle=False):

    item_ids.npy, user_ids.npy     sorted UTF-8 byte strings (dtype S): index = row/column
    item_factors.npy               float32 items x factors
    item_counts.npy                int32 interactions per item (the popularity fallback)
    seen_indptr.npy, seen_items.npy, seen_confidence.npy
                                   the training matrix as CSR arrays: each user's items

User factors are NOT stored. A user's vector is re-solved at request time from their row of the
training matrix against the final item factors (the exact ALS user step, ~50 us for 64 factors).
That is what ALS itself would compute next, makes known users, fold-in users and `--explain`
one code path, and keeps the artifact and the loaded model ~4x smaller at 1.7M users (a
1.7M x 64 float32 array alone is 435 MB).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import InvalidInput
from recsys.models.interactions import decode, lookup
from recsys.models.popularity import popular_order, top_popular

ProgressFn = Callable[[int, int], None]  # (iterations done, total)
CONFIDENCE_KINDS = ("linear", "binary")
ARRAYS = (
    "item_ids", "user_ids", "item_factors", "item_counts",
    "seen_indptr", "seen_items", "seen_confidence",
)  # fmt: skip


@dataclass(frozen=True)
class ALSParams:
    factors: int
    iterations: int
    regularization: float
    alpha: float
    confidence: str
    random_state: int
    min_user_ratings: int = 1

    @classmethod
    def from_settings(cls, mf: Any) -> ALSParams:
        params = cls(
            factors=mf.factors, iterations=mf.iterations, regularization=mf.regularization,
            alpha=mf.alpha, confidence=mf.confidence, random_state=mf.random_state,
            min_user_ratings=mf.min_user_ratings,
        )  # fmt: skip
        params.check()
        return params

    def check(self) -> None:
        if self.factors < 0 or self.factors > 1024:
            raise InvalidInput(f"factors must be 0 (auto) or 1..1024, got {self.factors}")
        if self.iterations < 1:
            raise InvalidInput(f"iterations must be at least 1, got {self.iterations}")
        if self.regularization < 0 or self.alpha < 0:
            raise InvalidInput("regularization and alpha must not be negative")
        if self.min_user_ratings < 1:
            raise InvalidInput(f"min_user_ratings must be at least 1, got {self.min_user_ratings}")
        if self.confidence not in CONFIDENCE_KINDS:
            raise InvalidInput(
                f"confidence must be one of {', '.join(CONFIDENCE_KINDS)}, got {self.confidence!r}"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def factors_for(params: ALSParams, n_items: int) -> int:
    """factors = 0 means auto: about one factor per 40 items, between 8 and 64.

    Measured NDCG@10 (time split): Gift Cards (148 items) 0.164 with 8 factors against 0.075 with 64
    (popularity: 0.136); a 600-item synthetic shop 0.331 with 16 against 0.223 with 64. A rank the
    data cannot support overfits; large catalogs keep 64."""
    if params.factors:
        return params.factors
    return int(min(64, max(8, n_items // 40)))


def fit_rows(matrix: Any, min_user_ratings: int) -> Any:
    """The users the fit learns from: those with at least `min_user_ratings` items.

    A user with one rating says nothing about which items go together, yet at the reference scale
    such users are 89% of all users and, since ALS pays ~factors^2 per user and iteration, ~90% of
    the fit time. Everyone is still served: user vectors are solved at request time."""
    if min_user_ratings <= 1:
        return matrix
    return matrix[np.diff(matrix.indptr) >= min_user_ratings]


def fit_als(matrix: Any, params: ALSParams, on_progress: ProgressFn | None = None):
    """Fit implicit's CPU ALS on a users x items confidence matrix; returns the fitted model.

    The matrix already holds confidences, so implicit's own alpha stays 1. BLAS is limited to one
    thread (implicit parallelises over users itself; a threaded BLAS inside makes it ~10x slower).
    Items nobody in `matrix` rated get exactly zero factors: the model knows nothing about them.
    """
    from implicit.cpu.als import AlternatingLeastSquares  # not `implicit.als`: no GPU probing
    from threadpoolctl import threadpool_limits

    def callback(iteration: int, _elapsed: float, _loss: float | None) -> None:
        if on_progress is not None:
            on_progress(iteration + 1, params.iterations)

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors_for(params, matrix.shape[1]),
            regularization=params.regularization,
            alpha=1.0,
            iterations=params.iterations,
            random_state=params.random_state,
            dtype=np.float32,
        )
        model.fit(matrix, show_progress=False, callback=callback)
    model.item_factors[np.diff(matrix.tocsc().indptr) == 0] = 0.0
    return model


def save_artifacts(
    folder: Path,
    *,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    matrix: Any,
    item_factors: np.ndarray,
) -> None:
    """Write the arrays a loaded model needs into `folder` (the registry's temporary folder)."""
    arrays = {
        "item_ids": item_ids,
        "user_ids": user_ids,
        "item_factors": np.ascontiguousarray(item_factors, dtype=np.float32),
        "item_counts": np.diff(matrix.tocsc().indptr).astype(np.int32),
        "seen_indptr": matrix.indptr.astype(np.int64),
        "seen_items": matrix.indices.astype(np.int32),
        "seen_confidence": matrix.data.astype(np.float32),
    }
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array, allow_pickle=False)


_blas_limited = False


def serve_with_single_threaded_blas() -> None:
    """Limit numpy's BLAS to one thread for the rest of the process (once).

    Serving multiplies one vector by the item factors (90K x 64): a memory-bound gemv that a
    second BLAS thread cannot speed up, while spinning BLAS threads on a busy 2-core machine
    made it ~15x slower (measured p50 12 ms vs 0.7 ms) and the load-time Y^T Y took seconds.
    Concurrent requests are the parallelism of a server."""
    global _blas_limited
    if not _blas_limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, "blas")
        _blas_limited = True


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indexes and scores of the n best finite scores, best first (argpartition: O(items))."""
    valid = np.isfinite(scores)
    n = min(n, int(valid.sum()))
    if n <= 0:
        return np.array([], dtype=np.int64), np.array([], dtype=scores.dtype)
    part = np.argpartition(-scores, n - 1)[:n]
    part = part[np.argsort(-scores[part], kind="stable")]
    return part, scores[part]


# Deeper n scan exactly: the table costs items x depth x 8 bytes (90K items x 200: 144 MB).
SIMILAR_TABLE_MAX_DEPTH = 200


class MFModel:
    """A loaded ALS model: read-only numpy arrays, safe to share between threads."""

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]):
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.regularization = float(manifest["params"]["regularization"])
        self.item_ids = arrays["item_ids"]
        self.user_ids = arrays["user_ids"]
        self.item_factors = arrays["item_factors"]
        self.item_counts = arrays["item_counts"]
        self.seen_indptr = arrays["seen_indptr"]
        self.seen_items = arrays["seen_items"]
        self.seen_confidence = arrays["seen_confidence"]
        # Precomputed once per load: cosine similarity is a dot of normalised factors, and the
        # fold-in solve starts from Y^T Y (factors x factors).
        norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        self.normed = self.item_factors / np.maximum(norms, 1e-12)
        # Items with zero factors were rated only by users left out of the fit: never a result.
        self.trained = norms[:, 0] > 0
        self.untrained = np.flatnonzero(~self.trained)  # usually few: index, don't mask
        wide = self.item_factors.astype(np.float64)  # same dtypes on both sides: BLAS, not a loop
        self.yty = wide.T @ wide
        self.popular = popular_order(self.item_counts)
        # Fold-in items from a request get the confidence of a typical training rating.
        self.typical_confidence = (
            float(np.median(self.seen_confidence)) if len(self.seen_confidence) else 1.0
        )
        self.extras: dict[str, Any] = {}  # per-model caches filled by the service (categories)
        # Built by the server only (see build_serving_indexes):
        self.similar_table: tuple[np.ndarray, np.ndarray] | None = None
        self.scorer: tuple[Any, np.ndarray] | None = None

    @classmethod
    def load_for_serving(
        cls, folder: Path, manifest: dict[str, Any], similar_k: int = 100
    ) -> MFModel:
        """The server's loader: the model plus its serving indexes, built before the swap."""
        model = cls.load(folder, manifest)
        model.build_serving_indexes(similar_k)
        return model

    def build_serving_indexes(
        self, similar_k: int = 100, m: int = 32, ef_construction: int = 80, ef_search: int = 128
    ) -> None:
        """What makes the server's answers cheap; the CLI (one answer per process) skips it.

        - `similar`: the exact `similar_k` nearest items of every trained item by cosine, as a
          table, so a request is a row lookup instead of a ~0.9 ms scan of 90K x 64 factors
          (the precomputed "also bought" list of classic item-to-item recommenders). One
          brute-force faiss search of all items against all: ~7 s at the reference scale with
          two threads, ~70 MB of table at depth 100.
        - users: an HNSW graph over the factors by inner product, ~0.3 ms instead of ~1 ms, with
          measured recall@10 0.96 against the exact scan (a user's vector is new every time, so
          it cannot be tabled).
        A filtered (--category) or larger-n query still scans exactly."""
        import faiss

        rows = np.flatnonzero(self.trained)
        table = self._cosine_table(rows, min(similar_k, SIMILAR_TABLE_MAX_DEPTH))
        inner = faiss.IndexHNSWFlat(self.item_factors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ef_construction
        inner.add(np.ascontiguousarray(self.item_factors[rows]))
        inner.hnsw.efSearch = ef_search
        # OpenMP's thread count is per calling thread: this makes later builds in this thread
        # (the server's refresher) single-threaded, leaving the other core to the requests.
        faiss.omp_set_num_threads(1)
        # one assignment each: readers see none or a complete index
        self.similar_table = table
        self.scorer = (inner, rows)

    def _cosine_table(
        self, rows: np.ndarray, k: int, chunk: int = 8192
    ) -> tuple[np.ndarray, np.ndarray]:
        """(items, scores), one row per model item: the k most cosine-similar trained items,
        best first, the item itself left out; -1 / -inf pad rows of untrained items."""
        import faiss

        k = max(0, min(k, len(rows) - 1))
        picks = np.full((self.n_items, k), -1, dtype=np.int32)
        scores = np.full((self.n_items, k), -np.inf, dtype=np.float32)
        if k == 0:
            return picks, scores
        exact = faiss.IndexFlatIP(self.normed.shape[1])
        vectors = np.ascontiguousarray(self.normed[rows])
        exact.add(vectors)
        for start in range(0, len(rows), chunk):  # chunks bound the temporary arrays
            mine = rows[start : start + chunk]
            got_scores, got = exact.search(vectors[start : start + chunk], k + 1)
            got = np.where(got >= 0, rows[got], -1)
            # Drop each item from its own row (not always first: duplicates tie at cosine 1).
            order = np.argsort(got == mine[:, None], axis=1, kind="stable")[:, :k]
            picks[mine] = np.take_along_axis(got, order, axis=1)
            scores[mine] = np.take_along_axis(got_scores, order, axis=1)
        return picks, scores

    @classmethod
    def load(cls, folder: Path, manifest: dict[str, Any]) -> MFModel:
        serve_with_single_threaded_blas()
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
        return cls(arrays, manifest)

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
        """The user's training items and their confidences."""
        lo, hi = self.seen_indptr[user], self.seen_indptr[user + 1]
        return self.seen_items[lo:hi], self.seen_confidence[lo:hi]

    # ---- scoring -------------------------------------------------------------------------
    def similar(
        self, item: int, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        table = self.similar_table
        if table is not None and allowed is None and n <= table[0].shape[1]:
            picks, scores = table[0][item, :n], table[1][item, :n]
            found = picks >= 0  # a row is short only when fewer items were trained
            return picks[found], scores[found]
        scores = self.normed @ self.normed[item]
        scores[item] = -np.inf
        scores[self.untrained] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        return top_n(scores, n)

    def solve_user(self, items: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ALS user step for a set of items with confidences: returns (x, A) with
        A x = Y_u^T c_u, A = Y^T Y + Y_u^T (C_u - I) Y_u + reg I (what implicit's
        recalculate_user computes)."""
        y = self.item_factors[items].astype(np.float64)
        a = self.yty + (y.T * (conf - 1.0)) @ y
        a[np.diag_indices_from(a)] += self.regularization
        b = y.T @ conf.astype(np.float64)
        return np.linalg.solve(a, b), a

    def recommend(
        self,
        vector: np.ndarray,
        n: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.scorer is not None and allowed is None:
            found = self._approximate_recommend(vector, n, exclude)
            if found is not None:
                return found
        scores = self.item_factors @ vector.astype(np.float32)
        scores[self.untrained] = -np.inf
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        return top_n(scores, n)

    def _approximate_recommend(
        self, vector: np.ndarray, n: int, exclude: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Top-n by inner product from the HNSW graph, asking for enough extra to drop the
        excluded (already rated) items; None sends a heavy user to the exact scan."""
        index, rows = self.scorer  # type: ignore[misc]
        skip = 0 if exclude is None else len(exclude)
        if skip > 256:
            return None
        k = min(n + skip, len(rows))
        scores, found = index.search(vector.astype(np.float32).reshape(1, -1), k)
        keep = found[0] >= 0
        picks, scores = rows[found[0][keep]], scores[0][keep]
        if skip:
            fresh = ~np.isin(picks, exclude)
            picks, scores = picks[fresh], scores[fresh]
        if len(picks) < min(n, len(rows) - skip):
            return None  # the graph came back short: scan exactly instead
        return picks[:n], scores[:n]

    def explain(
        self, a: np.ndarray, items: np.ndarray, conf: np.ndarray, picks: np.ndarray, top: int = 3
    ) -> list[np.ndarray]:
        """For each pick, the user's items that contributed most to its score.

        score(r) = y_r^T A^-1 Y_u^T c_u = sum_j c_j (y_r^T A^-1 y_j): an exact decomposition of
        the score over the user's items (the same one implicit's `explain` uses)."""
        if not len(items) or not len(picks):
            return [np.array([], dtype=np.int64) for _ in picks]
        y_u = self.item_factors[items].astype(np.float64)
        weights = np.linalg.solve(a, y_u.T) * conf  # factors x user items
        contrib = self.item_factors[picks].astype(np.float64) @ weights  # picks x user items
        result = []
        for row in contrib:
            best = np.argsort(-row, kind="stable")[:top]
            result.append(items[best[row[best] > 0]])
        return result

    def top_popular(
        self, n: int, exclude: np.ndarray | None = None, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        picks = top_popular(self.popular, n, exclude=exclude, allowed=allowed)
        return picks, self.item_counts[picks].astype(np.float32)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    return fn(), time.perf_counter() - started
