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
from datetime import datetime, timezone
from typing import Any

from recsys.http.metrics import Metrics

logger = logging.getLogger("recsys.http.access")
UNMATCHED = "<unmatched>"
MODEL_VERSION_HEADER = b"x-model-version"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        r: dict[str, Any] = record.__dict__["request"]
        # json.dumps escapes control characters: a client cannot forge log lines with %0A
        path = f" {json.dumps(r['path'])[1:-1]}" if r["path"] != r["route"] else ""
        version = f" model={r['model_version']}" if r["model_version"] else ""
        return (
            f"{r['ts']} {r['method']} {r['route']}{path} {r['status']} "
            f"{r['latency_ms']:.2f}ms{version}"
        )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.__dict__["request"], separators=(",", ":"))


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (uvicorn, --get and test capture swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(log_format: str) -> None:
    """Access lines go to stderr in the chosen format (text for people, JSON lines for shippers)."""
    if log_format not in ("text", "json"):
        from recsys.errors import ConfigError

        raise ConfigError(f"server.log_format must be text or json, got {log_format!r}")
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


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

        async def observed_send(message: Any) -> None:
            nonlocal status, version
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == MODEL_VERSION_HEADER:
                        version = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - start
            route = scope.get("path_template") or UNMATCHED
            method = scope.get("method", "")
            self.metrics.observe(route, method, status, seconds)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "",
                    extra={
                        "request": {
                            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                            "method": method,
                            "route": route,
                            "path": scope.get("path", ""),
                            "status": status,
                            "latency_ms": round(seconds * 1000, 3),
                            "model_version": version or None,
                        }
                    },
                )
