"""The model registry: atomic publish under kill -9, checksums, rollback/prune/list/show, names."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from recsys.errors import IntegrityError, InvalidInput, NotFound, NotTrained
from recsys.models.registry import TMP_PREFIX, Registry, version_key
from recsys.service import models

from helpers import cli

cli_app = importlib.import_module("recsys.cli.app")


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


def build_with(payload: bytes):
    def build(folder: Path) -> dict:
        (folder / "data.npy").write_bytes(payload)
        return {"params": {"payload": len(payload)}, "counts": {"ratings": len(payload)}}

    return build


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


def test_publish_open_and_current(registry):
    with pytest.raises(NotTrained):
        registry.open("mf")
    first = registry.publish("mf", build_with(b"one"))
    folder, manifest = registry.open("mf")
    assert manifest["version"] == first["version"] == registry.current("mf")
    assert (folder / "data.npy").read_bytes() == b"one"
    assert set(manifest) >= {"kind", "version", "created_at", "params", "counts", "files"}
    second = registry.publish("mf", build_with(b"two"))
    assert registry.versions("mf") == [first["version"], second["version"]]
    assert registry.current("mf") == second["version"]


def test_same_second_versions_sort_chronologically(registry):
    versions = [registry.publish("mf", build_with(str(i).encode()))["version"] for i in range(12)]
    assert registry.versions("mf") == versions  # ...Z, ...Z-2, ..., ...Z-10 stay in order
    assert sorted(versions, key=version_key) == versions


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_tampered_or_truncated_artifact_is_refused(registry, damage):
    registry.publish("mf", build_with(b"x" * 1000))
    path = registry.kind_dir("mf") / registry.current("mf") / "data.npy"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[500] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:999]))
    else:
        path.unlink()
    with pytest.raises(IntegrityError, match="checksum"):
        registry.open("mf")


def test_tampered_mf_model_is_refused_by_the_cli(tmp_path):
    from test_mf import ingest_taste_groups

    ingest_taste_groups(tmp_path / "data")
    cli("train", "mf", "--factors", "4", "-q")
    home = Path(os.environ["RECSYS_HOME"])
    version = cli("models", "list", "--json")[0]["version"]
    path = home / "models" / "als" / version / "item_factors.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    result = cli("recommend", "item", "i00", expect=1)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "item_factors.npy" in lines[0] and "checksum" in lines[0]


def test_manifest_cannot_point_outside_the_version(registry):
    registry.publish("mf", build_with(b"x"))
    folder = registry.kind_dir("mf") / registry.current("mf")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {"../../etc/passwd": "0" * 64}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="bad artifact name"):
        registry.open("mf")


@pytest.mark.parametrize("version", ["../../etc", "..", "20261126T120000Z/../../x", "current", ""])
def test_version_names_from_users_are_validated(registry, version):
    with pytest.raises(InvalidInput, match="invalid model version"):
        registry.open("mf", version)
    with pytest.raises(InvalidInput):
        registry.rollback("mf", version)


def test_cli_rejects_path_traversal_and_unknown_kind(recsys_home):
    for args in (("show", "mf", "../../etc"), ("rollback", "mf", "../../etc"), ("show", "../mf")):
        result = cli("models", *args, expect=1)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert "invalid model version" in cli("models", "show", "mf", "../../etc", expect=1).output
    assert "unknown model kind" in cli("models", "prune", "evil", "--keep", "1", expect=1).output


def test_rollback_prune_list_show_via_cli(registry, recsys_home):
    registry = Registry(recsys_home / "models")
    versions = [registry.publish("mf", build_with(bytes([i]) * 10))["version"] for i in range(4)]
    listed = cli("models", "list", "--json")
    assert [m["version"] for m in listed] == versions
    assert [m["current"] for m in listed] == [False, False, False, True]
    shown = cli("models", "show", "mf", versions[1], "--json")
    assert shown["version"] == versions[1] and shown["params"] == {"payload": 10}
    assert not shown["current"] and shown["size_bytes"] > 10

    assert cli("models", "rollback", "mf", "--json")["version"] == versions[2]
    assert registry.current("mf") == versions[2]
    cli("models", "rollback", "mf", versions[0])
    assert registry.current("mf") == versions[0]
    assert "does not exist" in cli("models", "rollback", "mf", "20000101T000000Z", expect=1).output
    assert "no als version older" in cli("models", "rollback", "mf", expect=1).output

    removed = cli("models", "prune", "mf", "--keep", "2", "--json")["removed"]
    assert removed == [versions[1]]  # the current (oldest) version is always kept
    assert registry.versions("mf") == [versions[0], versions[2], versions[3]]
    assert "removed 0" in cli("models", "prune", "mf", "--keep", "5").output
    assert cli("models", "prune", "mf", "--keep", "0", expect=2).exit_code == 2
    assert "no models yet" in cli("models", "list", "ss").output


def test_rollback_refuses_a_damaged_target(registry):
    first = registry.publish("mf", build_with(b"a"))["version"]
    registry.publish("mf", build_with(b"b"))
    (registry.kind_dir("mf") / first / "data.npy").write_bytes(b"z")
    with pytest.raises(IntegrityError):
        registry.rollback("mf")
    with pytest.raises(NotFound):
        registry.manifest("mf", "20000101T000000Z")


PUBLISH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from recsys.models.registry import Registry

    def build(folder):
        (folder / "data.npy").write_bytes(b"new" * 1000)
        Path(sys.argv[2]).write_text("building")  # tell the test we are mid-publish
        time.sleep(60)
        return {}

    Registry(Path(sys.argv[1])).publish("mf", build)
    """
)


def test_kill_9_during_publish_leaves_previous_version_live(registry, tmp_path):
    live = registry.publish("mf", build_with(b"old"))["version"]
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", PUBLISH_SCRIPT, str(registry.root), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    leftovers = [p.name for p in registry.kind_dir("mf").iterdir() if p.name.startswith(TMP_PREFIX)]
    assert leftovers  # the half-built version is there, but nobody sees it
    assert registry.current("mf") == live and registry.versions("mf") == [live]
    folder, _ = registry.open("mf")
    assert (folder / "data.npy").read_bytes() == b"old"

    newer = registry.publish("mf", build_with(b"newer"))["version"]
    assert not [p for p in registry.kind_dir("mf").iterdir() if p.name.startswith(TMP_PREFIX)]
    assert registry.current("mf") == newer


def test_kill_9_during_training_leaves_the_model_loadable(tmp_path):
    """A real `recsys train mf` killed at random moments: the previous model always answers."""
    from test_mf import ingest_taste_groups

    ingest_taste_groups(tmp_path / "data")
    cli("train", "mf", "--factors", "4", "-q")
    live = cli("models", "list", "--json")[0]["version"]
    env = {**os.environ, "RECSYS_MF_FACTORS": "4"}
    for delay in (0.2, 0.6, 1.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "recsys", "train", "mf", "--force", "--iterations", "200", "-q"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        current = cli("models", "show", "mf", "--json")["version"]
        # A fresh `recsys recommend` process has no cached model; in this shared test process the
        # cache would legitimately keep the old version for up to server.reload_check_seconds.
        models.clear()
        assert cli("recommend", "item", "i00", "--json")["model_version"] == current
    assert current == live or current > live


def test_a_registry_from_before_the_model_table_is_adopted(tmp_path):
    """ALS used to live under models/mf/ with a different artifact layout: the folder moves to
    models/als/ once, and its old versions say "retrain" instead of vanishing or crashing."""
    from test_mf import ingest_taste_groups

    ingest_taste_groups(tmp_path / "data")
    home = Path(os.environ["RECSYS_HOME"])
    old = Registry(home / "models")
    old.publish("als", build_with(b"old layout"))  # an artifact the new loader cannot read
    (home / "models" / "als").rename(home / "models" / "mf")
    import recsys.models.registry as registry_module

    registry_module._adopted.clear()
    result = cli("recommend", "item", "i00", expect=1)
    assert (home / "models" / "als").is_dir() and not (home / "models" / "mf").exists()
    assert "older recsys" in result.output and "retrain" in result.output
    assert not cli("train", "mf", "--factors", "4", "--json")["skipped"]  # not "up to date"
    assert cli("recommend", "item", "i00", "--json")["items"]
