"""A damaged live model version is repaired by `train`, and `rollback` steps past damaged versions
(case train-skips-corrupt-current-model)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from test_registry import build_with

from recsys.models.registry import Registry

from helpers import cli
from test_mf import ingest_taste_groups

cli_app = importlib.import_module("recsys.cli.app")


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


def damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_train_mf_retrains_when_the_live_version_does_not_verify(tmp_path):
    ingest_taste_groups(tmp_path / "data")
    first = cli("train", "mf", "--factors", "4", "--json")
    assert cli("train", "mf", "--factors", "4", "--json")["skipped"]  # intact: up to date
    home = Path(os.environ["RECSYS_HOME"])
    damage(home / "models" / "als" / first["version"] / "item_factors.npy")
    assert cli("recommend", "item", "i00", expect=1).exit_code == 1
    repaired = cli("train", "mf", "--factors", "4", "--json")
    assert not repaired["skipped"] and repaired["version"] != first["version"]
    assert cli("recommend", "item", "i00", "--json")["model_version"] == repaired["version"]


@pytest.mark.parametrize("model", ["ease", "itemknn", "rp3beta", "popularity"])
def test_every_model_retrains_when_its_live_version_does_not_verify(tmp_path, model):
    """The one up-to-date check every kind of the model table goes through."""
    ingest_taste_groups(tmp_path / "data")
    first = cli("train", model, "--json")
    assert cli("train", model, "--json")["skipped"]
    folder = Path(os.environ["RECSYS_HOME"]) / "models" / model / first["version"]
    damage(max(folder.glob("*.npy"), key=lambda p: p.stat().st_size))
    assert cli("recommend", "item", "i00", "--model", model, expect=1).exit_code == 1
    repaired = cli("train", model, "--json")
    assert not repaired["skipped"] and repaired["version"] != first["version"]
    result = cli("recommend", "item", "i00", "--model", model, "--json")
    assert result["model_version"] == repaired["version"]


@pytest.mark.parametrize("what", ["truncate", "manifest"])
def test_verified_current_is_none_for_a_damaged_version(tmp_path, what):
    registry = Registry(tmp_path / "models")
    assert registry.verified_current("mf") is None  # nothing published
    version = registry.publish("mf", build_with(b"x" * 100))["version"]
    assert registry.verified_current("mf")["version"] == version
    folder = registry.kind_dir("mf") / version
    if what == "truncate":
        (folder / "data.npy").write_bytes(b"x" * 10)
    else:
        (folder / "manifest.json").write_text("{not json")
    assert registry.verified_current("mf") is None


def test_rollback_steps_back_past_a_damaged_version(tmp_path):
    registry = Registry(tmp_path / "models")
    oldest, middle, _newest = (
        registry.publish("mf", build_with(payload))["version"] for payload in (b"a", b"b", b"c")
    )
    (registry.kind_dir("mf") / middle / "data.npy").write_bytes(b"zz")
    assert registry.rollback("mf") == oldest
    assert registry.current("mf") == oldest
