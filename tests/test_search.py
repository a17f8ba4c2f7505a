"""Semantic / keyword / hybrid search on the real 2023 Health & Personal Care titles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.models.registry import Registry

from helpers import cli

META = "amazon2023-health-personal-care-meta-subset/meta_Health_and_Personal_Care.jsonl"
PRE_WORKOUT = "B075ZXP9XL"  # "Pre Workout Powder Energy Drink (30 Servings) – Caffeine Free ..."


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory) -> Path:
    """One real ingest + `train ss` in a subprocess with the network made unreachable."""
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data" / META
    if not data.exists():
        pytest.skip(f"real data sample not found at {data}")
    home = tmp_path_factory.mktemp("ss") / "home"
    cli("--home", home, "ingest", data, "-q")
    # Offline proof: any attempt to reach a model hub goes to a dead proxy and fails.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="")
    proc = subprocess.run(
        [sys.executable, "-m", "recsys", "--home", str(home), "train", "ss", "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (
        result["counts"]["products_embedded"] == 1714 and result["counts"]["newly_encoded"] == 1714
    )
    return home


def hits(home: Path, query: str, *args: str) -> list[str]:
    return [h["item_id"] for h in cli("--home", home, "search", query, "--json", *args)["hits"]]


@pytest.mark.parametrize("mode", ["semantic", "keyword", "hybrid"])
def test_obvious_query_finds_its_product(trained_home, mode):
    assert PRE_WORKOUT in hits(
        trained_home, "caffeine free pre workout energy drink", "--mode", mode, "-k", "5"
    )


def test_semantic_matches_meaning_not_words(trained_home):
    # none of these words is in the title "Pill Cutter for Small or Large Pills, Barhon Pill Splitter ..."
    top = cli("--home", trained_home, "search", "tool to split tablets in half", "--mode", "semantic",
              "-k", "5", "--json")["hits"]  # fmt: skip
    assert any("Pill Cutter" in (h["title"] or "") or "Splitter" in (h["title"] or "") for h in top)
    assert all(
        set(h) >= {"item_id", "score", "title", "image_url", "price", "category"} for h in top
    )


def test_keyword_finds_exact_brand_tokens(trained_home):
    top = cli("--home", trained_home, "search", "LIZIMANDU", "--mode", "keyword", "--json")["hits"]
    assert top and all("LIZIMANDU" in h["title"].upper() for h in top)


def test_category_filter_and_k(trained_home):
    result = cli("--home", trained_home, "search", "vitamin", "--category", "Health & Personal Care",
                 "-k", "7", "--json")  # fmt: skip
    assert len(result["hits"]) == 7 and {h["category"] for h in result["hits"]} == {
        "Health & Personal Care"
    }
    # any case; a category no product has is an empty answer naming close ones (as recommend)
    assert hits(trained_home, "vitamin", "--category", "health & personal care", "-k", "3")
    result = cli("--home", trained_home, "search", "vitamin", "--category", "Health & Personal",
                 "--json")  # fmt: skip
    assert result["hits"] == [] and "did you mean 'Health & Personal Care'?" in result["message"]


def test_query_vectors_equal_training_encoder(trained_home):
    from recsys.models.encoder import OnnxMiniLM, load_sentence_transformer

    texts = ["wireless earbuds for running", "Nature's Stance Elderberry Immune Gummies with Zinc",
             "KT-450", "ünïcödé – ✓", "x " * 400]  # fmt: skip
    light = OnnxMiniLM().encode(texts)
    torch_vectors = load_sentence_transformer().encode(texts, normalize_embeddings=True)
    assert light.dtype == np.float32 and light.shape == (5, 384)
    assert np.abs(light - torch_vectors).max() < 1e-5
    assert np.all((light * torch_vectors).sum(1) > 0.99999)


def test_incremental_retrain_embeds_only_changed_products(trained_home, tmp_path):
    skipped = cli("--home", trained_home, "train", "ss", "--json")
    assert skipped["skipped"] and "up to date" in skipped["message"]
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps({"parent_asin": PRE_WORKOUT, "title": "Zebra striped yoga mat, extra thick",
                                   "main_category": "Health & Personal Care"}) + "\n")  # fmt: skip
    cli("--home", trained_home, "ingest", changed, "-q")
    result = cli("--home", trained_home, "train", "ss", "--json")
    assert result["counts"]["newly_encoded"] == 1 and result["counts"]["reused_from_cache"] == 1713
    assert hits(trained_home, "zebra yoga mat", "--mode", "semantic", "-k", "1") == [PRE_WORKOUT]


def test_hnsw_index_records_recall(trained_home, tmp_path):
    result = cli("--home", trained_home, "train", "ss", "--index", "hnsw", "--force", "--json")
    assert result["params"]["index"] == "hnsw" and result["counts"]["newly_encoded"] == 0
    assert 0.9 <= result["metrics"]["hnsw_recall_at_10"] <= 1.0
    assert hits(trained_home, "weekly pill organizer", "--mode", "semantic", "-k", "3")


def test_query_errors(trained_home):
    assert "query is empty" in cli("--home", trained_home, "search", "   ", expect=1).stderr
    assert "query is too long" in cli("--home", trained_home, "search", "x" * 600, expect=1).stderr
    assert cli("--home", trained_home, "search", "x", "--mode", "fuzzy", expect=2).exit_code == 2


def test_missing_index_is_a_clear_error(shared_data):
    cli("ingest", shared_data / META, "-q")
    result = cli("search", "vitamin c", "--mode", "semantic", expect=1)
    assert "no ss model yet: run `recsys train ss`" in result.stderr
    assert hits(
        Path(os.environ["RECSYS_HOME"]), "vitamin c", "--mode", "keyword"
    )  # no model needed


def test_train_ss_without_products_is_a_clear_error():
    result = cli("train", "ss", expect=1)
    assert "no product has usable text" in result.stderr


def test_keyword_ranking_equals_ranking_every_match(trained_home):
    """FTS5 ranks alone and only its best rows are joined: the same list as joining every match
    and sorting (score, then earlier rowid), with and without a category filter."""
    from sqlalchemy import create_engine, text

    from recsys.store.fulltext import keyword_search, query_terms

    engine = create_engine(f"sqlite:///{trained_home / 'recsys.db'}")
    every_match = """
        SELECT p.item_id, -bm25(product_fts) FROM product_fts
        JOIN product_catalog p ON p.rowid = product_fts.rowid
        WHERE product_fts MATCH :q {where} ORDER BY bm25(product_fts), p.rowid LIMIT :limit"""
    queries = ["vitamin c gummies for kids", "pill", "caffeine free pre workout", "LIZIMANDU"]
    for query in queries:
        q = " OR ".join(f'"{t}"' for t in query_terms(query))
        for category in (None, "Health & Personal Care"):
            where = "AND p.main_category = :category" if category else ""
            with engine.connect() as conn:
                want = conn.execute(
                    text(every_match.format(where=where)),
                    {"q": q, "limit": 20, "category": category},
                ).all()
            got = keyword_search(engine, query, 20, category)
            assert want and got == [(item, float(score)) for item, score in want], query


def test_fallback_chain_answers_unrated_items_with_semantic_neighbours(trained_home, tmp_path):
    """An item collaborative filtering knows nothing about (in the catalog, never rated) is
    answered by the next link of recommend.fallback: the products whose text embeds nearest."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    ratings = tmp_path / "ratings.csv"
    catalog = [r[0] for r in cli_rows(home, "select item_id from product_catalog limit 4")]
    ratings.write_text(
        "user,item,rating,timestamp\n"
        + "".join(f"u{u},{item},5,1700000000\n" for u in (1, 2) for item in catalog)
    )
    cli("--home", home, "ingest", ratings, "-q")
    cli("--home", home, "train", "popularity", "-q")
    result = cli("--home", home, "recommend", "item", PRE_WORKOUT, "-n", "5", "--model",
                 "popularity", "--json")  # fmt: skip
    assert "nobody has rated it" in result["message"]
    assert [r["model"] for r in result["items"]] == ["ss"] * 5 and result["strategy"] == "ss"
    ids = [r["item_id"] for r in result["items"]]
    title = cli_rows(home, f"select title from product_catalog where item_id = '{PRE_WORKOUT}'")
    nearest = [
        i for i in hits(home, title[0][0], "--mode", "semantic", "-k", "6") if i != PRE_WORKOUT
    ]
    assert PRE_WORKOUT not in ids and len(set(ids) & set(nearest[:5])) >= 4


def cli_rows(home: Path, query: str) -> list[tuple]:
    from helpers import rows

    return rows(f"sqlite:///{home / 'recsys.db'}", query)


def test_train_ss_rebuilds_a_damaged_live_index(trained_home):
    registry = Registry(trained_home / "models")
    version = registry.current("ss")
    path = registry.kind_dir("ss") / version / "index.faiss"
    path.write_bytes(path.read_bytes()[:1000])
    assert "checksum" in cli("--home", trained_home, "search", "yoga", expect=1).output
    result = cli("--home", trained_home, "train", "ss", "--json")
    assert not result["skipped"] and result["version"] != version
    assert (
        cli("--home", trained_home, "search", "yoga", "--json")["model_version"]
        == result["version"]
    )


def test_auto_picks_ivfpq_above_its_threshold_and_every_search_path_works(
    trained_home, tmp_path, monkeypatch
):
    """IVF-PQ (chosen by auto once the catalog reaches ss.ivfpq_threshold) serves semantic,
    hybrid, category and filtered search, records its recall, and with every cell probed answers
    what the flat index answers."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    queries = ("caffeine free pre workout energy drink", "weekly pill organizer", "yoga mat")
    flat = cli("--home", home, "train", "ss", "--index", "flat", "--force", "--json")
    assert flat["params"]["index"] == "flat"

    def semantic(query: str) -> dict[str, float]:
        found = cli("--home", home, "search", query, "--mode", "semantic", "-k", "10", "--json")
        return {h["item_id"]: h["score"] for h in found["hits"]}

    want = {q: semantic(q) for q in queries}
    hybrid = {q: hits(home, q, "--mode", "hybrid", "-k", "5") for q in queries}

    monkeypatch.setenv("RECSYS_SS_IVFPQ_THRESHOLD", "1000")  # the catalog has 1,714 products
    monkeypatch.setenv("RECSYS_SS_IVFPQ_NPROBE", "100000")
    result = cli("--home", home, "train", "ss", "--force", "--json")
    assert result["params"]["index"] == "ivfpq" and result["counts"]["newly_encoded"] == 0
    assert result["metrics"]["ivfpq_recall_at_10"] >= 0.99  # every cell probed
    assert result["params"]["ivfpq_shape"]["m"] == 48
    manifest = Registry(home / "models").manifest("ss")
    assert "vectors.npy" in manifest["files"]
    for query in queries:  # the same products; scores differ by float16 storage only
        got = semantic(query)
        assert got.keys() == want[query].keys()
        assert all(abs(got[i] - score) < 2e-3 for i, score in want[query].items())

    for query in queries:  # an earlier test may have retitled PRE_WORKOUT: compare with flat
        assert hits(home, query, "--mode", "hybrid", "-k", "5")[0] == hybrid[query][0]
    in_category = cli("--home", home, "search", "vitamin", "--category", "Health & Personal Care",
                      "-k", "7", "--json")["hits"]  # fmt: skip
    assert len(in_category) == 7
    assert PRE_WORKOUT not in hits(home, queries[0], "-k", "5", "--exclude", PRE_WORKOUT)

    # the next training reuses IVF-PQ's float16 vectors as its embedding cache
    monkeypatch.setenv("RECSYS_SS_IVFPQ_NPROBE", "4")
    again = cli("--home", home, "train", "ss", "--json")
    assert again["counts"]["reused_from_cache"] == 1714 and not again["skipped"]
    assert 0 < again["metrics"]["ivfpq_recall_at_10"] <= 1.0
    monkeypatch.setenv("RECSYS_SS_IVFPQ_THRESHOLD", "2000")  # back under it: flat again
    assert cli("--home", home, "train", "ss", "--json")["params"]["index"] == "flat"
