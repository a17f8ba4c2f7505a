"""The numpy query encoder: batched forward passes, the batching front of the server, its erf."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from recsys.models.encoder import BatchingEncoder, NumpyMiniLM, _erf

TEXTS = [
    "wireless earbuds",
    "a",
    "",
    "Nature's Stance Elderberry Immune Gummies with Zinc, 60 count",
    "ünïcödé – ✓",
    "stainless steel chef knife " * 80,  # longer than the model's 256 tokens: truncated
]


@pytest.fixture(scope="module")
def model() -> NumpyMiniLM:
    return NumpyMiniLM()


def test_a_batch_encodes_each_text_as_alone(model):
    alone = np.stack([model.encode([text])[0] for text in TEXTS])
    together = model.encode(TEXTS)
    assert np.abs(model.encode(TEXTS, chunk=4) - together).max() < 1e-6  # passes of 4 and 2
    assert together.dtype == np.float32 and together.shape == (len(TEXTS), 384)
    assert np.abs(together - alone).max() < 1e-6  # padding and masking change nothing
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)
    assert len({tuple(np.round(v, 4)) for v in together}) == len(TEXTS)


def test_concurrent_callers_each_get_their_own_vectors(model):
    batching = BatchingEncoder(model, max_batch=4, threads=2)
    queries = [f"{text} {i}" for i in range(6) for text in TEXTS[:4]]
    with ThreadPoolExecutor(max_workers=12) as pool:
        got = list(pool.map(lambda q: batching.encode([q])[0], queries))
    want = model.encode(queries)
    assert np.abs(np.stack(got) - want).max() < 1e-6
    pair = batching.encode(TEXTS[:2])  # a caller's several texts stay together and in order
    assert np.abs(pair - model.encode(TEXTS[:2])).max() < 1e-6
    assert batching.encode([]).shape == (0, 384) == model.encode([]).shape


def test_an_error_reaches_only_its_caller_and_the_encoder_goes_on(model):
    from recsys.models.encoder import _Pending

    batching = BatchingEncoder(model, threads=1)
    with pytest.raises(TypeError):
        batching.encode([None])  # type: ignore[list-item]  # the tokenizer refuses it
    assert np.abs(batching.encode(["still here"]) - model.encode(["still here"])).max() < 1e-6
    # In one batch with good requests, the bad one fails alone and nobody is left waiting.
    good, bad, other = _Pending(["a"]), _Pending([None]), _Pending(["b", "c"])  # type: ignore[list-item]
    batching._encode([good, bad, other])
    assert all(p.done.is_set() for p in (good, bad, other))
    assert isinstance(bad.error, TypeError) and good.error is None and other.error is None
    assert np.abs(other.result() - model.encode(["b", "c"])).max() < 1e-6
    assert np.abs(good.result() - model.encode(["a"])).max() < 1e-6
    # any iterable of texts, not only a list
    assert batching.encode(iter(["a"])).shape == (1, 384)


def test_erf_matches_the_exact_function():
    xs = np.linspace(-8, 8, 100_001, dtype=np.float32)
    exact = np.array([math.erf(float(x)) for x in xs])
    assert np.abs(_erf(xs).astype(np.float64) - exact).max() < 1e-6
    assert _erf(xs).dtype == np.float32
