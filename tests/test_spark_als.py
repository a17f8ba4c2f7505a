"""ALS fitted by Spark MLlib (als.engine = spark) in local[2]: it publishes the implicit
trainer's artifact, and recommend, serve and evaluate work on it unchanged; without pyspark or
Java the error is one line naming what to install.

One Spark session per module (a JVM start costs seconds); every fit in the module reuses it.
The tests that run Spark take minutes on this shared 2-core machine (3-5 min measured under
load), so they are marked `slow` and `spark`: CI runs them with `pytest -m spark`. The
error-path and tuning tests start no JVM, need no pyspark and stay in the default run.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.models.base import SHARED_ARRAYS

from helpers import cli
from test_mf import GROUP_A, GROUP_B, ingest_taste_groups

cli_app = importlib.import_module("recsys.cli.app")
SPARK = {  # a small rank and few iterations: each Spark iteration pays seconds of job overhead
    "RECSYS_ALS_ENGINE": "spark",
    "RECSYS_ALS_SPARK_MASTER": "local[2]",
    "RECSYS_ALS_FACTORS": "4",
    "RECSYS_ALS_REGULARIZATION": "5",
    "RECSYS_ALS_ITERATIONS": "6",
}


def spark_missing() -> str | None:
    """Why Spark cannot run here (no pyspark, no Java 17), or None."""
    from recsys.errors import MissingDependency
    from recsys.models.als_spark import require_spark

    try:
        require_spark()
    except MissingDependency as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def spark():
    why = spark_missing()
    if why:
        pytest.skip(f"Spark cannot run here: {why}")
    from recsys.models.als_spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def fresh_cli_globals(monkeypatch):
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())


@pytest.fixture(scope="module")
def spark_home(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The taste groups ingested and ALS trained by Spark through the CLI, once per module."""
    home = tmp_path_factory.mktemp("spark") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSYS_HOME", str(home))
        mp.setattr(cli_app, "_globals", cli_app.GlobalOptions())
        for env, value in SPARK.items():
            mp.setenv(env, value)
        from recsys.service import data

        data._engine.cache_clear()
        ingest_taste_groups(home.parent / "data")
        result = cli("train", "als", "-q", "--json")
        data._engine.cache_clear()
    assert result["params"]["engine"] == "spark" and not result["skipped"]
    return home


@pytest.fixture
def spark_trained(spark_home: Path, recsys_home: Path, monkeypatch) -> Path:
    import shutil

    shutil.copytree(spark_home, recsys_home)
    for env, value in SPARK.items():
        monkeypatch.setenv(env, value)
    return recsys_home


@pytest.mark.slow
@pytest.mark.spark
def test_spark_publishes_the_implicit_trainers_artifact(spark_home, spark_trained):
    from recsys.models.als import ALSModel
    from recsys.models.registry import Registry

    folder, manifest = Registry(spark_trained / "models").open("als")
    assert set(manifest["files"]) == {f"{n}.npy" for n in (*SHARED_ARRAYS, "item_factors")}
    assert manifest["params"]["engine"] == "spark"
    assert manifest["params"]["spark_staging"] == str(spark_home / "spark")  # the home trained in
    assert manifest["counts"]["factors"] == 4
    # regParam = regularization / mean ratings per fitted user (ALS-WR, see als_spark)
    per_user = manifest["counts"]["fit_ratings"] / manifest["counts"]["fit_users"]
    assert manifest["counts"]["spark_reg_param"] == pytest.approx(5.0 / per_user)
    assert not any((spark_home / "spark").iterdir())  # staging cleaned after the fit
    model = ALSModel.load(folder, manifest)
    assert model.item_factors.shape == (model.n_items, 4)
    assert model.item_factors.dtype == np.float32
    # ids map back to our columns: items of one taste group lie together
    ids = model.item_id_list(np.arange(model.n_items))
    a = [ids.index(i) for i in sorted(GROUP_A)]
    b = [ids.index(i) for i in sorted(GROUP_B)]
    within = (model.normed[a] @ model.normed[a].T).mean()
    across = (model.normed[a] @ model.normed[b].T).mean()
    assert within > 0.5 > across


@pytest.mark.slow
@pytest.mark.spark
def test_recommend_and_serve_answer_from_the_spark_model(spark_trained):
    similar = cli("recommend", "item", "i00", "-n", "5", "--model", "als", "--json")
    assert similar["strategy"] == "als"
    assert similar["items"] and {r["item_id"] for r in similar["items"]} <= GROUP_A
    picks = cli("recommend", "user", "u150", "-n", "5", "--model", "als", "--explain", "--json")
    assert picks["strategy"] == "als" and {r["item_id"] for r in picks["items"]} <= GROUP_B
    assert all(r["because"] for r in picks["items"])
    visitor = cli("recommend", "user", "nobody", "--items", "i31,i32", "-n", "5", "--json")
    assert {r["item_id"] for r in visitor["items"]} <= GROUP_B
    ready = cli("serve", "--get", "/health/ready")
    assert json.loads(ready.stdout)["checks"]["als"] == "ok"

    from litestar.testing import TestClient

    from recsys.config import load_settings
    from recsys.http.app import create_app

    with TestClient(create_app(load_settings()), raise_server_exceptions=False) as client:
        r = client.post("/recommendations/user", json={"user_id": "u150", "n": 5, "model": "als"})
        assert r.status_code == 200, r.text
        assert {i["item_id"] for i in r.json()["items"]} <= GROUP_B
    # the same up-to-date check; where Spark ran (master, staging; this home was copied) aside
    assert cli("train", "als", "--master", "local[1]", "--json")["skipped"] is True
    assert cli("train", "als", "--engine", "implicit", "--json")["skipped"] is False


@pytest.mark.slow
@pytest.mark.spark
def test_evaluate_fits_spark_when_the_engine_says_so(spark_trained):
    report = cli("evaluate", "als", "--json")
    assert report["params"]["als"]["engine"] == "spark"
    als, popularity = report["models"]["als"], report["models"]["popularity"]
    assert als["ndcg"] > popularity["ndcg"]  # two taste groups: ALS must find them


@pytest.mark.slow
@pytest.mark.spark
def test_movielens_latest_small_on_spark(spark, shared_data, recsys_home, monkeypatch):
    folder = shared_data / "movielens-ml-latest-small"
    for env, value in {**SPARK, "RECSYS_ALS_FACTORS": "32", "RECSYS_ALS_REGULARIZATION": "50",
                       "RECSYS_ALS_ITERATIONS": "5", "RECSYS_EVALUATE_SPLIT": "random"}.items():  # fmt: skip
        monkeypatch.setenv(env, value)
    cli("ingest", folder / "ratings.csv", "--map", "user=userId", "--map", "item=movieId",
        "--map", "rating=rating", "--map", "timestamp=timestamp", "--rating-range", "0.5:5",
        "-q")  # fmt: skip
    result = cli("train", "als", "--evaluate", "-q", "--json")
    assert result["counts"]["ratings"] == 100_836 and result["params"]["engine"] == "spark"
    metrics = result["metrics"]["models"]
    assert metrics["als"]["ndcg"] > metrics["popularity"]["ndcg"]
    picks = cli("recommend", "user", "1", "-n", "10", "--model", "als", "--json")
    assert len(picks["items"]) == 10 and picks["strategy"] == "als"


# ---- without pyspark or Java: one line, exit 1 (no JVM started, no pyspark needed) -----------
@pytest.fixture
def taste_store(recsys_home: Path) -> Path:
    ingest_taste_groups(recsys_home.parent / "data")
    return recsys_home


def run_recsys(
    home: Path, env: dict[str, str], *args: str, code: str = ""
) -> subprocess.CompletedProcess:
    """`recsys --home HOME ARGS` in a fresh interpreter (after running `code`)."""
    script = f"import sys\n{code}\nfrom recsys.cli import main\nsys.argv = ['recsys', *sys.argv[1:]]\nmain()"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "JAVA_HOME"))}
    return subprocess.run(
        [sys.executable, "-c", script, "--home", str(home), *args],
        capture_output=True, text=True, env={**base, **env}, timeout=120,
    )  # fmt: skip


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output
    assert "Traceback" not in output and len(output.splitlines()) == 1, output
    for needle in needles:
        assert needle in output, output


def test_without_java_the_error_names_it(taste_store, tmp_path):
    empty = tmp_path / "bin"  # a PATH with no java on it
    empty.mkdir()
    done = run_recsys(taste_store, {"PATH": str(empty)}, "train", "als", "--engine", "spark")
    assert_one_line_error(done, "Java 17", "JAVA_HOME")
    done = run_recsys(
        taste_store, {"JAVA_HOME": str(tmp_path / "no-jdk")}, "train", "als", "--engine", "spark"
    )
    assert_one_line_error(done, "Java 17")


def test_without_pyspark_the_error_names_the_extra(taste_store):
    # None in sys.modules is Python's own way to make an import fail as if not installed.
    done = run_recsys(
        taste_store, {}, "train", "als", "--engine", "spark", code="sys.modules['pyspark'] = None"
    )
    assert_one_line_error(done, "pip install 'recsys[spark]'")
    assert "pyspark" in done.stdout + done.stderr


# ---- tuning: the engine picks the search space; a tuned record never picks the engine -------
def test_spark_has_its_own_search_space_and_tune_never_sets_the_engine(recsys_home):
    import optuna

    from recsys.config import load_settings
    from recsys.models.als import ALSModel
    from recsys.models.kinds import KINDS
    from recsys.models.tuning import write_tuning
    from recsys.service.train import model_params

    settings = load_settings(overrides={"als.engine": "spark"})
    before = model_params(settings, KINDS["als"], use_tuned=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        space = ALSModel.search_space(study.ask(), before)
        assert 16 <= space["factors"] <= 128 and space["iterations"] <= 20
        assert space["regularization"] >= 0.1
        ALSModel.check_params({**before, **space})
    tuned = {**before, "regularization": 12.5, "spark_master": "spark://elsewhere:7077"}
    write_tuning(settings.models_dir, {"models": {"als": {"params": tuned}}})
    params = model_params(load_settings(), KINDS["als"])
    assert params["regularization"] == 12.5  # a tuned hyperparameter is taken...
    assert params["engine"] == "implicit" and params["spark_master"] == "local[*]"  # ...not these


def test_spark_needs_a_positive_alpha():
    from recsys.config import Settings
    from recsys.errors import InvalidInput
    from recsys.models.als import ALSModel

    params = {**Settings().als.__dict__, "engine": "spark", "alpha": 0.0}
    with pytest.raises(InvalidInput, match="alpha"):
        ALSModel.check_params(params)


# ---- the pieces around Spark, without a JVM --------------------------------------------------
def test_parquet_chunks_hold_whole_users_and_the_confidences(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with recsys[spark]")
    from test_contract import taste_matrix

    from recsys.models.als import confidence
    from recsys.models.als_spark import write_parquet

    matrix = taste_matrix()
    matrix.data = confidence(matrix.data, "linear", 2.0)
    files = write_parquet(matrix, tmp_path / "ratings", chunk=500)  # ~2,000 ratings
    assert files == len(list((tmp_path / "ratings").glob("part-*.parquet"))) >= 4
    users_per_file = [set(pq.read_table(f).column("user").to_pylist())
                      for f in sorted((tmp_path / "ratings").iterdir())]  # fmt: skip
    assert all(not (a & b) for i, a in enumerate(users_per_file) for b in users_per_file[i + 1 :])
    table = pq.read_table(tmp_path / "ratings")
    import scipy.sparse as sp

    got = sp.csr_matrix(
        (table.column("value").to_numpy() + 1.0,
         (table.column("user").to_numpy(), table.column("item").to_numpy())),
        shape=matrix.shape,
    )  # fmt: skip
    assert table.column("user").type == table.column("item").type  # int32 ids, Spark's type
    assert abs(got - matrix).max() < 1e-6 and got.nnz == matrix.nnz


def test_spark_factors_land_in_our_column_order_with_zeros_for_unseen(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow comes with recsys[spark]")
    import pyarrow.parquet as pq

    from recsys.models.als_spark import read_factors

    (tmp_path / "f").mkdir()
    rows = {7: [1.0, 2.0], 0: [3.0, 4.0], 3: [5.0, 6.0]}  # Spark's output is in no order
    for n, (item, vector) in enumerate(rows.items()):
        table = pa.table({"id": pa.array([item], pa.int32()),
                          "features": pa.array([vector], pa.list_(pa.float32()))})  # fmt: skip
        pq.write_table(table, tmp_path / "f" / f"part-{n}.parquet")
    factors = read_factors(tmp_path / "f", 9, 2)
    assert factors.dtype == np.float32 and factors.shape == (9, 2)
    for item, vector in rows.items():
        assert factors[item].tolist() == vector
    assert not factors[[1, 2, 4, 5, 6, 8]].any()


def test_a_spark_model_re_solves_users_with_als_wr_regularisation():
    import scipy.sparse as sp

    from recsys.config import Settings
    from recsys.models.als import ALSModel
    from recsys.models.base import shared_arrays

    rng = np.random.default_rng(0)
    ratings = sp.random(40, 12, density=0.4, random_state=1, format="csr", dtype=np.float32)
    ratings.data[:] = 4.0
    arrays = {**shared_arrays(ratings, np.arange(40).astype(bytes), np.arange(12).astype(bytes)),
              "item_factors": rng.normal(size=(12, 3)).astype(np.float32)}  # fmt: skip
    base = {**Settings().als.__dict__, "regularization": 30.0}
    items, conf = np.array([1, 4, 5]), np.full(3, 9.0, dtype=np.float32)
    y = arrays["item_factors"].astype(np.float64)
    counts = np.diff(ratings.indptr)
    mean = counts[counts >= base["min_user_ratings"]].mean()

    def expected(reg: float) -> np.ndarray:
        a = y.T @ y + (y[items].T * (conf - 1.0)) @ y[items] + reg * np.eye(3)
        return np.linalg.solve(a, y[items].T @ conf)

    for engine, reg in (("implicit", 30.0), ("spark", 30.0 / mean * len(items))):
        model = ALSModel(arrays, {"params": {**base, "engine": engine}})
        assert np.allclose(model.solve_user(items, conf)[0], expected(reg))
