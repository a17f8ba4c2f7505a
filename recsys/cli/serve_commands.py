"""`recsys serve`: the HTTP API on uvicorn, or one in-process request with --get."""

import json
import os
import shutil
import sys
import tempfile
from enum import Enum
from typing import Annotated

import typer

from recsys.cli.app import app, command, err, settings


class LogFormat(str, Enum):
    text = "text"
    json = "json"


@command(app, "serve")
def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default 127.0.0.1: loopback only).")
    ] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes; all share the data home and its models."),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option("--log-format", help="Request log lines: text, or JSON lines for shippers."),
    ] = None,
    get: Annotated[
        str | None,
        typer.Option(
            "--get",
            metavar="PATH",
            help="Answer one GET request in-process (no port), print the body and exit: "
            "0 for a 2xx status, 1 otherwise. E.g. --get /status",
        ),
    ] = None,  # fmt: skip
) -> None:
    """Serve recommendations, search, training jobs, health and metrics over HTTP, and the
    dashboard: open http://127.0.0.1:8000/ in a browser (server.dashboard turns it off).

    The same service functions as the CLI, as JSON; new model versions are picked up live.

    The API key comes from the config or RECSYS_API_KEY (a flag would show in `ps`).
    """
    cfg = settings(
        **{
            "server.host": host,
            "server.port": port,
            "server.workers": workers,
            "server.log_format": log_format.value if log_format else None,
        }
    )
    if get is not None:
        raise typer.Exit(_answer_one(cfg, get))
    _serve(cfg)


def _answer_one(cfg, path: str) -> int:
    from litestar.testing import TestClient

    from recsys.http.app import create_app

    if not path.startswith("/"):
        path = "/" + path
    app = create_app(cfg)
    if path.startswith("/health/ready"):
        app.state["recsys"].refresh_now()  # no background warm-up in this mode: check once now
    headers = {"X-API-Key": cfg.server.api_key} if cfg.server.api_key else {}
    # No lifespan (no `with`): one request needs no refresher thread; models load on demand.
    client = TestClient(app, raise_server_exceptions=False)
    response = client.get(path, headers=headers)
    body = response.content
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        text = body.decode("utf-8", "replace").rstrip("\n")
    sys.stdout.write(text + "\n")
    return 0 if 200 <= response.status_code < 300 else 1


def _serve(cfg) -> None:
    import uvicorn

    from recsys.server.settings_io import ENV_VAR, settings_to_json

    server = cfg.server
    if server.host not in ("127.0.0.1", "localhost", "::1") and not server.api_key:
        err.print(
            f"[yellow]warning:[/] serving on {server.host} without an API key: anyone who can "
            "reach this port can start training jobs (set server.api_key or RECSYS_API_KEY)",
            highlight=False,
        )
    if server.dashboard:
        shown = f"[{server.host}]" if ":" in server.host else server.host
        err.print(f"dashboard: http://{shown}:{server.port}/", highlight=False)
    # Workers are started from an import string, so they rebuild these exact settings from the env.
    os.environ[ENV_VAR] = settings_to_json(cfg)
    # Every worker's request metrics in one place (recsys.server.metrics): a fresh directory per
    # run, unless the operator chose one (then clearing it between runs is theirs to do).
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="recsys-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    try:
        _run_uvicorn(uvicorn, server)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _run_uvicorn(uvicorn, server) -> None:
    uvicorn.run(
        "recsys.http.app:app_from_env",
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        access_log=False,  # our own one-line-per-request log (recsys.http.access_log)
        http="recsys.http.protocol:LimitedH11Protocol",  # header/body timeouts, connection cap
        timeout_graceful_shutdown=server.shutdown_timeout_seconds,
        log_level="info",
    )
