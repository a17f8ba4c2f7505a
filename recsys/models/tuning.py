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


EVALUATION_FILE = "evaluation.json"  # the last `recsys evaluate` report (the dashboard shows it)


def read_record(models_dir: Path, name: str) -> dict[str, Any]:
    """A registry record (TUNING_FILE, EVALUATION_FILE), or {} when there is none or it cannot
    be read."""
    try:
        record = json.loads((models_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(models_dir: Path, name: str, record: dict[str, Any]) -> None:
    """Replace a registry record atomically: a reader sees the old file or the new, whole."""
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = models_dir / f".tmp-{name}-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, models_dir / name)


def read_tuning(models_dir: Path) -> dict[str, Any]:
    """The last tuning record, or {} when there is none or it cannot be read."""
    return read_record(models_dir, TUNING_FILE)


def tuned_params(models_dir: Path, kind: str) -> dict[str, Any]:
    entry = (read_tuning(models_dir).get("models") or {}).get(kind) or {}
    params = entry.get("params")
    return dict(params) if isinstance(params, dict) else {}


def best_tuned(models_dir: Path) -> str | None:
    best = read_tuning(models_dir).get("best")
    return best if isinstance(best, str) else None


def write_tuning(models_dir: Path, record: dict[str, Any]) -> None:
    write_record(models_dir, TUNING_FILE, record)
