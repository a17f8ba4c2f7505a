"""Issue 10: a bounded run of the ingest fuzzer (tests/ingest_fuzz.py) over every format, on SQLite
and PostgreSQL: no line can crash a run, every good line is kept, every bad line is counted.
benchmarks/fuzz_ingest.py runs the same fuzzer for as long as asked."""

from __future__ import annotations

import pytest

from ingest_fuzz import FORMATS, Fuzzer, run_case, settings_for

CASES_PER_FORMAT = 12


@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzzed_files_never_crash_and_lose_no_good_line(tmp_path, db_url, fmt):
    fuzzer = Fuzzer(seed=sum(map(ord, fmt)))  # the same cases every run
    settings = settings_for(db_url)
    failures = []
    for number in range(CASES_PER_FORMAT):
        case = fuzzer.case(fmt, f"{number}")
        outcome = run_case(case, settings, tmp_path)
        if outcome.kind in ("crash", "violation"):
            failures.append((number, outcome.kind, outcome.detail, case.data[:300]))
    assert failures == []
