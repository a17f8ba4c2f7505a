"""Per-worker server state: metrics, jobs, readiness and the model refresher.

The refresher thread keeps the models of `recsys.service.models` warm: at start-up it loads every
kind that has a published version (readiness waits for that), then it re-checks every
`server.reload_check_seconds`. A newly published version is therefore loaded by this background
thread, not by a request: the cache lets only one thread load and the others keep answering from
the previous version, so requests see neither a stall nor a mixed answer while a big model loads.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import text

from recsys.config import Settings
from recsys.http.schemas import Health
from recsys.models.kinds import KINDS as KIND_TABLE
from recsys.models.registry import KINDS, Registry
from recsys.schemas import Status
from recsys.server.jobs import JobManager
from recsys.server.metrics import Metrics
from recsys.server.outage import is_store_error, outage

logger = logging.getLogger("recsys.http")


def model_loaders(
    settings: Settings,
) -> dict[str, tuple[Callable[..., Any], Callable[[Any], Any]]]:
    """kind -> (the loader for `loaded`, `prepare(model)`, run by every refresh round), for
    every kind of the model table.

    The cache slot is shared with the service's calls, and the loader must return what the
    service's loader returns. A request can load a model itself, with the service's plain
    loader, when it finds the slot empty (the first version published while the server runs, or
    a client faster than the refresher at start-up): `prepare` then adds what the server's
    loader would have built. It is cheap once done."""
    from recsys.models.encoder import query_encoder

    depth = settings.server.max_n  # e.g. ALS's similar-items table answers any n a client asks

    def recommender(cls: Any) -> tuple[Callable[..., Any], Callable[[Any], Any]]:
        def load(folder: Path, manifest: dict[str, Any]) -> Any:
            # the serving indexes are built before the new version is swapped in
            model = cls.load(folder, manifest)
            model.prepare_for_serving(depth)
            model.extras["prepared"] = True
            return model

        def prepare(model: Any) -> None:
            if model.extras.get("prepared") or model.extras.get("prepare_failed"):
                return
            try:
                model.prepare_for_serving(depth)
                model.extras["prepared"] = True
            except Exception as exc:  # it answers all the same, by exact scan: warn once
                model.extras["prepare_failed"] = True
                logger.warning("%s %s serves without its serving indexes: %s",
                               model.kind, model.version, exc)  # fmt: skip

        return load, prepare

    def prepare_ss(model: Any) -> None:
        query_encoder(model.precision)  # load the encoder before the first search needs it

    loaders = {}
    for kind in KIND_TABLE.values():
        cls = kind.model_class()
        loaders[kind.name] = recommender(cls) if kind.role == "recommender" else (cls, prepare_ss)
    return loaders


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
            outage.failed(exc)  # logged once per outage
            return Health(status="unavailable", checks={**self.checks, "store": "unavailable"})
        outage.answered()
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
                outage.failed(exc)  # logged once until the store answers
                return
        from recsys.service.data import engine_for
        from recsys.store import catalog_cache

        catalog_changed = self._refresh_catalog(catalog_cache.enable(engine_for(self.settings)))
        registry = Registry(self.settings.models_dir)
        all_loaded = True
        served = dict(self.versions)
        for kind, (loader, prepare) in model_loaders(self.settings).items():
            all_loaded &= self._refresh_kind(registry, kind, loader, prepare)
        if self.versions != served:
            freeze_long_lived(collect_first=True)
        elif catalog_changed:
            freeze_long_lived(collect_first=False)
        if all_loaded and not self.ready:
            self._warm_status_counts()  # before "ready": no /status waits for the first count
            self.ready = True
            logger.info("ready")

    def _warm_status_counts(self) -> None:
        """Count the store once here, before the server is ready, so that no /status request has
        to (after this the server only ever recounts in the background)."""
        from recsys.service.data import engine_for
        from recsys.store.queries import store_status

        try:
            store_status(engine_for(self.settings), fresh=False)
        except Exception as exc:
            if not is_store_error(exc):
                raise
            outage.failed(exc)  # /status will count (or answer 503) itself

    def _refresh_catalog(self, snapshot: Any) -> bool:
        """Reload the catalog snapshot if the catalog changed; True when it did."""
        try:
            changed = snapshot.refresh()
            if changed:
                logger.info("catalog snapshot loaded")
        except Exception as exc:
            if not is_store_error(exc):
                raise
            outage.failed(exc)  # answers keep coming from the last snapshot
            return False
        outage.answered()
        return bool(changed)

    def _refresh_kind(
        self,
        registry: Registry,
        kind: str,
        loader: Callable[..., Any],
        prepare: Callable[[Any], Any],
    ) -> bool:
        """Check and (re)load one kind; False when it has a published version but none loaded.

        Every failure stays with its kind (a bad `current` pointer of mf does not stop ss from
        reloading) and is logged once per change of the check, not once per round."""
        from recsys.service.models import loaded, refused

        try:
            if registry.current(kind) is None:
                self._report(kind, "not trained")
                return True
            entry = loaded(self.settings, kind, loader)
            prepare(entry.model)
        except Exception as exc:
            self._report(kind, f"failed: {exc}", logging.ERROR)
            return False
        if self.versions[kind] != entry.version:
            logger.info("serving %s model version %s", kind, entry.version)
        self.versions[kind] = entry.version
        bad = refused(self.settings, kind)
        if bad is None:
            self._report(kind, "ok")
        else:
            self._report(
                kind, f"serving {entry.version}; refused {bad[0]}: {bad[1]}", logging.ERROR
            )
        return True

    def _report(self, kind: str, check: str, level: int = logging.INFO) -> None:
        if self.checks.get(kind) != check:
            self.checks[kind] = check
            if level > logging.INFO:
                logger.log(level, "%s model: %s", kind, check)

    def status(self) -> Status:
        """`service.status` with the model versions this worker serves: a version `current`
        names that failed to load is listed under `refused`, not as the live one."""
        from recsys import service
        from recsys.service.models import refused

        status = service.status(self.settings, fresh=False)
        models, refusals = dict(status.models), {}
        for kind, served in self.versions.items():
            info = models.get(kind)
            if not served or (info is not None and info.version == served):
                continue
            if bad := refused(self.settings, kind):
                refusals[kind] = f"{bad[0]}: {bad[1]}"
            with contextlib.suppress(Exception):  # a pruned version: keep the registry's view
                models[kind] = service.model_info(self.settings, kind, served)
        return msgspec.structs.replace(status, models=models, refused=refusals)


def freeze_long_lived(*, collect_first: bool) -> None:
    """Put every object alive now (the catalog snapshot, the loaded models) out of reach of
    Python's cyclic garbage collector (gc.freeze).

    A full collection walks every tracked object and holds the GIL meanwhile: with the 94K
    products of the reference catalog in memory it took 100-250 ms, and every request in flight
    waited (keyword search p99 at 8 clients 200-300 ms against a 20 ms median; measured with
    benchmarks/bench_http.py). Frozen objects are still freed by reference counting when a
    reload replaces them; `collect_first` (after a model version changed: rare, and seconds of
    preparation anyway) first collects once, so that cycles in a replaced model are reclaimed
    rather than frozen for good."""
    if collect_first:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
