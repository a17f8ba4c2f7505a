"""Semantic search model: product texts -> all-MiniLM-L6-v2 embeddings -> a FAISS inner-product index.

Artifacts of a version: `index.faiss` (flat or HNSW; both keep the normalised vectors, which the
next training reuses as its embedding cache), `item_ids.npy` (row -> item id) and
`text_hashes.npy` (row -> blake2b of the embedded text: a retrain re-encodes only new or changed
texts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from recsys.errors import InvalidInput
from recsys.models.encoder import DIMENSIONS, MODEL_NAME
from recsys.store.categories import flatten

TEXT_FIELDS = ("title", "features", "description", "store", "main_category", "categories")
ENCODE_CHUNK = 4096  # texts per encode() call: progress granularity; the encoder sorts within


def check_fields(fields: Iterable[str]) -> list[str]:
    chosen = [f.strip() for f in fields if f.strip()]
    unknown = [f for f in chosen if f not in TEXT_FIELDS]
    if unknown or not chosen:
        raise InvalidInput(
            f"unknown text field(s) {', '.join(unknown) or '(none)'}; use {', '.join(TEXT_FIELDS)}"
        )
    return chosen


def product_text(row: dict[str, Any], fields: list[str]) -> str:
    """The text embedded for one product: the chosen fields, lists flattened, joined by '. '."""
    parts = []
    for name in fields:
        value = row.get(name)
        if isinstance(value, list):
            value = "; ".join(str(v) for v in flatten(value) if v)
        if isinstance(value, str) and value.strip():
            parts.append(value.strip())
    return ". ".join(parts)


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


@dataclass
class EncodePlan:
    """Which texts need the encoder, and which vectors the previous version already holds."""

    vectors: np.ndarray  # (n, dim) float32, rows to encode still zero
    to_encode: np.ndarray  # row positions whose text is new or changed


def plan_reuse(
    hashes: np.ndarray, previous: tuple[np.ndarray, np.ndarray] | None, dim: int
) -> EncodePlan:
    """Fill rows whose text hash the previous version embedded; the rest must be encoded."""
    vectors = np.zeros((len(hashes), dim), dtype=np.float32)
    if previous is None:
        return EncodePlan(vectors, np.arange(len(hashes)))
    old_hashes, old_vectors = previous
    order = np.argsort(old_hashes)
    sorted_hashes = old_hashes[order]
    pos = np.searchsorted(sorted_hashes, hashes)
    pos = np.minimum(pos, len(sorted_hashes) - 1)
    found = sorted_hashes[pos] == hashes
    vectors[found] = old_vectors[order[pos[found]]]
    return EncodePlan(vectors, np.flatnonzero(~found))


def encode_texts(
    model: Any, texts: list[str], batch_size: int, on_progress: Callable[[int, int], None] | None
) -> np.ndarray:
    """Unit vectors of `texts` from an encoder.OnnxMiniLM, in chunks that report progress."""
    out = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        chunk = texts[start : start + ENCODE_CHUNK]
        out.append(model.encode(chunk, batch_size=batch_size))
        if on_progress:
            on_progress(start + len(chunk), len(texts))
    return np.concatenate(out) if out else np.zeros((0, DIMENSIONS), dtype=np.float32)


def build_index(vectors: np.ndarray, kind: str, m: int, ef_construction: int) -> Any:
    import faiss

    dim = vectors.shape[1]
    index: Any
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    return index


def hnsw_recall(
    index: Any, vectors: np.ndarray, ef_search: int, k: int = 10, sample: int = 1000
) -> float:
    """Recall@k of the HNSW index against exact search, on sampled catalog vectors as queries.

    FAISS pads a result list shorter than k with -1 (a catalog of fewer than k products): padding
    is neither a hit nor a miss, so each query counts against its real neighbours only."""
    import faiss

    rng = np.random.default_rng(0)
    queries = vectors[rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    index.hnsw.efSearch = ef_search
    _, found = index.search(queries, k)
    hits = sum(len(set(t[t >= 0]) & set(f[f >= 0])) for t, f in zip(truth, found, strict=True))
    expected = int((truth >= 0).sum())
    return round(hits / expected, 4) if expected else 1.0


def read_previous(
    folder: Path, manifest: dict[str, Any], precision: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """(text hashes, vectors) of a published version, for the embedding cache: only when the same
    model at the same precision made them."""
    import faiss

    params = manifest.get("params", {})
    if params.get("model") != MODEL_NAME or params.get("precision", "fp32") != precision:
        return None
    index = faiss.read_index(str(folder / "index.faiss"))
    hashes = np.load(folder / "text_hashes.npy", allow_pickle=False)
    return hashes, index.reconstruct_n(0, index.ntotal)


class SemanticIndex:
    """A loaded version: FAISS index + row -> item id."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        import faiss

        # per thread: later faiss work of the loading thread (the refresher) stays on one core
        faiss.omp_set_num_threads(1)
        self.version: str = manifest["version"]
        # queries must be encoded as the catalog was (versions before it existed are fp32)
        self.precision: str = manifest["params"].get("precision", "fp32")
        self.index: Any = cast(Any, faiss.read_index(str(folder / "index.faiss")))  # flat|HNSW
        if manifest["params"]["index"] == "hnsw":
            self.index.hnsw.efSearch = int(manifest["params"]["hnsw_ef_search"])
        self.item_ids = np.load(folder / "item_ids.npy", allow_pickle=False)
        self._rows: dict[str, int] | None = None  # item id -> row, built on first neighbours()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        k = min(k, self.index.ntotal)
        if k <= 0:
            return []
        scores, rows = self.index.search(vector.reshape(1, -1).astype(np.float32), k)
        return [
            (str(self.item_ids[r]), float(s))
            for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0
        ]

    def row_of(self, item_id: str) -> int | None:
        """The index row of a product; None for one the index does not hold."""
        rows = self._rows
        if rows is None:
            rows = self._rows = {str(i): r for r, i in enumerate(self.item_ids.tolist())}
        return rows.get(item_id)

    def neighbours(self, item_id: str, k: int) -> list[tuple[str, float]]:
        """The k products whose text embeds nearest to `item_id`'s (itself left out); [] for a
        product the index does not hold. Serves the recommend.fallback chain."""
        row = self.row_of(item_id)
        if row is None:
            return []
        vector = self.index.reconstruct(int(row))
        return [(i, s) for i, s in self.search(vector, k + 1) if i != item_id][:k]
