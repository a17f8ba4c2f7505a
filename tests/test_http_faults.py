"""The HTTP API under faults: deep JSON, client hang-ups, a stopped database, refused model
versions, a malformed `current` pointer, schema-valid odd inputs (in-process; slow clients on a
real uvicorn are in test_http_limits.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient
from test_http import assert_error, build_home, client_for, home, make_settings  # noqa: F401

from recsys import service
from recsys.http.app import create_app
from recsys.models.registry import Registry
from recsys.server.outage import outage

from test_http_limits import requests_counted


@pytest.fixture(autouse=True)
def no_outage_in_progress():
    outage.since = None
    yield
    outage.since = None


def wait_until(condition, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def some_item(client: TestClient) -> str:
    from test_http import some_item_and_user

    return some_item_and_user(Path(client.app.state["recsys"].settings.paths.home))[0]


# ---- http-deep-json-body-500 ------------------------------------------------------------
@pytest.mark.parametrize("path", ["/search", "/matrix_factor/similar", "/matrix_factor/user"])
def test_deeply_nested_json_is_a_400_without_a_traceback(home, path, caplog):  # noqa: F811
    # the case: 961 levels (1.9 KB) in a server; the depth msgspec gives up at varies with the stack
    body = '{"query":"x","category":' + "[" * 5000 + "]" * 5000 + "}"
    with client_for(home) as client:
        caplog.clear()
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    error = assert_error(r, 400, "invalid_input")
    assert "nested too deeply" in error["message"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


# ---- client-abort-counted-as-500 --------------------------------------------------------
def test_a_client_hanging_up_mid_body_is_a_499_not_a_server_error(home, caplog):  # noqa: F811
    app = create_app(make_settings(home))
    messages = [
        {"type": "http.request", "body": b'{"query":"gi', "more_body": True},
        {"type": "http.disconnect"},
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/search", "raw_path": b"/search", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "state": {},
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    }  # fmt: skip

    async def receive():  # type: ignore[no-untyped-def]
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):  # type: ignore[no-untyped-def]
        pass

    caplog.clear()
    asyncio.run(app(scope, receive, send))
    metrics = app.state["recsys"].metrics.render(models={}, jobs={}, ready=True)
    assert requests_counted(metrics) == {("/search", "POST", "499"): 1}
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]


# ---- openapi-valid-requests-rejected ------------------------------------------------------
def test_an_unknown_category_is_no_error_on_any_route(home):  # noqa: F811
    with client_for(home) as client:
        item = some_item(client)
        for path, body, key in (
            ("/matrix_factor/similar", {"item_id": item, "category": "0"}, "items"),
            (
                "/matrix_factor/user",
                {"user_id": "new-visitor-17", "item_ids": [item], "category": "0"},
                "items",
            ),  # fmt: skip
            ("/matrix_factor/user", {"user_id": "nobody", "category": "0"}, "items"),
            ("/search", {"query": "gift card", "mode": "keyword", "category": "0"}, "hits"),
        ):
            r = client.post(path, json=body)
            assert r.status_code == 200, (path, r.text)
            assert r.json()[key] == [] and "'0'" in r.json()["message"], (path, r.text)


@pytest.mark.parametrize("query", ["\u001e", "\u00a0", "\u3000x"])
def test_a_query_of_characters_json_schema_calls_text_is_accepted(home, query):  # noqa: F811
    with client_for(home) as client:
        r = client.post("/search", json={"query": query, "mode": "keyword"})
        assert r.status_code == 200, r.text
        for blank in (" ", "\t\n", "\r\x0b\x0c "):
            r = client.post("/search", json={"query": blank, "mode": "keyword"})
            assert assert_error(r, 400, "invalid_input")["field"] == "query"


# ---- refused-model-version-invisible ----------------------------------------------------
def test_a_refused_version_is_reported_in_ready_status_and_once_in_the_log(tmp_path, caplog):
    trained = build_home(tmp_path)
    settings = make_settings(trained)
    registry = Registry(settings.models_dir)
    old = registry.current("mf")
    new = service.train(settings, "als", force=True).version
    registry.rollback("mf", old)
    service.models.clear()
    with client_for(trained) as client:
        item = some_item(client)
        wait_until(lambda: client.get("/health/ready").status_code == 200, "ready")
        (registry.kind_dir("mf") / new / "item_factors.npy").write_bytes(b"damaged")
        registry._point("mf", new)

        def refused_check() -> str | None:
            check = client.get("/health/ready").json()["checks"]["als"]
            return check if "refused" in check else None

        check = wait_until(refused_check, "the refusal reported in /health/ready")
        assert check.startswith(f"serving {old}; refused {new}:") and "checksum" in check
        assert client.get("/health/ready").status_code == 200  # answers are still served
        r = client.post("/matrix_factor/similar", json={"item_id": item})
        assert r.headers["X-Model-Version"] == old
        status = client.get("/status").json()
        assert status["models"]["als"]["version"] == old
        assert status["refused"]["als"].startswith(new) and "checksum" in status["refused"]["als"]
        time.sleep(0.5)  # several refresh rounds (0.1 s each)
        logged = [rec for rec in caplog.records if f"refused {new}" in rec.getMessage()]
        assert len(logged) == 1 and logged[0].levelno == logging.ERROR

        registry._point("mf", old)  # rolled back by hand: all is well again
        wait_until(lambda: client.get("/health/ready").json()["checks"]["als"] == "ok", "ok")
        assert client.get("/status").json()["refused"] == {}


# ---- registry-bad-current-blocks-reload -------------------------------------------------
def test_a_bad_current_pointer_of_one_kind_does_not_stop_the_others(tmp_path, caplog):
    trained = build_home(tmp_path)
    settings = make_settings(trained)
    registry = Registry(settings.models_dir)
    with client_for(trained) as client:
        item = some_item(client)
        wait_until(lambda: client.get("/health/ready").status_code == 200, "ready")
        (registry.kind_dir("ss")).mkdir(parents=True, exist_ok=True)
        (registry.kind_dir("ss") / "current").write_text("../../etc\n")
        new = service.train(settings, "als", force=True).version
        service.models.forget(settings, "mf")
        wait_until(
            lambda: client.post("/matrix_factor/similar", json={"item_id": item}).headers[
                "X-Model-Version"] == new, "the new mf version served",
        )  # fmt: skip
        check = client.get("/health/ready").json()["checks"]["ss"]
        assert check.startswith("failed: invalid model version '../../etc'")
        time.sleep(0.5)  # several refresh rounds
    bad = [rec for rec in caplog.records if "../../etc" in rec.getMessage()]
    assert len(bad) == 1 and not bad[0].exc_info
    assert not [rec for rec in caplog.records if "model refresh failed" in rec.getMessage()]


# ---- http-store-outage-500-not-503 ------------------------------------------------------
@pytest.mark.postgres
def test_a_stopped_database_is_503_store_unavailable_logged_once(tmp_path, caplog):
    import pgcluster

    why = pgcluster.available()
    if why:
        pytest.skip(f"needs a local PostgreSQL cluster: {why}")
    from recsys.ingest.sample import generate_sample

    with pgcluster.pg_cluster_control() as cluster:
        settings = make_settings(tmp_path / "home")
        settings.store.url = cluster.url
        sample = generate_sample(tmp_path / "data", users=50, items=20, ratings=300, seed=1)
        service.ingest(settings, [sample.meta_path, sample.reviews_path])
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            wait_until(lambda: client.get("/health/ready").status_code == 200, "ready")
            assert client.get("/status").status_code == 200
            keyword = {"query": "gift", "mode": "keyword"}
            caplog.clear()
            cluster.stop()
            for _ in range(5):
                for r in (client.get("/status"), client.post("/search", json=keyword)):
                    assert_error(r, 503, "store_unavailable")
                    assert r.headers["Retry-After"].isdigit()
            assert client.get("/health/ready").status_code == 503
            cluster.start()
            wait_until(lambda: client.get("/status").status_code == 200, "the store back")
            assert client.post("/search", json=keyword).status_code == 200
            wait_until(  # the refresher's next round notices
                lambda: any("available again" in r.getMessage() for r in caplog.records), "end"
            )
    lines = [rec.getMessage() for rec in caplog.records if rec.name.startswith("recsys")]
    assert len([m for m in lines if m.startswith("store unavailable")]) == 1, lines
    assert len([m for m in lines if m.startswith("store available again")]) == 1, lines
    assert not [rec for rec in caplog.records if rec.exc_info], lines
