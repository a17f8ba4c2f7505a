"""The ONNX Runtime encoder: equal to sentence-transformers, batched passes, the batching front of
the server, the int8 variant, and a cold search that never imports torch."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from recsys.models.encoder import BatchingEncoder, OnnxMiniLM, load_sentence_transformer, onnx_path

TEXTS = [
    "wireless earbuds",
    "a",
    "",
    "Nature's Stance Elderberry Immune Gummies with Zinc, 60 count",
    "ünïcödé – ✓",
    "stainless steel chef knife " * 80,  # longer than the model's 256 tokens: truncated
]


@pytest.fixture(scope="module")
def model() -> OnnxMiniLM:
    return OnnxMiniLM()


def test_vectors_equal_sentence_transformers(model):
    reference = load_sentence_transformer().encode(TEXTS, normalize_embeddings=True)
    vectors = model.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    assert np.all((vectors * reference).sum(1) > 0.99999)
    assert np.abs(vectors - reference).max() < 1e-5


def test_int8_is_a_quantised_copy_close_to_fp32(model):
    int8 = OnnxMiniLM("int8")
    assert onnx_path("int8").stat().st_size < onnx_path("fp32").stat().st_size / 3
    texts = [t for t in TEXTS if t]
    cosines = (int8.encode(texts) * model.encode(texts)).sum(1)
    assert np.all(cosines > 0.85) and np.all(cosines < 0.99999)  # close, but not the same graph


def test_a_batch_encodes_each_text_as_alone(model):
    alone = np.stack([model.encode([text])[0] for text in TEXTS])
    together = model.encode(TEXTS)
    assert np.abs(model.encode(TEXTS, batch_size=4) - together).max() < 1e-6  # passes of 4 and 2
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


def test_a_cold_search_process_never_imports_torch(tmp_path):
    """The query path runs on onnxruntime alone (torch costs ~1.5 s, sentence-transformers ~5 s)."""
    from helpers import cli

    meta = tmp_path / "meta.jsonl"
    meta.write_text('{"parent_asin": "B1", "title": "Stainless steel chef knife"}\n')
    cli("ingest", meta, "-q")
    cli("train", "ss", "-q")
    script = (
        "import sys; from recsys.cli import main; sys.argv = ['recsys', 'search', 'knife', '--json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules\n"
        "assert 'onnxruntime' in sys.modules"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert '"B1"' in proc.stdout


def test_precision_is_part_of_the_model(tmp_path):
    """An int8 catalog is queried with the int8 encoder, and fp32 vectors are never reused for it."""
    from recsys.config import load_settings
    from recsys.errors import InvalidInput
    from recsys.models import encoder
    from recsys.service.search import search, train_ss

    from helpers import cli

    meta = tmp_path / "meta.jsonl"
    meta.write_text(
        '{"parent_asin": "B1", "title": "Stainless steel chef knife"}\n'
        '{"parent_asin": "B2", "title": "Elderberry gummies for kids"}\n'
    )
    cli("ingest", meta, "-q")
    cli("train", "ss", "-q")
    settings = load_settings()
    result = train_ss(settings, precision="int8")  # not forced: the precision changed
    assert result.params["precision"] == "int8" and result.counts["newly_encoded"] == 2
    hits = search(settings, "kitchen knife", mode="semantic").hits
    assert hits[0].item_id == "B1" and "int8" in encoder._query_encoders
    with pytest.raises(InvalidInput, match="encoder precision 'fp16': use fp32 or int8"):
        train_ss(settings, precision="fp16")
