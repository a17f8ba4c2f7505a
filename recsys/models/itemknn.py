"""Item-kNN: the classic item-based neighbourhood model (Sarwar et al. 2001, "Item-based
collaborative filtering recommendation algorithms"; Deshpande & Karypis 2004), fitted with
implicit's item-item recommenders: each item keeps its `neighbours` most similar items, by the
cosine of the items' interaction vectors, or by the dot product of BM25-weighted interaction
vectors (implicit's BM25Recommender: Robertson's BM25 with users as terms, so heavy users
count less and long interaction lists are length-normalised).

Own artifacts: the sparse item x item similarity as CSR arrays (see base.SparseItemItem).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recsys.errors import InvalidInput
from recsys.models.base import ProgressFn, SparseItemItem, check_range, sparse_arrays

WEIGHTINGS = ("bm25", "cosine")


class ItemKNNModel(SparseItemItem):
    kind: ClassVar[str] = "itemknn"

    @classmethod
    def search_space(cls, trial: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "weighting": trial.suggest_categorical("weighting", list(WEIGHTINGS)),
            "neighbours": trial.suggest_int("neighbours", 5, 1000, log=True),
            "bm25_k1": trial.suggest_float("bm25_k1", 0.1, 10.0, log=True),
            "bm25_b": trial.suggest_float("bm25_b", 0.0, 1.0),
        }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        check_range("neighbours", params["neighbours"], 1, 10_000)
        check_range("bm25_k1", params["bm25_k1"], 0)
        check_range("bm25_b", params["bm25_b"], 0, 1)
        if params["weighting"] not in WEIGHTINGS:
            raise InvalidInput(
                f"weighting must be one of {', '.join(WEIGHTINGS)}, got {params['weighting']!r}"
            )

    @classmethod
    def fit(
        cls, ratings: Any, params: dict[str, Any], on_progress: ProgressFn | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize
        from threadpoolctl import threadpool_limits

        binary = ratings.copy().astype(np.float32)
        binary.data[:] = 1.0  # implicit feedback: every rating is a positive
        # What implicit's BM25Recommender / CosineRecommender.fit do, handing the fit CSR (they
        # pass a transposed COO/CSC matrix, which implicit then converts with a warning).
        if params["weighting"] == "bm25":
            weighted = bm25_weight(binary.T, params["bm25_k1"], params["bm25_b"]).T.tocsr()
        else:
            weighted = normalize(binary.T).T.tocsr()
        model = ItemItemRecommender(K=params["neighbours"])
        if on_progress:
            on_progress(0, 1)
        with threadpool_limits(1, "blas"):
            model.fit(weighted, show_progress=False)
        if on_progress:
            on_progress(1, 1)
        similarity = model.similarity.tocsr()
        similarity.setdiag(0)  # an item is not its own neighbour (implicit keeps it)
        similarity.eliminate_zeros()
        return sparse_arrays(similarity), {"similarities": int(similarity.nnz)}
