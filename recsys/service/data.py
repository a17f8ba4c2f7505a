"""The service functions both adapters call. No typer, rich or litestar in here."""

from __future__ import annotations

import codecs
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine

from recsys.config import Settings
from recsys.errors import DiskFull, InvalidInput, RecsysError, disk_full
from recsys.ingest.generic import GenericOptions
from recsys.ingest.pipeline import IngestOptions, ProgressFn, ingest_files
from recsys.schemas import IngestReport, ModelInfo, Status
from recsys.store.engine import open_store, release_wal
from recsys.store.queries import store_status


@lru_cache(maxsize=8)
def _engine(url: str, busy_timeout_ms: int) -> Engine:
    return open_store(url, busy_timeout_ms)


def engine_for(settings: Settings) -> Engine:
    """One engine (and connection pool) per database URL per process."""
    return _engine(settings.db_url, settings.store.busy_timeout_ms)


def ingest(
    settings: Settings,
    paths: list[Path],
    *,
    fmt: str | None = None,
    kind: str | None = None,
    generic: GenericOptions | None = None,
    max_errors: int | None = None,
    rating_range: tuple[float, float] | None = None,
    on_progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest `paths` in order (see ingest.pipeline.ingest_files).

    `rating_range` (low, high): keep only ratings within it, in every format. Without it, Amazon
    files keep ingest.rating_min..rating_max (their 1..5 stars) and generic logs any finite rating.
    Raises InvalidInput (400) for a missing file or an unreadable head, IngestAborted past
    max_errors."""
    for path in paths:
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
    if generic is not None:
        check_encoding(generic.encoding)
    cfg = settings.ingest
    options = IngestOptions(
        fmt=fmt,
        kind=kind,
        generic=generic or GenericOptions(),
        batch_size=cfg.batch_size,
        batch_max_bytes=cfg.batch_max_bytes,
        max_errors=cfg.max_errors if max_errors is None else max_errors,
        max_line_bytes=cfg.max_line_bytes,
        max_reported_errors=cfg.max_reported_errors,
        rating_range=rating_range,
        amazon_range=(cfg.rating_min, cfg.rating_max),
    )
    engine = engine_for(settings)
    try:
        return ingest_files(engine, paths, options, on_progress)
    except Exception as exc:
        sqlite = engine.dialect.name == "sqlite"
        full = disk_full(exc, engine.url.database if sqlite else engine.url.render_as_string())
        if full is None:
            raise
        release_wal(engine)
        raise DiskFull(
            f"{full}: ingest stopped; batches committed before this point are kept"
        ) from exc


def check_encoding(name: str) -> str:
    """A text encoding Python knows (raises InvalidInput naming it otherwise)."""
    try:
        codecs.lookup(name)
    except LookupError:
        raise InvalidInput(f"unknown encoding {name!r}") from None
    return name


def status(settings: Settings, *, fresh: bool = True) -> Status:
    """Store counts and each kind's current model. `fresh=False` (the server) never waits for a
    recount while an ingest runs: the last counts, marked stale (see store/counts.py)."""
    from recsys.models.registry import KINDS
    from recsys.service.models import model_info

    models: dict[str, ModelInfo | None] = {}
    for kind in KINDS:
        try:
            models[kind] = model_info(settings, kind)
        except RecsysError:  # a damaged registry must not break `status`
            models[kind] = None
    return Status(store=store_status(engine_for(settings), fresh=fresh), models=models)
