"""A full disk (a real, tiny tmpfs): one line naming the file, exit 1, the WAL released, the
previous model kept, POST /training a 507 without a stray file (case disk-full-tracebacks)."""

from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient
from test_http import assert_error, make_settings

from recsys.http.app import create_app
from recsys.ingest.sample import generate_sample

from helpers import cli

cli_app = importlib.import_module("recsys.cli.app")


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Write until the disk is full."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: disk full while writing"), lines
    return lines[0]


def test_ingest_on_a_full_disk_is_one_line_and_releases_the_wal(small_disk, tmp_path):
    sample = generate_sample(tmp_path / "data", users=20000, items=2000, ratings=200000, seed=3)
    home = small_disk / "home"
    # a store that holds data already (its own process, whose exit checkpoints the WAL)
    subprocess.run([sys.executable, "-m", "recsys", "--home", str(home), "ingest",
                    str(sample.meta_path), "-q"], check=True)  # fmt: skip
    line = one_error_line(cli("--home", home, "ingest", sample.reviews_path, "-q", expect=None))
    assert str(home / "recsys.db") in line and "batches committed before" in line
    wal = home / "recsys.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the failed batch's WAL gave its space back
    with sqlite3.connect(home / "recsys.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)


def test_train_mf_on_a_full_disk_keeps_the_previous_version(small_disk, tmp_path):
    sample = generate_sample(tmp_path / "data", users=300, items=60, ratings=3000, seed=1)
    home = small_disk / "home"
    cli("--home", home, "ingest", sample.reviews_path, "-q")
    first = cli("--home", home, "train", "mf", "--json")["version"]
    fill(small_disk)
    line = one_error_line(cli("--home", home, "train", "mf", "--force", expect=None))
    assert str(home / "models" / "als") in line
    assert (home / "models" / "als" / "current").read_text().strip() == first
    assert [p.name for p in (home / "models" / "als").iterdir() if p.name.startswith(".tmp")] == []


def test_post_training_on_a_full_disk_is_507_without_a_stray_file(small_disk, tmp_path):
    sample = generate_sample(tmp_path / "data", users=300, items=60, ratings=3000, seed=1)
    home = small_disk / "home"
    cli("--home", home, "ingest", sample.reviews_path, "-q")
    (home / "jobs").mkdir()
    fill(small_disk)
    client = TestClient(create_app(make_settings(home)), raise_server_exceptions=False)
    r = client.post("/training", json={"model_type": "mf"})
    assert "disk full while writing" in assert_error(r, 507, "disk_full")["message"]
    assert [p.name for p in (home / "jobs").iterdir() if not p.name.endswith(".lock")] == []
    os.remove(small_disk / "filler")
    assert client.get("/training").json() == {"jobs": []}


def test_unknown_encoding_is_a_usage_error(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,rating\nu1,i1,5\n")  # the case's input
    result = cli("ingest", ratings, "--encoding", "bogus", expect=2)
    assert "unknown encoding 'bogus'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["status"], ["ingest", "RATINGS"], ["train", "mf"]])
def test_a_home_that_is_a_file_is_one_line(tmp_path, command):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,rating\nu1,i1,5\n")
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    args = [str(ratings) if a == "RATINGS" else a for a in command]
    result = cli("--home", home, *args, expect=1)
    assert result.output.strip().splitlines() == [
        f"error: data home {home} is not a directory (set by --home)"
    ]


def test_train_ss_on_a_full_disk_keeps_the_previous_version(small_disk, tmp_path):
    sample = generate_sample(tmp_path / "data", users=300, items=60, ratings=3000, seed=1)
    home = small_disk / "home"
    cli("--home", home, "ingest", sample.meta_path, "-q")
    first = cli("--home", home, "train", "ss", "--json")["version"]
    fill(small_disk)
    line = one_error_line(cli("--home", home, "train", "ss", "--force", expect=None))
    assert str(home / "models" / "ss") in line
    assert (home / "models" / "ss" / "current").read_text().strip() == first
    assert [p.name for p in (home / "models" / "ss").iterdir() if p.name.startswith(".tmp")] == []
