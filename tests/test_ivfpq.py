"""IVF-PQ semantic index: compressed codes, exact re-ranking from memory-mapped float16 vectors."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import SSSettings
from recsys.errors import IntegrityError, InvalidInput
from recsys.models import ss
from recsys.models.encoder import MODEL_NAME
from recsys.models.registry import Registry
from recsys.service.search import auto_index


def clustered(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """Unit vectors in topics and sub-topics: near neighbours are near, as in text embeddings
    (one level of equidistant noise would make every neighbour a near-tie)."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(2, n // 200), dim)).astype(np.float32)
    subtopics = topics[rng.integers(0, len(topics), max(4, n // 20))]
    subtopics += 0.7 * rng.standard_normal(subtopics.shape).astype(np.float32)
    vectors = subtopics[rng.integers(0, len(subtopics), n)]
    vectors += 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows


def test_auto_picks_flat_hnsw_then_ivfpq_by_catalog_size():
    cfg = SSSettings(hnsw_threshold=100, ivfpq_threshold=1000)
    assert [auto_index(n, cfg) for n in (99, 100, 999, 1000, 10**8)] == [
        "flat", "hnsw", "hnsw", "ivfpq", "ivfpq",
    ]  # fmt: skip


def test_shape_follows_the_catalog_and_rejects_a_bad_m():
    big = ss.ivfpq_shape(1_000_000, 384)
    assert (big.nlist, big.m, big.nbits, big.train_size) == (1000, 48, 8, 64_000)
    tiny = ss.ivfpq_shape(50, 384)  # k-means needs more points than centroids
    assert tiny.nlist == 7 and 2**tiny.nbits < tiny.train_size == 50
    assert ss.ivfpq_shape(5000, 384, nlist=20, m=96).m == 96
    with pytest.raises(InvalidInput, match="ivfpq_m 50 must divide the vector size 384"):
        ss.ivfpq_shape(5000, 384, m=50)


@pytest.mark.parametrize("n", [30, 3000])
def test_reranked_search_equals_exact_search_when_every_cell_is_probed(n):
    vectors = clustered(n)
    index = ss.build_index(vectors, "ivfpq", m=0, ef_construction=0)
    index.nprobe = index.nlist
    exact = vectors.astype(np.float16)
    queries = vectors[:40]
    scores, rows = ss.reranked_search(index, exact, queries, k=10, rerank=10)
    # exact over the stored float16 vectors (ties closer than ~1e-4 may order otherwise in float32)
    want_scores, want_rows = exact_top(exact.astype(np.float32), queries, 10)
    assert (rows == want_rows).all()
    assert np.allclose(scores, want_scores, atol=1e-6)
    assert np.allclose(scores, exact_top(vectors, queries, 10)[0], atol=2e-3)
    # against float32 exact search only float16 near-ties at rank 10 can differ
    assert ss.ivfpq_recall(index, exact, vectors, nprobe=index.nlist, rerank=10) >= 0.999


def test_recall_counts_what_the_compressed_codes_miss():
    vectors = clustered(3000)
    index = ss.build_index(vectors, "ivfpq", m=0, ef_construction=0)
    exact = vectors.astype(np.float16)
    one_cell = ss.ivfpq_recall(index, exact, vectors, nprobe=1, rerank=1)
    assert one_cell < ss.ivfpq_recall(index, exact, vectors, nprobe=index.nlist, rerank=10)
    assert one_cell < 1.0


def publish(tmp_path, vectors: np.ndarray, nprobe: int) -> Registry:
    """A version written the way train_ss writes one (same files, same params)."""
    import faiss

    registry = Registry(tmp_path / "models")
    index = ss.build_index(vectors, "ivfpq", m=0, ef_construction=0)

    def build(folder):
        faiss.write_index(index, str(folder / "index.faiss"))
        np.save(folder / ss.EXACT_VECTORS, vectors.astype(np.float16), allow_pickle=False)
        np.save(folder / "item_ids.npy", np.array([f"P{i:05d}" for i in range(len(vectors))]))
        np.save(folder / "text_hashes.npy", np.array([b"%016d" % i for i in range(len(vectors))]))
        params = {"model": MODEL_NAME, "precision": "fp32", "index": "ivfpq"}
        return {"params": {**params, "ivfpq_nprobe": nprobe, "ivfpq_rerank": 10}}

    registry.publish("ss", build)
    return registry


def test_save_load_round_trip_answers_like_exact_search(tmp_path):
    vectors = clustered(2000)
    registry = publish(tmp_path, vectors, nprobe=10_000)
    loaded = ss.SemanticIndex(*registry.open("ss"))
    assert isinstance(loaded.exact, np.memmap)  # not read into RAM
    stored = vectors.astype(np.float16).astype(np.float32)
    for q in (0, 7, 1999):
        _, want = exact_top(stored, vectors[q : q + 1], 5)
        assert [i for i, _ in loaded.search(vectors[q], 5)] == [f"P{r:05d}" for r in want[0]]
        neighbours = loaded.neighbours(f"P{q:05d}", 4)
        assert [i for i, _ in neighbours] == [f"P{r:05d}" for r in want[0][1:]]
    # the next training's embedding cache reads the float16 copy, not the lossy codes
    previous = ss.read_previous(*registry.open("ss"), "fp32")
    assert previous is not None and np.abs(previous[1] - vectors).max() < 1e-3


def test_damaged_exact_vectors_fail_the_checksum(tmp_path):
    registry = publish(tmp_path, clustered(300), nprobe=4)
    folder, _ = registry.open("ss")
    path = folder / ss.EXACT_VECTORS
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(IntegrityError, match="checksum"):
        registry.open("ss")
