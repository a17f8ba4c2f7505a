"""The dashboard: static pages shipped inside the package, served by `recsys serve` at `/`.

No build step and no other host: the page is plain HTML, CSS and one JavaScript module that calls
the JSON API of the same server (uPlot, MIT, is vendored for the charts). A Content-Security-Policy
lets the browser itself refuse any request to another host. The pages load without the API key
(they hold no data); `data-key-mode` on <body> tells them when to ask for it: "all" with
`server.protect_all`, "training" when only /training needs it, "none" without a key.
"""

import hashlib
from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.router import Router
from litestar.static_files import create_static_files_router

from recsys.config import ServerSettings

STATIC = Path(__file__).parent / "static"
ASSETS_PATH = "/ui"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def key_mode(server: ServerSettings) -> str:
    if not server.api_key:
        return "none"
    return "all" if server.protect_all else "training"


def assets_version() -> str:
    """A digest of the shipped assets: their URLs carry it, so browsers may cache them for good
    and still fetch new ones after an upgrade."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def build_dashboard(server: ServerSettings) -> list[HTTPRouteHandler | Router]:
    """GET / (the page, with this server's key mode) and the assets under /ui/."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{KEY_MODE}}", key_mode(server)).replace("{{V}}", assets_version())

    @get("/", sync_to_thread=False, include_in_schema=False, opt={"auth": "never"})
    def index() -> Response[str]:
        return Response(
            page, media_type="text/html; charset=utf-8",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )  # fmt: skip

    assets = create_static_files_router(
        path=ASSETS_PATH,
        directories=[STATIC],
        opt={"auth": "never"},
        after_request=_add_security_headers,
        include_in_schema=False,
        name="dashboard-assets",
    )
    return [index, assets]


async def _add_security_headers(response: Any) -> Any:
    response.headers.update(SECURITY_HEADERS)
    # the page links them with ?v=<assets_version()>: a new release is a new URL
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
