"""Category names of the catalog, for search's category filter.

A product belongs to its `main_category` and to every name in its `categories` JSON list (nested
lists, as Amazon 2014 writes them, flattened), so a MovieLens film is found under each of its
genres. Names match ignoring case; an unknown name is an error that suggests close ones.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, text

from recsys.errors import InvalidInput

_SQLITE_NAMES = """
    SELECT main_category FROM product_catalog WHERE main_category IS NOT NULL
    UNION SELECT t.value FROM product_catalog p, json_tree(p.categories) t
          WHERE p.categories IS NOT NULL AND t.type = 'text'"""
_PG_NAMES = """
    SELECT main_category FROM product_catalog WHERE main_category IS NOT NULL
    UNION SELECT v #>> '{}' FROM product_catalog p, jsonb_path_query(p.categories, 'strict $.**') v
          WHERE p.categories IS NOT NULL AND jsonb_typeof(v) = 'string'"""

# engine -> (products_revision, {casefolded name: exact spellings}); reloaded after an ingest
_names: dict[Engine, tuple[str, dict[str, frozenset[str]]]] = {}
_lock = threading.Lock()


def category_names(engine: Engine) -> dict[str, frozenset[str]]:
    """Every category name of the catalog: casefolded name -> the spellings stored."""
    from recsys.store.engine import get_meta  # engine imports fulltext, which imports us

    with engine.connect() as conn:
        revision = get_meta(conn, "products_revision") or "0"
        cached = _names.get(engine)
        if cached is not None and cached[0] == revision:
            return cached[1]
        names = _load(conn)
    with _lock:
        _names[engine] = (revision, names)
    return names


def _load(conn: Connection) -> dict[str, frozenset[str]]:
    sql = _PG_NAMES if conn.dialect.name == "postgresql" else _SQLITE_NAMES
    spellings: dict[str, set[str]] = {}
    for (name,) in conn.execute(text(sql)):
        if isinstance(name, str) and name.strip():
            spellings.setdefault(name.casefold(), set()).add(name)
    return {key: frozenset(values) for key, values in spellings.items()}


def resolve_category(engine: Engine, category: str) -> frozenset[str]:
    """The stored spellings of `category` (case-insensitive). Raises InvalidInput (400) when no
    product has it, naming up to three close names."""
    names = category_names(engine)
    found = names.get(category.strip().casefold())
    if found:
        return found
    spelled = sorted({s for group in names.values() for s in group})
    by_folded = {s.casefold(): s for s in spelled}
    close = difflib.get_close_matches(category.strip().casefold(), list(by_folded), n=3)
    hint = f"; did you mean {', '.join(repr(by_folded[c]) for c in close)}?" if close else ""
    raise InvalidInput(f"no product has category {category!r}{hint}")


def flatten(values: Iterable[Any]) -> Iterable[Any]:
    """The leaves of nested lists, in order (Amazon 2014 writes categories as lists of lists)."""
    for value in values:
        if isinstance(value, list):
            yield from flatten(value)
        else:
            yield value


def product_categories(main: Any, listed: Any) -> set[str]:
    """Every category name of one product: its main category and each name in its
    `categories` list, stripped; empty and non-text entries are left out."""
    names = {main.strip()} if isinstance(main, str) and main.strip() else set()
    if isinstance(listed, list):
        names.update(v.strip() for v in flatten(listed) if isinstance(v, str) and v.strip())
    return names


def in_categories(row: dict[str, Any] | None, names: frozenset[str]) -> bool:
    """Whether a catalog row's main category or one of its categories is among `names`."""
    if row is None:
        return False
    if row.get("main_category") in names:
        return True
    categories = row.get("categories")
    return isinstance(categories, list) and any(c in names for c in flatten(categories))


def sql_condition(dialect: str) -> str:
    """A WHERE condition on `product_catalog p` for the bound list parameter :categories."""
    if dialect == "postgresql":
        return (
            "(p.main_category = ANY(:categories) OR EXISTS (SELECT 1 FROM "
            "jsonb_path_query(p.categories, 'strict $.**') v "
            "WHERE jsonb_typeof(v) = 'string' AND v #>> '{}' = ANY(:categories)))"
        )
    return (
        "(p.main_category IN (SELECT value FROM json_each(:categories)) OR EXISTS (SELECT 1 "
        "FROM json_tree(p.categories) t WHERE t.type = 'text' "
        "AND t.value IN (SELECT value FROM json_each(:categories))))"
    )
