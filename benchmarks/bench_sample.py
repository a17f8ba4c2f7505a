"""Time `generate_sample` (default: the reference scale) and report the shape of what it wrote.

    python benchmarks/bench_sample.py [--out DIR] [--users N] [--items N] [--ratings N]
                                      [--products N] [--seed N] [--plain] [--no-stats]

Without --out the files go to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from recsys.ingest.sample import SampleResult, generate_sample


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        yield from f


def _stats(res: SampleResult) -> dict[str, float]:
    """Shape statistics read back from the files (every line goes through json.loads)."""
    meta_cat = {
        m["parent_asin"]: m["main_category"] for m in map(json.loads, _lines(res.meta_path))
    }
    per_user: dict[str, list[str]] = {}
    per_item: Counter[str] = Counter()
    pairs: set[tuple[str, str]] = set()
    stars: Counter[float] = Counter()
    n = 0
    for r in map(json.loads, _lines(res.reviews_path)):
        n += 1
        per_user.setdefault(r["user_id"], []).append(r["parent_asin"])
        per_item[r["parent_asin"]] += 1
        pairs.add((r["user_id"], r["parent_asin"]))
        stars[r["rating"]] += 1
    sizes = sorted(per_item.values(), reverse=True)
    top1 = max(1, len(sizes) // 100)
    active = [v for v in per_user.values() if len(v) >= 5]
    top_cat = [Counter(meta_cat[a] for a in v).most_common(1)[0][1] / len(v) for v in active]
    return {
        "ratings": n,
        "distinct users": len(per_user),
        "distinct items": len(per_item),
        "share of users with 1 rating": sum(len(v) == 1 for v in per_user.values()) / len(per_user),
        "max ratings by one user": max(len(v) for v in per_user.values()),
        "share of ratings on top 1% items": sum(sizes[:top1]) / n,
        "share of ratings on top 10% items": sum(sizes[: max(1, len(sizes) // 10)]) / n,
        "repeat (user, item) reviews": (n - len(pairs)) / n,
        "top-category share, users >= 5 ratings": sum(top_cat) / max(1, len(top_cat)),
        "mean rating": sum(k * v for k, v in stars.items()) / n,
        "share of 5-star ratings": stars[5.0] / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, help="output directory (default: a temp dir)")
    ap.add_argument("--users", type=int, default=1_700_000)
    ap.add_argument("--items", type=int, default=90_000)
    ap.add_argument("--ratings", type=int, default=2_000_000)
    ap.add_argument("--products", type=int, default=94_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--plain", action="store_true", help="write .jsonl instead of .jsonl.gz")
    ap.add_argument("--no-stats", action="store_true", help="skip reading the files back")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_sample_") as tmp:
        out = args.out or Path(tmp)
        t0 = time.perf_counter()
        res = generate_sample(
            out,
            users=args.users,
            items=args.items,
            ratings=args.ratings,
            products=args.products,
            seed=args.seed,
            gzip=not args.plain,
        )
        wall = time.perf_counter() - t0
        print(f"generate_sample: {wall:.2f} s  ->  {res}")
        for p in (res.reviews_path, res.meta_path):
            print(f"  {p.name:<20} {p.stat().st_size / 1e6:9.1f} MB")
        if not args.no_stats:
            t0 = time.perf_counter()
            for k, v in _stats(res).items():
                print(f"  {k:<42} {v:,.3f}" if isinstance(v, float) else f"  {k:<42} {v:,}")
            print(f"(stats read back in {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
