"""The HTTP API through Litestar's TestClient: every endpoint and error path, in-process.

A real uvicorn (hot reload, shutdown, schemathesis) is in test_http_live.py.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from recsys import service
from recsys.config import Settings
from recsys.http.app import create_app
from recsys.ingest.sample import generate_sample
from recsys.models.registry import Registry

from helpers import cli

KEY = "s3cret-key"
ERROR_KEYS = {"code", "message", "status"}


def make_settings(home: Path, **server: Any) -> Settings:
    settings = Settings()
    settings.paths.home = str(home)
    settings.server.reload_check_seconds = 0.1
    for key, value in server.items():
        setattr(settings.server, key, value)
    return settings


def build_home(root: Path, *, mf: bool = True) -> Path:
    """A small synthetic store (300 users, 60 items) and, optionally, a trained mf model."""
    home = root / "home"
    sample = generate_sample(root / "data", users=300, items=60, ratings=3000, seed=1)
    settings = make_settings(home)
    service.ingest(settings, [sample.meta_path, sample.reviews_path])
    if mf:
        service.train(settings, "als")
    return home


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_home(tmp_path_factory.mktemp("http"))


@contextmanager
def client_for(home: Path, *, lifespan: bool = True, **server: Any) -> Iterator[TestClient]:
    app = create_app(make_settings(home, **server))
    if lifespan:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    else:
        yield TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    with client_for(home) as c:
        yield c


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape, the right status, and no traceback text."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert ERROR_KEYS <= set(error) <= ERROR_KEYS | {"field"}
    assert error["status"] == status and error["message"]
    if code:
        assert error["code"] == code
    assert "Traceback" not in response.text and 'File "' not in response.text
    return error


def some_item_and_user(home: Path) -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{home / 'recsys.db'}")
    with engine.connect() as conn:
        user, item = conn.execute(
            text("select user_id, item_id from user_item_rating order by user_id, item_id limit 1")
        ).one()
    engine.dispose()
    return item, user


# ---- model endpoints ---------------------------------------------------------------------
def test_similar_items_carry_catalog_fields_and_model_version(client, home):
    item, _ = some_item_and_user(home)
    r = client.post("/matrix_factor/similar", json={"item_id": item, "n": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    version = Registry(home / "models").current("mf")
    assert r.headers["X-Model-Version"] == version == body["model_version"]
    assert body["kind"] == "similar" and body["query"] == item and body["strategy"] == "als"
    assert len(body["items"]) == 5 and item not in [i["item_id"] for i in body["items"]]
    for line in body["items"]:
        assert {"item_id", "score", "title", "image_url", "price", "category"} <= set(line)
    assert any(line["title"] for line in body["items"])


def test_similar_is_the_same_struct_the_cli_prints(client, home):
    item, _ = some_item_and_user(home)
    http = client.post("/matrix_factor/similar", json={"item_id": item, "n": 3}).json()
    direct = msgspec.to_builtins(service.similar_items(make_settings(home), item, n=3))
    assert http == json.loads(msgspec.json.encode(direct))


def test_user_recommendations_filter_seen_items(client, home):
    _, user = some_item_and_user(home)
    seen = service.recommend_user(make_settings(home), user, n=60, include_seen=True)
    filtered = client.post("/matrix_factor/user", json={"user_id": user, "n": 60}).json()
    unfiltered = client.post(
        "/matrix_factor/user", json={"user_id": user, "n": 60, "filter_already_liked": False}
    ).json()
    assert filtered["strategy"] == "als" and filtered["kind"] == "user"
    assert len(unfiltered["items"]) > len(filtered["items"])  # the user's own items come back
    assert [i["item_id"] for i in unfiltered["items"]] == [i.item_id for i in seen.items]


def test_unknown_user_gets_popular_items_or_a_fold_in(client, home):
    item, _ = some_item_and_user(home)
    popular = client.post("/matrix_factor/user", json={"user_id": "nobody-at-all", "n": 3})
    assert popular.status_code == 200 and popular.json()["strategy"] == "popular"
    folded = client.post(
        "/matrix_factor/user", json={"user_id": "nobody-at-all", "n": 3, "item_ids": [item]}
    )
    assert folded.status_code == 200 and folded.json()["strategy"] == "fold_in"
    assert item not in [i["item_id"] for i in folded.json()["items"]]
    assert folded.headers["X-Model-Version"] == Registry(home / "models").current("mf")


def test_unknown_ids_are_404(client):
    assert_error(
        client.post("/matrix_factor/similar", json={"item_id": "NO-SUCH-ITEM"}), 404, "not_found"
    )
    r = client.post("/matrix_factor/user", json={"user_id": "new", "item_ids": ["NOPE1", "NOPE2"]})
    assert "NOPE1" in assert_error(r, 404, "not_found")["message"]


def test_keyword_search_needs_no_model(client):
    r = client.post("/search", json={"query": "the", "top_k": 3, "mode": "keyword"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "keyword" and body["model_version"] is None
    assert "X-Model-Version" not in r.headers


def test_not_trained_says_which_train_to_run(tmp_path):
    home = build_home(tmp_path, mf=False)
    with client_for(home) as c:
        error = assert_error(
            c.post("/matrix_factor/similar", json={"item_id": "x"}), 409, "not_trained"
        )
        assert "recsys train als" in error["message"]
        error = assert_error(c.post("/search", json={"query": "soap", "mode": "semantic"}), 409)
        assert "recsys train ss" in error["message"]


# ---- validation, limits, one error shape -------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/matrix_factor/similar", {"item_id": "x", "n": 0}, "n"),
        ("/matrix_factor/similar", {"item_id": "x", "n": 101}, "n"),
        ("/matrix_factor/similar", {"item_id": "x", "n": "ten"}, "n"),
        ("/matrix_factor/similar", {"n": 3}, "item_id"),
        ("/matrix_factor/similar", {"item_id": ""}, "item_id"),
        ("/matrix_factor/similar", {"item_id": "x", "nn": 3}, "nn"),
        (
            "/matrix_factor/user",
            {"user_id": "u", "filter_already_liked": "yes"},
            "filter_already_liked",
        ),
        ("/matrix_factor/user", {"user_id": "u", "item_ids": ["a", 3]}, "item_ids[1]"),
        ("/search", {"query": "soap", "top_k": 1000}, "top_k"),
        ("/search", {"query": "x" * 513}, "query"),
        ("/search", {"query": "soap", "mode": "fuzzy"}, "mode"),
        ("/training", {"model_type": "svd"}, "model_type"),
    ],
)
def test_invalid_body_is_400_naming_the_field(client, path, body, field):
    r = client.post(path, json=body, headers={"X-API-Key": KEY})
    error = assert_error(r, 400, "invalid_input")
    assert error["field"] == field and error["message"].startswith(field)


def test_max_n_comes_from_the_config(home):
    with client_for(home, lifespan=False, max_n=5) as c:
        assert_error(c.post("/matrix_factor/similar", json={"item_id": "x", "n": 6}), 400)
        schema = c.get("/schema/openapi.json").json()
        similar = schema["components"]["schemas"]["SimilarRequest"]["properties"]["n"]
        assert similar["maximum"] == 5 and similar["minimum"] == 1


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"'])
def test_malformed_body_is_400(client, body):
    r = client.post(
        "/matrix_factor/similar", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid_input")


def test_body_over_the_limit_is_413(home):
    with client_for(home, lifespan=False, max_body_bytes=1024) as c:
        big = {"user_id": "u", "item_ids": ["B0" + "x" * 20] * 60}  # ~1.6 KB
        assert_error(c.post("/matrix_factor/user", json=big), 413, "body_too_large")
        assert c.post("/matrix_factor/user", json={"user_id": "u", "n": 1}).status_code == 200


def test_unknown_route_and_method(client):
    assert_error(client.get("/nope"), 404, "not_found")
    r = client.delete("/status")
    assert_error(r, 405, "method_not_allowed")


def test_bugs_are_a_generic_500_with_the_traceback_in_the_log(client, monkeypatch, capsys):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(service, "similar_items", broken)
    r = client.post("/matrix_factor/similar", json={"item_id": "x"})
    error = assert_error(r, 500, "internal_error")
    assert error["message"] == "internal server error" and "secret" not in r.text
    assert "secret internals" in capsys.readouterr().err  # logged server-side


# ---- auth and CORS ---------------------------------------------------------------------
def test_api_key_always_guards_training(home):
    with client_for(home, lifespan=False, api_key=KEY) as c:
        for response in (
            c.get("/training"),
            c.get("/training", headers={"X-API-Key": "wrong"}),
            c.post("/training", json={"model_type": "mf"}),
            c.get(f"/training/{'a' * 32}"),
        ):
            error = assert_error(response, 401, "unauthorized")
            assert "X-API-Key" in error["message"]
        assert c.get("/training", headers={"X-API-Key": KEY}).status_code == 200
        # Without protect_all the read routes stay open.
        assert c.get("/status").status_code == 200
        assert c.post("/matrix_factor/user", json={"user_id": "u"}).status_code == 200


def test_protect_all_extends_the_key_to_every_route_but_health(home):
    with client_for(home, lifespan=False, api_key=KEY, protect_all=True) as c:
        for path in ("/status", "/metrics", "/schema/openapi.json"):
            assert_error(c.get(path), 401, "unauthorized")
            assert c.get(path, headers={"X-API-Key": KEY}).status_code == 200
        assert_error(c.post("/matrix_factor/user", json={"user_id": "u"}), 401)
        assert c.get("/health/live").status_code == 200
        assert c.get("/health/ready").status_code in (200, 503)


def test_openapi_declares_the_api_key_only_when_set(home):
    with client_for(home, lifespan=False) as c:
        assert "securitySchemes" not in c.get("/schema/openapi.json").json().get("components", {})
    with client_for(home, lifespan=False, api_key=KEY) as c:
        schema = c.get("/schema/openapi.json").json()
        assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
        assert schema["paths"]["/training"]["post"]["security"] == [{"ApiKey": []}]
        assert "security" not in schema["paths"]["/status"]["get"]


def test_cors_is_off_unless_origins_are_configured(home):
    origin = {"Origin": "https://shop.example"}
    with client_for(home, lifespan=False) as c:
        assert "access-control-allow-origin" not in c.get("/status", headers=origin).headers
    with client_for(home, lifespan=False, cors_origins=["https://shop.example"]) as c:
        r = c.options(
            "/matrix_factor/user",
            headers={**origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type,x-api-key"},
        )  # fmt: skip
        assert r.status_code in (200, 204)
        assert r.headers["access-control-allow-origin"] == "https://shop.example"
        r = c.post("/matrix_factor/user", json={"user_id": "u", "n": 1}, headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://shop.example"
        assert "x-model-version" in r.headers["access-control-expose-headers"].lower()
        other = c.get("/status", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# ---- operations ------------------------------------------------------------------------
def test_status_reports_store_counts(client):
    r = client.get("/status")
    assert r.status_code == 200
    store = r.json()["store"]
    assert store["ratings"] > 0 and store["products"] > 0 and store["users"] > 0


def wait_ready(c: TestClient, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get("/health/ready")
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 503 and r.json()["status"] == "starting"
        time.sleep(0.05)
    raise AssertionError(f"not ready: {r.text}")


def test_health(client):
    assert client.get("/health/live").json() == {"status": "ok", "checks": {}}
    checks = wait_ready(client)["checks"]
    assert checks == {
        "store": "ok",
        "als": "ok",
        "ease": "not trained",
        "itemknn": "not trained",
        "rp3beta": "not trained",
        "popularity": "not trained",
        "ss": "not trained",
    }


def test_ready_is_503_until_started(home):
    with client_for(home, lifespan=False) as c:  # no lifespan: the warm-up never ran
        r = c.get("/health/ready")
        assert r.status_code == 503 and r.json()["status"] == "starting"


def test_ready_is_503_when_the_store_is_down(tmp_path):
    bad = make_settings(tmp_path / "home")
    bad.store.url = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    with TestClient(create_app(bad), raise_server_exceptions=False) as c:
        deadline = time.monotonic() + 20
        while (r := c.get("/health/ready")).json()["checks"]["store"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert r.status_code == 503 and r.json()["checks"]["store"] == "unavailable"
        assert_error(c.get("/status"), 503, "store_unavailable")


METRIC_LINE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$')


def test_metrics_in_prometheus_text_format(client, home):
    item, _ = some_item_and_user(home)
    wait_ready(client)
    for _ in range(3):
        client.post("/matrix_factor/similar", json={"item_id": item})
    client.post("/matrix_factor/similar", json={"item_id": "x", "n": 0})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.strip().splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert all(METRIC_LINE.match(line) for line in samples), [
        s for s in samples if not METRIC_LINE.match(s)
    ]
    text = r.text
    route = 'method="POST",route="/matrix_factor/similar"'  # prometheus_client sorts labels
    assert f'recsys_http_requests_total{{{route},status="200"}} 3.0' in text
    assert f'recsys_http_requests_total{{{route},status="400"}} 1.0' in text
    assert f"recsys_http_request_duration_seconds_count{{{route}}} 4.0" in text
    assert f'recsys_http_request_duration_seconds_bucket{{le="+Inf",{route}}} 4.0' in text
    version = Registry(home / "models").current("mf")
    assert f'recsys_model_info{{kind="als",version="{version}"}} 1.0' in text
    assert "recsys_ready 1.0" in text
    assert re.search(r'recsys_training_jobs\{state="running"\} \d+', text)


def test_openapi_schema_is_complete_and_offline(client):
    schema = client.get("/schema/openapi.json").json()
    paths = schema["paths"]
    expected = {
        ("/status", "get"), ("/training", "post"), ("/training", "get"),
        ("/training/{job_id}", "get"), ("/matrix_factor/similar", "post"),
        ("/matrix_factor/user", "post"), ("/recommendations/similar", "post"),
        ("/recommendations/user", "post"), ("/search", "post"), ("/health/live", "get"),
        ("/health/ready", "get"), ("/metrics", "get"), ("/feedback", "post"), ("/items", "post"),
        # what the dashboard draws (tests/test_browse.py)
        ("/items/{item_id}", "get"), ("/items/{item_id}/image", "get"),
        ("/users/{user_id}/ratings", "get"), ("/stats", "get"), ("/categories", "get"),
        ("/evaluations/latest", "get"), ("/search/similar", "post"),
    }  # fmt: skip
    assert {(p, m) for p, ops in paths.items() for m in ops} == expected
    for path, method in expected:
        op = paths[path][method]
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["schema"]["examples"], path
    similar = paths["/matrix_factor/similar"]["post"]["responses"]
    assert {"200", "400", "404", "409", "413"} <= set(similar)
    assert similar["404"]["content"]["application/json"]["examples"]
    # No interactive page that would pull JavaScript from a CDN.
    for page in ("/schema", "/schema/swagger", "/schema/redoc", "/schema/elements"):
        r = client.get(page)
        assert r.status_code == 404 or not re.search(r"cdn|unpkg|googleapis", r.text), page


def test_access_log_lines_text_and_json(home, capsys):
    item, _ = some_item_and_user(home)
    with client_for(home, lifespan=False) as c:
        capsys.readouterr()
        c.post("/matrix_factor/similar", json={"item_id": item})
        c.get("/nope%0Aforged 200")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert re.search(r" POST /matrix_factor/similar 200 [0-9.]+ms model=\d{8}T\d{6}Z", lines[0])
    assert "<unmatched> /nope\\nforged 200 404" in lines[1]
    with client_for(home, lifespan=False, log_format="json") as c:
        capsys.readouterr()
        c.post("/matrix_factor/similar", json={"item_id": item})
    record = json.loads(capsys.readouterr().err.strip())
    assert record["method"] == "POST" and record["route"] == "/matrix_factor/similar"
    assert record["status"] == 200 and record["latency_ms"] > 0
    assert record["model_version"] == Registry(home / "models").current("mf")


# ---- training jobs -----------------------------------------------------------------------
def wait_job(c: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/training/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']}")


def test_training_job_publishes_a_new_version(tmp_path):
    home = build_home(tmp_path)
    before = Registry(home / "models").current("mf")
    with client_for(home) as c:
        r = c.post("/training", json={"model_type": "mf", "force_retrain": True})
        assert r.status_code == 202, r.text
        job = r.json()
        assert (
            job["state"] == "queued"
            and job["kind"] == "als"  # "mf" is an alias of als
            and re.fullmatch(r"[0-9a-f]{32}", job["id"])
        )
        done = wait_job(c, job["id"])
        assert done["state"] == "succeeded", done
        assert done["version"] == Registry(home / "models").current("mf") != before
        assert done["seconds"] > 0 and done["started_at"] and done["finished_at"]
        assert done["progress"]["done"] == done["progress"]["total"] > 0
        # the job yields the CPU to requests: low priority, half the cores
        threads = os.environ.get("OMP_NUM_THREADS") or max(1, len(os.sched_getaffinity(0)) // 2)
        log = (home / "jobs" / f"{job['id']}.log").read_text()
        nice = min(19, os.nice(0) + 10)  # relative to the server's own niceness
        assert f"als training job {job['id']}: {threads} threads, niceness {nice}" in log, log
        assert [j["id"] for j in c.get("/training").json()["jobs"]] == [job["id"]]
        # Nothing changed since: without force the job is skipped and names the current version.
        again = wait_job(c, c.post("/training", json={"model_type": "mf"}).json()["id"])
        assert (
            again["state"] == "succeeded"
            and again["skipped"]
            and again["version"] == done["version"]
        )
        assert len(c.get("/training?limit=1").json()["jobs"]) == 1
        # The server answers with the new version once its refresher has seen it.
        deadline = time.monotonic() + 10
        item, _ = some_item_and_user(home)
        while time.monotonic() < deadline:
            r = c.post("/matrix_factor/similar", json={"item_id": item})
            if r.headers["X-Model-Version"] == done["version"]:
                break
            time.sleep(0.05)
        assert r.headers["X-Model-Version"] == done["version"]


def test_failed_training_reports_the_error(tmp_path):
    home = tmp_path / "home"
    cli("--home", home, "status")  # an empty store
    with client_for(home) as c:
        job = wait_job(c, c.post("/training", json={"model_type": "mf"}).json()["id"])
        assert job["state"] == "failed" and job["error"]["code"] == "conflict"
        assert "recsys ingest" in job["error"]["message"]
        assert 'recsys_training_jobs{state="failed"} 1' in c.get("/metrics").text


def test_second_training_of_a_kind_is_409(home):
    """The lock file is what every worker checks; holding it stands in for a running job."""
    jobs = home / "jobs"
    jobs.mkdir(exist_ok=True)
    with open(jobs / "als.lock", "w") as lock, client_for(home, lifespan=False) as c:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # "mf" is the old name of als: the same lock, the same 409
        error = assert_error(c.post("/training", json={"model_type": "mf"}), 409, "conflict")
        assert "already running" in error["message"]
        fcntl.flock(lock, fcntl.LOCK_UN)


def test_job_ids_are_checked(client):
    assert_error(client.get("/training/../../etc"), 404)
    assert_error(client.get("/training/ABC"), 400, "invalid_input")
    assert_error(client.get(f"/training/{'0' * 32}"), 404, "not_found")
    assert_error(client.get("/training?limit=0"), 400, "invalid_input")


# ---- the CLI -----------------------------------------------------------------------------
def test_serve_get_answers_one_request_in_process(home):
    result = cli("--home", home, "serve", "--get", "/status")
    assert json.loads(result.stdout)["store"]["ratings"] > 0
    ready = cli("--home", home, "serve", "--get", "/health/ready")
    assert json.loads(ready.stdout)["checks"]["als"] == "ok"
    missing = cli("--home", home, "serve", "--get", "/nope", expect=1)
    assert json.loads(missing.stdout)["error"]["code"] == "not_found"
    metrics = cli("--home", home, "serve", "--get", "metrics")
    assert "recsys_http_requests_total" in metrics.stdout


def test_a_broken_stderr_never_fails_a_request(monkeypatch):
    from recsys.http import access_log

    line = {"ts": "t", "method": "GET", "route": "/status", "path": "/status", "status": 200,
            "latency_ms": 1.0, "model_version": None}  # fmt: skip
    closed = io.StringIO()
    closed.close()
    for stderr in (closed, None):  # a closed pipe, no stderr at all (pythonw, some daemons)
        monkeypatch.setattr(sys, "stderr", stderr)
        access_log.write(line)  # no exception


def test_a_model_a_request_loaded_gets_its_serving_indexes_from_the_refresher(home):
    """A request that finds the cache empty loads the plain model (no graph, no table); the next
    refresher round builds what the server's own loader would have, on that same model."""
    import math

    from recsys.server.state import ServerState
    from recsys.service.models import loaded

    settings = Settings()
    settings.paths.home = str(home)
    settings.server.reload_check_seconds = math.inf  # as the routes call the service
    item, _ = some_item_and_user(home)
    before = service.similar_items(settings, item, n=5)
    from recsys.models.kinds import KINDS
    from recsys.service.recommend import current_model

    model = current_model(settings, KINDS["als"])
    assert model.similar_table is None and model.scorer is None
    ServerState(settings).refresh_now()
    assert loaded(settings, "als", None).model is model  # not reloaded: prepared in place
    assert model.similar_table is not None and model.scorer is not None
    after = service.similar_items(settings, item, n=5)
    assert [round(i.score, 4) for i in after.items] == [round(i.score, 4) for i in before.items]


def test_serving_indexes_that_fail_to_build_are_tried_once(home, monkeypatch, caplog):
    import math

    from recsys.models.als import ALSModel
    from recsys.server.state import ServerState

    settings = Settings()
    settings.paths.home = str(home)
    settings.server.reload_check_seconds = math.inf
    item, _ = some_item_and_user(home)
    service.similar_items(settings, item, n=5)  # a request loads the plain model first
    calls = []

    def failing(self, *args, **kwargs):  # stands in for e.g. a MemoryError on a huge catalog
        calls.append(1)
        raise RuntimeError("no memory for the table")

    monkeypatch.setattr(ALSModel, "build_serving_indexes", failing)
    state = ServerState(settings)
    state.refresh_now()
    state.refresh_now()
    assert len(calls) == 1 and state.checks["als"] == "ok"  # it still answers, by exact scan
    assert sum("without its serving indexes" in r.message for r in caplog.records) == 1
    assert service.similar_items(settings, item, n=5).items


def test_the_refresher_freezes_what_it_loaded_out_of_the_cyclic_gc(tmp_path, monkeypatch):
    """A full collection over the catalog snapshot stalled every request for 100-250 ms: what a
    refresher round loads is frozen (after a collection when a model version changed)."""
    from recsys.server import state as server_state

    home = build_home(tmp_path)
    settings = make_settings(home)
    calls: list[dict] = []
    monkeypatch.setattr(server_state, "freeze_long_lived", lambda **kw: calls.append(kw))
    state = server_state.ServerState(settings)
    state.refresh_now()  # the first round loads the catalog snapshot and the model
    assert calls == [{"collect_first": True}]
    state.refresh_now()  # nothing changed: nothing to freeze
    assert len(calls) == 1
    service.upsert_items(settings, [{"item_id": "NEW1", "title": "A new product"}])
    state.refresh_now()  # the catalog moved, the models did not
    assert calls[-1] == {"collect_first": False}
    service.train(settings, "als", force=True)
    state.refresh_now()
    assert calls[-1] == {"collect_first": True}


def test_freezing_moves_live_objects_to_the_permanent_generation():
    import gc

    from recsys.server.state import freeze_long_lived

    try:
        freeze_long_lived(collect_first=True)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_recommendations_routes_answer_with_any_trained_model(tmp_path):
    """/recommendations/* take a `model`; each answer names it, and the seed's /matrix_factor/*
    keeps answering with ALS whatever recommend.model says."""
    home = build_home(tmp_path)
    settings = make_settings(home)
    service.train(settings, "ease")
    service.train(settings, "rp3beta")
    item, user = some_item_and_user(home)
    with client_for(home) as c:
        for model in ("ease", "rp3beta", "als", "mf"):
            r = c.post("/recommendations/similar", json={"item_id": item, "n": 5, "model": model})
            assert r.status_code == 200, r.text
            body = r.json()
            want = "als" if model == "mf" else model
            assert body["model"] == want and r.headers["X-Model-Version"] == body["model_version"]
            assert body["model_version"] == Registry(home / "models").current(want)
            r = c.post("/recommendations/user", json={"user_id": user, "n": 5, "model": model,
                                                      "explain": True})  # fmt: skip
            assert r.status_code == 200 and r.json()["model"] == want and r.json()["items"]
        assert c.post("/recommendations/user", json={"user_id": user}).json()["model"] == "als"
        assert_error(
            c.post("/recommendations/similar", json={"item_id": item, "model": "slope-one"}),
            400, "invalid_input",
        )  # fmt: skip
        not_trained = c.post("/recommendations/similar", json={"item_id": item, "model": "itemknn"})
        assert_error(not_trained, 409, "not_trained")
        assert "recsys train itemknn" in not_trained.json()["error"]["message"]
        r = c.post("/training", json={"model_type": "rp3beta", "force_retrain": True})
        assert r.status_code == 202 and r.json()["kind"] == "rp3beta"
        done = wait_job(c, r.json()["id"])
        assert done["state"] == "succeeded", done
        assert done["version"] == Registry(home / "models").current("rp3beta")
    settings.recommend.model = "ease"  # the configured model serves /recommendations
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/recommendations/user", json={"user_id": user}).json()["model"] == "ease"
        assert c.post("/matrix_factor/user", json={"user_id": user}).json()["model"] == "als"
