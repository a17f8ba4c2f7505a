"""Semantic search model: product texts -> all-MiniLM-L6-v2 embeddings -> a FAISS inner-product index.

Artifacts of a version: `index.faiss` (flat or HNSW keep the normalised float32 vectors, which the
next training reuses as its embedding cache; IVF-PQ keeps only ~50-byte codes), `vectors.npy`
(IVF-PQ only: the vectors as float16, memory-mapped at load; the exact re-ranking reads just the
shortlisted rows, and the next training reuses them as its cache), `item_ids.npy` (row -> item
id) and `text_hashes.npy` (row -> blake2b of the embedded text: a retrain re-encodes only new or
changed texts).
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

INDEX_KINDS = ("flat", "hnsw", "ivfpq")
EXACT_VECTORS = "vectors.npy"  # IVF-PQ's re-ranking copy of the vectors (float16)
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


@dataclass(frozen=True)
class IvfpqShape:
    """IVF-PQ parameters resolved for one catalog: coarse cells, sub-quantizers (bytes per code
    at 8 bits), bits per sub-quantizer index and how many vectors train the quantizers."""

    nlist: int
    m: int
    nbits: int
    train_size: int


def ivfpq_shape(n: int, dim: int, nlist: int = 0, m: int = 0) -> IvfpqShape:
    """nlist 0 = about sqrt(n) cells (1,000 at 1M: ~1,000 vectors a cell); m 0 = dim / 8 (48
    sub-quantizers of 8 dimensions for 384-d, 48 bytes a code). The quantizers train on at most
    64 vectors per cell (k-means cost grows with sample x cells; faiss asks for >= 39 a cell).
    Tiny catalogs get fewer bits (k-means needs more points than centroids). Raises InvalidInput
    when m does not divide dim."""
    if m <= 0:
        m = max(1, dim // 8)
    if dim % m:
        raise InvalidInput(f"ss.ivfpq_m {m} must divide the vector size {dim}")
    nlist = nlist if nlist > 0 else int(round(np.sqrt(n)))
    nlist = max(1, min(nlist, n))
    train_size = min(n, max(64 * nlist, 16_384))
    nbits = int(max(1, min(8, np.floor(np.log2(max(train_size, 2))) - 1)))
    return IvfpqShape(nlist=nlist, m=m, nbits=nbits, train_size=train_size)


def build_index(
    vectors: np.ndarray,
    kind: str,
    m: int,
    ef_construction: int,
    ivfpq: IvfpqShape | None = None,
) -> Any:
    """A FAISS inner-product index over `vectors` ((n, dim) float32, unit rows): exact flat,
    HNSW (graph degree `m`), or IVF-PQ of shape `ivfpq` (default: ivfpq_shape's), whose
    quantizers train on a random sample of the catalog."""
    import faiss

    dim = vectors.shape[1]
    index: Any
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
    elif kind == "ivfpq":
        shape = ivfpq or ivfpq_shape(len(vectors), dim)
        coarse = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(
            coarse, dim, shape.nlist, shape.m, shape.nbits, faiss.METRIC_INNER_PRODUCT
        )
        # small catalogs train on fewer points than faiss likes; the sample is ours to choose
        index.cp.min_points_per_centroid = 1
        index.pq.cp.min_points_per_centroid = 1
        rng = np.random.default_rng(0)
        sample = rng.choice(len(vectors), size=shape.train_size, replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)]))
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    return index


def index_recall(
    search: Callable[[np.ndarray, int], np.ndarray],
    vectors: np.ndarray,
    k: int = 10,
    sample: int = 1000,
) -> float:
    """Recall@k of an approximate search against exact search, on sampled catalog vectors as
    queries. `search(queries, k)` returns the (queries, k) rows found, -1 for padding.

    FAISS pads a result list shorter than k with -1 (a catalog of fewer than k products): padding
    is neither a hit nor a miss, so each query counts against its real neighbours only."""
    import faiss

    rng = np.random.default_rng(0)
    queries = vectors[rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)]
    # brute force straight on the array: an IndexFlatIP would copy the whole catalog
    _, truth = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    found = search(queries, k)
    hits = sum(len(set(t[t >= 0]) & set(f[f >= 0])) for t, f in zip(truth, found, strict=True))
    expected = int((truth >= 0).sum())
    return round(hits / expected, 4) if expected else 1.0


def hnsw_recall(
    index: Any, vectors: np.ndarray, ef_search: int, k: int = 10, sample: int = 1000
) -> float:
    """Recall@k of the HNSW index at `ef_search` against exact search (see index_recall)."""
    index.hnsw.efSearch = ef_search
    return index_recall(lambda q, kk: index.search(q, kk)[1], vectors, k, sample)


def reranked_search(
    index: Any, exact: np.ndarray, queries: np.ndarray, k: int, rerank: int
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows), each (queries, k), best first, -inf / -1 padded: the approximate index's
    best max(k, rerank * k) rows re-scored by their exact vectors `exact` ((n, dim), any float
    dtype, typically a float16 memory map: only the shortlisted rows are read)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    shortlist = min(index.ntotal, max(k, rerank * k))
    _, found = index.search(queries, shortlist)
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    for q, candidates in enumerate(found):
        candidates = np.sort(candidates[candidates >= 0])  # ascending: fewer, forward page reads
        exact_scores = np.asarray(exact[candidates], dtype=np.float32) @ queries[q]
        best = np.argsort(-exact_scores, kind="stable")[:k]
        scores[q, : len(best)] = exact_scores[best]
        rows[q, : len(best)] = candidates[best]
    return scores, rows


def ivfpq_recall(
    index: Any, exact: np.ndarray, vectors: np.ndarray, nprobe: int, rerank: int, k: int = 10
) -> float:
    """Recall@k of IVF-PQ at `nprobe` after the exact re-ranking (see index_recall)."""
    index.nprobe = nprobe
    return index_recall(lambda q, kk: reranked_search(index, exact, q, kk, rerank)[1], vectors, k)


def read_previous(
    folder: Path, manifest: dict[str, Any], precision: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """(text hashes, vectors) of a published version, for the embedding cache: only when the same
    model at the same precision made them."""
    import faiss

    params = manifest.get("params", {})
    if params.get("model") != MODEL_NAME or params.get("precision", "fp32") != precision:
        return None
    hashes = np.load(folder / "text_hashes.npy", allow_pickle=False)
    if (folder / EXACT_VECTORS).exists():  # IVF-PQ: its codes are lossy, the float16 copy is not
        return hashes, np.load(folder / EXACT_VECTORS, allow_pickle=False).astype(np.float32)
    index = faiss.read_index(str(folder / "index.faiss"))
    return hashes, index.reconstruct_n(0, index.ntotal)


class SemanticIndex:
    """A loaded version: FAISS index + row -> item id (+ IVF-PQ's memory-mapped exact vectors)."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        import faiss

        # per thread: later faiss work of the loading thread (the refresher) stays on one core
        faiss.omp_set_num_threads(1)
        self.version: str = manifest["version"]
        params = manifest["params"]
        # queries must be encoded as the catalog was (versions before it existed are fp32)
        self.precision: str = params.get("precision", "fp32")
        self.index: Any = cast(Any, faiss.read_index(str(folder / "index.faiss")))
        self.exact: np.ndarray | None = None  # IVF-PQ only
        self.rerank = 1
        if params["index"] == "hnsw":
            self.index.hnsw.efSearch = int(params["hnsw_ef_search"])
        elif params["index"] == "ivfpq":
            self.index.nprobe = int(params["ivfpq_nprobe"])
            self.rerank = int(params["ivfpq_rerank"])
            # the page cache holds the rows queries touch, shared by every worker of the host
            self.exact = np.load(folder / EXACT_VECTORS, mmap_mode="r", allow_pickle=False)
        self.item_ids = np.load(folder / "item_ids.npy", allow_pickle=False)
        self._rows: dict[str, int] | None = None  # item id -> row, built on first neighbours()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        k = min(k, self.index.ntotal)
        if k <= 0:
            return []
        query = vector.reshape(1, -1).astype(np.float32)
        if self.exact is None:
            scores, rows = self.index.search(query, k)
        else:
            scores, rows = reranked_search(self.index, self.exact, query, k, self.rerank)
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
        if self.exact is not None:
            vector = np.asarray(self.exact[row], dtype=np.float32)
        else:
            vector = self.index.reconstruct(int(row))
        return [(i, s) for i, s in self.search(vector, k + 1) if i != item_id][:k]
