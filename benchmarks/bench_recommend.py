"""Serving figures of the current mf model: load time and memory, in-process latency p50/p99 of
similar_items and recommend_user (model only, and the service call with its catalog query), and
one `recsys recommend` command with its start-up.

    python benchmarks/bench_recommend.py --home DIR [--queries 2000]

DIR is a data home with a trained mf model, e.g. the --home of bench_train_mf.py (which builds
the reference scale: 2M ratings, 1.7M users, 90K items).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms"


def timed(fn, args_list) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for args in args_list:
        t = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - t)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()

    from recsys import service
    from recsys.config import load_settings
    from recsys.models.interactions import decode
    from recsys.service.mf import current_model

    settings = load_settings(overrides={"paths.home": str(args.home)}, environ={})
    service.status(settings)  # engine + schema check, so only the model counts below
    gc.collect()
    before = rss_mb()
    t = time.perf_counter()
    model = current_model(settings)
    load = time.perf_counter() - t
    gc.collect()
    print(f"model {model.version}: {len(model.user_ids):,} users, {model.n_items:,} items, "
          f"{model.item_factors.shape[1]} factors")  # fmt: skip
    print(f"load (checksums + arrays): {load:.2f}s; RSS +{rss_mb() - before:.0f} MB "
          f"(goal <= 600 MB)")  # fmt: skip

    rng = np.random.default_rng(0)
    items = rng.choice(np.flatnonzero(model.trained), args.queries)
    users = rng.choice(len(model.user_ids), args.queries)
    item_ids = decode(model.item_ids[items])
    user_ids = decode(model.user_ids[users])
    n = args.n

    def user_model_only(u: int) -> None:
        seen, conf = model.seen(u)
        vector, _ = model.solve_user(seen, conf)
        model.recommend(vector, n, seen)

    print(f"{args.queries:,} queries each, n={n}:")
    for label, fn, batch in (
        ("similar items, model only", lambda i: model.similar(i, n), [(i,) for i in items]),
        ("similar items, service (+catalog query)",
         lambda i: service.similar_items(settings, i, n), [(i,) for i in item_ids]),
        ("recommend user, model only", user_model_only, [(u,) for u in users]),
        ("recommend user, service (+catalog query)",
         lambda u: service.recommend_user(settings, u, n), [(u,) for u in user_ids]),
        ("recommend user --explain, service",
         lambda u: service.recommend_user(settings, u, n, explain=True), [(u,) for u in user_ids]),
        ("recommend unknown user (popular), service",
         lambda u: service.recommend_user(settings, u, n), [("nobody-" + u,) for u in user_ids[:500]]),
    ):  # fmt: skip
        timed(fn, batch[:50])  # warm-up
        print(f"  {label}: {percentiles(timed(fn, batch))}")

    cmd = [
        sys.executable,
        "-m",
        "recsys",
        "--home",
        str(args.home),
        "recommend",
        "item",
        item_ids[0],
        "--json",
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(
        f"`recsys recommend item ... --json` as a command (start-up + load): {time.perf_counter() - t:.2f}s"
    )


if __name__ == "__main__":
    main()
