"""Issue 10: no single line may end an ingest or cost a batch, on SQLite and PostgreSQL alike.

Each input is a case of ../shared/cases (copied here: the tests run without ../shared): a value that
used to raise from one line (a huge integer, an unencodable 2014 literal, a bare CR) or one that
SQLite stores but PostgreSQL refuses (an escaped NUL, counts >= 2^31, absurd timestamps).
"""

from __future__ import annotations

import json

import pytest

from recsys.cli import app

from helpers import cli, rows, runner

BIG = "1" + "0" * 400  # an integer beyond a float's range

R2023 = '{"user_id":"%s","parent_asin":"%s","rating":%s,"timestamp":1600000000000%s}'


def review(user: str, item: str, rating: str = "5", extra: str = "") -> str:
    return R2023 % (user, item, rating, extra)


def ingest(db_url: str, tmp_path, name: str, lines: list[str] | bytes, *args: str) -> dict:
    path = tmp_path / name
    data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    result = runner.invoke(app, ["--db", db_url, "ingest", str(path), *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


def reasons(report: dict) -> list[tuple[int, str]]:
    return [(e["line"], e["reason"]) for e in report["errors"]]


def ratings(db_url: str) -> list[tuple]:
    return rows(db_url, "select user_id, item_id from user_item_rating order by user_id, item_id")


def products(db_url: str) -> list[str]:
    return [r[0] for r in rows(db_url, "select item_id from product_catalog order by item_id")]


# --- ingest-one-line-crash-huge-int -------------------------------------------------------------


def test_huge_integer_rating_is_one_bad_line(tmp_path, db_url):
    lines = [review("u1", "p1"), review("u2", "p1", BIG), review("u3", "p2", "4")]
    report = ingest(db_url, tmp_path, "reviews.jsonl", lines)
    assert reasons(report) == [(2, "invalid_rating")]
    assert ratings(db_url) == [("u1", "p1"), ("u3", "p2")]


def test_huge_integer_rating_in_a_generic_log_and_2018_overall(tmp_path, db_url):
    generic = ['{"user": "u1", "item": "i1", "rating": 5}', '{"user": "u2", "item": "i1", '
               f'"rating": {BIG}}}', '{"user": "u3", "item": "i2", "rating": 4}']  # fmt: skip
    report = ingest(db_url, tmp_path, "ratings.jsonl", generic)
    assert reasons(report) == [(2, "invalid_rating")]
    legacy = [
        '{"reviewerID": "r1", "asin": "a1", "overall": 5.0, "unixReviewTime": 1, "vote": "2"}',
        f'{{"reviewerID": "r2", "asin": "a1", "overall": {BIG}, "unixReviewTime": 1}}',
        '{"reviewerID": "r3", "asin": "a1", "overall": 4.0, "unixReviewTime": 1, "verified": true}',
    ]
    report = ingest(db_url, tmp_path, "Gift_Cards.json", legacy)
    assert reasons(report) == [(2, "invalid_rating")]
    assert ratings(db_url) == [("r1", "a1"), ("r3", "a1"), ("u1", "i1"), ("u3", "i2")]


def test_huge_integer_price_is_a_junk_price(tmp_path, db_url):
    lines = [
        '{"asin":"A1","title":"ok","main_cat":"Toys"}',
        f'{{"asin":"A2","title":"x","main_cat":"Toys","price":{BIG}}}',
        '{"asin":"A3","title":"ok3","main_cat":"Toys","price":"$1' + "0" * 400 + '"}',
    ]
    report = ingest(db_url, tmp_path, "meta_2018.json", lines)
    assert report["bad_lines"] == 0 and report["files"][0]["cleaned"] == {"junk_price": 2}
    assert rows(db_url, "select item_id, price from product_catalog order by item_id") == [
        ("A1", None), ("A2", None), ("A3", None)]  # fmt: skip


# --- ingest-2014-literal-unencodable-crash ------------------------------------------------------

LITERAL_LINE_2 = {
    "complex": ("{'asin': 'A2', 'title': 'x', 'categories': [[1j]]}", "wrong_type:categories"),
    "ellipsis": ("{'asin': 'A2', 'title': 'x', 'categories': [[...]]}", "wrong_type:categories"),
    "tuple_key": (
        "{'asin': 'A2', 'title': 'x', 'categories': [[{(1, 2): 3}]]}",
        "wrong_type:categories",
    ),  # fmt: skip
    "surrogate": ("{'asin': 'A2', 'title': '\\udc80', 'categories': [['Music']]}", "invalid_utf8"),
    "surrogate_category": ("{'asin': 'A2', 'categories': [['\\ud800']]}", "invalid_utf8"),
    "hex_asin": ("{'asin': 0x" + "f" * 4000 + ", 'title': 'x'}", "wrong_type:item"),
    "list_key": ("{'asin': 'A2', 'title': 'x', 'brand': {[1]: 2}}", "invalid_literal"),
    "nul": ("{'asin': 'A2', 'title': 'a\\x00b'}", "nul_byte"),
}


@pytest.mark.parametrize("case", sorted(LITERAL_LINE_2))
def test_unencodable_2014_literal_is_one_bad_line(tmp_path, db_url, case):
    line, reason = LITERAL_LINE_2[case]
    lines = [
        "{'asin': 'A1', 'title': 'ok', 'categories': [['Music']]}",
        line,
        "{'asin': 'A3', 'title': 'ok3', 'categories': [['Music']]}",
    ]
    report = ingest(db_url, tmp_path, f"{case}.json", lines)
    assert reasons(report) == [(2, reason)]
    assert products(db_url) == ["A1", "A3"]


# --- pg-ingest-crash-nul-and-int-overflow: the same contract on both backends -------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (review("pg\\u0000B", "pgP1"), "nul_byte"),
        (review("pgB", "pg\\u0000P1"), "nul_byte"),
        (review("pgB", "pgP1", extra=',"helpful_vote":3000000000'), "out_of_range:helpful_vote"),
        (review("pgB", "pgP1", extra=',"helpful_vote":-1'), "out_of_range:helpful_vote"),
        (
            '{"user_id":"pgB","parent_asin":"pgP1","rating":5,"timestamp":1' + "0" * 38 + "}",
            "invalid_timestamp",
        ),  # fmt: skip
        (
            '{"user_id":"pgB","parent_asin":"pgP1","rating":5,"timestamp":' + "9" * 23 + "}",
            "invalid_timestamp",
        ),  # fmt: skip
        # 2^31 s (2038-01-19): past PostgreSQL's integer column, which SQLite would take
        (review("pgB", "pgP1").replace("1600000000000", "2147483648000"), "invalid_timestamp"),
    ],
)
def test_values_postgresql_refuses_are_bad_lines_on_both(tmp_path, db_url, line, reason):
    lines = [review("pgA", "pgP1"), line, review("pgC", "pgP1", "4")]
    report = ingest(db_url, tmp_path, "reviews.jsonl", lines)
    assert reasons(report) == [(2, reason)]
    assert ratings(db_url) == [("pgA", "pgP1"), ("pgC", "pgP1")]
    assert report["ratings"]["inserted"] == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"parent_asin":"pgM2","title":"x\\u0000"}', "nul_byte"),
        ('{"parent_asin":"pgM2","title":"x","details":{"k":"v\\u0000"}}', "nul_byte"),
        ('{"parent_asin":"pgM2","title":"x","details":{"k\\u0000":"v"}}', "nul_byte"),
        ('{"parent_asin":"pgM2","title":"x","features":["a","b\\u0000"]}', "nul_byte"),
        (
            '{"parent_asin":"pgM2","title":"x","rating_number":3000000000}',
            "out_of_range:rating_count",
        ),  # fmt: skip
    ],
)
def test_product_values_postgresql_refuses_are_bad_lines_on_both(tmp_path, db_url, line, reason):
    lines = ['{"parent_asin":"pgM1","title":"ok"}', line, '{"parent_asin":"pgM3","title":"ok3"}']
    report = ingest(db_url, tmp_path, "meta.jsonl", lines)
    assert reasons(report) == [(2, reason)]
    assert products(db_url) == ["pgM1", "pgM3"]


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(tmp_path, db_url):
    lines = ['{"parent_asin":"M1","title":"ok","details":{"path":"C:\\\\u0000"}}']
    report = ingest(db_url, tmp_path, "meta.jsonl", lines)
    assert report["bad_lines"] == 0 and products(db_url) == ["M1"]


# --- ingest-csv-bare-cr-crash -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("ratings.csv", b"user,item,rating\nu1,i1,5\nu2,i\r2,4\nu3,i3,5\n"),
        ("ratings.tsv", b"user\titem\trating\nu1\ti1\t5\nu2\ti2\t\r4\nu3\ti3\t5\n"),
    ],
)
def test_bare_cr_inside_a_line_is_one_bad_line(tmp_path, db_url, name, data):
    report = ingest(db_url, tmp_path, name, data)
    assert reasons(report) == [(3, "invalid_csv")]
    assert ratings(db_url) == [("u1", "i1"), ("u3", "i3")]


def test_classic_mac_line_ends_are_lines(tmp_path, db_url):
    report = ingest(db_url, tmp_path, "mac.csv", b"user,item,rating\ru1,i1,5\ru2,i2,4\r")
    assert report["bad_lines"] == 0 and report["lines_read"] == 3
    assert ratings(db_url) == [("u1", "i1"), ("u2", "i2")]


def test_binary_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "program"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\r\x00\x00\x00\n\x03\x00>\x00\r\x01\x00")
    result = cli("ingest", path, expect=1)
    assert "program: not a text file" in result.stderr and "Traceback" not in result.output


# --- csv-quoted-newline-phantom-rows ------------------------------------------------------------

PRODUCTS_CSV = (
    b'item,title,description,price\nP1,"Trail Running Shoe","Lightweight.\n'
    b'Breathable mesh upper, 8mm drop",59.99\nP2,"Yoga Mat","Non-slip",25.00\n'
    b'P3,"Water Bottle, 1L","BPA free\n\nDishwasher safe",12.50\n'
)


def test_quoted_line_breaks_stay_inside_their_record(tmp_path, db_url):
    report = ingest(db_url, tmp_path, "products.csv", PRODUCTS_CSV)
    assert report["bad_lines"] == 0 and report["files"][0]["rows"] == 3
    got = rows(db_url, "select item_id, title, price, description from product_catalog "
               "order by item_id")  # fmt: skip
    descriptions = [d if isinstance(d, list) else json.loads(d) for *_, d in got]
    assert [r[:3] for r in got] == [
        ("P1", "Trail Running Shoe", 59.99), ("P2", "Yoga Mat", 25.0),
        ("P3", "Water Bottle, 1L", 12.5)]  # fmt: skip
    assert descriptions == [
        ["Lightweight. Breathable mesh upper, 8mm drop"], ["Non-slip"],
        ["BPA free Dishwasher safe"]]  # fmt: skip


def test_a_multiline_review_record_is_reported_at_its_first_line(tmp_path, db_url):
    data = (
        b'user,item,rating,text\nu1,i1,5,"great\nreally"\nu2,i1,"nine\nstars",x\n'
        b'u3,i1,4,"ok"\nu6,i3,2,"a\r\nb"\nu4,"i1,3\nu5,i2,5,fine\n'
    )
    report = ingest(db_url, tmp_path, "reviews.csv", data)
    # line 4-5: a rating that is no number, reported at the record's first line; line 9: a quote
    # that never closes is one bad line, and the lines after it are read again
    assert reasons(report) == [(4, "invalid_rating"), (9, "unterminated_quote")]
    assert ratings(db_url) == [("u1", "i1"), ("u3", "i1"), ("u5", "i2"), ("u6", "i3")]
    assert report["lines_read"] == 10


# --- bom-headerless-csv-phantom-user ------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("name", "data", "args"),
    [
        (
            "ratings.csv",
            BOM + b"u1,i1,5\r\nu1,i2,4\r\nu2,i1,3\r\nu2,i3,5\r\n",
            ("--no-header", "--columns", "user,item,rating"),
        ),  # fmt: skip
        ("ratings.csv", BOM + b"user,item,rating\nu1,i1,5\nu1,i2,4\nu2,i1,3\nu2,i3,5\n", ()),
        (
            "ratings.tsv",
            BOM + b"u1\ti1\nu1\ti2\nu2\ti1\nu2\ti3\n",
            ("--no-header", "--columns", "user,item"),
        ),  # fmt: skip
        (
            "ratings.jsonl",
            BOM + b'{"user": "u1", "item": "i1"}\n{"user": "u1", "item": "i2"}\n'
            b'{"user": "u2", "item": "i1"}\n{"user": "u2", "item": "i3"}\n',
            (),
        ),  # fmt: skip
        (
            "reviews.jsonl",
            BOM
            + "\n".join(
                [review("u1", "i1"), review("u1", "i2"), review("u2", "i1"), review("u2", "i3")]
            ).encode(),
            (),
        ),  # fmt: skip
    ],
)
def test_a_byte_order_mark_is_dropped_in_every_format(tmp_path, db_url, name, data, args):
    report = ingest(db_url, tmp_path, name, data, *args)
    assert report["bad_lines"] == 0
    assert ratings(db_url) == [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i3")]


# --- unrecognised-rating-column-silently-implicit -----------------------------------------------

BX = (
    b'"User-ID";"ISBN";"Book-Rating"\r\n"1001";"034545104X";"0"\r\n"1002";"0155061224";"5"\r\n'
    b'"1003";"0446520802";"0"\r\n"1003";"034545104X";"8"\r\n"1004";"0155061224";"10"\r\n'
    b'"1004";"0446520802";"7"\r\n'
)


def test_book_rating_column_is_recognised_and_0_to_10_kept(tmp_path, db_url):
    report = ingest(db_url, tmp_path, "BX-Book-Ratings.csv", BX, "--delimiter", ";",
                    "--map", "item=ISBN", "--encoding", "latin-1")  # fmt: skip
    f = report["files"][0]
    assert f["mapping"] == {"item": "ISBN", "user": "User-ID", "rating": "Book-Rating"}
    assert f["warnings"] == [] and f["rating_range"] == [0.0, 10.0] and report["bad_lines"] == 0
    assert rows(db_url, "select user_id, item_id, rating from user_item_rating "
                "order by user_id, item_id") == [  # fmt: skip
        ("1001", "034545104X", 0.0), ("1002", "0155061224", 5.0), ("1003", "034545104X", 8.0),
        ("1003", "0446520802", 0.0), ("1004", "0155061224", 10.0), ("1004", "0446520802", 7.0)]  # fmt: skip


def test_unmapped_numbers_and_a_missing_rating_column_are_said(tmp_path, db_url):
    data = b"visitor_id,sku,Wertung,qty\nv1,s1,4,2\nv2,s1,5,1\n"
    report = ingest(db_url, tmp_path, "log.csv", data)
    (first, second) = report["files"][0]["warnings"]
    assert first.startswith("no rating column found among visitor_id, sku, Wertung, qty")
    assert "--map rating=COLUMN" in first
    assert "Wertung, qty" in second
    result = cli("--db", db_url, "ingest", tmp_path / "log.csv")
    text = " ".join(result.stdout.split())  # the console wraps long lines
    assert "no rating column found" in text and "user=visitor_id, item=sku" in text


# --- rating scales ------------------------------------------------------------------------------


def test_generic_log_keeps_any_finite_rating_and_reports_the_range(tmp_path, db_url):
    data = b"user,item,rating\nu1,i1,0\nu2,i1,10\nu3,i1,0.5\nu4,i1,-2\nu5,i1,nan\nu6,i1,inf\n"
    report = ingest(db_url, tmp_path, "log.csv", data)
    assert reasons(report) == [(6, "invalid_rating"), (7, "invalid_rating")]
    assert report["files"][0]["rating_range"] == [-2.0, 10.0]
    report = ingest(db_url, tmp_path, "log.csv", data, "--rating-range", "0:5")
    assert [(e["line"], e["detail"]) for e in report["errors"]] == [
        (3, "rating 10 outside 0..5"), (5, "rating -2 outside 0..5"),
        (6, "rating 'nan' is not finite"), (7, "rating 'inf' is not finite")]  # fmt: skip


def test_amazon_files_keep_their_1_to_5_stars(tmp_path, db_url):
    lines = [review("u1", "p1", "0.5"), review("u2", "p1", "5"), review("u3", "p1", "6")]
    report = ingest(db_url, tmp_path, "reviews.jsonl", lines)
    assert [(e["line"], e["detail"]) for e in report["errors"]] == [
        (1, "rating 0.5 outside 1..5"), (3, "rating 6 outside 1..5")]  # fmt: skip
    report = ingest(db_url, tmp_path, "reviews.jsonl", lines, "--rating-range", "0.5:6")
    assert report["bad_lines"] == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5:1", "MIN must be <= MAX (got 5:1)"),
        ("nan:nan", "must be finite"),
        ("0:inf", "must be finite"),
        ("1", "expected MIN:MAX"),
    ],  # fmt: skip
)
def test_inverted_or_nan_rating_range_is_a_usage_error(tmp_path, value, message):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating\nu1,i1,5\nu2,i1,4\n")
    result = cli("ingest", path, "--rating-range", value, expect=2)
    assert message in result.output and "--rating-range" in result.output


@pytest.mark.parametrize(
    "toml", ["rating_min = 5.0\nrating_max = 1.0\n", "rating_min = nan\n", "rating_max = inf\n"]
)
def test_inverted_or_nan_config_range_is_an_error_naming_the_keys(tmp_path, toml):
    config = tmp_path / "inverted.toml"
    config.write_text("[ingest]\n" + toml)
    result = cli("--config", config, "config", expect=1)
    assert "inverted.toml" in result.stderr and "'ingest.rating_m" in result.stderr


def test_movielens_latest_small_keeps_every_rating(tmp_path, shared_data):
    folder = shared_data / "movielens-ml-latest-small"
    report = cli("ingest", folder / "ratings.csv", folder / "movies.csv", "--json")
    assert report["bad_lines"] == 0
    assert report["ratings"]["inserted"] == 100_836
    assert report["files"][0]["rating_range"] == [0.5, 5.0]
    assert report["products"]["inserted"] == 9_742


# --- meta2014-literal-detected-as-json ----------------------------------------------------------


def test_2014_literals_with_few_keys_are_2014_metadata(tmp_path, db_url):
    lines = [
        "{'asin': 'B000000001', 'title': 'Guitar strings', 'brand': 'Ernie Ball'}",
        "{'asin': 'B000000002', 'title': \"Player's capo\", 'price': 9.99}",
    ]
    report = ingest(db_url, tmp_path, "meta_Musical_Instruments.json", lines)
    assert report["files"][0]["format"] == "amazon2014" and report["bad_lines"] == 0
    assert products(db_url) == ["B000000001", "B000000002"]


def test_detection_reads_keys_of_several_lines(tmp_path, db_url):
    # the first line alone looks like any JSON; the 2018 keys show up on the second
    lines = ['{"asin": "A1", "title": "x"}', '{"asin": "A2", "title": "y", "main_cat": "Toys"}']
    report = ingest(db_url, tmp_path, "meta.json", lines)
    assert report["files"][0]["format"] == "amazon2018" and products(db_url) == ["A1", "A2"]


def test_python_literals_without_asin_ask_for_the_format(tmp_path):
    path = tmp_path / "things.json"
    path.write_text("{'id': 'A1', 'title': 'x'}\n")
    result = cli("ingest", path, expect=1)
    assert "Python literals" in result.stderr and "--format amazon2014" in result.stderr


# --- MovieLens genres ---------------------------------------------------------------------------


def test_genre_lists_fill_categories(tmp_path, db_url):
    data = b"movieId,title,genres\n1,Toy Story (1995),Animation|Children's|Musical\n2,Heat,Action\n"
    ingest(db_url, tmp_path, "movies.csv", data)
    ingest(
        db_url, tmp_path, "more.jsonl", ['{"item": "3", "category": ["Drama", " drama ", "War"]}']
    )
    got = rows(db_url, "select item_id, main_category, categories from product_catalog "
               "order by item_id")  # fmt: skip
    assert [(i, m, c if isinstance(c, list) else json.loads(c)) for i, m, c in got] == [
        ("1", "Animation", ["Animation", "Children's", "Musical"]),
        ("2", "Action", ["Action"]), ("3", "Drama", ["Drama", "drama", "War"])]  # fmt: skip


# --- found by the fuzzer (benchmarks/fuzz_ingest.py) --------------------------------------------


def test_a_2014_key_with_a_lone_surrogate_is_invalid_utf8(tmp_path, db_url):
    lines = [
        "{'asin': 'A1', 'title': 'ok', 'categories': [['Music']]}",
        "{'asin': 'A2', 'imU\\ud800rl': 'http://x/y.jpg', 'categories': [['Music']]}",
        "{'asin': 'A3', 'title': 'ok3', 'categories': [['Music']]}",
    ]
    report = ingest(db_url, tmp_path, "meta.json", lines)
    assert reasons(report) == [(2, "invalid_utf8")] and products(db_url) == ["A1", "A3"]


def test_a_key_of_one_broken_line_does_not_take_a_field(tmp_path, db_url):
    # line 2 has "\u2028rating" (an inserted line separator) and "stars"; the other lines "rating"
    lines = [
        '{"user": "u1", "item": "i1", "rating": 10.0}',
        '{"user": "u2", "item": "i2", "\u2028rating": 3.0, "stars": 1}',
        '{"user": "u3", "item": "i3", "rating": 0.5}',
    ]
    report = ingest(db_url, tmp_path, "log.jsonl", lines)
    assert report["files"][0]["mapping"]["rating"] == "rating"
    assert reasons(report) == [(2, "invalid_rating")]
    assert ratings(db_url) == [("u1", "i1"), ("u3", "i3")]
