"""POST /feedback and POST /items (and their CLI twins): checked like ingest lines, one error per
bad event with its index, the good ones written through the ingest upsert (latest wins,
idempotent), the API key required when set; the next answer reflects them; filters over HTTP.
The write -> next answer loop against a real uvicorn is in test_http_live.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_http import KEY, assert_error, build_home, client_for, make_settings

from recsys import service
from recsys.errors import InvalidInput
from recsys.service.data import engine_for

from helpers import cli, rows


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_home(tmp_path_factory.mktemp("feedback"))


def stored(home: Path, user: str) -> dict[str, tuple[float, int]]:
    found = rows(
        f"sqlite:///{home / 'recsys.db'}",
        f"select item_id, rating, timestamp from user_item_rating where user_id = '{user}'",
    )
    return {item: (rating, ts) for item, rating, ts in found}


def top_pick(client: Any, user: str, path: str = "/matrix_factor/user") -> list[str]:
    r = client.post(path, json={"user_id": user, "n": 5})
    assert r.status_code == 200, r.text
    return [line["item_id"] for line in r.json()["items"]]


def test_feedback_keeps_good_events_and_names_each_bad_one(home):
    with client_for(home) as client:
        events = [
            {"user_id": "fb-1", "item_id": "I-1", "rating": 4, "timestamp": 1_700_000_000},
            {"user_id": "fb-1"},  # no item
            {"user_id": "fb-1", "item_id": "I-2", "rating": "lots"},
            {"user_id": "fb-1", "item_id": "I-3", "timestamp": "2025-01-02T03:04:05Z"},
            {"user_id": "fb-1", "item_id": "I-4", "colour": "red"},
            {"user_id": "fb-1", "item_id": " "},
            {"user_id": "fb-1", "item_id": "I-5", "timestamp": 2**40},
        ]
        r = client.post("/feedback", json={"events": events})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted"], body["inserted"], body["updated"]) == (2, 2, 0)
        errors = {e["index"]: e for e in body["errors"]}
        assert sorted(errors) == [1, 2, 4, 5, 6]
        assert errors[1]["field"] == "item_id" and errors[1]["code"] == "missing_item_id"
        assert errors[2]["field"] == "rating" and "not a number" in errors[2]["message"]
        assert errors[4]["field"] == "colour" and errors[5]["code"] == "missing_item_id"
        assert errors[6]["field"] == "timestamp" and "2038" in errors[6]["message"]
    assert stored(home, "fb-1") == {
        "I-1": (4.0, 1_700_000_000),
        "I-3": (5.0, 1_735_787_045),  # no rating: feedback.default_rating
    }


def test_feedback_is_idempotent_and_the_latest_event_wins(home):
    event = {"user_id": "fb-2", "item_id": "I-1", "rating": 2, "timestamp": 1_700_000_100}
    with client_for(home) as client:
        first = client.post("/feedback", json={"events": [event]}).json()
        again = client.post("/feedback", json={"events": [event]}).json()
        assert (first["inserted"], again["inserted"], again["updated"]) == (1, 0, 0)
        older = {**event, "rating": 5, "timestamp": 1_600_000_000}
        newer = {**event, "rating": 3, "timestamp": 1_700_000_200}
        client.post("/feedback", json={"events": [newer, older]})
    assert stored(home, "fb-2") == {"I-1": (3.0, 1_700_000_200)}


def test_feedback_limits_are_400_and_an_all_bad_call_writes_nothing(home):
    with client_for(home) as client:
        r = client.post("/feedback", json={"events": [{"user_id": "x"}]})
        assert r.status_code == 200 and r.json()["accepted"] == 0  # nothing written, and why
        assert r.json()["errors"] == [{"index": 0, "code": "missing_item_id",
                                       "message": "missing item id", "field": "item_id"}]  # fmt: skip
        assert_error(client.post("/feedback", json={"events": []}), 400)
        # an event that is not an object is a malformed body (the schema says objects)
        error = assert_error(client.post("/feedback", json={"events": [{}, "x"]}), 400)
        assert "events[1]" in error["message"]
        assert_error(client.post("/feedback", json=[{"user_id": "x", "item_id": "y"}]), 400)
    with client_for(home, max_body_bytes=1_000_000) as client:
        settings = make_settings(home)
        too_many = [{"user_id": "x", "item_id": "y"}] * (settings.feedback.max_events + 1)
        assert_error(client.post("/feedback", json={"events": too_many}), 400)
    with pytest.raises(InvalidInput, match="at most 1000 per call"):
        service.record_feedback(make_settings(home), too_many)


def test_writes_need_the_api_key_when_one_is_set(home):
    body = {"events": [{"user_id": "fb-3", "item_id": "I-1"}]}
    with client_for(home, api_key=KEY) as client:
        assert_error(client.post("/feedback", json=body), 401)
        assert_error(client.post("/items", json={"items": [{"item_id": "N-1"}]}), 401)
        assert client.post("/feedback", json=body, headers={"X-API-Key": KEY}).status_code == 200
    assert "I-1" in stored(home, "fb-3")


def test_the_next_answer_reflects_feedback_for_a_known_and_a_new_user(tmp_path):
    home = build_home(tmp_path)
    _, user = _a_user(home)
    with client_for(home) as client:
        for path in ("/matrix_factor/user", "/recommendations/user"):
            pick = top_pick(client, user, path)[0]
            r = client.post("/feedback", json={"events": [{"user_id": user, "item_id": pick}]})
            assert r.json()["accepted"] == 1
            assert pick not in top_pick(client, user, path)
        bought = top_pick(client, "brand-new", "/matrix_factor/user")[:2]  # bestsellers
        events = [{"user_id": "brand-new", "item_id": item} for item in bought]
        client.post("/feedback", json={"events": events})
        r = client.post("/matrix_factor/user", json={"user_id": "brand-new", "n": 5}).json()
        assert r["strategy"] in ("fold_in", "popular") and "2 stored ratings" in r["message"]
        assert not set(bought) & {line["item_id"] for line in r["items"]}


def _a_user(home: Path) -> tuple[str, str]:
    found = rows(f"sqlite:///{home / 'recsys.db'}", "select item_id, user_id from user_item_rating"
                 " group by user_id having count(*) >= 3 order by user_id limit 1")  # fmt: skip
    return found[0][0], found[0][1]


def test_items_are_searchable_and_shown_in_result_lines_at_once(tmp_path):
    home = build_home(tmp_path)
    item, user = _a_user(home)
    with client_for(home) as client:
        # the server's catalog snapshot is loaded: a result line for `item` comes from memory
        r = client.post("/items", json={"items": [
            {"item_id": item, "title": "Zanzibar quokka lamp", "price": 7.25,
             "main_category": "Lighting"},
            {"item_id": "NEW-1", "title": "Zanzibar quokka shade", "categories": ["Lighting"]},
            {"item_id": "NEW-2", "price": -3},
            {"title": "no id"},
        ]})  # fmt: skip
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted"] == 2 and [e["index"] for e in body["errors"]] == [2, 3]
        assert body["errors"][0]["field"] == "price" and body["errors"][1]["field"] == "item_id"
        hits = client.post("/search", json={"query": "zanzibar quokka", "mode": "keyword"}).json()
        assert {h["item_id"] for h in hits["hits"]} == {item, "NEW-1"}
        r = client.post("/matrix_factor/user", json={"user_id": "someone", "item_ids": [item],
                                                     "n": 10, "filter_already_liked": False})  # fmt: skip
        lines = {line["item_id"]: line for line in r.json()["items"]}
        if item in lines:
            assert lines[item]["title"] == "Zanzibar quokka lamp"
        r = client.post("/matrix_factor/similar", json={"item_id": _neighbour(home, item), "n": 60})
        lines = {line["item_id"]: line for line in r.json()["items"]}
        assert lines[item]["title"] == "Zanzibar quokka lamp" and lines[item]["price"] == 7.25


def _neighbour(home: Path, item: str) -> str:
    recs = service.similar_items(make_settings(home), item, n=1)
    return recs.items[0].item_id


# ---- filters over HTTP ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/matrix_factor/user", "/recommendations/user", "/matrix_factor/similar",
             "/recommendations/similar"],
)  # fmt: skip
def test_filters_on_both_route_families(home, path):
    item, user = _a_user(home)
    key = {"user_id": user} if path.endswith("user") else {"item_id": item}
    with client_for(home) as client:
        plain = client.post(path, json={**key, "n": 10}).json()
        excluded = [line["item_id"] for line in plain["items"][:3]]
        categories = sorted({line["category"] for line in plain["items"] if line["category"]})[:2]
        body = {**key, "n": 5, "exclude": excluded, "categories": categories, "price_min": 1.0,
                "price_max": 500}  # fmt: skip
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        lines = r.json()["items"]
        assert lines, r.json()
        cats = _categories(home, [line["item_id"] for line in lines])
        for line in lines:
            assert line["item_id"] not in excluded
            assert line["price"] is not None and 1.0 <= line["price"] <= 500
            assert {c.lower() for c in categories} & cats[line["item_id"]]
        empty = client.post(path, json={**key, "price_min": 5, "price_max": 1})
        assert empty.status_code == 200 and empty.json()["items"] == []
        assert "no item can pass" in empty.json()["message"]
        assert_error(client.post(path, json={**key, "price_min": -1}), 400)


def _categories(home: Path, item_ids: list[str]) -> dict[str, set[str]]:
    """Lower-cased category names of each item, read straight from the catalog."""
    import json

    from recsys.store.categories import product_categories

    found = rows(f"sqlite:///{home / 'recsys.db'}",
                 "select item_id, main_category, categories from product_catalog")  # fmt: skip
    return {
        item: {c.lower() for c in product_categories(main, json.loads(listed) if listed else None)}
        for item, main, listed in found
        if item in item_ids
    }


# ---- both stores ---------------------------------------------------------------------------
def test_feedback_and_items_write_on_every_backend(db_url, tmp_path):
    settings = make_settings(tmp_path / "home")
    settings.store.url = db_url
    engine_for(settings)  # creates the schema
    report = service.record_feedback(settings, [
        {"user_id": "u", "item_id": "a", "rating": 3, "timestamp": 10},
        {"user_id": "u", "item_id": "a", "rating": 4, "timestamp": 20},  # later in the call wins
        {"user_id": "u", "item_id": "b"},
    ])  # fmt: skip
    assert (report.accepted, report.inserted) == (3, 2)
    assert sorted(rows(db_url, "select item_id, rating from user_item_rating")) == [
        ("a", 4.0), ("b", 5.0)
    ]  # fmt: skip
    again = service.record_feedback(settings, [{"user_id": "u", "item_id": "a", "rating": 4,
                                                "timestamp": 20}])  # fmt: skip
    assert (again.inserted, again.updated) == (0, 0)
    # the revision `train` and the caches compare moves once per call that changed something
    revision = "select value from recsys_meta where key = 'ratings_revision'"
    assert rows(db_url, revision) == [("1",)]
    service.record_feedback(settings, [{"user_id": "u", "item_id": "c"}])
    assert rows(db_url, revision) == [("2",)]
    items = service.upsert_items(settings, [{"item_id": "a", "title": "Alpha", "price": 2.5,
                                             "categories": ["X", "Y"]}])  # fmt: skip
    assert items.inserted == 1
    assert rows(db_url, "select title, price from product_catalog") == [("Alpha", 2.5)]


def test_cli_feedback_and_items(tmp_path, monkeypatch):
    import importlib

    cli_app = importlib.import_module("recsys.cli.app")
    monkeypatch.setattr(cli_app, "_globals", cli_app.GlobalOptions())
    report = cli("feedback", "cli-user", "A", "B", "--rating", "4", "--timestamp", "100", "--json")
    assert (report["accepted"], report["inserted"]) == (2, 2)
    assert cli("feedback", "cli-user", "A", "--rating", "nan", expect=1).exit_code == 1
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "A", "title": "Apple"}\n{"item_id": "B", "price": "cheap"}\n')
    report = cli("items", path, "--json")
    assert report["accepted"] == 1 and report["errors"][0]["index"] == 1
    path.write_text("{not json")
    assert "items.jsonl: not a JSON array or JSON lines" in cli("items", path, expect=1).output


def test_filters_on_search_over_http(home):
    with client_for(home) as client:
        body = {"query": "durable waterproof compact pack portable", "mode": "keyword", "top_k": 20}
        plain = client.post("/search", json=body).json()["hits"]
        assert len(plain) >= 8, "sample titles use these words"
        excluded = [hit["item_id"] for hit in plain[:2]]
        priced = [hit["price"] for hit in plain if hit["price"] is not None]
        low = sorted(priced)[len(priced) // 2]
        r = client.post("/search", json={**body, "top_k": 5, "exclude": excluded,
                                         "price_min": low})  # fmt: skip
        assert r.status_code == 200, r.text
        for hit in r.json()["hits"]:
            assert hit["item_id"] not in excluded and hit["price"] >= low
        assert r.json()["hits"]
        assert_error(client.post("/search", json={**body, "price_max": -2}), 400)
