"""Semantic, keyword and hybrid product search; training of the semantic index."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np
from sqlalchemy import func, select

from recsys.config import Settings, SSSettings
from recsys.errors import IntegrityError, InvalidInput
from recsys.models.registry import Registry
from recsys.schemas import SearchResults, TrainResult
from recsys.service import ranking
from recsys.service.data import engine_for
from recsys.service.filters import NONE as NO_FILTERS
from recsys.service.filters import Filters, passing_ids
from recsys.store.categories import in_categories, resolve_category
from recsys.store.engine import get_meta
from recsys.store.fulltext import keyword_search
from recsys.store.queries import products_by_id, result_line
from recsys.store.tables import product_catalog

MODES = ("semantic", "keyword", "hybrid")
# What a query is trimmed of: ASCII whitespace only, as the API schema's pattern says (str.strip()
# also drops e.g. U+001E, which JSON Schema clients count as text).
QUERY_WHITESPACE = " \t\n\r\f\v"


def _fingerprint(settings: Settings) -> str:
    with engine_for(settings).connect() as conn:
        revision = get_meta(conn, "products_revision") or "0"
        count = conn.scalar(select(func.count()).select_from(product_catalog)) or 0
    return f"products:r{revision}:n{count}"


def train_ss(
    settings: Settings,
    *,
    force: bool = False,
    fields: list[str] | None = None,
    index: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    precision: str = "fp32",
) -> TrainResult:
    """Embed product texts and publish a FAISS index; skipped when nothing changed (unless force).

    `precision` "int8" (quantised encoder weights) exists for benchmarks/bench_search.py, which
    measures it; it is not offered as a setting because its quality on the judged sets stayed
    below 99% of fp32 (README). Raises InvalidInput (400) for bad fields, index or precision, or
    a catalog without text."""
    from recsys.models import ss
    from recsys.models.encoder import DIMENSIONS, MODEL_NAME, PRECISIONS

    started = time.perf_counter()
    cfg = settings.ss
    chosen_fields = ss.check_fields(fields or cfg.fields)
    index_kind = index or cfg.index
    if index_kind not in ("auto", *ss.INDEX_KINDS):
        raise InvalidInput(f"--index {index_kind}: use auto, flat, hnsw or ivfpq")
    if precision not in PRECISIONS:
        raise InvalidInput(f"encoder precision {precision!r}: use {' or '.join(PRECISIONS)}")
    params = {
        "model": MODEL_NAME, "precision": precision, "fields": chosen_fields,
        "index_requested": index_kind,
        "hnsw_threshold": cfg.hnsw_threshold, "hnsw_m": cfg.hnsw_m,
        "hnsw_ef_construction": cfg.hnsw_ef_construction, "hnsw_ef_search": cfg.hnsw_ef_search,
        "ivfpq_threshold": cfg.ivfpq_threshold, "ivfpq_nlist": cfg.ivfpq_nlist,
        "ivfpq_m": cfg.ivfpq_m, "ivfpq_nprobe": cfg.ivfpq_nprobe, "ivfpq_rerank": cfg.ivfpq_rerank,
    }  # fmt: skip
    for name, value in (("ivfpq_nprobe", cfg.ivfpq_nprobe), ("ivfpq_rerank", cfg.ivfpq_rerank)):
        if value < 1:
            raise InvalidInput(f"ss.{name} must be at least 1, got {value}")
    registry = Registry(settings.models_dir)
    fingerprint = _fingerprint(settings)
    current = registry.current("ss")
    manifest = None if force else registry.verified_current("ss")  # damaged: retrain
    if manifest is not None:
        same_params = {k: manifest["params"].get(k) for k in params} == params
        if manifest.get("fingerprint") == fingerprint and same_params:
            return TrainResult(
                kind="ss", version=current, skipped=True,
                message=f"model is up to date (version {current}; catalog unchanged); --force retrains",
            )  # fmt: skip

    item_ids, texts, skipped = _product_texts(settings, chosen_fields)
    if not texts:
        raise InvalidInput(
            "no product has usable text to embed: ingest product metadata first (recsys ingest meta...)"
        )
    hashes = np.array([ss.text_hash(t) for t in texts], dtype="S16")
    previous = None
    if current:
        try:
            previous = ss.read_previous(*registry.open("ss"), precision)
        except IntegrityError:
            previous = None  # a damaged previous version just means no cache
    plan = ss.plan_reuse(hashes, previous, dim=DIMENSIONS)
    t_encode = time.perf_counter()
    if plan.to_encode.size:
        from recsys.models.encoder import OnnxMiniLM

        model = OnnxMiniLM(precision, threads=_encode_threads())
        todo = [texts[i] for i in plan.to_encode]
        plan.vectors[plan.to_encode] = ss.encode_texts(model, todo, cfg.batch_size, on_progress)
    encode_seconds = time.perf_counter() - t_encode

    kind = index_kind if index_kind != "auto" else auto_index(len(texts), cfg)
    t_index = time.perf_counter()
    shape = None
    exact: np.ndarray | None = None
    metrics: dict[str, object] = {}
    if kind == "ivfpq":
        shape = ss.ivfpq_shape(len(texts), DIMENSIONS, cfg.ivfpq_nlist, cfg.ivfpq_m)
        exact = plan.vectors.astype(np.float16)  # what the served version re-ranks with
    faiss_index = ss.build_index(plan.vectors, kind, cfg.hnsw_m, cfg.hnsw_ef_construction, shape)
    if kind == "hnsw":
        metrics["hnsw_recall_at_10"] = ss.hnsw_recall(faiss_index, plan.vectors, cfg.hnsw_ef_search)
    elif exact is not None:
        metrics["ivfpq_recall_at_10"] = ss.ivfpq_recall(
            faiss_index, exact, plan.vectors, cfg.ivfpq_nprobe, cfg.ivfpq_rerank
        )
    index_seconds = time.perf_counter() - t_index
    counts = {
        "products_embedded": len(texts), "skipped_no_text": skipped,
        "reused_from_cache": len(texts) - int(plan.to_encode.size),
        "newly_encoded": int(plan.to_encode.size),
    }  # fmt: skip

    def build(folder):
        import faiss

        faiss.write_index(faiss_index, str(folder / "index.faiss"))
        np.save(folder / "item_ids.npy", np.array(item_ids), allow_pickle=False)
        np.save(folder / "text_hashes.npy", hashes, allow_pickle=False)
        if exact is not None:
            np.save(folder / ss.EXACT_VECTORS, exact, allow_pickle=False)
        resolved = {} if shape is None else {"ivfpq_shape": dataclasses.asdict(shape)}
        return {
            "params": {**params, "index": kind, **resolved},
            "fingerprint": fingerprint,
            "counts": counts,
            "metrics": metrics,
            "durations": {
                "encode_seconds": round(encode_seconds, 3),
                "index_seconds": round(index_seconds, 3),
                "total_seconds": round(time.perf_counter() - started, 3),
            },
        }

    manifest = registry.publish("ss", build)
    from recsys.service.models import forget

    forget(settings, "ss")  # this process answers from the new version right away
    return TrainResult(
        kind="ss", version=manifest["version"], message=f"published ss {manifest['version']}",
        seconds=round(time.perf_counter() - started, 3), counts=counts,
        params=manifest["params"], metrics=metrics, timings=manifest["durations"],
    )  # fmt: skip


def auto_index(products: int, cfg: SSSettings) -> str:
    """The index `auto` picks for a catalog size: exact flat search below ss.hnsw_threshold
    (a scan of 50K x 384 floats is ~2 ms), HNSW up to ss.ivfpq_threshold (best recall and
    latency, but it keeps the float32 vectors plus its graph in RAM: ~1.8 KB a product), IVF-PQ
    above (~60 bytes a product in RAM; the exact vectors for re-ranking stay on disk)."""
    if products >= cfg.ivfpq_threshold:
        return "ivfpq"
    return "hnsw" if products >= cfg.hnsw_threshold else "flat"


def _encode_threads() -> int:
    """OMP_NUM_THREADS when set (HTTP-started jobs get half the cores through it), else every
    core this process may use."""
    from recsys.system import usable_cores

    wanted = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(wanted) if wanted.isdigit() and int(wanted) > 0 else usable_cores()


def _product_texts(settings: Settings, fields: list[str]) -> tuple[list[str], list[str], int]:
    from recsys.models.ss import product_text

    p = product_catalog.c
    columns = [p.item_id, *(p[f] for f in fields)]
    item_ids, texts, skipped = [], [], 0
    with engine_for(settings).connect() as conn:
        for row in conn.execute(select(*columns).order_by(p.item_id)).mappings():
            text = product_text(dict(row), fields)
            if text:
                item_ids.append(row["item_id"])
                texts.append(text)
            else:
                skipped += 1
    return item_ids, texts, skipped


def _check_query(settings: Settings, query: str, k: int, mode: str) -> str:
    query = query.strip(QUERY_WHITESPACE)
    if not query:
        raise InvalidInput("query is empty")
    if len(query) > settings.search.max_query_chars:
        raise InvalidInput(
            f"query is too long ({len(query)} characters; at most {settings.search.max_query_chars})"
        )
    if k < 1:
        raise InvalidInput("k must be at least 1")
    if mode not in MODES:
        raise InvalidInput(f"unknown search mode {mode!r}; use {', '.join(MODES)}")
    return query


def _nearest(settings: Settings, model, vector: np.ndarray, k: int, names: frozenset[str] | None):
    """The k nearest products to a query vector, oversampling when a category filter drops some."""
    wanted = k if names is None else k * 10
    while True:
        hits = model.search(vector, wanted)
        if names is not None:
            rows = products_by_id(engine_for(settings), [i for i, _ in hits])
            hits = [(i, s) for i, s in hits if in_categories(rows.get(i), names)]
        if len(hits) >= k or wanted >= model.index.ntotal:
            return hits[:k]
        wanted *= 4


def search(
    settings: Settings,
    query: str,
    *,
    k: int = 10,
    mode: str | None = None,
    category: str | None = None,
    filters: Filters = NO_FILTERS,
) -> SearchResults:
    """The k best products for `query`, best first.

    Each mode ranks a pool of max(search.candidates, 5k) products by relevance (hybrid: the
    semantic and keyword pools blended by convex_fusion); the popularity prior then re-orders
    the pool (service/ranking.py). `category` keeps products whose main
    category or any of whose `categories` equals it, ignoring case; a category no product has
    is an empty answer whose message suggests close names (200, as on every route: the name is
    schema-valid). `filters` (exclude, categories: any of, price range) drop products from a
    pool oversampled to max(pool, search.filter_pool_factor * k): fewer than k hits then means
    fewer than k of those candidates pass, and the message says so. Raises InvalidInput (400)
    for an empty/too long query or a bad k or mode; NotTrained (409) for semantic/hybrid before
    `train ss`."""
    mode = mode or settings.search.mode
    query = _check_query(settings, query, k, mode)
    engine = engine_for(settings)
    names = None
    if category is not None:
        try:
            names = resolve_category(engine, category)
        except InvalidInput as unknown:
            return SearchResults(query=query, mode=mode, model_version=None, hits=[],
                                 message=str(unknown))  # fmt: skip
    pool = max(settings.search.candidates, 5 * k)
    if filters:  # the filters drop candidates after relevance ranking: rank more of them
        pool = max(pool, settings.search.filter_pool_factor * k)
    if mode == "keyword":
        lists, version = [_keyword(settings, engine, query, pool, names)], None
    else:
        from recsys.models.encoder import query_encoder
        from recsys.models.ss import SemanticIndex
        from recsys.service.models import loaded

        index = loaded(settings, "ss", SemanticIndex)  # NotTrained before any work
        # The encoder threads encode the query while the keyword query (hybrid) runs here.
        pending = query_encoder(index.model.precision).submit([query])
        keyword = _keyword(settings, engine, query, pool, names) if mode == "hybrid" else None
        semantic = _nearest(settings, index.model, pending.result()[0], pool, names)
        lists = [semantic] if keyword is None else [semantic, keyword]
        version = index.version
    if filters:
        keep = passing_ids(settings, list({i: None for r in lists for i, _ in r}), None, filters)
        lists = [[(i, score) for i, score in r if i in keep] for r in lists]
    catalog = products_by_id(engine, list({item: None for r in lists for item, _ in r}))
    ranked = _with_prior(settings, engine, mode, lists, catalog)[:k]
    hits = [result_line(item, score, catalog.get(item)) for item, score in ranked]
    message = f"no product in category {category!r} matches" if category and not hits else None
    if filters and len(hits) < k:
        message = f"only {len(hits)} of the best {pool} matches pass the filters"
    return SearchResults(query=query, mode=mode, model_version=version, hits=hits, message=message)


def _keyword(settings: Settings, engine, query: str, pool: int, names) -> list[tuple[str, float]]:
    return keyword_search(engine, query, pool, names, settings.search.keyword_common_docs)


def _with_prior(settings: Settings, engine, mode: str, lists, catalog):
    """One ranking from the mode's lists: semantic or keyword re-ordered by the popularity prior
    with that mode's weight; hybrid's two blended by convex_fusion first, then re-ordered with
    its own. Placeholders last."""
    cfg = settings.search
    weight = {
        "semantic": cfg.popularity_weight_semantic,
        "keyword": cfg.popularity_weight_keyword,
        "hybrid": cfg.popularity_weight_hybrid,
    }[mode]
    items = list(catalog)
    # the store is asked only for products whose catalog row has no rating count (per query,
    # counting the pool's ratings on every query doubled the HTTP search p50 at reference scale)
    uncounted = [i for i in items if (catalog.get(i) or {}).get("rating_count") is None]
    stored = ranking.store_counts(engine, uncounted) if weight and uncounted else {}
    prior = ranking.priors(
        catalog, stored, items, (settings.ingest.rating_min, settings.ingest.rating_max)
    )
    pattern = ranking.placeholder_pattern(tuple(cfg.placeholder_patterns))
    if len(lists) == 1:
        return ranking.rerank(lists[0], catalog, prior, weight, pattern)
    fused = convex_fusion(lists[0], lists[1], cfg.hybrid_semantic_weight)
    return ranking.rerank(fused, catalog, prior, weight, pattern, normalise=False)


def convex_fusion(
    semantic: list[tuple[str, float]], keyword: list[tuple[str, float]], share: float
) -> list[tuple[str, float]]:
    """Hybrid relevance in [0, 1]: share x semantic + (1 - share) x keyword, each score min-max
    normalised over its own pool (cosine and bm25 live on unrelated scales); a product only one
    pool holds gets that pool's minimum (0) from the other. When one pool is empty (no query
    term in any title), the other counts alone. Best first, ties by item id.

    Convex combination of min-max normalised scores, after Bruch, Gai & Ingber, "An Analysis
    of Fusion Functions for Hybrid Retrieval" (ACM TOIS 2023), who found it more accurate than
    reciprocal rank fusion, which this replaced: on our judged sets (benchmarks/bench_search.py)
    known-item hit@1 went 0.93 -> 0.97 and descriptive MRR@10 0.863 -> 0.950."""
    if not keyword:
        share = 1.0
    elif not semantic:
        share = 0.0
    sem, kw = _min_max(semantic), _min_max(keyword)
    blended = {
        item: share * sem.get(item, 0.0) + (1.0 - share) * kw.get(item, 0.0)
        for item in {**sem, **kw}
    }
    return sorted(blended.items(), key=lambda pair: (-pair[1], pair[0]))


def _min_max(ranked: list[tuple[str, float]]) -> dict[str, float]:
    """Scores mapped to [0, 1] over the pool (all 1 when they are equal)."""
    if not ranked:
        return {}
    low = min(score for _, score in ranked)
    high = max(score for _, score in ranked)
    span = high - low
    return {item: (score - low) / span if span > 0 else 1.0 for item, score in ranked}
