"""Product search: training cost and query latency at reference scale, quality on real metadata.

    python benchmarks/bench_search.py [--data DIR] [--skip-scale] [--skip-quality]

Scale (94K synthetic titles of the reference sample): `train_ss` wall time (ONNX Runtime, fp32
and int8) against a bare sentence-transformers `model.encode` of the same texts in the same run,
single-query encode p50/p99 of both, a retrain after 1% of the titles changed, the index chosen
(HNSW at >= 50K) with its recall@10 and size, warm in-process query latency per mode and the wall
time of a cold `recsys search` process per mode.

Quality: hit@1, hit@5 and MRR@10 per mode over the 20 judged shopper queries of
`search_queries.json` (1,714 real Amazon 2023 Health & Personal Care products), and hit@1 and
MRR@10 over the 61 known-item queries of `known_item_queries.json` (Health, Gift Cards 2018,
MovieLens), without and with the popularity prior, with int8 and with title+store embedded.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from recsys.config import Settings, load_settings  # noqa: E402
from recsys.service.data import engine_for, ingest  # noqa: E402
from recsys.service.search import MODES, search, train_ss  # noqa: E402

from common import mb, reference_sample, run_cli  # noqa: E402

QUERIES = Path(__file__).with_name("search_queries.json")
KNOWN_ITEMS = Path(__file__).with_name("known_item_queries.json")
KINDS = ("descriptive", "product", "brand")
LATENCY_QUERIES = 200
CLI_RUNS = 5
SUMMARY: list[str] = []  # every figure, printed again at the end


def report(line: str) -> None:
    print(line, flush=True)
    SUMMARY.append(line)


def settings_for(home: Path) -> Settings:
    return load_settings(overrides={"paths.home": str(home)})


def catalog(settings: Settings) -> list[tuple[str, str, str | None]]:
    """(item_id, title, main_category) in item_id order: the order `train_ss` embeds them in."""
    from sqlalchemy import select

    from recsys.store.tables import product_catalog as p

    query = select(p.c.item_id, p.c.title, p.c.main_category).order_by(p.c.item_id)
    with engine_for(settings).connect() as conn:
        return [(i, t, c) for i, t, c in conn.execute(query) if t and t.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# ---- quality -------------------------------------------------------------------------------
# Columns: (how the index was trained, how search ranks). "no prior" is the ranking before the
# popularity prior (relevance alone, as search ranked until then); int8 (train_ss's precision,
# quantised encoder weights) would have to keep >= 99% of the fp32 quality to be offered;
# title+store embeds the brand too (a candidate default).
NO_PRIOR = {
    "search.popularity_weight_semantic": 0.0,
    "search.popularity_weight_keyword": 0.0,
    "search.popularity_weight_hybrid": 0.0,
    "search.placeholder_patterns": [],
}
COLUMNS = {
    "fp32 no prior": ({}, NO_PRIOR),
    "fp32 prior": ({}, {}),
    "int8 prior": ({"precision": "int8"}, {}),
    "title+store prior": ({"ss.fields": ["title", "store"]}, {}),
}


def trainings() -> dict[str, dict[str, object]]:
    """Distinct training overrides, by a short name (one index per name)."""
    out: dict[str, dict[str, object]] = {}
    for training, _ in COLUMNS.values():
        out.setdefault(json.dumps(training, sort_keys=True), training)
    return out


def rank_of(settings: Settings, query: str, mode: str, relevant: set[str]) -> int | None:
    hits = [h.item_id for h in search(settings, query, k=10, mode=mode).hits]
    return next((r for r, item in enumerate(hits, start=1) if item in relevant), None)


def summarise(ranks: list[int | None]) -> tuple[float, float, float]:
    """(hit@1, hit@5, MRR@10) of first-relevant ranks (None = nothing relevant in the top 10)."""
    return (
        statistics.mean(float(r == 1) for r in ranks),
        statistics.mean(float(r is not None and r <= 5) for r in ranks),
        statistics.mean(1.0 / r if r else 0.0 for r in ranks),
    )


def judge(
    work: Path, name: str, files: list[Path], ingest_cfg: dict, queries: list[dict]
) -> dict[tuple[str, str, str], int | None]:
    """(column, mode, query) -> first relevant rank, one trained index per training variant."""
    from recsys.ingest.generic import GenericOptions

    base = {"ingest.rating_min": ingest_cfg["rating_min"]} if "rating_min" in ingest_cfg else {}
    ranks: dict[tuple[str, str, str], int | None] = {}
    for n, (key, training) in enumerate(trainings().items()):
        home = work / f"{name}-{n}"
        options = {k: v for k, v in training.items() if k != "precision"}  # settings overrides
        precision = str(training.get("precision", "fp32"))
        settings = load_settings(overrides={"paths.home": str(home), **base, **options})
        for file in files:
            mapping = ingest_cfg.get(file.name)
            ingest(settings, [file], generic=GenericOptions(mapping=mapping) if mapping else None)
        started = time.perf_counter()
        train_ss(settings, force=True, precision=precision)
        print(f"[{name}] train_ss {training or 'defaults'}: {time.perf_counter() - started:.1f} s",
              flush=True)  # fmt: skip
        for column, (column_training, ranking) in COLUMNS.items():
            if json.dumps(column_training, sort_keys=True) != key:
                continue
            ranked = load_settings(
                overrides={"paths.home": str(home), **base, **options, **ranking}
            )
            for entry in queries:
                relevant = set(entry.get("relevant") or [entry["item"]])
                for mode in MODES:
                    ranks[(column, mode, entry["query"])] = rank_of(
                        ranked, entry["query"], mode, relevant
                    )
    return ranks


def descriptive(work: Path) -> None:
    spec = json.loads(QUERIES.read_text())
    queries = spec["queries"]
    ranks = judge(work, "descriptive", [Path(spec["dataset"])], {}, queries)
    print("\nfirst relevant rank in the top 10 (- = none), per column: " + " / ".join(MODES))
    for entry in queries:
        cells = "   ".join(
            "/".join(str(ranks[(c, m, entry["query"])] or "-") for m in MODES) for c in COLUMNS
        )
        print(f"  {entry['query'][:58]:<58} {entry['kind']:<12} {cells}")

    counts = {k: sum(e["kind"] == k for e in queries) for k in KINDS}
    report(f"\nDescriptive set: 1,714 real Health & Personal Care products, {len(queries)} judged "
           f"queries ({', '.join(f'{n} {k}' for k, n in counts.items())}); hit@1 / hit@5 / MRR@10")  # fmt: skip
    report(f"    {'mode':<10}{'queries':<13}" + "".join(f"{c:>26}" for c in COLUMNS))
    for mode in MODES:
        for kind in ("all", *KINDS):
            cells = "".join(
                "{:>10.2f}{:>7.2f}{:>9.3f}".format(
                    *summarise(
                        [
                            ranks[(c, mode, e["query"])]
                            for e in queries
                            if kind in ("all", e["kind"])
                        ]
                    )
                )  # fmt: skip
                for c in COLUMNS
            )
            report(f"    {mode if kind == 'all' else '':<10}{kind:<13}{cells}")


def known_items(work: Path) -> None:
    spec = json.loads(KNOWN_ITEMS.read_text())
    groups: dict[str, list[tuple[str, str, int | None]]] = {}  # key -> (column, mode, rank)
    misses: list[str] = []
    for cat in spec["catalogs"]:
        files = [Path(f) for f in cat["files"]]
        ranks = judge(work, cat["name"], files, cat.get("ingest", {}), cat["queries"])
        for entry in cat["queries"]:
            for column in COLUMNS:
                for mode in MODES:
                    rank = ranks[(column, mode, entry["query"])]
                    for key in ("all", cat["name"], f"kind:{entry['kind']}"):
                        groups.setdefault(key, []).append((column, mode, rank))
                    if rank != 1:
                        misses.append(f"  {column:<18} {mode:<9} {cat['name']:<22} "
                                      f"{entry['query'][:44]:<44} rank {rank or '-'}")  # fmt: skip
    print("\nknown-item queries whose product was not first:")
    print("\n".join(misses) or "  none")
    n = sum(len(c["queries"]) for c in spec["catalogs"])
    report(f"\nKnown-item set: {n} judged queries on {len(spec['catalogs'])} real catalogs; "
           "hit@1 / MRR@10 (goal hit@1 >= 0.95)")  # fmt: skip
    report(f"    {'mode':<10}{'queries':<24}" + "".join(f"{c:>20}" for c in COLUMNS))
    keys = ["all", *(c["name"] for c in spec["catalogs"]), *(f"kind:{k}" for k in spec["kinds"])]
    for mode in MODES:
        for key in keys:
            cells = ""
            for column in COLUMNS:
                rows = [r for c, m, r in groups[key] if c == column and m == mode]
                hit, _, mrr = summarise(rows)
                cells += f"{hit:>11.2f}{mrr:>9.3f}"
            report(f"    {mode if key == 'all' else '':<10}{key:<24}{cells}")


def quality(work: Path) -> None:
    descriptive(work)
    known_items(work)


# ---- scale ---------------------------------------------------------------------------------
def latency_queries(n: int, seed: int = 7) -> list[str]:
    """Shopper-like queries drawn from the synthetic sample's own vocabulary."""
    from recsys.ingest.sample import _CATALOG

    def split(s: str) -> list[str]:
        return [w.strip() for w in s.split("|") if w.strip()]

    rng = random.Random(seed)
    queries: list[str] = []
    while len(queries) < n:
        cat = rng.choice(_CATALOG)
        noun = rng.choice([x for sub in cat.subcats.split(";") for x in split(sub.split(":")[1])])
        adj, brand = rng.choice(split(cat.adjs)), rng.choice(split(cat.brands))
        use, spec = rng.choice(split(cat.uses)), rng.choice(split(cat.specs))
        query = rng.choice([
            f"{adj} {noun}", f"{noun} {use}", f"{brand} {noun}", f"{adj} {noun} {use}",
            f"{noun} {spec}", f"best {noun.lower()} {use}", f"{brand} {spec} {noun}",
        ]).lower()  # fmt: skip
        if query not in queries:
            queries.append(query)
    return queries


def single_query_encode(bare_model: Any, queries: list[str]) -> dict[str, list[float]]:
    """Milliseconds per query of the bare sentence-transformers encode (torch, its default
    threads) and of our ONNX encoders (one thread, as the server's encoder threads run)."""
    from recsys.models.encoder import OnnxMiniLM

    encoders = {
        "sentence-transformers (torch)": lambda q: bare_model.encode(
            [q], normalize_embeddings=True
        ),
        **{
            f"onnxruntime {p}, 1 thread": lambda q, m=OnnxMiniLM(p): m.encode([q])
            for p in ("fp32", "int8")
        },
    }
    times: dict[str, list[float]] = {}
    for label, encode in encoders.items():
        for query in queries[:10]:
            encode(query)
        for query in queries:
            t0 = time.perf_counter()
            encode(query)
            times.setdefault(label, []).append((time.perf_counter() - t0) * 1000)
    return times


def scale(work: Path, data: Path) -> None:
    import numpy as np

    from recsys.models.encoder import load_sentence_transformer
    from recsys.models.registry import Registry

    _, meta = reference_sample(data)
    home = work / "scale"
    settings = settings_for(home)
    started = time.perf_counter()
    rep = ingest(settings, [meta])
    print(
        f"\n[scale] {rep.products.inserted:,} products ingested in {time.perf_counter() - started:.1f} s"
    )
    rows = catalog(settings)
    texts = [title.strip() for _, title, _ in rows]  # ss.fields = ["title"]: the text is the title

    started = time.perf_counter()
    model = load_sentence_transformer()
    load_seconds = time.perf_counter() - started
    print(
        f"[scale] bare encode of {len(texts):,} titles (batch {settings.ss.batch_size}) ...",
        flush=True,
    )
    started = time.perf_counter()
    vectors = model.encode(
        texts, batch_size=settings.ss.batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    bare = time.perf_counter() - started
    single = single_query_encode(model, latency_queries(LATENCY_QUERIES))
    del model, vectors

    print("[scale] train_ss --force in a fresh home ...", flush=True)
    started = time.perf_counter()
    full = train_ss(settings, force=True)
    full_seconds = time.perf_counter() - started
    assert full.version is not None
    index_file = Registry(settings.models_dir).kind_dir("ss") / full.version / "index.faiss"

    print("[scale] train_ss --force with int8 encoder weights in another home ...", flush=True)
    int8_settings = load_settings(overrides={"paths.home": str(work / "int8")})
    ingest(int8_settings, [meta])
    started = time.perf_counter()
    int8 = train_ss(int8_settings, force=True, precision="int8")
    int8_seconds = time.perf_counter() - started

    # 1% of the titles change: a small amazon2023 meta file through the ordinary ingest
    changed = rows[::100]
    update = work / "changed_titles.jsonl"
    with update.open("w") as out:
        for item_id, title, category in changed:
            record = {
                "parent_asin": item_id,
                "title": f"{title} - New 2025 Version",
                "main_category": category,
            }
            out.write(json.dumps(record) + "\n")
    rep_update = ingest(settings, [update])
    print(
        f"[scale] {rep_update.products.updated:,} titles changed; train_ss (not forced) ...",
        flush=True,
    )
    started = time.perf_counter()
    retrain = train_ss(settings)
    retrain_seconds = time.perf_counter() - started

    report(
        f"\nReference scale: {len(texts):,} product titles, all-MiniLM-L6-v2, batch {settings.ss.batch_size}"
    )
    report(f"  bare model.encode:          {bare:7.1f} s  ({len(texts) / bare:,.0f} titles/s; "
           f"loading the model before it took {load_seconds:.1f} s, not included)")  # fmt: skip
    for label, result, seconds, goal in (
        ("fp32", full, full_seconds, "1.0"), ("int8", int8, int8_seconds, "0.5")
    ):  # fmt: skip
        encode_phase = float(result.timings.get("encode_seconds", 0.0))
        report(f"  train_ss --force, {label}:     {seconds:7.1f} s  = {seconds / bare:.3f}x the bare "
               f"encode (goal <= {goal}); encode {encode_phase} s ({encode_phase / bare:.2f}x), "
               f"index+recall {result.timings.get('index_seconds')} s")  # fmt: skip
    report(f"  single-query encode, {LATENCY_QUERIES} distinct queries, one at a time:")
    for label, times in single.items():
        report(
            f"    {label:<34} p50 {percentile(times, 50):6.2f} ms  p99 {percentile(times, 99):6.2f} ms"
        )
    report(f"  retrain after 1% changed:   {retrain_seconds:7.1f} s  = {retrain_seconds / full_seconds:.1%} "
           f"of the full train (goal <= 10%); newly_encoded {retrain.counts.get('newly_encoded'):,}, "
           f"reused {retrain.counts.get('reused_from_cache'):,} (encode {retrain.timings.get('encode_seconds')} s, "
           f"index+recall {retrain.timings.get('index_seconds')} s)")  # fmt: skip
    report(f"  index: {full.params.get('index')} (requested {full.params.get('index_requested')}, "
           f"threshold {settings.ss.hnsw_threshold:,}); recall@10 {full.metrics.get('hnsw_recall_at_10')} "
           f"(efSearch {settings.ss.hnsw_ef_search}); index.faiss {mb(index_file.stat().st_size)}")  # fmt: skip

    queries = latency_queries(LATENCY_QUERIES)
    report(
        f"  warm in-process latency, {len(queries)} distinct queries per mode, k=10 (goal p99 <= 30 ms):"
    )
    for mode in MODES:
        for query in queries[:5]:  # warm-up: load the index, the query encoder, the FTS pages
            search(settings, query, k=10, mode=mode)
        times = []
        for query in queries:
            t0 = time.perf_counter()
            search(settings, query, k=10, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
        report(f"    {mode:<9} p50 {percentile(times, 50):6.1f} ms  p99 {percentile(times, 99):6.1f} ms  "
               f"mean {np.mean(times):6.1f} ms  max {max(times):6.1f} ms")  # fmt: skip

    report(
        f"  cold `recsys search QUERY --json`, {CLI_RUNS} processes per mode (goal median <= 3 s):"
    )
    for mode in ("semantic", "hybrid", "keyword"):
        walls = [
            run_cli(["--home", str(home), "search", q, "--mode", mode, "--json"])[0]
            for q in queries[:CLI_RUNS]
        ]
        report(f"    {mode:<9} median {statistics.median(walls):5.2f} s  "
               f"(runs {', '.join(f'{w:.2f}' for w in walls)})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "recsys-reference"
    )
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recsys-bench-search-"))
    try:
        if not args.skip_quality:
            quality(work)
        if not args.skip_scale:
            scale(work, args.data)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + "=" * 30 + " summary " + "=" * 30)
    print("\n".join(line.lstrip("\n") for line in SUMMARY))


if __name__ == "__main__":
    main()
