"""Keyword search with the store's own full-text engine: SQLite FTS5, PostgreSQL text search.

Both index title, store and main category of `product_catalog`. SQLite keeps an external-content
FTS5 table in sync through triggers (so ingest needs no extra step); PostgreSQL uses a GIN
expression index. Terms are OR-ed and ranked (bm25 / ts_rank), so a natural-language query still
finds products that match most of its words, and exact tokens such as model numbers rank first.
Equal scores: SQLite lists the earlier-ingested product first, PostgreSQL the smaller item id.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, text

from recsys.store.categories import sql_condition

_TOKEN = re.compile(r"\w+", re.UNICODE)
_PG_DOCUMENT = (
    "to_tsvector('english', coalesce(title, '') || ' ' || coalesce(store, '') || ' ' "
    "|| coalesce(main_category, ''))"
)

SQLITE_DDL = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS product_fts USING fts5(
        title, store, main_category, content='product_catalog', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS product_fts_insert AFTER INSERT ON product_catalog BEGIN
        INSERT INTO product_fts(rowid, title, store, main_category)
        VALUES (new.rowid, new.title, new.store, new.main_category);
    END""",
    """CREATE TRIGGER IF NOT EXISTS product_fts_delete AFTER DELETE ON product_catalog BEGIN
        INSERT INTO product_fts(product_fts, rowid, title, store, main_category)
        VALUES ('delete', old.rowid, old.title, old.store, old.main_category);
    END""",
    """CREATE TRIGGER IF NOT EXISTS product_fts_update AFTER UPDATE ON product_catalog BEGIN
        INSERT INTO product_fts(product_fts, rowid, title, store, main_category)
        VALUES ('delete', old.rowid, old.title, old.store, old.main_category);
        INSERT INTO product_fts(rowid, title, store, main_category)
        VALUES (new.rowid, new.title, new.store, new.main_category);
    END""",
    "INSERT INTO product_fts(product_fts) VALUES ('rebuild')",  # index rows that already exist
]
PG_DDL = [
    f"CREATE INDEX IF NOT EXISTS ix_product_catalog_fulltext ON product_catalog USING GIN ({_PG_DOCUMENT})"
]


def create_fulltext(conn: Connection) -> None:
    """Schema migration 2 (idempotent)."""
    for statement in PG_DDL if conn.dialect.name == "postgresql" else SQLITE_DDL:
        conn.exec_driver_sql(statement)


# Terms are OR-ed, so words that carry no product meaning would pull in unrelated titles ("help me
# fall asleep at night" matched "Take Me Away" and "Night Sweats"); they are dropped unless the
# query has nothing else.
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from get give has have help how i in into is it "
    "its me my need of on or our that the their them these this those to want was we what when "
    "where which while who why will with without you your".split()
)


def query_terms(query: str) -> list[str]:
    terms = [t.lower() for t in _TOKEN.findall(query)][:32]
    meaningful = [t for t in terms if t not in STOPWORDS]
    return meaningful or terms


def keyword_search(
    engine: Engine,
    query: str,
    limit: int,
    category: str | Collection[str] | None = None,
    common_docs: int = 0,
) -> list[tuple[str, float]]:
    """(item_id, score) best first; higher score is better on both backends. `category`: the
    exact category spellings a product must have, as main category or in `categories`.
    `common_docs` > 0 (SQLite): terms in more products than that only score products that hold
    a rarer term of the query (see _sqlite_matches)."""
    terms = query_terms(query)
    if not terms:
        return []
    postgres = engine.dialect.name == "postgresql"
    params: dict[str, object] = {"limit": limit}
    where_category = ""
    if category is not None:
        names = sorted([category] if isinstance(category, str) else category)
        params["categories"] = names if postgres else json.dumps(names)
        where_category = "AND " + sql_condition(engine.dialect.name)
    if postgres:
        # quoted terms: no tsquery syntax reaches the engine
        params["q"] = " | ".join(f"'{t}'" for t in terms)
        sql = f"""
            SELECT p.item_id, ts_rank({_PG_DOCUMENT}, to_tsquery('english', :q)) AS score
            FROM product_catalog p
            WHERE {_PG_DOCUMENT} @@ to_tsquery('english', :q) {where_category}
            ORDER BY score DESC, p.item_id LIMIT :limit"""
        with engine.connect() as conn:
            return [(row[0], float(row[1])) for row in conn.execute(text(sql), params)]
    with engine.connect() as conn:
        rows: Sequence[Any] = []
        tries = _sqlite_matches(conn, terms, common_docs)
        for number, union in enumerate(tries, start=1):
            sql, bound = _sqlite_keyword_sql(union, where_category)
            rows = conn.execute(text(sql), {**params, **bound}).all()
            if len(rows) >= limit or number == len(tries):
                break
        return [(row[0], float(row[1])) for row in rows]


def _sqlite_keyword_sql(union: list[str], where_category: str) -> tuple[str, dict[str, str]]:
    """The SQL ranking the products any of the MATCH expressions of `union` finds (no product
    is found by two of them), and its parameters."""
    bound = {f"q{i}": match for i, match in enumerate(union)}
    if not where_category:
        # FTS5 ranks on its own and only the best rows are joined: joining every match first
        # (50K rows for "for kids") made a query 3x slower (median 5.5 -> 1.6 ms here). Ties
        # go to the earlier-ingested product (rowid).
        matches = " UNION ALL ".join(
            f"SELECT rowid, rank FROM product_fts WHERE product_fts MATCH :{name}" for name in bound
        )
        sql = f"""
            SELECT p.item_id, -best.rank AS score
            FROM ({matches} ORDER BY rank, rowid LIMIT :limit) AS best
            JOIN product_catalog p ON p.rowid = best.rowid
            ORDER BY best.rank, best.rowid"""
    else:
        matches = " UNION ALL ".join(
            "SELECT p.item_id, -bm25(product_fts) AS score, p.rowid AS position FROM product_fts "
            f"JOIN product_catalog p ON p.rowid = product_fts.rowid WHERE product_fts MATCH :{name} "
            + where_category
            for name in bound
        )
        sql = f"SELECT item_id, score FROM ({matches}) ORDER BY score DESC, position LIMIT :limit"
    return sql, bound


def _sqlite_matches(conn: Connection, terms: list[str], common_docs: int) -> list[list[str]]:
    """FTS5 MATCH expressions to try in turn until one finds `limit` products, the last being
    the OR of all terms; each try is a list of expressions whose products are ranked together.

    bm25 over OR-ed terms scores every product holding any of them: "kitchen knife set" ranked
    13,870 of 94K titles (17 ms) to keep 50. As Lucene's common-terms query does, terms held by
    more than `common_docs` products ("kitchen", "set") are first only scored in products that
    hold a rarer term ("knife"): `(rare) AND (common)` and `(rare) NOT (common)`, 1.5 ms, which
    FTS5 scores exactly as the OR of all terms would (the same phrases, the same index
    statistics; tested). When every term is common, the products holding all of them are tried
    first, then those holding the rarest. A try that finds fewer products than asked for falls
    through, so the pool is as full as the OR query's (the popularity prior is relative to the
    pool's best-known product: a pool of six let a better-known namesake overtake the product
    that matches best)."""
    every = [_any_of(terms)]
    if common_docs <= 0 or len(set(terms)) < 2:
        return [every]
    docs = _document_frequencies(conn, terms)
    if max(docs.values()) <= common_docs:
        return [every]
    held = {t for t in terms if docs[t] > 0}
    rare = {t for t in held if docs[t] <= common_docs}
    if rare:
        return [_split(terms, rare), every]
    rarest = min(held, key=lambda t: (docs[t], t))
    return [[" AND ".join(f'"{t}"' for t in terms if t in held)], _split(terms, {rarest}), every]


def _split(terms: list[str], required: set[str]) -> list[str]:
    """The products holding a `required` term, as two expressions: with and without any other
    term. Each lists every query term once per mention, as the OR of all terms does, so FTS5's
    bm25 gives each product the score that query would."""
    needed = _any_of([t for t in terms if t in required])
    others = _any_of([t for t in terms if t not in required])
    return [f"({needed}) AND ({others})", f"({needed}) NOT ({others})"]


def _any_of(terms: list[str]) -> str:
    """FTS5: any of the terms, each quoted, so no FTS5 query syntax reaches the engine."""
    return " OR ".join(f'"{t}"' for t in terms)


# engine -> (catalog revision, {term: products holding it}): re-read when the server's catalog
# snapshot moves to a new revision (a CLI process has none and keeps them for its short life)
_frequencies: dict[Engine, tuple[str | None, dict[str, int]]] = {}
MAX_CACHED_TERMS = 100_000


def _document_frequencies(conn: Connection, terms: list[str]) -> dict[str, int]:
    """term -> number of products whose title, store or category holds it (fts5vocab)."""
    from recsys.store import catalog_cache  # it imports the engine module, which imports us

    revision = catalog_cache.revision(conn.engine)
    cached = _frequencies.get(conn.engine)
    if cached is None or cached[0] != revision or len(cached[1]) > MAX_CACHED_TERMS:
        cached = _frequencies[conn.engine] = (revision, {})
    known = cached[1]
    missing = [t for t in dict.fromkeys(terms) if t not in known]
    if missing:
        # the index folds diacritics (remove_diacritics 2): look "café" up as "cafe"
        folded = {t: _fold(t) for t in missing}
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.product_fts_vocab "
            "USING fts5vocab(main, product_fts, 'row')"
        )
        marks = ", ".join("?" * len(missing))
        found: dict[str, int] = dict(
            conn.exec_driver_sql(
                f"SELECT term, doc FROM temp.product_fts_vocab WHERE term IN ({marks})",
                tuple(folded.values()),
            ).all()
        )
        known.update((t, int(found.get(folded[t], 0))) for t in missing)
    return {t: known[t] for t in terms}


def _fold(term: str) -> str:
    decomposed = unicodedata.normalize("NFKD", term)
    return "".join(c for c in decomposed if not unicodedata.combining(c))
