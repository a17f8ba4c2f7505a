"""The Litestar app factory: `create_app(settings)`; `app_from_env()` for uvicorn workers."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, OpenAPIType, SecurityScheme
from sqlalchemy.exc import InterfaceError, OperationalError

from recsys import __version__
from recsys.config import Settings
from recsys.errors import RecsysError
from recsys.http import access_log
from recsys.http.auth import HEADER as API_KEY_HEADER
from recsys.http.auth import api_key_guard
from recsys.http.dashboard import build_dashboard
from recsys.http.errors import (
    handle_http_exception,
    handle_internal_error,
    handle_recsys_error,
    handle_recursion_error,
    handle_store_error,
)
from recsys.http.routes import SECURITY_SCHEME, VERSION_HEADER, build_handlers
from recsys.http.schemas import CATEGORY_LENGTH, ID_LENGTH
from recsys.server.settings_io import settings_from_env
from recsys.server.state import ServerState

DESCRIPTION = """Recommendations (collaborative filtering) and product search over the same service
functions as the `recsys` CLI. Every error has the shape
`{"error": {"code", "message", "status", "field"?}}`. Model endpoints name the model version that
answered in the `X-Model-Version` header. When `server.api_key` is set, send it in `X-API-Key`
(always for /training; for every route but /health/* with `server.protect_all`)."""


def _configure_logging(log_format: str) -> None:
    access_log.configure(log_format)
    log = logging.getLogger("recsys")
    if not log.handlers:  # server-side messages (tracebacks, reloads) to stderr
        handler = access_log.StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _security_components(api_key: str) -> Components:
    if not api_key:
        return Components()
    scheme = SecurityScheme(type="apiKey", name=API_KEY_HEADER, security_scheme_in="header")
    return Components(security_schemes={SECURITY_SCHEME: scheme})


def create_app(settings: Settings) -> Litestar:
    server = settings.server
    _configure_logging(server.log_format)
    state = ServerState(settings)
    guard = api_key_guard(server)
    cors = None
    if server.cors_origins:  # CORS stays off unless origins are configured
        cors = CORSConfig(
            allow_origins=list(server.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", API_KEY_HEADER],
            expose_headers=[VERSION_HEADER],
        )
    app = Litestar(
        route_handlers=[
            *build_handlers(settings, state),
            *(build_dashboard(server) if server.dashboard else []),
        ],
        exception_handlers={
            RecsysError: handle_recsys_error,
            HTTPException: handle_http_exception,
            RecursionError: handle_recursion_error,
            OperationalError: handle_store_error,
            InterfaceError: handle_store_error,
            Exception: handle_internal_error,
        },
        guards=[guard] if guard else None,
        cors_config=cors,
        request_max_body_size=server.max_body_bytes,
        # Every interactive docs UI Litestar offers (Scalar, Swagger, ReDoc, RapiDoc, Stoplight)
        # loads its JavaScript from a CDN, so only the JSON schema is served: it works offline.
        openapi_config=OpenAPIConfig(
            title="recsys",
            version=__version__,
            description=DESCRIPTION,
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            components=_security_components(server.api_key),
        ),
        on_startup=[state.start],
        on_shutdown=[state.shutdown],
        logging_config=None,  # our own handlers above; Litestar's would log each 4xx again
        debug=False,  # never render tracebacks to clients
    )
    _declare_closed_bodies(app)
    app.state["recsys"] = state
    # Outermost layer: sees every request, including 404s for unknown paths and 413s.
    app.asgi_handler = access_log.RequestObserver(app.asgi_handler, state.metrics)
    return app


def _declare_closed_bodies(app: Litestar) -> None:
    """Request Structs forbid unknown fields (a typo is a 400, not silently ignored); Litestar's
    schema does not say so, so say it here, before the schema is first served."""
    schemas = app.openapi_schema.components.schemas or {}
    bodies = ("SimilarRequest", "UserRequest", "SearchRequest", "TrainRequest",
              "ModelSimilarRequest", "ModelUserRequest", "FeedbackRequest", "ItemsRequest")  # fmt: skip
    for name in bodies:
        schemas[name].additional_properties = False
    for name in ("UserRequest", "ModelUserRequest"):
        _declare_item_id_bounds(schemas[name], "item_ids", ID_LENGTH)
    filtered = ("SimilarRequest", "UserRequest", "ModelSimilarRequest", "ModelUserRequest",
                "SearchRequest")  # fmt: skip
    for name in filtered:
        _declare_item_id_bounds(schemas[name], "exclude", ID_LENGTH)
        _declare_item_id_bounds(schemas[name], "categories", CATEGORY_LENGTH)
        for price in ("price_min", "price_max"):
            _declare_minimum(schemas[name], price, 0)


def _declare_item_id_bounds(request: Any, field: str, bounds: tuple[int, int]) -> None:
    """Litestar drops the bounds of list members (`item_ids: list[Id]`) from the schema, so
    clients saw `[""]` as valid and got a 400: put the members' bounds back on the array's items."""
    members = request.properties[field]
    for variant in members.one_of or [members]:
        if getattr(variant, "items", None) is not None:
            variant.items.min_length, variant.items.max_length = bounds


def _declare_minimum(request: Any, field: str, minimum: float) -> None:
    """Litestar drops `ge` of an optional number (`price_min: Price | None`): put it back."""
    for variant in request.properties[field].one_of or []:
        if variant.type == OpenAPIType.NUMBER:
            variant.minimum = minimum


def app_from_env() -> Litestar:
    """uvicorn factory (`recsys.http.app:app_from_env`): each worker rebuilds the settings that
    `recsys serve` put in the environment."""
    return create_app(settings_from_env())
