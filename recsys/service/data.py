"""The service functions both adapters call. No typer, rich or litestar in here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine

from recsys.config import Settings
from recsys.errors import InvalidInput, RecsysError
from recsys.ingest.generic import GenericOptions
from recsys.ingest.pipeline import IngestOptions, ProgressFn, ingest_files
from recsys.schemas import IngestReport, ModelInfo, Status
from recsys.store.engine import open_store
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
    on_progress: ProgressFn | None = None,
) -> IngestReport:
    for path in paths:
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
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
        rating_range=(cfg.rating_min, cfg.rating_max),
    )
    return ingest_files(engine_for(settings), paths, options, on_progress)


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
