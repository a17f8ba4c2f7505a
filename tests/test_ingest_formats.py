"""Each Amazon format, read from the real samples in ../shared/data, on SQLite and PostgreSQL."""

from __future__ import annotations

from helpers import cli, rows


def test_amazon2018_reviews_and_meta(shared_data, db_url):
    folder = shared_data / "amazon2018-gift-cards-5core"
    report = cli(
        "--db", db_url, "ingest", folder / "meta_Gift_Cards.json", folder / "Gift_Cards_5.json",
        "--json",
    )  # fmt: skip
    meta, reviews = report["files"]
    assert (meta["format"], meta["kind"], meta["rows"]) == ("amazon2018", "products", 1547)
    assert (reviews["format"], reviews["kind"], reviews["rows"]) == ("amazon2018", "reviews", 2972)
    assert report["bad_lines"] == 0
    assert meta["cleaned"]["junk_price"] == 4  # two whitespace blobs... and two CSS texts
    # 6 (user, item) pairs were reviewed twice or more (13 reviews): one row per pair.
    assert report["ratings"] == {"inserted": 2965, "updated": 0}
    assert report["products"] == {"inserted": 1547, "updated": 0}
    assert rows(
        db_url, "select count(distinct user_id), count(distinct item_id) from user_item_rating"
    ) == [(458, 148)]

    def product(item_id: str) -> tuple:
        return rows(
            db_url,
            f"select title, price, main_category from product_catalog where item_id = '{item_id}'",
        )[0]

    assert product("B002VFYGC0") == ("Maggiano's Gift Card", None, "Gift Cards")  # entity, spaces
    assert product("B001H53QE4")[1] == 1250.0  # "$1,250.00"
    assert product("B00FTITVAS")[1] is None  # CSS junk in the price field
    assert product("B00BXOFI1I")[2] == "AMAZON FASHION"  # <img alt="AMAZON FASHION"/> tag
    # every review joins a product
    assert rows(db_url, "select count(*) from user_item_rating r left join product_catalog p "
                "on p.item_id = r.item_id where p.item_id is null") == [(0,)]  # fmt: skip


def test_amazon2018_keeps_latest_review_of_a_pair(shared_data, db_url):
    import json

    path = shared_data / "amazon2018-gift-cards-5core" / "Gift_Cards_5.json"
    latest: dict[tuple[str, str], tuple[int, float]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        key = (r["reviewerID"], r["asin"])
        if key not in latest or r["unixReviewTime"] >= latest[key][0]:
            latest[key] = (r["unixReviewTime"], r["overall"])
    cli("--db", db_url, "ingest", path, "--quiet")
    stored = {(u, i): (t, float(r)) for u, i, t, r in rows(
        db_url, "select user_id, item_id, timestamp, rating from user_item_rating")}  # fmt: skip
    assert stored == latest


def test_amazon2023_meta(shared_data, db_url):
    path = (
        shared_data
        / "amazon2023-health-personal-care-meta-subset"
        / "meta_Health_and_Personal_Care.jsonl"
    )
    report = cli("--db", db_url, "ingest", path, "--json")
    assert report["files"][0]["format"] == "amazon2023"
    assert report["products"]["inserted"] == 1714
    assert rows(db_url, "select count(*) from product_catalog where price is null") == [(1475,)]
    assert rows(db_url, "select count(*) from product_catalog where price is not null") == [(239,)]
    title, store, image, category = rows(
        db_url, "select title, store, image_url, main_category from product_catalog "
        "where item_id = 'B075ZXP9XL'")[0]  # fmt: skip
    assert title.startswith("Pre Workout Powder Energy Drink (30 Servings) \u2013 Caffeine Free")
    assert store == "Buff Juice"
    assert image == "https://m.media-amazon.com/images/I/41ad7xYaIkL._AC_.jpg"  # the MAIN variant
    assert category == "Health & Personal Care"


def test_amazon2014_reviews(shared_data, db_url):
    path = (
        shared_data / "amazon2014-musical-instruments-5core-excerpt" / "Musical_Instruments_5.json"
    )
    report = cli("--db", db_url, "ingest", path, "--json")
    assert (report["files"][0]["format"], report["files"][0]["kind"]) == ("amazon2014", "reviews")
    assert report["ratings"]["inserted"] == 50
    assert rows(
        db_url, "select count(distinct user_id), count(distinct item_id) from user_item_rating"
    ) == [(49, 7)]
    first = rows(db_url, "select rating, timestamp, helpful_votes from user_item_rating "
                 "where user_id = 'A2IBPI20UZIR0U' and item_id = '1384719342'")  # fmt: skip
    assert first == [(5.0, 1393545600, 0)]


def test_amazon2014_meta_python_literals(tmp_path, db_url):
    # 2014 meta lines are Python dict literals (single quotes), read with ast.literal_eval.
    path = tmp_path / "meta_Musical_Instruments.json"
    path.write_text(
        "{'asin': '0006428320', 'title': 'Six Sonatas For Two Flutes Or Violins, Volume 2 (#4-6)', "
        "'price': 17.95, 'imUrl': 'http://ecx.images-amazon.com/images/I/41EpRmh8MEL._SY300_.jpg', "
        "'related': {'also_viewed': ['B0058DK7RA']}, 'salesRank': {'Musical Instruments': 207315}, "
        "'categories': [['Musical Instruments', 'Instrument Accessories']]}\n"
        "{'asin': '0014072149', 'title': 'Double Concerto in D Minor', 'price': 18.77, "
        "'categories': [['Musical Instruments']], 'brand': 'Dover'}\n"
        "__import__('os').system('echo pwned')\n"
    )
    report = cli("--db", db_url, "ingest", path, "--json")
    assert report["files"][0]["format"] == "amazon2014"
    assert report["products"]["inserted"] == 2
    assert report["errors"] == [{"file": str(path), "line": 3, "reason": "invalid_literal"}]
    assert rows(
        db_url,
        "select title, price, main_category, image_url from product_catalog "
        "where item_id = '0006428320'",
    ) == [
        (  # fmt: skip
            "Six Sonatas For Two Flutes Or Violins, Volume 2 (#4-6)",
            17.95,
            "Musical Instruments",
            "http://ecx.images-amazon.com/images/I/41EpRmh8MEL._SY300_.jpg",
        )
    ]


def test_amazon2023_reviews_join_on_parent_asin_and_ms_timestamps(tmp_path, db_url):
    line = (
        '{"rating": 4.0, "title": "ok", "text": "fine<br />really", "images": [], "asin": "B0VARIANT1", '
        '"parent_asin": "B0PARENT01", "user_id": "AUSER1", "timestamp": 1588687728923, '
        '"helpful_vote": 2, "verified_purchase": true}\n'
    )
    path = tmp_path / "Toys.jsonl"
    path.write_text(line)
    cli("--db", db_url, "ingest", path, "--quiet")
    assert rows(db_url, "select user_id, item_id, rating, timestamp, verified, helpful_votes "
                "from user_item_rating") == [("AUSER1", "B0PARENT01", 4.0, 1588687728, True, 2)]  # fmt: skip


def test_gzip_detected_and_same_result(shared_data, tmp_path, db_url):
    import gzip

    src = shared_data / "amazon2018-gift-cards-5core" / "Gift_Cards_5.json"
    gz = tmp_path / "Gift_Cards_5.json.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    report = cli("--db", db_url, "ingest", gz, "--json")
    assert report["ratings"]["inserted"] == 2965 and report["lines_read"] == 2972


def test_reingest_is_idempotent(shared_data, db_url):
    folder = shared_data / "amazon2018-gift-cards-5core"
    files = [folder / "meta_Gift_Cards.json", folder / "Gift_Cards_5.json"]
    cli("--db", db_url, "ingest", *files, "--quiet")
    snapshot = rows(db_url, "select * from user_item_rating order by user_id, item_id")
    products = rows(
        db_url, "select item_id, title, price, details from product_catalog order by item_id"
    )
    again = cli("--db", db_url, "ingest", *files, "--json")
    assert again["ratings"] == {"inserted": 0, "updated": 0}
    assert again["products"] == {"inserted": 0, "updated": 0}
    assert rows(db_url, "select * from user_item_rating order by user_id, item_id") == snapshot
    assert (
        rows(db_url, "select item_id, title, price, details from product_catalog order by item_id")
        == products
    )


def test_format_and_kind_override(shared_data, db_url):
    path = (
        shared_data / "amazon2014-musical-instruments-5core-excerpt" / "Musical_Instruments_5.json"
    )
    report = cli(
        "--db", db_url, "ingest", path, "--format", "amazon2018", "--kind", "reviews", "--json"
    )
    assert report["files"][0]["format"] == "amazon2018" and report["ratings"]["inserted"] == 50
    bad = cli("--db", db_url, "ingest", path, "--format", "nonsense", expect=2)
    assert "nonsense" in bad.output
