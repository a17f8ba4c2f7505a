"""RP3beta: item-item weights from a three-step random walk on the user-item graph, with
popular destinations penalised (Paudel, Christoffel, Neumann & Bernstein 2016, "Updatable,
Accurate, Diverse, and Scalable Recommendations for Interactive Applications", ACM TiiS; the
variant measured strong by Dacrema et al. 2019, "Are We Really Making Much Progress?").

    W[i, j] = sum_u P(i -> u)^alpha P(u -> j)^alpha / popularity(j)^beta

P(i -> u) and P(u -> j) are the transition probabilities of the binary interaction graph (rows
of X^T and X normalised to sum 1). Each item keeps its `neighbours` largest weights. Computed in
chunks of items, so memory stays at chunk x items, not items^2.

Own artifacts: the sparse item x item weights as CSR arrays (see base.SparseItemItem).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recsys.models.base import ProgressFn, SparseItemItem, check_range, keep_top_k, sparse_arrays

CHUNK_ITEMS = 2048


def _row_normalised(matrix: Any) -> Any:
    import scipy.sparse

    sums = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    return scipy.sparse.diags(inverse) @ matrix


class RP3betaModel(SparseItemItem):
    kind: ClassVar[str] = "rp3beta"

    @classmethod
    def search_space(cls, trial: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "alpha": trial.suggest_float("alpha", 0.1, 2.0),
            "beta": trial.suggest_float("beta", 0.0, 1.0),
            "neighbours": trial.suggest_int("neighbours", 5, 1000, log=True),
        }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        check_range("alpha", params["alpha"], 0)
        check_range("beta", params["beta"], 0)
        check_range("neighbours", params["neighbours"], 1, 10_000)

    @classmethod
    def fit(
        cls, ratings: Any, params: dict[str, Any], on_progress: ProgressFn | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        import scipy.sparse

        x = ratings.copy().astype(np.float64).tocsr()
        x.data[:] = 1.0  # implicit feedback: every rating is a positive
        user_to_item = _row_normalised(x).tocsr()
        item_to_user = _row_normalised(x.T.tocsr()).tocsr()
        if params["alpha"] != 1.0:
            user_to_item.data **= params["alpha"]
            item_to_user.data **= params["alpha"]
        popularity = np.asarray(x.sum(axis=0)).ravel()
        penalty = np.divide(
            1.0, popularity ** params["beta"], out=np.zeros_like(popularity),
            where=popularity > 0,
        )  # fmt: skip
        scale = scipy.sparse.diags(penalty)
        n_items = x.shape[1]
        chunks = []
        steps = max(1, -(-n_items // CHUNK_ITEMS))
        for step, start in enumerate(range(0, n_items, CHUNK_ITEMS)):
            block = ((item_to_user[start : start + CHUNK_ITEMS] @ user_to_item) @ scale).tocsr()
            chunks.append(keep_top_k(_drop_self(block, start), params["neighbours"]))
            if on_progress:
                on_progress(step + 1, steps)
        weights = scipy.sparse.vstack(chunks).tocsr()
        return sparse_arrays(weights.astype(np.float32)), {"similarities": int(weights.nnz)}


def _drop_self(matrix: Any, first_row: int) -> Any:
    """Zero each item's weight to itself in a block of rows starting at item `first_row` (an
    item is not its own neighbour)."""
    rows = first_row + np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    matrix.data[rows == matrix.indices] = 0.0
    matrix.eliminate_zeros()
    return matrix
