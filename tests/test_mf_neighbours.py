"""The server's HNSW graphs answer `similar` and user scoring like the exact scan."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import load_settings
from recsys.models.mf import MFModel
from recsys.models.registry import Registry

from helpers import cli
from test_mf import SMALL_MODEL, ingest_taste_groups


@pytest.fixture
def models(tmp_path, monkeypatch) -> tuple[MFModel, MFModel]:
    """The taste-group model loaded twice: as the CLI does (exact scan) and as the server does."""
    for name, value in SMALL_MODEL.items():
        monkeypatch.setenv(name, value)
    ingest_taste_groups(tmp_path / "data")
    cli("train", "mf", "-q")
    folder, manifest = Registry(load_settings().models_dir).open("mf")
    exact = MFModel.load(folder, manifest)
    served = MFModel.load_for_serving(folder, manifest)
    return exact, served


def test_neighbour_index_agrees_with_the_exact_scan(models):
    exact, served = models
    assert exact.neighbours is None and served.neighbours is not None
    trained = np.flatnonzero(exact.trained)
    overlap = []
    for item in trained:
        want, want_scores = exact.similar(int(item), 10)
        got, got_scores = served.similar(int(item), 10)
        assert item not in got and len(got) == len(want)
        assert np.all(np.diff(got_scores) <= 1e-6)  # best first
        overlap.append(len(set(want) & set(got)) / len(want))
    assert np.mean(overlap) >= 0.95
    # a category filter still scans exactly
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
        items, conf = exact.seen(user)
        if not len(items):
            continue
        vector, _ = exact.solve_user(items, conf)
        want, _ = exact.recommend(vector, 10, items)
        got, got_scores = served.recommend(vector, 10, items)
        assert not set(got) & set(items) and len(got) == len(want)  # seen items stay out
        assert np.all(np.diff(got_scores) <= 1e-6)
        overlap.append(len(set(want) & set(got)) / len(want))
    assert np.mean(overlap) >= 0.9
