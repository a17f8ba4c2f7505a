"""The optional API key, sent by clients in the X-API-Key header.

Each route handler says how it is protected with `opt={"auth": ...}`:
  "always"  (/training)    key required whenever server.api_key is set
  "never"   (/health/*)    probes never need it
  default   (everything)   key required only with server.protect_all
"""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from recsys.config import ServerSettings

HEADER = "X-API-Key"
AUTH_HEADERS = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}


def api_key_guard(server: ServerSettings) -> Guard | None:
    """An app-level guard, or None when no key is configured (no per-request cost at all)."""
    if not server.api_key:
        return None
    expected = server.api_key.encode()
    protect_all = server.protect_all

    def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        mode = handler.opt.get("auth")
        if mode == "never" or (mode != "always" and not protect_all):
            return
        # Header values arrive latin-1 decoded; re-encoding gives the client's raw bytes back.
        sent = connection.headers.get(HEADER, "").encode("latin-1", "replace")
        if not hmac.compare_digest(sent, expected):  # constant time: no timing oracle on the key
            raise NotAuthorizedException(
                detail=f"missing or wrong API key: send it in the {HEADER} header",
                headers=AUTH_HEADERS,
            )

    return guard
