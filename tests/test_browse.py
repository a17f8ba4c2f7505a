"""The read routes the dashboard draws from: GET /items/{id}, /items/{id}/image (fetched by the
server from a real HTTP server on 127.0.0.1), /users/{id}/ratings, /stats, /categories,
/evaluations/latest and POST /search/similar; the served pages themselves (no network host but
this one, by Content-Security-Policy)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from test_http import KEY, assert_error, build_home, client_for, make_settings

from recsys import service
from recsys.service import browse, images

from helpers import rows, sqlite_url

# the smallest PNG: 1x1 transparent
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4a20000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_home(tmp_path_factory.mktemp("browse"))


def sql(home: Path, query: str, **params: object) -> list[tuple]:
    return rows(sqlite_url(home), query, **params)


def test_item_details_every_field_and_its_ratings(home):
    [(item, title, count)] = sql(
        home,
        "select p.item_id, p.title, count(*) from product_catalog p join user_item_rating r "
        "on r.item_id = p.item_id group by p.item_id order by p.item_id limit 1",
    )
    with client_for(home) as client:
        body = client.get(f"/items/{item}").json()
        assert body["title"] == title and body["ratings"] == count and body["in_catalog"]
        assert isinstance(body["features"], list) and isinstance(body["details"], dict)
        assert_error(client.get("/items/NO-SUCH-ITEM"), 404, "not_found")


def test_item_known_only_from_ratings(tmp_path):
    home = build_home(tmp_path, mf=False)
    sql(home, "insert into user_item_rating values ('u-x', 'ORPHAN', 4, 1700000000, null, 0)")
    with client_for(home) as client:
        body = client.get("/items/ORPHAN").json()
        assert body == {**body, "in_catalog": False, "ratings": 1, "title": None}


def test_user_ratings_newest_first_with_limit(home):
    [(user, total)] = sql(
        home,
        "select user_id, count(*) c from user_item_rating group by user_id order by c desc limit 1",
    )
    with client_for(home) as client:
        body = client.get(f"/users/{user}/ratings", params={"limit": 3}).json()
        assert body["total"] == total and len(body["ratings"]) == 3
        times = [datetime.fromisoformat(r["rated_at"]) for r in body["ratings"]]
        assert times == sorted(times, reverse=True)
        newest = sql(home, "select max(timestamp) from user_item_rating where user_id = :u", u=user)
        assert times[0].timestamp() == newest[0][0]
        assert body["ratings"][0]["title"]  # catalog fields on every line
        assert_error(client.get("/users/nobody-at-all/ratings"), 404, "not_found")
        assert_error(client.get(f"/users/{user}/ratings", params={"limit": 0}), 400)


def test_stats_long_tail_months_and_histogram_add_up(home):
    [(ratings, items)] = sql(home, "select count(*), count(distinct item_id) from user_item_rating")
    with client_for(home) as client:
        body = client.get("/stats").json()
    assert body["ratings"] == ratings and body["items"] == items
    tail = body["long_tail"]
    assert tail["x"][0] == 1 and tail["x"][-1] == items  # rank 1 .. the last item
    assert tail["y"] == sorted(tail["y"], reverse=True)
    assert sum(body["ratings_per_month"]["y"]) == ratings
    months = body["ratings_per_month"]["x"]
    assert all(datetime.utcfromtimestamp(m).day == 1 for m in months)  # month starts, none missing
    assert len(months) == len(set(months)) and months == sorted(months)
    assert sum(body["rating_histogram"]["y"]) == ratings


def test_stats_follow_an_ingest(tmp_path):
    home = build_home(tmp_path, mf=False)
    settings = make_settings(home)
    before = browse.store_charts(settings).ratings
    service.record_feedback(settings, [{"user_id": "new-u", "item_id": "new-i", "rating": 5}])
    assert browse.store_charts(settings).ratings == before + 1


def test_categories_most_products_first(home):
    rows = sql(
        home,
        "select main_category, count(*) c from product_catalog where main_category is not null "
        "group by main_category order by c desc, main_category",
    )
    with client_for(home) as client:
        body = client.get("/categories", params={"limit": 2}).json()
        assert body == [{"name": n, "products": c} for n, c in rows[:2]]
        assert_error(client.get("/categories", params={"limit": 0}), 400)


def test_evaluations_latest_is_what_evaluate_reported(tmp_path):
    home = build_home(tmp_path, mf=False)
    with client_for(home) as client:
        assert client.get("/evaluations/latest").json() == {
            "evaluation": None, "evaluated_at": None, "tuning": None,
        }  # fmt: skip
        report = service.evaluate_models(make_settings(home), ["als"])
        body = client.get("/evaluations/latest").json()
    assert body["evaluation"]["models"]["als"]["ndcg"] == report.models["als"].ndcg
    assert set(body["evaluation"]["models"]) == {"als", "popularity"}
    assert body["evaluated_at"]


def test_semantically_similar_products(home):
    settings = make_settings(home)
    service.train_ss(settings)
    [(item,)] = sql(home, "select item_id from product_catalog order by item_id limit 1")
    with client_for(home) as client:
        r = client.post("/search/similar", json={"item_id": item, "n": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "ss" and r.headers["X-Model-Version"] == body["model_version"]
        assert len(body["items"]) == 5 and item not in [i["item_id"] for i in body["items"]]
        scores = [i["score"] for i in body["items"]]
        assert scores == sorted(scores, reverse=True)
        assert_error(client.post("/search/similar", json={"item_id": "NOPE"}), 404)
        assert_error(client.post("/search/similar", json={"item_id": item, "n": 0}), 400)
        assert_error(client.post("/search/similar", json={"item_id": item, "x": 1}), 400)


# ---- images ------------------------------------------------------------------------------------
class _Images(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).hits += 1
        if self.path == "/ok.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path == "/page.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<script>alert(1)</script>")
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Images.hits = 0
    images.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def set_image(home: Path, item: str, url: str | None) -> None:
    sql(home, "update product_catalog set image_url = :u where item_id = :i", u=url, i=item)


def test_image_fetched_once_then_from_the_disk_cache(tmp_path, image_host):
    home = build_home(tmp_path, mf=False)
    [(item,)] = sql(home, "select item_id from product_catalog order by item_id limit 1")
    set_image(home, item, f"{image_host}/ok.png")
    with client_for(home) as client:
        for _ in range(2):
            r = client.get(f"/items/{item}/image")
            assert r.status_code == 200 and r.content == PNG
            assert r.headers["content-type"] == "image/png"
            assert "x-image-placeholder" not in r.headers
    assert _Images.hits == 1
    assert list((home / "cache" / "images").glob("*.png"))


@pytest.mark.parametrize(
    ("path", "why"),
    [("/missing.png", "unavailable"), ("/page.html", "unavailable"), (None, "none")],
)
def test_image_placeholder_when_none_can_be_had(tmp_path, image_host, path, why):
    home = build_home(tmp_path, mf=False)
    [(item,)] = sql(home, "select item_id from product_catalog order by item_id limit 1")
    set_image(home, item, f"{image_host}{path}" if path else None)
    with client_for(home) as client:
        r = client.get(f"/items/{item}/image")
        assert r.status_code == 200 and r.headers["x-image-placeholder"] == why
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert b"<script" not in r.content  # never the remote page
        client.get(f"/items/{item}/image")
        assert_error(client.get("/items/NO-SUCH-ITEM/image"), 404)
    assert _Images.hits == (1 if path else 0)  # a failure is remembered, not retried at once


def test_image_proxy_off_never_fetches(tmp_path, image_host):
    home = build_home(tmp_path, mf=False)
    [(item,)] = sql(home, "select item_id from product_catalog order by item_id limit 1")
    set_image(home, item, f"{image_host}/ok.png")
    with client_for(home, image_proxy=False) as client:
        assert client.get(f"/items/{item}/image").headers["x-image-placeholder"] == "none"
    assert _Images.hits == 0


def test_unreachable_image_host_answers_within_the_timeout(tmp_path):
    home = build_home(tmp_path, mf=False)
    [(item,)] = sql(home, "select item_id from product_catalog order by item_id limit 1")
    set_image(home, item, "http://image-host.invalid/x.jpg")  # .invalid never resolves
    images.clear()
    with client_for(home, image_timeout_seconds=1.0) as client:
        started = time.monotonic()
        r = client.get(f"/items/{item}/image")
    assert r.headers["x-image-placeholder"] == "unavailable"
    assert time.monotonic() - started < 30  # a bound on a hang, not a speed claim


# ---- the pages -----------------------------------------------------------------------------------
def test_dashboard_page_and_assets_are_served_with_a_strict_policy(home):
    with client_for(home) as client:
        page = client.get("/")
        assert page.status_code == 200 and 'data-key-mode="none"' in page.text
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        for asset in ("/ui/app.js", "/ui/style.css", "/ui/vendor/uplot.min.js"):
            r = client.get(asset)
            assert r.status_code == 200 and r.headers["content-security-policy"] == policy
        assert client.get("/ui/nothing.js").status_code == 404
        assert "/" not in client.get("/schema/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("server", "mode"),
    [({"api_key": KEY}, "training"), ({"api_key": KEY, "protect_all": True}, "all")],
)
def test_pages_load_without_the_key_and_say_when_to_ask(home, server, mode):
    with client_for(home, **server) as client:
        assert f'data-key-mode="{mode}"' in client.get("/").text
        assert client.get("/ui/app.js").status_code == 200
        if mode == "all":
            assert_error(client.get("/stats"), 401)
            assert client.get("/stats", headers={"X-API-Key": KEY}).status_code == 200


def test_dashboard_can_be_turned_off(home):
    with client_for(home, dashboard=False) as client:
        assert client.get("/").status_code == 404
        assert client.get("/ui/app.js").status_code == 404
        assert client.get("/stats").status_code == 200  # the JSON API stays


def test_browse_answers_alike_on_every_backend(db_url, tmp_path):
    """Month bins (integer day division), JSON fields and the newest-first order on SQLite and a
    real PostgreSQL."""
    settings = make_settings(tmp_path / "home")
    settings.store.url = db_url
    day = 86400
    service.record_feedback(settings, [
        {"user_id": "u", "item_id": "a", "rating": 5, "timestamp": 19_000 * day + 5},  # 2022-01-08
        {"user_id": "u", "item_id": "b", "rating": 3, "timestamp": 19_100 * day},  # 2022-04-18
        {"user_id": "v", "item_id": "a", "rating": 4, "timestamp": 19_001 * day},
    ])  # fmt: skip
    service.upsert_items(settings, [{"item_id": "a", "title": "Alpha", "categories": ["X", "Y"],
                                     "main_category": "X"}])  # fmt: skip
    charts = browse.store_charts(settings)
    assert charts.long_tail.y == [2.0, 1.0]
    assert charts.ratings_per_month.y == [2.0, 0.0, 0.0, 1.0]  # January .. April, gaps kept
    assert (
        datetime.utcfromtimestamp(charts.ratings_per_month.x[0]).strftime("%Y-%m-%d")
        == "2022-01-01"
    )
    assert charts.rating_histogram.x == [3.0, 4.0, 5.0]
    product = browse.item_details(settings, "a")
    assert (product.title, product.categories, product.ratings) == ("Alpha", ["X", "Y"], 2)
    assert [r.item_id for r in browse.user_ratings(settings, "u").ratings] == ["b", "a"]
    assert [c.name for c in browse.top_categories(settings)] == ["X"]
