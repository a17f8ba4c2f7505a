"""Store outages as the server reports them: 503 `store_unavailable` with Retry-After, and one
log line when an outage starts and one when it ends (not a traceback per request).

A connection-level driver error (PostgreSQL stopped, a SQLite file that cannot be opened, locked
past its busy timeout or on a full disk) surfaces as sqlalchemy's OperationalError or
InterfaceError in whatever route touched the store. It is a fault of the environment, not a bug,
so monitoring that alerts on 500s can tell "database down" from "bug in recsys".
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from recsys.errors import StoreError

logger = logging.getLogger("recsys.http")

STORE_ERRORS = (OperationalError, InterfaceError, StoreError)
RETRY_AFTER_SECONDS = 5


def is_store_error(exc: BaseException) -> bool:
    """A connection-level store failure (not a bug in a query)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, STORE_ERRORS)


def describe(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's statement dump and links."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


class Outage:
    """Process-wide: started by the first failure, ended by the first success after it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        logger.warning("store unavailable: %s (answering 503 until it is back)", describe(exc))

    def answered(self) -> None:
        if self.since is None:  # the common case: no lock
            return
        with self._lock:
            if self.since is None:
                return
            seconds, self.since = time.monotonic() - self.since, None
        logger.warning("store available again after %.1f s", seconds)


outage = Outage()
