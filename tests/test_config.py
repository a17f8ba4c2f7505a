"""Settings precedence, validation, `recsys config`, and config.toml staying true."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from recsys.config import load_settings, render_default_toml
from recsys.errors import ConfigError

from helpers import cli

REPO = Path(__file__).resolve().parents[1]


def test_repository_config_toml_lists_every_default():
    assert (REPO / "config.toml").read_text().strip() == render_default_toml().strip()


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    # The ALS section's old name [mf] (and RECSYS_MF_*) keeps working in files and the env.
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mf]\nfactors = 32\niterations = 7\n[ingest]\nbatch_size = 500\n")
    env = {"RECSYS_MF_FACTORS": "48", "RECSYS_HOME": str(tmp_path / "envhome")}
    s = load_settings(
        config_file=str(cfg), overrides={"als.factors": 99, "als.alpha": None}, environ=env
    )
    assert s.als.factors == 99 and s.sources["als.factors"] == "flag"
    s = load_settings(config_file=str(cfg), environ=env)
    assert s.als.factors == 48 and s.sources["als.factors"] == "env RECSYS_MF_FACTORS"
    assert s.als.iterations == 7 and s.sources["als.iterations"] == f"file {cfg}"
    assert s.als.alpha == 2.0 and s.sources["als.alpha"] == "default"
    assert s.home == tmp_path / "envhome" and s.db_url.endswith("envhome/recsys.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mf]\nfactorz = 3\n", "unknown setting 'mf.factorz'"),
        ("[nope]\nx = 1\n", "unknown section [nope]"),
        ("[mf]\nfactors = 'many'\n", "setting 'mf.factors' must be int"),
        ("[server]\nprotect_all = 1\n", "setting 'server.protect_all' must be bool"),
        ("[als]\nconfidence = 'sideways'\n", "setting 'als.confidence' must be one of linear"),
        ("[mf\n", "not valid TOML"),
        (
            "[server]\nimage_timeout_seconds = 0\n",
            "'server.image_timeout_seconds' must be a positive",
        ),
    ],
)
def test_bad_config_file_names_the_key(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_settings(config_file=str(cfg), environ={})
    result = cli("--config", cfg, "status", expect=1)
    assert message in result.stderr and "Traceback" not in result.output


def test_bad_env_value_is_a_clear_error():
    with pytest.raises(
        ConfigError, match="RECSYS_INGEST_BATCH_SIZE: setting 'ingest.batch_size' must be int"
    ):
        load_settings(environ={"RECSYS_INGEST_BATCH_SIZE": "lots"})


def test_config_command_shows_values_and_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_SERVER_PORT", "9001")
    monkeypatch.setenv("RECSYS_API_KEY", "s3cret")
    rows = {r["key"]: r for r in cli("--db", f"sqlite:///{tmp_path}/x.db", "config", "--json")}
    assert (
        rows["server.port"]["value"] == 9001
        and rows["server.port"]["source"] == "env RECSYS_SERVER_PORT"
    )
    assert rows["store.url"]["source"] == "flag"
    assert rows["server.api_key"]["value"] == "***"  # never printed
    assert rows["als.factors"]["source"] == "default" and rows["als.factors"]["help"]


def test_repository_config_toml_uncommented_gives_the_defaults_and_commented_pins_nothing(tmp_path):
    import re

    from recsys.config import Settings

    text = (REPO / "config.toml").read_text()
    assert load_settings(config_file=str(REPO / "config.toml"), environ={}).sources == (
        load_settings(environ={}).sources
    )  # every line commented: the file sets nothing, so tuned values are not pinned
    uncommented = tmp_path / "all.toml"
    uncommented.write_text(re.sub(r"(?m)^#(\w+ = )", r"\1", text))
    loaded = load_settings(config_file=str(uncommented), environ={})
    values = {k: v for k, v in dataclasses.asdict(loaded).items() if k != "sources"}
    assert values == {k: v for k, v in dataclasses.asdict(Settings()).items() if k != "sources"}
    assert all(source.startswith("file") for source in loaded.sources.values())


def test_tuned_hyperparameters_sit_between_the_config_file_and_the_defaults(tmp_path):
    from recsys.models.kinds import KINDS
    from recsys.models.tuning import write_tuning
    from recsys.service.train import model_params

    home = tmp_path / "home"
    write_tuning(home / "models", {"best": "ease", "models": {
        "ease": {"params": {"regularization": 123.0, "max_items": 10000}},
        "als": {"params": {"factors": 48, "regularization": 20.0, "alpha": 3.0}},
    }})  # fmt: skip
    env = {"RECSYS_HOME": str(home)}
    assert model_params(load_settings(environ=env), KINDS["ease"])["regularization"] == 123.0
    cfg = tmp_path / "c.toml"
    cfg.write_text("[als]\nregularization = 5.0\n")
    als = model_params(
        load_settings(config_file=str(cfg), overrides={"als.alpha": 1.0}, environ=env),
        KINDS["als"],
    )
    assert als["factors"] == 48  # tuned beats the default
    assert als["regularization"] == 5.0  # the config file beats tuned
    assert als["alpha"] == 1.0  # a flag beats tuned
    env["RECSYS_ALS_FACTORS"] = "12"
    assert model_params(load_settings(environ=env), KINDS["als"])["factors"] == 12  # env too
    assert model_params(load_settings(environ=env), KINDS["als"], use_tuned=False)["alpha"] == 2.0
