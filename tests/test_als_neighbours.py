"""The server's serving indexes answer like the exact scan: the similar-items table exactly, the
users' HNSW graph approximately."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import load_settings
from recsys.models.als import ALSModel
from recsys.models.base import SHARED_ARRAYS
from recsys.models.registry import Registry

from helpers import cli
from test_mf import SMALL_MODEL, ingest_taste_groups


@pytest.fixture
def models(tmp_path, monkeypatch) -> tuple[ALSModel, ALSModel]:
    """The taste-group model loaded twice: as the CLI does (exact scan) and as the server does."""
    for name, value in SMALL_MODEL.items():
        monkeypatch.setenv(name, value)
    ingest_taste_groups(tmp_path / "data")
    cli("train", "mf", "-q")  # the old name of `train als` still works
    folder, manifest = Registry(load_settings().models_dir).open("als")
    exact = ALSModel.load(folder, manifest)
    served = ALSModel.load(folder, manifest)
    served.prepare_for_serving(100)
    return exact, served


def test_similar_items_table_is_the_exact_scan(models):
    exact, served = models
    assert exact.similar_table is None and served.similar_table is not None
    trained = np.flatnonzero(exact.known)
    overlap = []
    for item in trained:
        for n in (1, 10, 100):
            want, want_scores = exact.similar(int(item), n)
            got, got_scores = served.similar(int(item), n)
            assert item not in got and len(got) == len(want)
            np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)  # best first, same
            overlap.append(len(set(want) & set(got)) / len(want))
    assert np.mean(overlap) >= 0.99  # only items tied at the cut may differ
    # untrained items have an empty row (the service answers them before asking the model)
    for item in np.flatnonzero(~exact.known)[:5]:
        assert len(served.similar(int(item), 10)[0]) == 0
    # deeper than the table (n > similar_k) and a category filter still scan exactly
    arrays = {name: getattr(exact, name) for name in (*SHARED_ARRAYS, *ALSModel.model_arrays)}
    shallow = ALSModel(arrays, exact.manifest)
    shallow.build_serving_indexes(similar_k=3)
    assert shallow.similar_table[0].shape[1] == 3
    assert list(shallow.similar(int(trained[0]), 10)[0]) == list(
        exact.similar(int(trained[0]), 10)[0]
    )
    allowed = np.zeros(exact.n_items, dtype=bool)
    allowed[trained[:5]] = True
    assert list(served.similar(int(trained[10]), 3, allowed)[0]) == list(
        exact.similar(int(trained[10]), 3, allowed)[0]
    )


def test_inner_product_graph_agrees_with_exact_user_scoring(models):
    exact, served = models
    assert served.scorer is not None
    overlap = []
    for user in range(len(exact.user_ids)):
        items, ratings = exact.seen(user)
        if not len(items):
            continue
        want, _ = exact.recommend(items, ratings, 10, items)
        got, got_scores = served.recommend(items, ratings, 10, items)
        assert not set(got) & set(items) and len(got) == len(want)  # seen items stay out
        assert np.all(np.diff(got_scores) <= 1e-6)
        overlap.append(len(set(want) & set(got)) / len(want))
    assert np.mean(overlap) >= 0.9
