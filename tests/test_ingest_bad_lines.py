"""Dirty files: every bad-line kind is skipped, counted, reported with its line; nothing stored is lost."""

from __future__ import annotations

import gzip
import json

from helpers import cli, rows


def review(user: str, item: str, rating: object = 5.0, ts: int = 1_600_000_000_000) -> str:
    return json.dumps({
        "rating": rating, "title": "t", "text": "x", "images": [], "asin": item, "parent_asin": item,
        "user_id": user, "timestamp": ts, "helpful_vote": 0, "verified_purchase": True,
    })  # fmt: skip


def write_dirty(path) -> None:
    lines = [
        review("U1", "I1").encode(),  # 1 good
        b'{"rating": 5.0, "user_id": "U2", "parent_as',  # 2 broken JSON
        review("U3", "I1").encode().replace(b'"t"', b'"\xff"'),  # 3 invalid UTF-8
        review("U4", "I1").encode().replace(b"t", b"\x00t", 1),  # 4 NUL byte
        review("", "I1").encode(),  # 5 missing user
        json.dumps(
            {"rating": 5.0, "user_id": "U6", "parent_asin": None, "timestamp": 1}
        ).encode(),  # 6 no item
        review("U7", "I1", rating="five").encode(),  # 7 rating not a number
        review("U8", "I1", rating=7).encode(),  # 8 rating out of range
        review("U9", "I1")
        .encode()
        .replace(b'"helpful_vote": 0', b'"helpful_vote": "many"'),  # 9 wrong type
        b'{"rating": 5.0, "text": "' + b"x" * (5 << 20) + b'"}',  # 10 a line of 5 MB
        b"",  # 11 blank: not a record, not an error
        review("U12", "I2").encode(),  # 12 good
        b"[1, 2, 3]",  # 13 JSON but not an object
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


EXPECTED = [
    (2, "invalid_json"),
    (3, "invalid_utf8"),
    (4, "nul_byte"),
    (5, "missing_user"),
    (6, "missing_item"),
    (7, "invalid_rating"),
    (8, "invalid_rating"),
    (9, "wrong_type:helpful_vote"),
    (10, "line_too_long"),
    (13, "wrong_type"),
]


def test_every_bad_line_kind_is_reported(tmp_path, db_url):
    path = tmp_path / "reviews.jsonl"
    write_dirty(path)
    report = cli("--db", db_url, "ingest", path, "--format", "amazon2023", "--kind", "reviews",
                 "--json")  # fmt: skip
    assert [(e["line"], e["reason"]) for e in report["errors"]] == EXPECTED
    assert all(e["file"] == str(path) for e in report["errors"])
    assert report["bad_lines"] == len(EXPECTED)
    assert report["bad_by_reason"]["invalid_rating"] == 2
    assert report["lines_read"] == 13
    assert report["ratings"]["inserted"] == 2
    assert rows(db_url, "select user_id, item_id from user_item_rating order by user_id") == [
        ("U1", "I1"), ("U12", "I2")]  # fmt: skip


def test_bad_lines_never_lose_stored_rows(tmp_path, db_url):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(review(f"U{i}", f"I{i % 7}") for i in range(50)) + "\n")
    cli("--db", db_url, "ingest", good, "--quiet")
    dirty = tmp_path / "dirty.jsonl"
    write_dirty(dirty)
    cli("--db", db_url, "ingest", dirty, "--format", "amazon2023", "--kind", "reviews", "--quiet")
    assert rows(db_url, "select count(*) from user_item_rating") == [(51,)]  # 50 + U12 (U1 exists)


def test_max_errors_stops_with_exit_1_and_keeps_committed_batches(tmp_path, db_url):
    path = tmp_path / "reviews.jsonl"
    good = [review(f"U{i}", "I1") for i in range(10)]
    path.write_text("\n".join(good + ["{broken"] * 3 + [review("LATE", "I1")]) + "\n")
    result = cli("--db", db_url, "ingest", path, "--max-errors", "2", "--batch-size", "4",
                 "--json", expect=1)  # fmt: skip
    assert "more than 2 bad lines" in result.stderr and f"{path}:13" in result.stderr
    report = json.loads(result.stdout)
    assert report["aborted"] and report["bad_lines"] == 3
    # batches of 4: rows 1-4 and 5-8 were committed; 9-10 were in the discarded batch
    assert rows(db_url, "select count(*) from user_item_rating") == [(8,)]
    # within the limit the run completes
    cli("--db", db_url, "ingest", path, "--max-errors", "3", "--quiet")
    assert rows(db_url, "select count(*) from user_item_rating") == [(11,)]


def test_truncated_gzip_keeps_what_was_read(tmp_path, db_url):
    import random

    rnd = random.Random(7)  # random ids so that the compressed stream is long enough to cut
    data = "\n".join(review(f"U{rnd.getrandbits(64):x}", "I1") for _ in range(2000)).encode()
    packed = gzip.compress(data + b"\n")
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    report = cli("--db", db_url, "ingest", path, "--format", "amazon2023", "--kind", "reviews",
                 "--json")  # fmt: skip
    assert report["bad_lines"] == 1
    assert report["errors"][0]["reason"].startswith("corrupt_file")
    stored = rows(db_url, "select count(*) from user_item_rating")[0][0]
    assert 0 < stored < 2000 and stored == report["ratings"]["inserted"]


def test_missing_file_and_empty_file_are_one_line_errors(tmp_path):
    result = cli("ingest", tmp_path / "nope.jsonl", expect=1)
    assert "nope.jsonl: no such file" in result.stderr and "Traceback" not in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli("ingest", empty, expect=1)
    assert "empty.jsonl: empty file" in result.stderr
