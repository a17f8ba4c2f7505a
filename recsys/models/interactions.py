"""Read `user_item_rating` straight into numpy columns, sparse matrices and compact id maps.

Ids are kept as sorted numpy byte-string arrays (UTF-8, dtype ``S``): 1.7M Amazon user ids take
~48 MB instead of ~190 MB as unicode (``U``) or ~150 MB as a dict, a lookup is one
``np.searchsorted`` and ``np.unique`` sorts bytes ~4x faster than unicode.

SQLite fast path (measured on 2M ratings: ~1.8 s read + ~1 s factorise, against ~4.5 s for
fetchall + zip + np.unique): each chunk of rowids comes back as ONE string joined by SQLite
(``group_concat`` with a unit-separator), split in C and converted column-wise, so no Python
tuple per row is ever built. Other databases stream ``fetchmany`` chunks. All chunks are read in
one transaction together with the fingerprint (revision + row count), so they agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Engine

from recsys.store.engine import get_meta

if TYPE_CHECKING:
    import scipy.sparse

SEP = "\x1f"  # ASCII unit separator: never part of a sensible id
CHUNK_ROWS = 250_000


@dataclass
class Interactions:
    """One row per (user, item) pair, users/items as int32 codes into the sorted id arrays."""

    user_ids: np.ndarray  # sorted unique, dtype S (UTF-8)
    item_ids: np.ndarray  # sorted unique, dtype S (UTF-8)
    users: np.ndarray  # int32 code per row
    items: np.ndarray  # int32 code per row
    ratings: np.ndarray  # float32 per row
    timestamps: np.ndarray | None  # int64 per row, when asked for
    fingerprint: str  # moves whenever the table changes (see data_fingerprint)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.ratings)

    def subset(self, rows: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or index array, ids re-factorised to what remains."""
        users, items = self.users[rows], self.items[rows]
        used_u, new_u = np.unique(users, return_inverse=True)
        used_i, new_i = np.unique(items, return_inverse=True)
        return Interactions(
            user_ids=self.user_ids[used_u],
            item_ids=self.item_ids[used_i],
            users=new_u.astype(np.int32),
            items=new_i.astype(np.int32),
            ratings=self.ratings[rows],
            timestamps=None if self.timestamps is None else self.timestamps[rows],
            fingerprint=self.fingerprint,
        )


def confidence(ratings: np.ndarray, kind: str, alpha: float) -> np.ndarray:
    """How sure we are that a user likes an item: ``1 + alpha * rating`` (linear) or the same
    ``1 + alpha`` for every interaction (binary: any rating is a purchase)."""
    if kind == "binary":
        return np.full(len(ratings), 1.0 + alpha, dtype=np.float32)
    return (1.0 + alpha * ratings).astype(np.float32)


def user_item_matrix(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> scipy.sparse.csr_matrix:
    import scipy.sparse

    matrix = scipy.sparse.csr_matrix((values, (users, items)), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()  # pairs are unique in the store; this only sorts the indices
    return matrix


def data_fingerprint(conn: Connection) -> tuple[str, dict[str, Any]]:
    """A short hash that changes with every committed change of the ratings: the store's identity
    (its creation time), the ingest writer's `ratings_revision` counter and the row count."""
    facts = {
        "store_created": get_meta(conn, "created_at") or "",
        "ratings_revision": int(get_meta(conn, "ratings_revision") or 0),
        "ratings": int(conn.exec_driver_sql("SELECT count(*) FROM user_item_rating").scalar() or 0),
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return digest, facts


def store_fingerprint(engine: Engine) -> tuple[str, dict[str, Any]]:
    with engine.connect() as conn:
        return data_fingerprint(conn)


def read_interactions(engine: Engine, *, timestamps: bool = False) -> Interactions:
    """Every rating in the store as numpy columns (one consistent snapshot)."""
    with engine.connect() as conn, conn.begin():
        fingerprint, _ = data_fingerprint(conn)
        if engine.dialect.name == "sqlite":
            chunks = _sqlite_chunks(conn, timestamps)
        else:
            chunks = list(_generic_chunks(conn, timestamps))
    return _factorise(chunks, fingerprint, timestamps)


def _id_array(values: list[str]) -> np.ndarray:
    try:
        return np.array(values, dtype="S")  # ASCII ids: converted in C
    except UnicodeEncodeError:
        return np.array([v.encode("utf-8") for v in values], dtype="S")


def _columns(parts: list[str], width: int, timestamps: bool) -> tuple[np.ndarray, ...]:
    cols: tuple[np.ndarray, ...] = (
        _id_array(parts[0::width]),
        _id_array(parts[1::width]),
        np.array(parts[2::width], dtype=np.float32),
    )
    if timestamps:
        cols += (np.array(parts[3::width], dtype=np.float64).astype(np.int64),)
    return cols


def _sqlite_chunks(conn: Connection, timestamps: bool) -> list[tuple[np.ndarray, ...]]:
    fields = "user_id || char(31) || item_id || char(31) || rating"
    if timestamps:
        fields += " || char(31) || timestamp"
    width = 4 if timestamps else 3
    lo, hi = conn.exec_driver_sql("SELECT min(rowid), max(rowid) FROM user_item_rating").one()
    if lo is None:
        return []
    query = (
        f"SELECT count(*), group_concat({fields}, char(31)) FROM user_item_rating "
        "WHERE rowid >= ? AND rowid < ?"
    )

    def parse(text: str, count: int) -> tuple[np.ndarray, ...] | None:
        parts = text.split(SEP)
        if len(parts) != count * width:
            return None  # an id contains the separator: that chunk takes the slow road
        return _columns(parts, width, timestamps)

    chunks = []
    for start in range(lo, hi + 1, CHUNK_ROWS):
        count, text = conn.exec_driver_sql(query, (start, start + CHUNK_ROWS)).one()
        chunk = parse(text, count) if count else None
        if chunk is not None:
            chunks.append(chunk)
        elif count:
            where = f"rowid >= {start} AND rowid < {start + CHUNK_ROWS}"
            chunks.extend(_generic_chunks(conn, timestamps, where))
    return chunks


def _generic_chunks(conn: Connection, timestamps: bool, where: str = "true"):
    cols = "user_id, item_id, rating" + (", timestamp" if timestamps else "")
    streaming = conn.execution_options(stream_results=True)  # a server-side cursor on PostgreSQL
    result = streaming.exec_driver_sql(f"SELECT {cols} FROM user_item_rating WHERE {where}")
    while rows := result.fetchmany(CHUNK_ROWS):
        columns = list(zip(*rows, strict=True))
        chunk: tuple[np.ndarray, ...] = (
            _id_array(list(columns[0])),
            _id_array(list(columns[1])),
            np.array(columns[2], dtype=np.float32),
        )
        if timestamps:
            chunk += (np.array(columns[3], dtype=np.int64),)
        yield chunk


def _factorise(chunks: list[tuple[np.ndarray, ...]], fingerprint: str, timestamps: bool):
    if not chunks:
        empty_ids = np.array([], dtype="S1")
        empty = np.array([], dtype=np.int32)
        return Interactions(
            empty_ids, empty_ids, empty, empty, np.array([], dtype=np.float32),
            np.array([], dtype=np.int64) if timestamps else None, fingerprint,
        )  # fmt: skip
    columns = [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]
    user_ids, users = np.unique(columns[0], return_inverse=True)
    item_ids, items = np.unique(columns[1], return_inverse=True)
    return Interactions(
        user_ids=user_ids,
        item_ids=item_ids,
        users=users.astype(np.int32),
        items=items.astype(np.int32),
        ratings=columns[2],
        timestamps=columns[3] if timestamps else None,
        fingerprint=fingerprint,
    )


def lookup(sorted_ids: np.ndarray, key: str) -> int | None:
    """Index of `key` in a sorted S array, or None."""
    try:
        needle = np.array(key.encode("utf-8"), dtype=sorted_ids.dtype)
    except (UnicodeEncodeError, ValueError):
        return None
    if len(key.encode("utf-8")) > sorted_ids.dtype.itemsize:
        return None  # longer than every stored id (the cast above would truncate it)
    pos = int(np.searchsorted(sorted_ids, needle))
    if pos < len(sorted_ids) and sorted_ids[pos] == needle:
        return pos
    return None


def lookup_many(sorted_ids: np.ndarray, keys: list[str]) -> list[int | None]:
    return [lookup(sorted_ids, k) for k in keys]


def decode(ids: np.ndarray) -> list[str]:
    return [v.decode("utf-8") for v in ids.tolist()]


def lookup_array(sorted_ids: np.ndarray, keys: list[str]) -> np.ndarray:
    """int64 index of every key in a sorted S array, -1 where absent (one vectorised
    searchsorted: a user's few hundred stored items map in microseconds)."""
    if not keys or not len(sorted_ids):
        return np.full(len(keys), -1, dtype=np.int64)
    width = sorted_ids.dtype.itemsize
    encoded = [k.encode("utf-8", "surrogatepass") for k in keys]
    fits = np.array([len(e) <= width and not e.endswith(b"\x00") for e in encoded], dtype=bool)
    needles = np.array([e if ok else b"" for e, ok in zip(encoded, fits, strict=True)],
                       dtype=sorted_ids.dtype)  # fmt: skip
    pos = np.searchsorted(sorted_ids, needles).clip(max=len(sorted_ids) - 1)
    found = fits & (sorted_ids[pos] == needles)
    return np.where(found, pos, -1).astype(np.int64)
