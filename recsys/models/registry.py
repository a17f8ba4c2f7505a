"""The versioned model registry: <home>/models/<kind>/<version>/ + a `current` pointer.

Publishing writes into a hidden temporary folder, fsyncs every file, renames the folder into place
and then swaps `current` with an atomic os.replace: a kill -9 at any moment leaves the previous
version live. Leftover temporary folders are removed by the next publish. Loading verifies the
sha256 of every artifact. Artifacts are npy/npz/faiss files, never pickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsys.errors import (
    IntegrityError,
    InvalidInput,
    NotFound,
    NotTrained,
    RecsysError,
    disk_full,
)
from recsys.models.kinds import ALIASES
from recsys.models.kinds import KINDS as KIND_TABLE

KINDS = tuple(KIND_TABLE)
VERSION_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$")
MANIFEST = "manifest.json"
CURRENT = "current"
TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version_key(version: str) -> tuple[str, int]:
    """Chronological order: 20261126T120000Z < ...Z-2 < ...Z-10 (plain string order puts -10
    before -2)."""
    base, _, n = version.partition("-")
    return base, int(n or 1)


def check_kind(kind: str) -> str:
    """The canonical kind name (aliases such as "mf" accepted); InvalidInput (400) otherwise."""
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise InvalidInput(f"unknown model kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def _adopt_legacy_folders(root: Path) -> None:
    """Registries written before the model table kept ALS under `mf/`: move such a folder to
    its kind's name once (an atomic rename; a concurrent process doing the same loses quietly).
    Its versions then load as "written by an older recsys: retrain" rather than vanish."""
    for alias, kind in ALIASES.items():
        old, new = root / alias, root / kind
        if old.is_dir() and not new.exists():
            with contextlib.suppress(OSError):
                os.rename(old, new)


def check_version(version: str) -> str:
    """User-given version names must look like ours: no path traversal, no surprises."""
    if not VERSION_RE.match(version):
        raise InvalidInput(f"invalid model version {version!r} (expected e.g. 20261126T120000Z)")
    return version


_adopted: set[Path] = set()


class Registry:
    def __init__(self, root: Path):
        self.root = root
        if root not in _adopted:
            _adopt_legacy_folders(root)
            _adopted.add(root)

    def kind_dir(self, kind: str) -> Path:
        return self.root / check_kind(kind)

    # ---- reading -------------------------------------------------------------------------
    def current(self, kind: str) -> str | None:
        try:
            version = (self.kind_dir(kind) / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        return check_version(version)

    def versions(self, kind: str) -> list[str]:
        folder = self.kind_dir(kind)
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if p.is_dir() and VERSION_RE.match(p.name)]
        return sorted(names, key=version_key)

    def manifest(self, kind: str, version: str | None = None) -> dict[str, Any]:
        version = self._resolve(kind, version)
        path = self.kind_dir(kind) / version / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"model {kind} version {version} does not exist") from None
        except json.JSONDecodeError:
            raise IntegrityError(f"model {kind} {version}: manifest.json is corrupt") from None

    def open(self, kind: str, version: str | None = None) -> tuple[Path, dict[str, Any]]:
        """The folder and manifest of a version after checking every artifact's checksum."""
        version = self._resolve(kind, version)
        manifest = self.manifest(kind, version)
        folder = self.kind_dir(kind) / version
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise IntegrityError(f"model {kind} {version}: manifest.json lists no artifacts")
        for name, expected in files.items():
            if not isinstance(name, str) or "/" in name or name.startswith(".") or name == MANIFEST:
                raise IntegrityError(f"model {kind} {version}: bad artifact name {name!r}")
            path = folder / name
            if not path.is_file() or sha256_file(path) != expected:
                raise IntegrityError(
                    f"model {kind} {version}: artifact {name} is missing, truncated or modified "
                    f"(checksum mismatch); retrain or `recsys models rollback {kind}`"
                )
        return folder, manifest

    def verified_current(self, kind: str) -> dict[str, Any] | None:
        """The manifest of the current version when every artifact verifies (sha256, as `open`
        checks before loading); None when nothing is published or the pointer, the manifest or
        an artifact is damaged. "Up to date" checks use it: a damaged live version is retrained,
        never reported as up to date."""
        try:
            return self.open(kind)[1]
        except RecsysError:
            return None

    def _resolve(self, kind: str, version: str | None) -> str:
        if version is not None:
            return check_version(version)
        current = self.current(kind)
        if current is None:
            raise NotTrained(f"no {kind} model yet: run `recsys train {kind}`")
        return current

    # ---- writing -------------------------------------------------------------------------
    def publish(self, kind: str, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """`build(folder)` writes the artifacts and returns manifest fields; returns the manifest."""
        kind = check_kind(kind)
        folder = self.kind_dir(kind)
        folder.mkdir(parents=True, exist_ok=True)
        self.clean_leftovers(kind)
        version = self._new_version(kind)
        tmp = folder / f"{TMP_PREFIX}{version}-{os.getpid()}"
        tmp.mkdir()
        try:
            fields = build(tmp)
            files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {
                "kind": kind,
                "version": version,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **fields,
                "files": files,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            for path in tmp.iterdir():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
            _fsync_dir(tmp)
            while True:
                try:
                    os.rename(tmp, folder / version)
                    break
                except OSError:
                    # Another process published the same name this second: take the next one.
                    if not (folder / version).exists():
                        raise
                    version = manifest["version"] = self._new_version(kind)
                    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
                    with open(tmp / MANIFEST, "rb") as f:
                        os.fsync(f.fileno())
            _fsync_dir(folder)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            full = disk_full(exc, tmp) if isinstance(exc, Exception) else None
            if full is not None:  # numpy's OSError does not name the file: name the folder
                raise full from exc
            raise
        self._point(kind, version)
        return manifest

    def _new_version(self, kind: str) -> str:
        base = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        # Same second as an existing version (even a pruned-away base): count on from the highest.
        taken = [version_key(v)[1] for v in self.versions(kind) if v.split("-")[0] == base]
        return base if not taken else f"{base}-{max(taken) + 1}"

    def _point(self, kind: str, version: str) -> None:
        folder = self.kind_dir(kind)
        tmp = folder / f"{TMP_PREFIX}{CURRENT}-{os.getpid()}"
        tmp.write_text(version + "\n")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, folder / CURRENT)
        _fsync_dir(folder)

    def clean_leftovers(self, kind: str) -> list[str]:
        """Remove temporary folders/files of publishes that were killed (older than a minute or
        of a process that no longer runs)."""
        removed: list[str] = []
        folder = self.kind_dir(kind)
        if not folder.is_dir():
            return removed
        for path in folder.iterdir():
            if not path.name.startswith(TMP_PREFIX):
                continue
            pid = path.name.rsplit("-", 1)[-1]
            alive = pid.isdigit() and pid_alive(int(pid)) and int(pid) != os.getpid()
            if alive and time.time() - path.stat().st_mtime < 3600:
                continue  # another process is publishing right now
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed

    def rollback(self, kind: str, version: str | None = None) -> str:
        """Point `current` at `version`, or at the version before the current one."""
        versions = self.versions(kind)
        if version is None:
            current = self.current(kind)
            older = [
                v for v in versions if current is None or version_key(v) < version_key(current)
            ]
            if not older:
                raise NotFound(f"no {kind} version older than {current} to roll back to")
            version = self._newest_intact(kind, older)
        elif check_version(version) not in versions:
            raise NotFound(f"model {kind} version {version} does not exist")
        self.open(kind, version)  # refuse to point at a damaged version
        self._point(kind, version)
        return version

    def _newest_intact(self, kind: str, candidates: list[str]) -> str:
        """The newest of `candidates` (oldest first) that verifies; when none does, the newest,
        so that `rollback` names its damage."""
        for version in reversed(candidates):
            try:
                self.open(kind, version)
            except RecsysError:
                continue
            return version
        return candidates[-1]

    def prune(self, kind: str, keep: int) -> list[str]:
        """Delete all but the newest `keep` versions; the current version is always kept."""
        if keep < 1:
            raise InvalidInput("--keep must be at least 1")
        current = self.current(kind)
        versions = self.versions(kind)
        doomed = [v for v in versions[: max(len(versions) - keep, 0)] if v != current]
        for version in doomed:
            shutil.rmtree(self.kind_dir(kind) / version)
        return doomed

    def size_bytes(self, kind: str, version: str) -> int:
        folder = self.kind_dir(kind) / check_version(version)
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
