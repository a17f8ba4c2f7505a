"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008, "Collaborative Filtering for Implicit
Feedback Datasets"), fitted with implicit's CPU solver or, with als.engine = spark, by Spark
MLlib (recsys.models.als_spark) into the very same artifact.

Own artifact: `item_factors.npy` (float32 items x factors). User factors are NOT stored: a
user's vector is re-solved at request time from their items against the final item factors
(the exact ALS user step, ~50 us for 64 factors). That is what ALS itself would compute next,
makes known users, fold-in users and `--explain` one code path, and keeps the artifact ~4x
smaller at 1.7M users (a 1.7M x 64 float32 array alone is 435 MB).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recsys.errors import InvalidInput
from recsys.models.base import EMPTY_I, ProgressFn, Recommender, check_range, top_n

CONFIDENCE_KINDS = ("linear", "binary")
ENGINES = ("implicit", "spark")  # who fits: implicit's CPU solver, or Spark MLlib (als_spark)
# Deeper n scan exactly: the table costs items x depth x 8 bytes (90K items x 200: 144 MB).
SIMILAR_TABLE_MAX_DEPTH = 200


def confidence(ratings: np.ndarray, kind: str, alpha: float) -> np.ndarray:
    """How sure we are that a user likes an item: ``1 + alpha * rating`` (linear) or the same
    ``1 + alpha`` for every interaction (binary: any rating is a purchase)."""
    if kind == "binary":
        return np.full(len(ratings), 1.0 + alpha, dtype=np.float32)
    return (1.0 + alpha * np.asarray(ratings, dtype=np.float32)).astype(np.float32)


def factors_for(factors: int, n_items: int) -> int:
    """factors = 0 means auto: about one factor per 40 items, between 8 and 64.

    Measured NDCG@10 (time split): Gift Cards (148 items) 0.164 with 8 factors against 0.075 with 64
    (popularity: 0.136); a 600-item synthetic shop 0.331 with 16 against 0.223 with 64. A rank the
    data cannot support overfits; large catalogs keep 64."""
    if factors:
        return factors
    return int(min(64, max(8, n_items // 40)))


def fit_rows(matrix: Any, min_user_ratings: int) -> Any:
    """The users the fit learns from: those with at least `min_user_ratings` items.

    A user with one rating says nothing about which items go together, yet at the reference scale
    such users are 89% of all users and, since ALS pays ~factors^2 per user and iteration, ~90% of
    the fit time. Everyone is still served: user vectors are solved at request time."""
    if min_user_ratings <= 1:
        return matrix
    return matrix[np.diff(matrix.indptr) >= min_user_ratings]


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


class ALSModel(Recommender):
    """A loaded ALS model: read-only numpy arrays, safe to share between threads."""

    kind: ClassVar[str] = "als"
    model_arrays: ClassVar[tuple[str, ...]] = ("item_factors",)

    # ---- training ------------------------------------------------------------------------
    # How and where to fit, not what: never taken from `recsys tune`'s record.
    run_settings: ClassVar[tuple[str, ...]] = ("engine", "spark_master", "spark_staging")
    placement: ClassVar[tuple[str, ...]] = ("spark_master", "spark_staging")

    @classmethod
    def search_space(cls, trial: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        # Log-scaled ranges around what tuned implicit ALS needs on public data: regularization
        # 1-1000 (10-100 wins on MovieLens; the library default 0.01 is far too weak for
        # confidence-weighted data), alpha well above 1.
        # Spark: the same scale (regularization is mapped to a typical user, see als_spark), but
        # ALS-WR leaves light items lightly regularised, so the range goes lower; fewer factors
        # and iterations, as every trial pays Spark's per-job overhead.
        spark = params is not None and params.get("engine") == "spark"
        max_factors, min_regularization, max_iterations = (
            (128, 0.1, 20) if spark else (256, 1.0, 30)
        )
        return {
            "factors": trial.suggest_int("factors", 16, max_factors, log=True),
            "regularization": trial.suggest_float(
                "regularization", min_regularization, 1e3, log=True
            ),
            "alpha": trial.suggest_float("alpha", 0.1, 100.0, log=True),
            "iterations": trial.suggest_int("iterations", 5, max_iterations),
            "confidence": trial.suggest_categorical("confidence", list(CONFIDENCE_KINDS)),
        }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        check_range("factors", params["factors"], 0, 1024)
        check_range("iterations", params["iterations"], 1)
        check_range("regularization", params["regularization"], 0)
        check_range("alpha", params["alpha"], 0)
        check_range("min_user_ratings", params["min_user_ratings"], 1)
        if params["confidence"] not in CONFIDENCE_KINDS:
            raise InvalidInput(
                f"confidence must be one of {', '.join(CONFIDENCE_KINDS)}, "
                f"got {params['confidence']!r}"
            )
        engine = params.get("engine", "implicit")
        if engine not in ENGINES:
            raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if engine == "spark" and params["alpha"] <= 0:
            # Spark's confidence is 1 + alpha * r with r = ours - 1: r = 0 means "not liked".
            raise InvalidInput("engine spark needs alpha above 0, got 0")

    @classmethod
    def fit(
        cls, ratings: Any, params: dict[str, Any], on_progress: ProgressFn | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """ALS on the confidence matrix of the users with at least `min_user_ratings` items,
        by implicit's CPU solver here, or by Spark MLlib when params["engine"] is "spark"
        (recsys.models.als_spark: same confidences, regularisation mapped from ALS-WR, same
        item-factor array). Items nobody in the fit rated get exactly zero factors: the model
        knows nothing about them. Conflict (409) for too few users; MissingDependency (500)
        for engine spark without pyspark or Java.

        implicit: the matrix already holds confidences, so implicit's own alpha stays 1. BLAS
        is limited to one thread (implicit parallelises over users itself; a threaded BLAS
        inside makes it ~10x slower)."""
        matrix = ratings.copy()
        matrix.data = confidence(matrix.data, params["confidence"], params["alpha"])
        fit_matrix = fit_rows(matrix, params["min_user_ratings"])
        if fit_matrix.shape[0] < 2:
            from recsys.errors import Conflict

            raise Conflict(
                f"too little data to train: only {fit_matrix.shape[0]} users have at least "
                f"{params['min_user_ratings']} ratings (lower --min-user-ratings to use more users)"
            )
        factors = factors_for(params["factors"], matrix.shape[1])
        counts: dict[str, Any] = {
            "factors": factors,  # the resolved value when factors = 0
            "fit_users": int(fit_matrix.shape[0]),
            "fit_ratings": int(fit_matrix.nnz),
        }
        if params.get("engine", "implicit") == "spark":
            from recsys.models.als_spark import fit_item_factors

            item_factors, facts = fit_item_factors(fit_matrix, params, factors, on_progress)
            item_factors[np.diff(fit_matrix.tocsc().indptr) == 0] = 0.0
            return {"item_factors": item_factors}, {**counts, **facts}

        from implicit.cpu.als import AlternatingLeastSquares  # not `implicit.als`: no GPU probing
        from threadpoolctl import threadpool_limits

        def callback(iteration: int, _elapsed: float, _loss: float | None) -> None:
            if on_progress is not None:
                on_progress(iteration + 1, params["iterations"])

        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=factors, regularization=params["regularization"], alpha=1.0,
                iterations=params["iterations"], random_state=params["random_state"],
                dtype=np.float32,
            )  # fmt: skip
            model.fit(fit_matrix, show_progress=False, callback=callback)
        item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        item_factors[np.diff(fit_matrix.tocsc().indptr) == 0] = 0.0
        return {"item_factors": item_factors}, counts

    # ---- loading -------------------------------------------------------------------------
    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]):
        super().__init__(arrays, manifest)
        serve_with_single_threaded_blas()
        self.item_factors = arrays["item_factors"]
        self.regularization = float(self.params["regularization"])
        # Spark fits ALS-WR: a user's lambda is regularization x their count / the mean count
        # of the fitted users (see als_spark); a request re-solves users the same way.
        self.per_rating: float | None = None
        if self.params.get("engine", "implicit") == "spark":
            counts = np.diff(self.seen_indptr)
            fitted = counts[counts >= int(self.params["min_user_ratings"])]
            self.per_rating = self.regularization / float(fitted.mean() if len(fitted) else 1.0)
        # Precomputed once per load: cosine similarity is a dot of normalised factors, and the
        # user solve starts from Y^T Y (factors x factors).
        norms = np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        self.normed = self.item_factors / np.maximum(norms, 1e-12)
        # Items with zero factors were rated only by users left out of the fit: never a result.
        self.known = norms[:, 0] > 0
        self.untrained = np.flatnonzero(~self.known)  # usually few: index, don't mask
        wide = self.item_factors.astype(np.float64)  # same dtypes on both sides: BLAS, not a loop
        self.yty = wide.T @ wide
        # Built by the server only (see prepare_for_serving):
        self.similar_table: tuple[np.ndarray, np.ndarray] | None = None
        self.scorer: tuple[Any, np.ndarray] | None = None

    def weights(self, ratings: np.ndarray) -> np.ndarray:
        return confidence(ratings, self.params["confidence"], float(self.params["alpha"]))

    def prepare_for_serving(self, depth: int) -> None:
        """What makes the server's answers cheap; the CLI (one answer per process) skips it.

        - `similar`: the exact `depth` nearest items of every trained item by cosine, as a
          table, so a request is a row lookup instead of a ~0.9 ms scan of 90K x 64 factors
          (the precomputed "also bought" list of classic item-to-item recommenders). One
          brute-force faiss search of all items against all: ~7 s at the reference scale with
          two threads, ~70 MB of table at depth 100.
        - users: an HNSW graph over the factors by inner product, ~0.3 ms instead of ~1 ms, with
          measured recall@10 0.96 against the exact scan (a user's vector is new every time, so
          it cannot be tabled).
        A filtered (--category) or larger-n query still scans exactly."""
        self.build_serving_indexes(depth)

    def build_serving_indexes(
        self, similar_k: int = 100, m: int = 32, ef_construction: int = 80, ef_search: int = 128
    ) -> None:
        import faiss

        rows = np.flatnonzero(self.known)
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

    # ---- answers -------------------------------------------------------------------------
    def similar(
        self, item: int, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Items by the cosine of their factors (itself and untrained items excluded)."""
        table = self.similar_table
        if table is not None and allowed is None and n <= table[0].shape[1]:
            picks, scores = table[0][item, :n], table[1][item, :n]
            found = picks >= 0  # a row is short only when fewer items were trained
            return picks[found], scores[found]
        if not self.known[item]:
            return EMPTY_I.astype(np.int64), np.array([], dtype=np.float32)
        scores = self.normed @ self.normed[item]
        scores[item] = -np.inf
        scores[self.untrained] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        return top_n(scores, n)

    def solve_user(self, items: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ALS user step for a set of items with confidences: returns (x, A) with
        A x = Y_u^T c_u, A = Y^T Y + Y_u^T (C_u - I) Y_u + reg I (what implicit's
        recalculate_user computes; for a Spark-fitted model reg is ALS-WR's, scaled by the
        user's item count as Spark's own user step does)."""
        y = self.item_factors[items].astype(np.float64)
        a = self.yty + (y.T * (conf - 1.0)) @ y
        reg = self.regularization
        if self.per_rating is not None:  # at least one rating's worth: A stays invertible
            reg = self.per_rating * max(len(items), 1)
        a[np.diag_indices_from(a)] += reg
        b = y.T @ conf.astype(np.float64)
        return np.linalg.solve(a, b), a

    def user_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        vector, _ = self.solve_user(items, self.weights(ratings))
        scores = self.item_factors @ vector.astype(np.float32)
        scores[self.untrained] = -np.inf
        return scores

    def recommend(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        n: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.scorer is not None and allowed is None:
            vector, _ = self.solve_user(items, self.weights(ratings))
            found = self._approximate_recommend(vector, n, exclude)
            if found is not None:
                return found
        return super().recommend(items, ratings, n, exclude, allowed)

    def _approximate_recommend(
        self, vector: np.ndarray, n: int, exclude: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Top-n by inner product from the HNSW graph, asking for enough extra to drop the
        excluded (already rated) items; None sends a heavy user to the exact scan."""
        assert self.scorer is not None
        index, rows = self.scorer
        skip = 0 if exclude is None else len(exclude)
        if skip > 256:
            return None
        k = min(n + skip, len(rows))
        scores, found = index.search(vector.astype(np.float32).reshape(1, -1), k)
        keep = found[0] >= 0
        picks, scores = rows[found[0][keep]], scores[0][keep]
        if skip:
            fresh = ~np.isin(picks, exclude)  # type: ignore[arg-type]  # skip > 0: not None
            picks, scores = picks[fresh], scores[fresh]
        if len(picks) < min(n, len(rows) - skip):
            return None  # the graph came back short: scan exactly instead
        return picks[:n], scores[:n]

    def contributions(
        self, items: np.ndarray, ratings: np.ndarray, picks: np.ndarray
    ) -> np.ndarray:
        """score(r) = y_r^T A^-1 Y_u^T c_u = sum_j c_j (y_r^T A^-1 y_j): an exact decomposition
        of the score over the user's items (the same one implicit's `explain` uses)."""
        conf = self.weights(ratings)
        _, a = self.solve_user(items, conf)
        y_u = self.item_factors[items].astype(np.float64)
        weights = np.linalg.solve(a, y_u.T) * conf  # factors x user items
        return self.item_factors[picks].astype(np.float64) @ weights  # picks x user items
