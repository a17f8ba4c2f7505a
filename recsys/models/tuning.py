"""The registry's record of `recsys tune`: `<home>/models/tuning.json`.

    {"created_at": ..., "k": 10, "split": "...", "data_fingerprint": "...",
     "best": "ease", "models": {"ease": {"params": {...}, "validation_ndcg": 0.41, ...}}}

`train` uses a kind's tuned parameters where no flag, environment variable or config file sets
them, and `recommend.model = auto` serves the kind that validated best. Written atomically
(temporary file, fsync, os.replace) like every registry file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TUNING_FILE = "tuning.json"


def read_tuning(models_dir: Path) -> dict[str, Any]:
    """The last tuning record, or {} when there is none or it cannot be read."""
    try:
        record = json.loads((models_dir / TUNING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def tuned_params(models_dir: Path, kind: str) -> dict[str, Any]:
    entry = (read_tuning(models_dir).get("models") or {}).get(kind) or {}
    params = entry.get("params")
    return dict(params) if isinstance(params, dict) else {}


def best_tuned(models_dir: Path) -> str | None:
    best = read_tuning(models_dir).get("best")
    return best if isinstance(best, str) else None


def write_tuning(models_dir: Path, record: dict[str, Any]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = models_dir / f".tmp-{TUNING_FILE}-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, models_dir / TUNING_FILE)
