"""Time `train mf` end to end at the reference scale against a bare implicit fit; evaluate ALS
against popularity on the real Gift Cards sample and on synthetic data.

    python benchmarks/bench_train_mf.py [--data DIR] [--home DIR] [--skip-eval] [--cli] [--full-fit]

--data reuses (or writes) the reference sample (2M ratings, 1.7M users, 90K items); --home reuses
(or fills) a data home, so a second run skips the ~30 s ingest. Without them both live in a
temporary directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = {"users": 1_700_000, "items": 90_000, "ratings": 2_000_000, "products": 94_000}
GIFT_CARDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon2018-gift-cards-5core"


def settings_for(home: Path, **overrides):
    from recsys.config import load_settings

    return load_settings(overrides={"paths.home": str(home), **overrides}, environ={})


def prepare(data: Path, home: Path) -> None:
    from recsys import service
    from recsys.ingest.sample import generate_sample

    reviews, meta = data / "reviews.jsonl.gz", data / "meta.jsonl.gz"
    if not reviews.exists():
        t = time.perf_counter()
        generate_sample(data, **REFERENCE, gzip=True)
        print(f"sample written in {time.perf_counter() - t:.1f}s")
    settings = settings_for(home)
    if service.status(settings).store.ratings == 0:
        t = time.perf_counter()
        service.ingest(settings, [meta, reviews])
        print(f"ingested in {time.perf_counter() - t:.1f}s")


def bench_train(home: Path, cli: bool, full_fit: bool) -> None:
    from threadpoolctl import threadpool_limits

    from recsys import service
    from recsys.models.interactions import confidence, read_interactions, user_item_matrix
    from recsys.models.mf import ALSParams, factors_for, fit_rows
    from recsys.service.data import engine_for

    settings = settings_for(home)
    result = service.train_mf(settings, force=True)
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    print(f"train mf (service): {result.seconds:.2f}s total ({phases})")
    print(f"  {result.counts['ratings']:,} ratings, {result.counts['users']:,} users, "
          f"{result.counts['items']:,} items, params {result.params}")  # fmt: skip

    data = read_interactions(engine_for(settings))
    p = settings.mf
    values = confidence(data.ratings, p.confidence, p.alpha)
    full = user_item_matrix(data.users, data.items, values, (data.n_users, data.n_items))
    from implicit.cpu.als import AlternatingLeastSquares

    def bare_fit(matrix) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=factors_for(ALSParams.from_settings(p), matrix.shape[1]),
                regularization=p.regularization, alpha=1.0,
                iterations=p.iterations, random_state=p.random_state,
            )  # fmt: skip
            model.fit(matrix, show_progress=False)
        return time.perf_counter() - t

    matrix = fit_rows(full, p.min_user_ratings)
    bare = bare_fit(matrix)
    print(f"bare implicit fit of the same matrix ({matrix.shape[0]:,} users with >= "
          f"{p.min_user_ratings} ratings, {matrix.nnz:,} ratings): {bare:.2f}s")  # fmt: skip
    print(f"ratio train mf / bare fit: {result.seconds / bare:.2f} (goal <= 1.5)")
    if full_fit:
        print(f"for reference, bare fit of all {full.shape[0]:,} users: {bare_fit(full):.2f}s")

    if cli:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "recsys", "--home", str(home), "train", "mf", "--force", "-q"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        print(
            f"`recsys train mf --force` as a command (incl. start-up): {time.perf_counter() - t:.2f}s"
        )


def show_eval(label: str, report) -> None:
    print(f"evaluate mf on {label}: split {report.split}, k={report.k}, "
          f"{report.evaluated_users:,}/{report.test_users:,} test users evaluated, "
          f"cold users {report.cold_users:,}, cold items {report.cold_items:,}, "
          f"{report.seconds:.1f}s")  # fmt: skip
    for name, m in report.models.items():
        print(f"  {name:8s} precision {m.precision:.4f}  recall {m.recall:.4f}  ndcg {m.ndcg:.4f}  "
              f"map {m.map:.4f}  coverage {m.coverage:.4f}")  # fmt: skip


def bench_evaluate(reference_home: Path, workdir: Path) -> None:
    from recsys import service
    from recsys.ingest.sample import generate_sample

    if GIFT_CARDS.is_dir():
        home = workdir / "gift-cards"
        settings = settings_for(home)
        service.ingest(
            settings, [GIFT_CARDS / "Gift_Cards_5.json", GIFT_CARDS / "meta_Gift_Cards.json"]
        )
        for split in ("random", "time"):
            show_eval(f"Gift Cards 5-core ({split})", service.evaluate_mf(settings, split=split))
            show_eval(
                f"Gift Cards 5-core ({split}, factors 16, reg 1)",
                service.evaluate_mf(
                    settings_for(home, **{"mf.factors": 16, "mf.regularization": 1.0}), split=split
                ),
            )
    else:
        print(f"(no Gift Cards sample at {GIFT_CARDS})")

    home = workdir / "synthetic"
    data = workdir / "synthetic-data"
    generate_sample(data, users=20_000, items=2_000, ratings=200_000, products=2_100, seed=3)
    settings = settings_for(home)
    service.ingest(settings, [data / "meta.jsonl", data / "reviews.jsonl"])
    for split in ("random", "time"):
        show_eval(f"synthetic 200K ratings / 20K users / 2K items ({split})",
                  service.evaluate_mf(settings, split=split))  # fmt: skip
    show_eval("reference scale (time)", service.evaluate_mf(settings_for(reference_home)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--cli", action="store_true", help="also time the command in a subprocess")
    parser.add_argument("--full-fit", action="store_true", help="also time a fit of every user")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mf-") as tmp:
        work = Path(tmp)
        data, home = args.data or work / "data", args.home or work / "home"
        prepare(data, home)
        bench_train(home, args.cli, args.full_fit)
        if not args.skip_eval:
            bench_evaluate(home, work)


if __name__ == "__main__":
    main()
