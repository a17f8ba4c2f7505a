"""Collaborative filtering end to end on a dataset with a known answer: two taste groups.

Users u000-u099 (group A) rate only items i00-i29, users u100-u199 (group B) only i30-i59, with
a popularity skew inside each group. Whatever ALS learns must keep the groups apart; popularity
cannot. Even items are in category "Even", odd ones in "Odd"; i99 is in the catalog, never rated.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import cli

cli_app = importlib.import_module("recsys.cli.app")  # the module (recsys.cli.app is the Typer)

GROUP_A = {f"i{i:02d}" for i in range(30)}
GROUP_B = {f"i{i:02d}" for i in range(30, 60)}


def title(item: str) -> str:
    return f"Product {item}"


def write_taste_groups(folder: Path, users: int = 200, seed: int = 0) -> tuple[Path, Path]:
    """reviews.csv (user,item,rating,timestamp) and products.csv (item,title,category,price)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    weights = 1.0 / np.arange(1, 31) ** 0.7
    weights /= weights.sum()
    lines = ["user,item,rating,timestamp"]
    for u in range(users):
        offset = 0 if u < users // 2 else 30
        count = int(rng.integers(8, 13))
        for i in rng.choice(30, size=count, replace=False, p=weights):
            rating = int(rng.integers(3, 6))
            ts = 1_600_000_000 + int(rng.integers(0, 10_000_000))
            lines.append(f"u{u:03d},i{i + offset:02d},{rating},{ts}")
    reviews = folder / "reviews.csv"
    reviews.write_text("\n".join(lines) + "\n")
    products = folder / "products.csv"
    rows = ["item,title,category,price"]
    for i in [*range(60), 99]:
        rows.append(f"i{i:02d},{title(f'i{i:02d}')},{'Even' if i % 2 == 0 else 'Odd'},{i + 0.5}")
    products.write_text("\n".join(rows) + "\n")
    return reviews, products


def ingest_taste_groups(folder: Path) -> None:
    reviews, products = write_taste_groups(folder)
    cli("ingest", reviews, "-q")
    cli("ingest", products, "--kind", "products", "-q")


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    """The CLI's global options (--home, --db) persist across CliRunner calls in one process."""
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


# The answer has rank 2: a few factors and firm regularisation find it (64 factors on 60 items
# would memorise the training matrix and rank the unrated items by noise).
SMALL_MODEL = {"RECSYS_MF_FACTORS": "4", "RECSYS_MF_REGULARIZATION": "5"}


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the taste groups ingested and an mf model trained, built once per module."""
    home = tmp_path_factory.mktemp("mf") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSYS_HOME", str(home))
        mp.setattr(cli_app, "_globals", cli_app.GlobalOptions())
        for name, value in SMALL_MODEL.items():
            mp.setenv(name, value)
        from recsys.service import data

        data._engine.cache_clear()
        ingest_taste_groups(home.parent / "data")
        cli("train", "mf", "-q")
        data._engine.cache_clear()
    return home


@pytest.fixture
def trained(trained_home: Path, recsys_home: Path, monkeypatch) -> Path:
    shutil.copytree(trained_home, recsys_home)
    for name, value in SMALL_MODEL.items():
        monkeypatch.setenv(name, value)
    return recsys_home


def user_items(user: str) -> set[str]:
    from helpers import rows

    return {r[0] for r in rows(f"sqlite:///{_home() / 'recsys.db'}",
                               f"select item_id from user_item_rating where user_id = '{user}'")}  # fmt: skip


def _home() -> Path:
    import os

    return Path(os.environ["RECSYS_HOME"])


# ---- the known answer --------------------------------------------------------------------
def test_similar_items_stay_in_the_taste_group(trained):
    for item, group in (("i00", GROUP_A), ("i05", GROUP_A), ("i31", GROUP_B)):
        result = cli("recommend", "item", item, "-n", "10", "--json")
        ids = [r["item_id"] for r in result["items"]]
        assert len(ids) == 10 and item not in ids
        assert set(ids) <= group, (item, ids)
        assert result["kind"] == "similar" and result["strategy"] == "als"
        assert result["model_version"] and result["query"] == item


def test_result_lines_carry_catalog_fields_under_fixed_names(trained):
    first = cli("recommend", "item", "i00", "-n", "3", "--json")["items"][0]
    assert {"item_id", "score", "title", "image_url", "price", "category"} <= set(first)
    assert first["title"] == title(first["item_id"])
    assert (
        first["category"] in ("Even", "Odd") and first["price"] == int(first["item_id"][1:]) + 0.5
    )


def test_user_picks_stay_in_the_group_and_skip_seen_items(trained):
    for user, group in (("u003", GROUP_A), ("u150", GROUP_B)):
        result = cli("recommend", "user", user, "-n", "8", "--json")
        ids = {r["item_id"] for r in result["items"]}
        assert result["strategy"] == "als" and len(ids) == 8
        assert ids <= group and not ids & user_items(user)
    with_seen = cli("recommend", "user", "u003", "-n", "30", "--include-seen", "--json")
    assert user_items("u003") <= {r["item_id"] for r in with_seen["items"]}


def test_unknown_user_gets_popular_items_marked_as_such(trained):
    result = cli("recommend", "user", "newcomer", "-n", "5", "--json")
    assert result["strategy"] == "popular" and len(result["items"]) == 5
    assert "not in model" in result["message"]
    scores = [r["score"] for r in result["items"]]
    assert scores == sorted(scores, reverse=True)


def test_cold_start_fold_in_from_items(trained):
    result = cli("recommend", "user", "newcomer", "--items", "i31,i33,i40", "-n", "6", "--json")
    ids = {r["item_id"] for r in result["items"]}
    assert result["strategy"] == "fold_in" and len(ids) == 6
    assert ids <= GROUP_B and not ids & {"i31", "i33", "i40"}


def test_fold_in_reports_unknown_items(trained):
    partly = cli("recommend", "user", "newcomer", "--items", "i01,nope", "--json")
    assert partly["strategy"] == "fold_in" and "nope" in partly["message"]
    result = cli("recommend", "user", "newcomer", "--items", "nope,never", expect=1)
    assert "nope" in result.output and len(result.output.strip().splitlines()) == 1


def test_explain_names_the_users_own_items(trained):
    result = cli("recommend", "user", "u010", "-n", "5", "--explain", "--json")
    mine = {title(i) for i in user_items("u010")}
    for item in result["items"]:
        assert item["because"] and 1 <= len(item["because"]) <= 3
        assert set(item["because"]) <= mine
    assert "because" in cli("recommend", "user", "u010", "-n", "2", "--explain").output


def test_category_filter_still_returns_n(trained):
    for args in (("item", "i00"), ("user", "u003"), ("user", "newcomer")):
        result = cli("recommend", *args, "-n", "10", "--category", "odd", "--json")
        assert len(result["items"]) == 10, args
        assert {r["category"] for r in result["items"]} == {"Odd"}
    fewer = cli("recommend", "item", "i00", "-n", "50", "--category", "Odd", "--json")
    assert len(fewer["items"]) == 30 and "only 30" in fewer["message"]
    # an unknown category is no error (the API schema allows any): nothing qualifies, and why
    for args in (("item", "i00"), ("user", "u003"), ("user", "newcomer")):
        none = cli("recommend", *args, "--category", "Evn", "--json")
        assert none["items"] == [] and "'Even'" in none["message"], args  # a suggestion
    assert "unknown item" in cli("recommend", "item", "nope", "--category", "Evn", expect=1).output


# ---- unknown ids and messages ------------------------------------------------------------
def test_unknown_item_is_one_line_and_exit_1(trained):
    result = cli("recommend", "item", "nope", expect=1)
    assert result.output.strip().splitlines() == [
        "error: unknown item 'nope': not in the catalog and never rated"
    ]


def test_catalog_item_without_ratings_says_so_and_falls_back(trained):
    result = cli("recommend", "item", "i99", "--json")
    assert "nobody has rated it" in result["message"]
    # no semantic index here: the chain's next step, bestsellers of i99's category ("Odd")
    assert len(result["items"]) == 10 and {r["model"] for r in result["items"]} == {"popularity"}
    assert {r["category"] for r in result["items"]} == {"Odd"} and result[
        "strategy"
    ] == "popularity"
    counts = [r["score"] for r in result["items"]]
    assert counts == sorted(counts, reverse=True)


def test_bad_n_is_a_usage_error(trained):
    assert cli("recommend", "item", "i00", "-n", "0", expect=2).exit_code == 2


def test_recommend_before_training_says_train(recsys_home):
    result = cli("recommend", "item", "i00", expect=1)
    assert "recsys train als" in result.output


# ---- training: skip, force, hyperparameters, errors ---------------------------------------
def test_up_to_date_skip_force_and_changed_parameters(trained):
    first = cli("models", "list", "--json")
    assert len(first) == 1
    skipped = cli("train", "mf")
    assert "model is up to date" in skipped.output
    assert cli("train", "mf", "--json")["skipped"] is True
    forced = cli("train", "mf", "--force", "--json")
    assert not forced["skipped"] and forced["version"] != first[0]["version"]
    changed = cli("train", "mf", "--factors", "3", "--json")
    assert not changed["skipped"] and changed["params"]["factors"] == 3
    assert cli("train", "mf", "--factors", "3", "--json")["skipped"] is True
    current = cli("models", "show", "mf", "--json")  # the old name of the kind still works
    assert current["version"] == changed["version"] and current["params"]["factors"] == 3


def test_new_ratings_trigger_retraining(trained, tmp_path):
    extra = tmp_path / "more.csv"
    extra.write_text("user,item,rating,timestamp\nu500,i01,5,1700000000\n")
    cli("ingest", extra, "-q")
    result = cli("train", "mf", "--json")
    assert not result["skipped"] and result["counts"]["users"] == 201
    assert cli("recommend", "user", "u500", "--json")["strategy"] == "als"


def test_hyperparameters_from_env_and_config(trained, monkeypatch, tmp_path):
    monkeypatch.setenv("RECSYS_MF_ITERATIONS", "3")
    monkeypatch.delenv("RECSYS_MF_REGULARIZATION")  # env beats the file
    config = tmp_path / "config.toml"
    config.write_text('[mf]\nregularization = 0.5\nconfidence = "binary"\n')
    result = cli("--config", config, "train", "mf", "--alpha", "1.5", "--json")
    assert result["params"]["iterations"] == 3 and result["params"]["regularization"] == 0.5
    assert result["params"]["alpha"] == 1.5 and result["params"]["confidence"] == "binary"
    assert cli("train", "mf", "--confidence", "sideways", expect=2).exit_code == 2


def test_train_on_empty_store_and_too_little_data(recsys_home, tmp_path):
    result = cli("train", "mf", expect=1)
    assert "no ratings" in result.output and "recsys ingest" in result.output
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("user,item,rating,timestamp\nu1,i1,5,1700000000\nu1,i2,4,1700000001\n")
    cli("ingest", tiny, "-q")
    assert "too little data" in cli("train", "mf", expect=1).output


def test_train_with_evaluate_records_metrics(trained):
    result = cli("train", "mf", "--evaluate", "--json")
    assert not result["skipped"] and result["metrics"]["models"]["als"]["ndcg"] > 0
    manifest = cli("models", "show", "mf", "--json")
    assert manifest["metrics"]["models"]["popularity"]["ndcg"] >= 0
    assert "als @10" in cli("models", "show", "mf").output
    assert cli("train", "mf", "--evaluate", "--json")["skipped"] is True


def test_status_lists_the_mf_model(trained):
    models = cli("status", "--json")["models"]
    assert models["als"]["version"] and models["als"]["counts"]["ratings"] > 1500
    assert models["als"]["size_bytes"] > 0 and models["als"]["params"]["factors"] == 4
    assert models["ease"] is None  # every kind of the table is listed, trained or not


def test_train_output_and_progress_quiet_off_terminal(trained):
    result = cli("train", "mf", "--force")
    assert "trained als" in result.output and "fit" in result.output


# ---- the loaded-model cache --------------------------------------------------------------
def test_service_swaps_to_a_newly_published_version(trained):
    from recsys import service
    from recsys.config import load_settings

    settings = load_settings(overrides={"server.reload_check_seconds": 0.0})
    before = service.similar_items(settings, "i00", 3).model_version
    new = cli("train", "mf", "--force", "--json")["version"]
    assert service.similar_items(settings, "i00", 3).model_version == new != before
    cli("models", "rollback", "mf")
    assert service.recommend_user(settings, "u001", 3).model_version == before


def test_loaded_cache_keeps_serving_while_a_new_version_is_broken(trained):
    from recsys.config import load_settings
    from recsys.service.models import clear, loaded

    clear()
    settings = load_settings(overrides={"server.reload_check_seconds": 0.0})
    calls = []

    def loader(folder, manifest):
        calls.append(manifest["version"])
        return manifest["version"]

    first = loaded(settings, "als", loader)
    assert loaded(settings, "als", loader) is first and len(calls) == 1
    new = cli("train", "mf", "--force", "--json")["version"]
    (settings.models_dir / "als" / new / "item_factors.npy").write_bytes(b"garbage")
    assert loaded(settings, "als", loader).version == first.version  # old model keeps serving
    assert loaded(settings, "als", loader).version == first.version and len(calls) == 1


def test_one_time_buyers_are_served_though_left_out_of_the_fit(trained, tmp_path, monkeypatch):
    extra = tmp_path / "solo.csv"
    extra.write_text("user,item,rating,timestamp\nsolo,i98,5,1700000000\nsolo2,i01,5,1700000000\n")
    cli("ingest", extra, "-q")
    result = cli("train", "mf", "--json")
    assert result["counts"]["users"] == 202 and result["counts"]["fit_users"] == 200
    picks = cli("recommend", "user", "solo2", "-n", "5", "--json")
    assert picks["strategy"] == "als" and {r["item_id"] for r in picks["items"]} <= GROUP_A
    lonely = cli("recommend", "item", "i98", "--json")  # its one rater was left out of the fit
    assert "learned nothing about item 'i98'" in lonely["message"]
    assert lonely["items"] and {r["model"] for r in lonely["items"]} == {"popularity"}
    assert "i98" not in {
        r["item_id"] for r in cli("recommend", "user", "solo", "-n", "60", "--json")["items"]
    }
    everyone = cli("train", "mf", "--min-user-ratings", "1", "--json")
    assert everyone["counts"]["fit_users"] == 202 and everyone["params"]["min_user_ratings"] == 1
    monkeypatch.setenv("RECSYS_MF_MIN_USER_RATINGS", "1")
    assert cli("train", "mf", "--json")["skipped"] is True
