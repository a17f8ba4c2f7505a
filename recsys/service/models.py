"""A process-wide cache of loaded models that follows the registry's `current` pointer.

`loaded(settings, kind, loader)` returns the model of the current version. At most every
`server.reload_check_seconds` it re-reads the tiny `current` file; when it names a new version,
the new model is loaded completely (checksums verified) BEFORE the shared reference is swapped,
so a concurrent reader gets either the old or the new model, never a half-loaded or mixed one.
While one thread loads, the others keep answering from the previous model. Generic over kinds:
`loader(folder, manifest) -> object`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from recsys.config import Settings
from recsys.errors import RecsysError
from recsys.models.registry import KINDS, Registry, check_kind
from recsys.schemas import ModelInfo

Loader = Callable[[Path, dict[str, Any]], Any]


@dataclass(frozen=True)
class Loaded:
    version: str
    manifest: dict[str, Any]
    model: Any


@dataclass
class _Slot:
    lock: threading.Lock
    entry: Loaded | None = None
    checked_at: float = 0.0
    failed_version: str | None = None  # a version that failed to load: not retried until changed
    refused: str | None = None  # why failed_version is refused while entry is served


_slots: dict[tuple[str, str], _Slot] = {}
_slots_lock = threading.Lock()


_slots_by_home: dict[tuple[str, str], _Slot] = {}  # fast path: absolute homes as configured


def _slot(settings: Settings, kind: str) -> _Slot:
    # Resolving the models folder stats every path component (~40 us, a tenth of a served
    # request), so a slot is also remembered under the configured home when that is written as
    # an absolute path; `~` and relative homes are resolved each time. (A symlink in an absolute
    # home retargeted while the process runs is not followed: restart after such a switch.)
    fast = _slots_by_home.get((settings.paths.home, kind))
    if fast is not None:
        return fast
    folder = settings.models_dir
    key = (str(folder.resolve()), kind)
    with _slots_lock:
        slot = _slots.get(key)
        if slot is None:
            slot = _slots[key] = _Slot(lock=threading.Lock())
        if os.path.isabs(settings.paths.home):
            _slots_by_home[(settings.paths.home, kind)] = slot
        return slot


def loaded(settings: Settings, kind: str, loader: Loader) -> Loaded:
    """The current model of `kind`; raises NotTrained when none is published."""
    slot = _slot(settings, kind)
    entry = slot.entry
    interval = settings.server.reload_check_seconds
    if entry is not None and time.monotonic() - slot.checked_at < interval:
        return entry
    # Only one thread checks/loads; the others go on with the model they have (if any).
    if not slot.lock.acquire(blocking=entry is None):
        return entry  # type: ignore[return-value]
    try:
        entry = slot.entry
        if entry is not None and time.monotonic() - slot.checked_at < interval:
            return entry
        registry = Registry(settings.models_dir)
        version = registry.current(kind)
        if entry is not None and (
            version is None or version in (entry.version, slot.failed_version)
        ):
            # Unchanged, or the pointer vanished / names a broken version: keep serving.
            slot.checked_at = time.monotonic()
            if version == entry.version:  # e.g. rolled back from a refused version
                slot.failed_version = slot.refused = None
            return entry
        try:
            folder, manifest = registry.open(kind, version)
            fresh = Loaded(
                version=manifest["version"], manifest=manifest, model=loader(folder, manifest)
            )
        except Exception as exc:
            if entry is None:
                raise
            slot.failed_version, slot.refused = version, str(exc)
            slot.checked_at = time.monotonic()
            return entry
        slot.entry, slot.failed_version, slot.refused = fresh, None, None  # one reference each
        slot.checked_at = time.monotonic()
        return fresh
    finally:
        slot.lock.release()


def refused(settings: Settings, kind: str) -> tuple[str, str] | None:
    """(version, reason) of a version `current` names that failed to load while the previous one
    is still served; None when the served version is the current one."""
    slot = _slot(settings, kind)
    version, reason = slot.failed_version, slot.refused
    return (version, reason) if version and reason and slot.entry is not None else None


def forget(settings: Settings, kind: str) -> None:
    """Drop the cached model so the next call re-reads `current` (after publish or rollback in
    this process)."""
    slot = _slot(settings, kind)
    with slot.lock:
        slot.checked_at = 0.0
        slot.failed_version = slot.refused = None


def clear() -> None:
    """Forget every cached model (tests)."""
    with _slots_lock:
        _slots.clear()
        _slots_by_home.clear()


# ---- the registry as the adapters see it (`recsys models ...`, GET /models, status) -------------
def model_info(settings: Settings, kind: str, version: str | None = None) -> ModelInfo | None:
    """Summary of one version (default: the current one); None when nothing is published."""
    kind = check_kind(kind)
    registry = Registry(settings.models_dir)
    current = registry.current(kind)
    version = version or current
    if version is None:
        return None
    manifest = registry.manifest(kind, version)
    created = str(manifest.get("created_at", ""))
    try:
        age = time.time() - datetime.fromisoformat(created).timestamp()
    except ValueError:
        age = 0.0
    return ModelInfo(
        kind=kind,
        version=version,
        created_at=created,
        size_bytes=registry.size_bytes(kind, version),
        age_seconds=round(age, 1),
        params=dict(manifest.get("params") or {}),
        counts={k: int(v) for k, v in (manifest.get("counts") or {}).items()},
        metrics=dict(manifest.get("metrics") or {}),
        current=version == current,
        training_seconds=manifest.get("training_seconds"),
    )


def list_models(settings: Settings, kind: str | None = None) -> list[ModelInfo]:
    """Every published version of every kind (or one kind), oldest first."""
    registry = Registry(settings.models_dir)
    infos = []
    for k in [kind] if kind else KINDS:
        for version in registry.versions(k):
            try:
                info = model_info(settings, k, version)
            except RecsysError:  # a damaged manifest: still listed, so it can be pruned
                info = ModelInfo(
                    kind=k, version=version, created_at="?", size_bytes=0, age_seconds=0
                )
            if info is not None:
                infos.append(info)
    return infos


def rollback_model(settings: Settings, kind: str, version: str | None = None) -> ModelInfo:
    """Point `current` at `version` (default: the one before the current one)."""
    kind = check_kind(kind)
    version = Registry(settings.models_dir).rollback(kind, version)
    forget(settings, kind)
    info = model_info(settings, kind, version)
    assert info is not None
    return info


def prune_models(settings: Settings, kind: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions (never the current one); returns the deleted."""
    kind = check_kind(kind)
    registry = Registry(settings.models_dir)
    registry.clean_leftovers(kind)
    return registry.prune(kind, keep)
