"""Per-worker server state: metrics, jobs, readiness and the model refresher.

The refresher thread keeps the models of `recsys.service.models` warm: at start-up it loads every
kind that has a published version (readiness waits for that), then it re-checks every
`server.reload_check_seconds`. A newly published version is therefore loaded by this background
thread, not by a request: the cache lets only one thread load and the others keep answering from
the previous version, so requests see neither a stall nor a mixed answer while a big model loads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from recsys.config import Settings
from recsys.http.jobs import JobManager
from recsys.http.metrics import Metrics
from recsys.http.schemas import Health
from recsys.models.registry import KINDS, Registry

logger = logging.getLogger("recsys.http")


def model_loaders(
    settings: Settings,
) -> dict[str, tuple[Callable[..., Any], Callable[[Any], Any]]]:
    """kind -> (the loader for `loaded`, `prepare(model)`, run by every refresh round).

    The cache slot is shared with the service's calls, and the loader must return what the
    service's loader returns. A request can load a model itself, with the service's plain
    loader, when it finds the slot empty (the first version published while the server runs, or
    a client faster than the refresher at start-up): `prepare` then adds what the server's
    loader would have built. It is cheap once done."""
    from recsys.models.encoder import query_encoder
    from recsys.models.mf import MFModel
    from recsys.models.ss import SemanticIndex

    depth = settings.server.max_n  # the similar-items table answers any n a client may ask for

    def load_mf(folder: Path, manifest: dict[str, Any]) -> MFModel:
        # the serving indexes are built before the new version is swapped in
        return MFModel.load_for_serving(folder, manifest, similar_k=depth)

    def prepare_mf(model: MFModel) -> None:
        if model.similar_table is None and not model.extras.get("serving_indexes_failed"):
            try:
                model.build_serving_indexes(depth)
            except Exception as exc:  # it answers all the same, by exact scan: warn once
                model.extras["serving_indexes_failed"] = True
                logger.warning("mf %s serves without its serving indexes: %s", model.version, exc)

    def prepare_ss(model: SemanticIndex) -> None:
        query_encoder(model.precision)  # load the encoder before the first search needs it

    return {"mf": (load_mf, prepare_mf), "ss": (SemanticIndex, prepare_ss)}


RELOAD_NICE = 10
REFRESHER_JOIN_SECONDS = 5.0


def _lower_this_threads_priority() -> None:
    """Loading a new mf version builds its serving indexes (~10 s of CPU at reference scale) in
    this thread, and faiss and BLAS run single-threaded in it: 10 steps nicer than the server,
    it takes the CPU the requests leave over. Only on Linux is niceness per thread."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):  # not allowed: reload at the server's priority
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + RELOAD_NICE))


class ServerState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.jobs = JobManager(settings)
        self.ready = False  # store answered and every published model was loaded once
        self.checks: dict[str, str] = {"store": "pending"}
        self.versions: dict[str, str | None] = dict.fromkeys(KINDS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifespan ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._refresh_loop, name="recsys-models", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        self.jobs.shutdown()
        # Let a refresh round in progress finish (a reload can take seconds at reference scale;
        # the thread is a daemon past this), so it does not outlive the app it serves.
        if self._thread is not None:
            self._thread.join(timeout=REFRESHER_JOIN_SECONDS)

    # ---- readiness -----------------------------------------------------------------------
    def health(self) -> Health:
        if not self.ready:
            return Health(status="starting", checks=dict(self.checks))
        try:
            self._ping_store()
        except Exception as exc:  # any driver error means "not ready", never a 500
            logger.warning("readiness: store unavailable: %s", exc)
            return Health(status="unavailable", checks={**self.checks, "store": "unavailable"})
        return Health(status="ok", checks=dict(self.checks))

    def live_versions(self) -> dict[str, str | None]:
        return dict(self.versions)

    def _ping_store(self) -> None:
        from recsys.service import engine_for

        with engine_for(self.settings).connect() as conn:
            conn.execute(text("select 1"))

    # ---- the refresher -------------------------------------------------------------------
    def refresh_now(self) -> None:
        """One synchronous round (for `recsys serve --get`, which runs no background thread)."""
        self._refresh_once()

    def _refresh_loop(self) -> None:
        _lower_this_threads_priority()
        interval = max(self.settings.server.reload_check_seconds, 0.05)
        while not self._stop.is_set():
            try:
                self._refresh_once()
            except Exception:  # never let the thread die: log and retry next round
                logger.exception("model refresh failed")
            self._stop.wait(interval if self.ready else min(interval, 0.5))

    def _refresh_once(self) -> None:
        if self.checks.get("store") != "ok":
            try:
                self._ping_store()
                self.checks["store"] = "ok"
            except Exception as exc:
                self.checks["store"] = "unavailable"
                logger.warning("store not answering yet: %s", exc)
                return
        from recsys.service.data import engine_for
        from recsys.service.models import loaded
        from recsys.store import catalog_cache

        if catalog_cache.enable(engine_for(self.settings)).refresh():
            logger.info("catalog snapshot loaded")
        registry = Registry(self.settings.models_dir)
        all_loaded = True
        for kind, (loader, prepare) in model_loaders(self.settings).items():
            if registry.current(kind) is None:
                self.checks[kind] = "not trained"
                continue
            try:
                entry = loaded(self.settings, kind, loader)
                prepare(entry.model)
            except Exception as exc:
                all_loaded = False
                self.checks[kind] = f"failed: {exc}"
                logger.error("cannot load the %s model: %s", kind, exc)
                continue
            if self.versions[kind] != entry.version:
                logger.info("serving %s model version %s", kind, entry.version)
            self.versions[kind] = entry.version
            self.checks[kind] = "ok"
        if all_loaded and not self.ready:
            self.ready = True
            logger.info("ready")
