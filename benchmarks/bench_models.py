"""The recommender menu, measured: quality on real data, then speed and memory at reference scale.

    python benchmarks/bench_models.py quality [--trials 30] [--skip-tune]
    python benchmarks/bench_models.py scale [--data DIR] [--home DIR] [--queries 2000]

quality: MovieLens latest-small (../shared/data; per-user random 75/25, seed 42, k = 10): NDCG@10
of every model with its default parameters, then `recsys tune` of all models (wall time) and
the tuned test NDCG; the Gift Cards 5-core sample (global time split): every model against
popularity. Goals: best model >= 0.40, tuned ALS >= 0.38, tune of all models <= 15 min.

scale: the reference scale (2M ratings, 1.7M users, 90K items; `recsys sample`): per model the
`train` time and peak memory (a child process each), the loaded model's memory, and in-process
similar / user p50/p99 through the model interface, next to the bare library doing the same
(implicit's ALS and item-kNN recommenders, a numpy row product for EASE and RP3beta) in the same
run. Goal: every model trains here, p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import mb, reference_sample, run_cli, timed  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MOVIELENS = SHARED / "movielens-ml-latest-small"
GIFT_CARDS = SHARED / "amazon2018-gift-cards-5core"
MODELS = ("als", "ease", "itemknn", "rp3beta", "popularity")


def recsys(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, dict, int]:
    return run_cli(["--home", str(home), *args], env=env)


def ingest_movielens(home: Path) -> None:
    recsys(home, "ingest", str(MOVIELENS / "ratings.csv"), "--map", "user=userId",
           "--map", "item=movieId", "--map", "rating=rating", "--map", "timestamp=timestamp",
           "--rating-range", "0.5:5", "-q")  # fmt: skip
    recsys(home, "ingest", str(MOVIELENS / "movies.csv"), "--map", "item=movieId",
           "--map", "title=title", "--map", "category=genres", "-q")  # fmt: skip


def print_evaluation(label: str, report: dict) -> None:
    print(f"\n{label}: {report['split_description']}, k={report['k']}, "
          f"{report['evaluated_users']:,} users evaluated, catalog {report['catalog_items']:,} items")  # fmt: skip
    print(f"  {'model':11s} {'NDCG':>7s} {'recall':>7s} {'MAP':>7s} {'cover':>7s} {'novelty':>7s} "
          f"{'gini':>6s} {'p vs best':>10s} {'fit s':>7s}")  # fmt: skip
    for name, m in report["models"].items():
        p = "-" if m["p_value"] is None else f"{m['p_value']:.2g}"
        print(f"  {name:11s} {m['ndcg']:7.4f} {m['recall']:7.4f} {m['map']:7.4f} {m['coverage']:7.4f} "
              f"{m['novelty']:7.2f} {m['gini']:6.3f} {p:>10s} {m['fit_seconds']:7.1f}")  # fmt: skip


def quality(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        if not MOVIELENS.is_dir():
            print(f"(no MovieLens at {MOVIELENS}: skipped)")
        else:
            home = Path(tmp) / "movielens"
            ingest_movielens(home)
            split = ["--split", "random", "--test-fraction", "0.25", "--seed", "42"]
            seconds, report, _ = recsys(home, "evaluate", *split, "--json")
            print_evaluation(f"MovieLens latest-small, default parameters ({seconds:.0f}s)", report)
            defaults = {name: m["ndcg"] for name, m in report["models"].items()}
            if not args.skip_tune:
                env = {"RECSYS_EVALUATE_SPLIT": "random", "RECSYS_EVALUATE_TEST_FRACTION": "0.25",
                       "RECSYS_EVALUATE_SEED": "42"}  # fmt: skip
                seconds, tuned, _ = recsys(
                    home, "tune", "--trials", str(args.trials), "--json", env=env
                )
                print(f"\n`recsys tune` of {len(tuned['models'])} models, {args.trials} trials "
                      f"each at most: {seconds / 60:.1f} min (goal <= 15)")  # fmt: skip
                print(f"  {tuned['validation_description']}")
                print(
                    f"  {'model':11s} {'default':>8s} {'tuned':>8s} {'valid.':>8s} {'trials':>6s}  best parameters"
                )
                for t in tuned["models"]:
                    params = ", ".join(
                        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in t["params"].items()
                    )
                    print(f"  {t['model']:11s} {defaults.get(t['model'], float('nan')):8.4f} "
                          f"{t['test_ndcg']:8.4f} {t['validation_ndcg']:8.4f} {t['trials']:6d}  {params}")  # fmt: skip
                best = max(t["test_ndcg"] for t in tuned["models"])
                als = next(t["test_ndcg"] for t in tuned["models"] if t["model"] == "als")
                print(f"  goals: best model {best:.4f} (>= 0.40), tuned ALS {als:.4f} (>= 0.38); "
                      f"validated best: {tuned['best']}")  # fmt: skip
                _, after, _ = recsys(home, "evaluate", *split, "--json")  # train uses the record
                print_evaluation(
                    "MovieLens latest-small, tuned parameters (from the registry)", after
                )
        if not GIFT_CARDS.is_dir():
            print(f"(no Gift Cards sample at {GIFT_CARDS}: skipped)")
            return
        home = Path(tmp) / "gift-cards"
        recsys(home, "ingest", str(GIFT_CARDS / "Gift_Cards_5.json"),
               str(GIFT_CARDS / "meta_Gift_Cards.json"), "-q")  # fmt: skip
        _, report, _ = recsys(home, "evaluate", "--split", "time", "--json")
        print_evaluation("Amazon 2018 Gift Cards 5-core", report)


# ---- scale -------------------------------------------------------------------------------------
def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):6.3f} ms  p99 {np.percentile(ms, 99):6.3f} ms"


def scale(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        data = args.data or Path(tmp) / "data"
        home = args.home or Path(tmp) / "home"
        reviews, meta = reference_sample(data)
        if not (home / "recsys.db").exists():
            seconds, _, _ = recsys(home, "ingest", str(meta), str(reviews), "-q")
            print(f"ingested the reference sample in {seconds:.0f}s")
        print("\ntrain (a child process each; peak RSS of that process):")
        for name in MODELS:
            seconds, result, peak = recsys(home, "train", name, "--force", "-q", "--json")
            extra = {
                k: v for k, v in result["counts"].items() if k not in ("users", "items", "ratings")
            }
            print(f"  {name:11s} {seconds:7.1f}s  peak {mb(peak):>9s}  {extra}")
        bare_scale(home, args.queries)


def bare_scale(home: Path, queries: int) -> None:
    """Load each model in this process and time its answers against the bare library."""
    from threadpoolctl import threadpool_limits

    from recsys.config import load_settings
    from recsys.models.kinds import KINDS
    from recsys.models.registry import Registry

    settings = load_settings(overrides={"paths.home": str(home)}, environ={})
    registry = Registry(settings.models_dir)
    rng = np.random.default_rng(0)
    threadpool_limits(1, "blas")
    print(
        f"\nin-process answers, n=10, {queries:,} random queries each (model interface | bare library):"
    )
    for name in MODELS:
        gc.collect()
        before = rss()
        folder, manifest = registry.open(name)
        t = time.perf_counter()
        model = KINDS[name].model_class().load(folder, manifest)
        model.prepare_for_serving(settings.server.max_n)
        load = time.perf_counter() - t
        gc.collect()
        print(f"  {name}: load + serving indexes {load:.1f}s, loaded memory +{mb(rss() - before)}")
        known = np.flatnonzero(model.known)
        items = rng.choice(known, queries)
        users = rng.choice(len(model.user_ids), queries)

        def user(u: int, model=model) -> None:  # type: ignore[no-untyped-def]
            seen, ratings = model.seen(u)
            model.recommend(seen, ratings, 10, exclude=seen)

        print(f"    similar  {percentiles(timed(lambda i, m=model: m.similar(int(i), 10), items))}")
        print(f"    user     {percentiles(timed(user, users))}")
        bare = bare_library(name, model)
        if bare is not None:
            similar, recommend = bare
            print(f"    bare similar {percentiles(timed(similar, items))}")
            print(f"    bare user    {percentiles(timed(recommend, users))}")
        del model, bare
        gc.collect()


def bare_library(name: str, model):  # type: ignore[no-untyped-def]
    """(similar(item), recommend(user)) done by the library alone on the same arrays."""
    import scipy.sparse as sp

    seen = sp.csr_matrix(
        (model.seen_ratings, model.seen_items, model.seen_indptr),
        shape=(len(model.user_ids), model.n_items),
    )
    if name == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        als = AlternatingLeastSquares(
            factors=model.item_factors.shape[1], regularization=model.regularization
        )
        als.item_factors = model.item_factors
        als.user_factors = np.zeros((1, model.item_factors.shape[1]), dtype=np.float32)
        conf = seen.copy()
        conf.data = model.weights(conf.data)
        return (
            lambda i: als.similar_items(int(i), 11),
            lambda u: als.recommend(0, conf[u], 10, recalculate_user=True),
        )
    if name == "itemknn":
        from implicit.nearest_neighbours import ItemItemRecommender

        knn = ItemItemRecommender(K=10)
        knn.similarity = model.similarity
        from implicit.nearest_neighbours import NearestNeighboursScorer

        knn.scorer = NearestNeighboursScorer(model.similarity)
        ones = seen.copy()
        ones.data[:] = 1.0
        return (lambda i: knn.similar_items(int(i), 11), lambda u: knn.recommend(u, ones[u], 10))
    if name in ("ease", "rp3beta"):  # the matrix product alone

        def similar(i):  # type: ignore[no-untyped-def]
            row = model._rows(np.array([int(i)]))[0]
            return np.argpartition(-row, 11)[:11]

        def recommend(u):  # type: ignore[no-untyped-def]
            lo, hi = model.seen_indptr[u], model.seen_indptr[u + 1]
            scores = np.asarray(model._rows(model.seen_items[lo:hi]).sum(axis=0)).ravel()
            return np.argpartition(-scores, 10)[:10]

        return similar, recommend
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--trials", type=int, default=30)
    q.add_argument("--skip-tune", action="store_true")
    s = sub.add_parser("scale")
    s.add_argument("--data", type=Path)
    s.add_argument("--home", type=Path)
    s.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    if args.what == "quality":
        quality(args)
    else:
        scale(args)


if __name__ == "__main__":
    main()
