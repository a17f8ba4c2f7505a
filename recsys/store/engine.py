"""Engine creation, SQLite pragmas and schema migrations."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from recsys.errors import ConfigError, StoreError
from recsys.store.fulltext import create_fulltext
from recsys.store.tables import SCHEMA_VERSION, metadata, recsys_meta

# Migrations from version N-1 to N, run in order inside one transaction. create_all makes the
# tables of the current version; migrations add what metadata cannot express (full-text indexes,
# triggers) and must be idempotent, because a new database runs them all once too.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: create_fulltext}


def _json_dumps(value: object) -> str:
    return msgspec.json.encode(value).decode()  # ~5x faster than json.dumps for catalog rows


def make_engine(url: str, busy_timeout_ms: int = 10000) -> Engine:
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url, connect_args={"timeout": busy_timeout_ms / 1000}, json_serializer=_json_dumps
            )
            _configure_sqlite(engine, busy_timeout_ms)
        else:
            engine = create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from None
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, issue BEGIN (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # 16 KB pages (only takes effect on a new file): fewer, fuller pages to rewrite per batch;
        # measured 25% faster bulk upserts than the 4 KB default.
        cur.execute("PRAGMA page_size=16384")
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cur.execute(
            "PRAGMA synchronous=NORMAL"
        )  # WAL + NORMAL: durable at checkpoint, never corrupt
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        # Bulk upserts touch b-tree pages all over the file; a small page cache spills to the WAL
        # again and again. 256 MB of cache (allocated only as used) keeps hot pages in memory.
        cur.execute("PRAGMA cache_size=-262144")
        cur.execute("PRAGMA temp_store=MEMORY")
        # SQLite never shrinks the WAL on its own: after a checkpoint, cut it back to this size,
        # so one huge (or failed) batch does not keep its size on disk for good.
        cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so a writer waits (busy_timeout) instead of failing
        # halfway through a batch with "database is locked".
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("writer") else "BEGIN")


WAL_SIZE_LIMIT = 64 * 1024 * 1024


def release_wal(engine: Engine) -> None:
    """SQLite: checkpoint the write-ahead log and truncate it to zero bytes (after a failed
    batch on a full disk, the WAL holds the disk space the next command needs). Best effort: a
    reader or writer still active just leaves it for the next checkpoint."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    except Exception:  # noqa: S110 - the error being reported matters more than this
        pass


def open_store(url: str, busy_timeout_ms: int = 10000) -> Engine:
    """Connect and bring the schema up to date."""
    engine = make_engine(url, busy_timeout_ms)
    try:
        ensure_schema(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot open the store {engine.url!r}: {exc.orig}") from None
    return engine


def ensure_schema(engine: Engine) -> int:
    insp = inspect(engine)
    if insp.has_table("recsys_meta"):
        with engine.connect() as conn:
            current = conn.scalar(
                select(recsys_meta.c.value).where(recsys_meta.c.key == "schema_version")
            )
        if current is not None and int(current) == SCHEMA_VERSION:
            return SCHEMA_VERSION
    with writer(engine) as conn:
        metadata.create_all(conn)
        found = conn.scalar(
            select(recsys_meta.c.value).where(recsys_meta.c.key == "schema_version")
        )
        version = int(found) if found is not None else 1  # a new database: run every migration
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema version {version}, newer than this recsys ({SCHEMA_VERSION})"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[step](conn)
        set_meta(conn, "schema_version", str(SCHEMA_VERSION))
        if found is None:
            set_meta(conn, "created_at", str(int(time.time())))
    return SCHEMA_VERSION


def writer(engine: Engine):
    """A transaction that takes the SQLite write lock at BEGIN."""
    conn = engine.connect()
    conn.info["writer"] = True
    return _WriterTx(conn)


class _WriterTx:
    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self) -> Connection:
        self.tx = self.conn.begin()
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.tx.commit()
            else:
                self.tx.rollback()
        finally:
            self.conn.info.pop("writer", None)
            self.conn.close()


def set_meta(conn: Connection, key: str, value: str) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # the same on_conflict API under another class: one name for both dialects
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(recsys_meta).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def bump_revision(conn: Connection, key: str) -> None:
    """Add one to the integer counter `key` of recsys_meta (created at 1), in one statement.

    Every feedback call does this: one driver-level statement instead of a SQLAlchemy read plus
    upsert halves a single-event write's CPU (0.61 -> 0.33 ms in process), which is GIL time the
    server's readers get back."""
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    conn.exec_driver_sql(
        f"INSERT INTO recsys_meta (key, value) VALUES ({mark}, '1') ON CONFLICT (key) DO UPDATE "
        "SET value = CAST(CAST(recsys_meta.value AS BIGINT) + 1 AS TEXT)",
        (key,),
    )


def get_meta(conn: Connection, key: str) -> str | None:
    return conn.scalar(select(recsys_meta.c.value).where(recsys_meta.c.key == key))
