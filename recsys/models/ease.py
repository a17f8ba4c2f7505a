"""EASE: an item x item linear model with a closed-form solution (Steck 2019, "Embarrassingly
Shallow Autoencoders for Sparse Data", WWW '19).

    G = X^T X + lambda I,  P = G^-1,  B = -P / diag(P),  diag(B) = 0

X is the binary users x items matrix. B is dense, items^2 x 4 bytes (32 GB at 90K items, more
than a 24 GB machine has, and the inversion needs about 4x that), so EASE models only the
`max_items` most popular items (each kept item's row of B spans only kept items); the others are
never scored and the answer says so. Before fitting, the memory the fit needs is compared with
the memory this machine has available, and a fit that would not fit is refused with a clear
error instead of running the machine out of memory.

Own artifacts: `ease_items.npy` (int32 model-item indexes of the kept items, ascending) and
`ease_weights.npy` (float32 kept x kept B).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recsys.errors import Conflict
from recsys.models.base import ItemItemRecommender, ProgressFn, check_range, top_n
from recsys.models.popularity import passes
from recsys.system import available_memory_bytes

BYTES_PER_CELL = 4 * 4  # float32: the Gram matrix, its factor in place, and two temporaries


def fit_bytes(n_items: int) -> int:
    """Peak memory of the fit for n kept items (the three n x n matrices alive at once)."""
    return n_items * n_items * BYTES_PER_CELL


def _inverse_gram(x: Any, regularization: float) -> np.ndarray:
    """(X^T X + lambda I)^-1 as float32, by Cholesky (the Gram matrix is symmetric positive
    definite for lambda > 0): LAPACK potrf + potri in place, about 2x faster than a general
    float64 inverse here, with a relative error near 1e-6, far below what changes a ranking."""
    from scipy.linalg import lapack

    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += regularization
    factor, info = lapack.spotrf(gram, lower=False, overwrite_a=True)
    if info != 0:
        raise Conflict(
            "EASE's Gram matrix is not positive definite: raise ease.regularization (--regularization)"
        )
    del gram
    inverse, info = lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise Conflict("EASE's Gram matrix could not be inverted: raise ease.regularization")
    upper = np.triu(inverse)  # potri fills the upper triangle only
    del inverse, factor
    upper += np.triu(upper, 1).T
    return upper


class EASEModel(ItemItemRecommender):
    kind: ClassVar[str] = "ease"
    model_arrays: ClassVar[tuple[str, ...]] = ("ease_items", "ease_weights")
    max_trials: ClassVar[int] = 12  # one parameter, and each trial inverts an items^2 matrix

    @classmethod
    def search_space(cls, trial: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"regularization": trial.suggest_float("regularization", 1.0, 1e5, log=True)}

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        check_range("regularization", params["regularization"], 0)
        check_range("max_items", params["max_items"], 2)

    @classmethod
    def fit(
        cls, ratings: Any, params: dict[str, Any], on_progress: ProgressFn | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        counts = np.diff(ratings.tocsc().indptr)
        rated = np.flatnonzero(counts > 0)
        kept = rated
        if len(rated) > params["max_items"]:
            order = np.argsort(-counts[rated], kind="stable")[: params["max_items"]]
            kept = np.sort(rated[order])
        need, have = fit_bytes(len(kept)), available_memory_bytes()
        if have is not None and need > 0.8 * have:
            raise Conflict(
                f"EASE on {len(kept):,} items needs about {need / 2**30:.1f} GiB, but only "
                f"{have / 2**30:.1f} GiB are available: lower ease.max_items (--max-items)"
            )
        x = ratings[:, kept].astype(np.float32)
        x.data[:] = 1.0  # implicit feedback: every rating is a positive
        if on_progress:
            on_progress(0, 2)
        b = _inverse_gram(x, float(params["regularization"]))
        if on_progress:
            on_progress(1, 2)
        b /= -np.diag(b)[None, :]  # B = -P / diag(P), column-wise
        np.fill_diagonal(b, 0.0)
        if on_progress:
            on_progress(2, 2)
        arrays = {"ease_items": kept.astype(np.int32), "ease_weights": b}
        return arrays, {"ease_items": int(len(kept)), "rated_items": int(len(rated))}

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]):
        super().__init__(arrays, manifest)
        self.ease_items = arrays["ease_items"]
        self.ease_weights = arrays["ease_weights"]
        self.position = np.full(self.n_items, -1, dtype=np.int64)
        self.position[self.ease_items] = np.arange(len(self.ease_items))
        self.known = self.position >= 0

    def why_unknown(self, item: int) -> str:
        return (
            f"model ease {self.version} models only the {len(self.ease_items):,} most popular "
            f"items (ease.max_items), and {self.item_id_list(np.array([item]))[0]!r} is not one"
        )

    def _block(self, items: np.ndarray, picks: np.ndarray) -> np.ndarray:
        block = np.zeros((len(items), len(picks)), dtype=np.float32)
        rows, cols = self.position[items], self.position[picks]  # -1: outside the kept items
        inside_rows, inside_cols = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
        if len(inside_rows) and len(inside_cols):
            block[np.ix_(inside_rows, inside_cols)] = self.ease_weights[
                np.ix_(rows[inside_rows], cols[inside_cols])
            ]
        return block

    def similar(
        self, item: int, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row `item` of B, ranked in the kept items' own space (10K, not the catalog's 90K)."""
        pos = self.position[item]
        if pos < 0:
            return np.array([], dtype=np.int64), np.array([], dtype=np.float32)
        row = self.ease_weights[pos].copy()
        row[pos] = -np.inf
        row[row <= 0] = -np.inf  # zero weight: no co-occurrence, not "similar"
        if allowed is not None:
            row[~allowed[self.ease_items]] = -np.inf
        picks, scores = top_n(row, n)
        return self.ease_items[picks].astype(np.int64), scores

    def recommend(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        n: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The user's rows of B summed and ranked in the kept items' space; the items EASE
        does not model are never picks."""
        pos = self.position[items]
        pos = pos[pos >= 0]
        scores = (
            self.ease_weights[pos].sum(axis=0)
            if len(pos)
            else np.zeros(len(self.ease_items), dtype=np.float32)
        )
        scores[~passes(self.ease_items, exclude, allowed)] = -np.inf
        picks, scores = top_n(scores, n)
        return self.ease_items[picks].astype(np.int64), scores

    def user_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        # Only the kept rows matter: sum them in B's own (kept) space, then scatter once.
        scores = np.full(self.n_items, -np.inf, dtype=np.float32)
        pos = self.position[items]
        pos = pos[pos >= 0]
        kept_scores = (
            self.ease_weights[pos].sum(axis=0)
            if len(pos)
            else np.zeros(len(self.ease_items), dtype=np.float32)
        )
        scores[self.ease_items] = kept_scores
        return scores
