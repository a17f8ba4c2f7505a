"""uvicorn's HTTP/1.1 protocol with the limits a public port needs: a deadline for a request's
headers and one for its body, and a cap on open connections.

uvicorn (h11) never times out a client that trickles its headers or body: each such connection
holds a file descriptor for good, and ~20K of them exhaust the server's (measured: EMFILE, 26K
log lines in 30 s). Here:
- from the moment a connection opens (or its previous answer was sent) until its request's
  headers are complete: `server.header_timeout_seconds`;
- from the headers until the last body byte: `server.body_timeout_seconds`;
  past either, the connection is closed (a body cut short is then counted as a 499);
- past `server.max_connections` open connections (per worker, kept below the fd limit), a new
  connection gets a 503 and is closed at once.
Idle keep-alive connections are closed by uvicorn's own keep-alive timeout. The limits are read
from the settings in the environment (`recsys serve` puts them there for every worker).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("recsys.http")

FD_HEADROOM = 64  # descriptors kept for the store, model files, logs and the listening socket
_BUSY_BODY = (
    b'{"error":{"code":"unavailable","message":"too many open connections; try again shortly",'
    b'"status":503}}'
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class _OncePerMinute(logging.Filter):
    """asyncio logs every failed accept() (EMFILE) with a traceback, many times a second while
    the descriptors are exhausted: let one through per minute."""

    def __init__(self) -> None:
        super().__init__()
        self.last = -60.0

    def filter(self, record: logging.LogRecord) -> bool:
        if "out of system resource" not in record.getMessage():
            return True
        now = time.monotonic()
        if now - self.last < 60:
            return False
        self.last = now
        return True


logging.getLogger("asyncio").addFilter(_OncePerMinute())


def connection_cap(configured: int) -> int:
    """`server.max_connections`, lowered to fit this process's open-file limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - FD_HEADROOM))


class _Limits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    loaded = False
    last_warning = 0.0


def _limits() -> type[_Limits]:
    if not _Limits.loaded:
        from recsys.server.settings_io import settings_from_env

        server = settings_from_env().server
        _Limits.header_timeout = server.header_timeout_seconds
        _Limits.body_timeout = server.body_timeout_seconds
        _Limits.max_connections = connection_cap(server.max_connections)
        _Limits.loaded = True
    return _Limits


def _warn_once_a_minute(message: str, *args: Any) -> None:
    now = time.monotonic()
    if now - _Limits.last_warning >= 60:
        _Limits.last_warning = now
        logger.warning(message, *args)


class LimitedH11Protocol(H11Protocol):
    """See the module docstring. Use as uvicorn's `http=` protocol class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _limits()
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            _warn_once_a_minute(
                "more than %d open connections: new ones get 503 (server.max_connections)",
                self._limits.max_connections,
            )
            transport.write(_BUSY)
            transport.close()
            return
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_deadline(None)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def _follow(self) -> None:
        """Arm the deadline of the phase the connection is in: reading headers, reading a body,
        or none (the app is answering)."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            phase = "headers"
        elif cycle.more_body and not cycle.disconnected:
            phase = "body"
        else:
            phase = None
        if phase != self._phase:
            self._set_deadline(phase)

    def _set_deadline(self, phase: str | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is None or self.transport is None or self.transport.is_closing():
            return
        seconds = self._limits.header_timeout if phase == "headers" else self._limits.body_timeout
        if seconds > 0:
            self._deadline = self.loop.call_later(seconds, self._expire, phase)

    def _expire(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        logger.debug("closing a connection whose request %s took too long", phase)
        self.transport.close()
