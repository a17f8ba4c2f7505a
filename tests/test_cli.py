"""CLI basics: help is fast to import, global options everywhere, status, exit codes."""

from __future__ import annotations

import subprocess
import sys

from helpers import cli


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from recsys.cli import app; from typer.testing import CliRunner; "
        "CliRunner().invoke(app, ['--help']); CliRunner().invoke(app, ['ingest', '--help']); "
        "heavy = {'torch', 'sentence_transformers', 'implicit', 'faiss', 'litestar', 'scipy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "recsys", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "ingest" in out.stdout


def test_global_options_work_before_and_after_the_command(tmp_path):
    before = cli("--home", tmp_path / "a", "status", "--json")
    after = cli("status", "--home", tmp_path / "b", "--json")
    assert before["store"]["database"].endswith("a/recsys.db")
    assert after["store"]["database"].endswith("b/recsys.db")


def test_status_counts(shared_data):
    folder = shared_data / "amazon2018-gift-cards-5core"
    cli("ingest", folder / "Gift_Cards_5.json", shared_data / "amazon2014-musical-instruments-5core-excerpt"
        / "Musical_Instruments_5.json", folder / "meta_Gift_Cards.json", "-q")  # fmt: skip
    store = cli("status", "--json")["store"]
    assert store["products"] == 1547 and store["ratings"] == 2965 + 50
    assert store["users"] == 458 + 49 and store["rated_items"] == 148 + 7
    assert store["ratings_without_product"] == 50  # the 2014 excerpt has no meta
    assert store["last_ingest_at"] is not None
    table = cli("status").stdout
    assert "ratings without product" in table


def test_usage_errors_exit_2_and_domain_errors_exit_1(tmp_path):
    assert cli("ingest", expect=2).exit_code == 2  # missing argument
    assert cli("status", "--bogus", expect=2).exit_code == 2
    result = cli("--db", "nosuchdialect://x", "status", expect=1)
    assert "invalid database URL" in result.stderr


def test_sample_writes_files_that_ingest_cleanly(tmp_path):
    out = cli("sample", tmp_path / "s", "--users", "50", "--items", "20", "--ratings", "300",
              "--gzip", "--json")  # fmt: skip
    report = cli("ingest", out["meta_path"], out["reviews_path"], "--json")
    assert report["bad_lines"] == 0 and report["products"]["inserted"] == out["products"]
    assert cli("status", "--json")["store"]["ratings_without_product"] == 0
    assert cli("sample", tmp_path / "t", "--users", "2", "--items", "3", "--ratings", "7",
               expect=1).exit_code == 1  # fmt: skip
