"""One log line and one metrics observation per request, from an ASGI wrapper around the whole app.

It sits outside Litestar's router so it also sees 404s for unknown paths, 405s, 413s and errors
raised before a handler runs. The route label is Litestar's path template (`/training/{job_id}`),
never the raw path, so random paths cannot blow up the metrics' cardinality.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from recsys.server.metrics import Metrics

UNMATCHED = "<unmatched>"
CLIENT_GONE = "recsys.client_gone"  # scope key: the client hung up before its answer started
CLIENT_CLOSED_REQUEST = 499  # nginx's status for it, logged and counted instead of a 500
MODEL_VERSION_HEADER = b"x-model-version"


def text_line(r: dict[str, Any]) -> str:
    # json.dumps escapes control characters: a client cannot forge log lines with %0A
    path = f" {json.dumps(r['path'])[1:-1]}" if r["path"] != r["route"] else ""
    version = f" model={r['model_version']}" if r["model_version"] else ""
    return (
        f"{r['ts']} {r['method']} {r['route']}{path} {r['status']} {r['latency_ms']:.2f}ms{version}"
    )


def json_line(r: dict[str, Any]) -> str:
    return json.dumps(r, separators=(",", ":"))


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (uvicorn, --get and test capture swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_format: Callable[[dict[str, Any]], str] = text_line


def configure(log_format: str) -> None:
    """Access lines go to stderr in the chosen format (text for people, JSON lines for shippers)."""
    global _format
    if log_format not in ("text", "json"):
        from recsys.errors import ConfigError

        raise ConfigError(f"server.log_format must be text or json, got {log_format!r}")
    _format = json_line if log_format == "json" else text_line


def write(request: dict[str, Any]) -> None:
    """One access line to the current stderr. Written directly rather than through `logging`:
    a LogRecord per request cost ~7% of a served recommendation. Only the event loop thread
    writes, so lines never interleave."""
    line = _format(request) + "\n"
    try:  # noqa: SIM105 - try is free on the hot path, contextlib.suppress is not
        sys.stderr.write(line)
    except (OSError, ValueError, AttributeError):  # closed or missing stderr: never fail a request
        pass


class RequestObserver:
    """ASGI middleware: time each HTTP request, count it, log it."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        version = ""
        started = False

        async def observed_send(message: Any) -> None:
            nonlocal status, version, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == MODEL_VERSION_HEADER:
                        version = value.decode("latin-1")
            await send(message)

        async def observed_receive() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect" and not started:
                scope[CLIENT_GONE] = True  # errors.py logs it quietly
            return message

        try:
            await self.app(scope, observed_receive, observed_send)
        finally:
            if scope.get(CLIENT_GONE):
                status = CLIENT_CLOSED_REQUEST  # no answer reached anyone: not a server error
            seconds = time.perf_counter() - start
            route = scope.get("path_template") or UNMATCHED
            method = scope.get("method", "")
            self.metrics.observe(route, method, status, seconds)
            write(
                {
                    "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "method": method,
                    "route": route,
                    "path": scope.get("path", ""),
                    "status": status,
                    "latency_ms": round(seconds * 1000, 3),
                    "model_version": version or None,
                }
            )
