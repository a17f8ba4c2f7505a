"""Each ingest report counts its own rows, even while another ingest writes to the same store
(case concurrent-ingest-report-miscounts); HNSW recall ignores FAISS's -1 padding
(case hnsw-recall-counts-minus-one-padding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys import service
from recsys.config import load_settings


def _reviews(path: Path, tag: str, count: int) -> Path:
    path.write_text(
        "".join(
            f'{{"user_id": "{tag}{i}", "parent_asin": "P{i % 3}", "rating": 5, "timestamp": 1}}\n'
            for i in range(count)
        )
    )
    return path


def _meta(path: Path, tag: str, count: int) -> Path:
    path.write_text(
        "".join(f'{{"parent_asin": "{tag}{i}", "title": "t{i}"}}\n' for i in range(count))
    )
    return path


def test_an_ingest_that_runs_inside_another_is_not_counted_twice(tmp_path, db_url):
    cfg = load_settings(overrides={"store.url": db_url, "ingest.batch_size": 4}, environ={})
    a_reviews, a_meta = (
        _reviews(tmp_path / "a.jsonl", "A", 10),
        _meta(tmp_path / "am.jsonl", "A", 9),
    )
    b_reviews, b_meta = _reviews(tmp_path / "b.jsonl", "B", 7), _meta(tmp_path / "bm.jsonl", "B", 5)
    inner = []

    def run_b_once(done: int, total: int, name: str) -> None:
        # B runs start to end while A is between two batches: A's first batch is committed or
        # in flight, the rest of A is still to come
        if not inner:
            inner.append(service.ingest(cfg, [b_reviews, b_meta]))

    report_a = service.ingest(cfg, [a_reviews, a_meta], on_progress=run_b_once)
    (report_b,) = inner
    assert (report_a.ratings.inserted, report_a.products.inserted) == (10, 9)
    assert (report_b.ratings.inserted, report_b.products.inserted) == (7, 5)
    assert report_a.ratings.updated == report_b.ratings.updated == 0
    again = service.ingest(cfg, [a_reviews, a_meta])  # same rows: nothing inserted or updated
    assert (again.ratings.inserted, again.ratings.updated, again.products.inserted) == (0, 0, 0)


def test_updates_are_counted_as_updates(tmp_path, db_url):
    cfg = load_settings(overrides={"store.url": db_url}, environ={})
    first = _reviews(tmp_path / "a.jsonl", "A", 6)
    service.ingest(cfg, [first])
    newer = tmp_path / "newer.jsonl"
    newer.write_text(first.read_text().replace('"timestamp": 1', '"timestamp": 2000000000000'))
    _reviews(tmp_path / "extra.jsonl", "X", 2)
    newer.write_text(newer.read_text() + (tmp_path / "extra.jsonl").read_text())
    report = service.ingest(cfg, [newer])
    assert (report.ratings.inserted, report.ratings.updated) == (2, 6)


@pytest.mark.parametrize("products", [1, 3, 5, 12])
def test_hnsw_recall_of_an_exact_answer_is_1_on_small_catalogs(products):
    from recsys.models import ss

    rng = np.random.default_rng(products)
    vectors = rng.normal(size=(products, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ss.build_index(vectors, "hnsw", m=8, ef_construction=40)
    assert ss.hnsw_recall(index, vectors, ef_search=64, k=10) == 1.0


def test_hnsw_recall_still_counts_real_misses():
    from recsys.models import ss

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    class HalfBlind:  # finds only the first 3 products: a real miss for the others
        hnsw = type("H", (), {"efSearch": 0})()

        def search(self, queries, k):
            import faiss

            flat = faiss.IndexFlatIP(vectors.shape[1])
            flat.add(vectors[:3])
            return flat.search(queries, k)

    recall = ss.hnsw_recall(HalfBlind(), vectors, ef_search=64, k=10)
    assert recall == 0.5  # every query has 6 true neighbours, 3 of them are found
