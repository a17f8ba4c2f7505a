"""Generic logs: MovieLens files and arbitrary CSV/TSV/JSONL load with flags alone."""

from __future__ import annotations

import json

from helpers import cli, rows


def test_movielens_latest_csv(tmp_path, db_url):
    ratings = tmp_path / "ratings.csv"
    ratings.write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,0.5,964981247\r\n"
        b"2,1,5.0,964982224\r\n2,11,3.5,964983815\r\n"
    )
    movies = tmp_path / "movies.csv"
    movies.write_bytes(
        b"movieId,title,genres\r\n1,Toy Story (1995),Adventure|Animation\r\n"
        b'11,"American President, The (1995)",Comedy|Drama|Romance\r\n3,Grumpier Old Men (1995),Comedy\r\n'
    )
    report = cli(
        "--db", db_url, "ingest", ratings, "--map", "user=userId", "--map", "item=movieId",
        "--map", "rating=rating", "--map", "timestamp=timestamp", "--rating-range", "0.5:5", "--json",
    )  # fmt: skip
    assert report["files"][0]["format"] == "generic" and report["ratings"]["inserted"] == 4
    cli(
        "--db", db_url, "ingest", movies, "--map", "item=movieId", "--map", "title=title", "--quiet"
    )
    assert rows(db_url, "select user_id, item_id, rating, timestamp from user_item_rating "
                "order by user_id, item_id") == [  # fmt: skip
        ("1", "1", 4.0, 964982703), ("1", "3", 0.5, 964981247),
        ("2", "1", 5.0, 964982224), ("2", "11", 3.5, 964983815),
    ]  # fmt: skip
    # a multi-valued genre cell fills the categories list; main_category is its first value
    assert rows(db_url, "select title, main_category from product_catalog where item_id = '11'") == [
        ("American President, The (1995)", "Comedy")]  # fmt: skip
    (categories,) = rows(db_url, "select categories from product_catalog where item_id = '11'")[0]
    if isinstance(categories, str):  # SQLite hands JSON back as text, PostgreSQL's jsonb as a list
        categories = json.loads(categories)
    assert categories == ["Comedy", "Drama", "Romance"]


def test_movielens_100k_u_data_and_latin1_u_item(tmp_path, db_url):
    u_data = tmp_path / "u.data"
    u_data.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    u_item = tmp_path / "u.item"
    u_item.write_bytes(
        "242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|0|0|0\n"
        "302|L.A. Confidential (1997)|01-Jan-1997||http://us.imdb.com/x|0|0|0\n"
        "377|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/y|0|0|0\n".encode("latin-1")
    )
    cli(
        "--db",
        db_url,
        "ingest",
        u_data,
        "--no-header",
        "--columns",
        "user,item,rating,timestamp",
        "--quiet",
    )
    report = cli(
        "--db", db_url, "ingest", u_item, "--kind", "products", "--no-header", "--delimiter", "|",
        "--encoding", "latin-1", "--columns", "item,title", "--json",
    )  # fmt: skip
    assert report["products"]["inserted"] == 3 and report["bad_lines"] == 0
    assert rows(db_url, "select count(*) from user_item_rating") == [(3,)]
    assert rows(db_url, "select title from product_catalog where item_id = '377'") == [
        ("Misérables, Les (1995)",)]  # fmt: skip


def test_jsonl_with_arbitrary_keys_and_synonyms(tmp_path, db_url):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"uid": "a", "sku": "X1", "stars": 4, "time": "2023-05-01T12:00:00Z"}\n'
        '{"uid": "b", "sku": "X2", "stars": 2, "time": 1682942400000}\n'
        '{"uid": "c", "sku": "X2", "stars": "bad", "time": 1}\n'
    )
    report = cli("--db", db_url, "ingest", path, "--map", "user=uid", "--json")
    assert report["ratings"]["inserted"] == 2
    assert report["errors"] == [{"file": str(path), "line": 3, "reason": "invalid_rating",
                                 "detail": "rating 'bad' is not a number"}]  # fmt: skip
    assert rows(db_url, "select user_id, item_id, rating, timestamp from user_item_rating "
                "order by user_id") == [("a", "X1", 4.0, 1682942400), ("b", "X2", 2.0, 1682942400)]  # fmt: skip


def test_tsv_without_ratings_is_implicit_feedback(tmp_path, db_url):
    path = tmp_path / "clicks.tsv"
    path.write_text("customer_id\tproduct_id\textra\nc1\tp1\tz\nc2\tp1\tz\n")
    report = cli("--db", db_url, "ingest", path, "--json")
    assert report["ratings"]["inserted"] == 2
    assert rows(db_url, "select distinct rating from user_item_rating") == [(1.0,)]


def test_unmappable_file_and_bad_map_are_clear_errors(tmp_path):
    path = tmp_path / "mystery.csv"
    path.write_text("a,b,c\n1,2,3\n")
    result = cli("ingest", path, expect=1)
    assert "mystery.csv: cannot tell which columns hold user and item" in result.stderr
    result = cli("ingest", path, "--map", "user=nope", expect=1)
    assert "--map user=nope: no such column" in result.stderr
    result = cli("ingest", path, "--map", "colour=a", expect=1)
    assert "--map colour=...: unknown field" in result.stderr
    result = cli("ingest", path, "--map", "user", expect=2)
    result = cli("ingest", path, "--no-header", expect=1)
    assert "--no-header needs --columns" in result.stderr
