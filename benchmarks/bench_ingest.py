"""Ingest throughput at the reference scale (2M reviews + 94K products, gzipped), SQLite and PostgreSQL.

    python benchmarks/bench_ingest.py [--data DIR] [--no-postgres] [--no-sqlite-utils]

Prints reviews/s and products/s end to end (CLI process start to exit), peak memory of the ingest
process for a quarter of the file and the whole file (streaming: it should stay flat), database
size, and `sqlite-utils insert --nl` of the same reviews in the same run for comparison.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from common import mb, reference_sample, run_cli  # noqa: E402


def head_gz(src: Path, dst: Path, lines: int) -> Path:
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb", compresslevel=1) as fout:
        for i, line in enumerate(fin):
            if i >= lines:
                break
            fout.write(line)
    return dst


def ingest(label: str, db_args: list[str], meta: Path, reviews: Path) -> float:
    t_meta, rep_meta, _ = run_cli([*db_args, "ingest", str(meta), "--json", "-q"])
    t_rev, rep_rev, peak = run_cli([*db_args, "ingest", str(reviews), "--json", "-q"])
    n_products = rep_meta["products"]["inserted"] + rep_meta["products"]["updated"]
    print(f"[{label}] products: {rep_meta['lines_read']:,} lines in {t_meta:.1f} s "
          f"= {rep_meta['lines_read'] / t_meta:,.0f}/s ({n_products:,} rows)")  # fmt: skip
    print(f"[{label}] reviews:  {rep_rev['lines_read']:,} lines in {t_rev:.1f} s "
          f"= {rep_rev['lines_read'] / t_rev:,.0f}/s end to end "
          f"(inserted {rep_rev['ratings']['inserted']:,}, updated {rep_rev['ratings']['updated']:,}; "
          f"in-process {rep_rev['seconds']:.1f} s), peak RSS {mb(peak)}")  # fmt: skip
    return rep_rev["lines_read"] / t_rev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "recsys-reference"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite-utils", action="store_true")
    args = parser.parse_args()
    reviews, meta = reference_sample(args.data)
    work = Path(tempfile.mkdtemp(prefix="recsys-bench-ingest-"))
    try:
        home = work / "home"
        rate = ingest("sqlite", ["--home", str(home)], meta, reviews)
        print(f"[sqlite] database size {mb((home / 'recsys.db').stat().st_size)}")

        quarter = head_gz(reviews, work / "quarter.jsonl.gz", 500_000)
        _, _, peak_quarter = run_cli(
            ["--home", str(work / "q"), "ingest", str(quarter), "--json", "-q"]
        )
        print(f"[sqlite] peak RSS, 500K reviews: {mb(peak_quarter)} (2M above: memory is flat)")

        # the venv's sqlite-utils (a test extra), else one on PATH
        sqlite_utils = Path(sys.executable).with_name("sqlite-utils")
        sqlite_utils = str(sqlite_utils) if sqlite_utils.exists() else shutil.which("sqlite-utils")
        if not args.no_sqlite_utils and sqlite_utils:
            plain = work / "reviews.jsonl"
            with gzip.open(reviews, "rb") as fin, open(plain, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            started = time.perf_counter()
            subprocess.run([sqlite_utils, "insert", str(work / "su.db"), "reviews", str(plain), "--nl"],
                           check=True, capture_output=True)  # fmt: skip
            su_rate = 2_000_000 / (time.perf_counter() - started)
            print(
                f"[sqlite-utils insert --nl] {su_rate:,.0f} reviews/s -> recsys is {rate / su_rate:.1f}x"
            )

        if not args.no_postgres:
            import pgcluster

            why = pgcluster.available()
            if why:
                print(f"[postgresql] skipped: {why}")
            else:
                with pgcluster.pg_cluster() as url:
                    ingest("postgresql", ["--db", url], meta, reviews)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
