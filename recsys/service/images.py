"""Product images for the dashboard, fetched by the server (GET /items/{id}/image).

The pages never request anything from another host (no CDN, no image host: a shop's catalog
URLs would tell those hosts who looks at what, and a browser behind the shop's firewall may not
reach them). The server fetches the catalog's `image_url` of that item only (never a URL a client
chose), keeps it on disk under `<home>/cache/images`, and answers a neutral placeholder when the
item has no image or it cannot be fetched (this machine has no internet); a failure is
remembered for `server.image_retry_seconds` so a page of cards does not wait on it again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import select

from recsys.config import Settings
from recsys.errors import NotFound
from recsys.service.data import engine_for
from recsys.store.tables import product_catalog, user_item_rating

MAX_IMAGE_BYTES = 5 * 1024 * 1024
TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
PLACEHOLDER_TYPE = "image/svg+xml"
PLACEHOLDER = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 160" role="img" \
aria-label="no image"><rect width="160" height="160" fill="#eef0f3"/><path d="M46 108l24-30 \
18 22 12-14 18 22z" fill="#c5cad3"/><circle cx="104" cy="58" r="10" fill="#c5cad3"/></svg>"""

_failed: dict[str, float] = {}  # url -> when fetching it last failed (monotonic seconds)


class Image(NamedTuple):
    """Bytes to send, their media type, and why a placeholder was sent (None: the image)."""

    content: bytes
    media_type: str
    placeholder: str | None = None


def product_image(settings: Settings, item_id: str) -> Image:
    """The image of a product: from the disk cache, else fetched from its catalog `image_url`
    (http/https only, at most 5 MiB, `server.image_timeout_seconds`), else a placeholder SVG
    (`placeholder` "none" when the item has no image URL or `server.image_proxy` is off,
    "unavailable" when it could not be fetched).

    Raises NotFound (404) for an id neither in the catalog nor rated."""
    p, r = product_catalog.c, user_item_rating.c
    with engine_for(settings).connect() as conn:
        row = conn.execute(select(p.image_url).where(p.item_id == item_id)).first()
        rated = row is not None or conn.scalar(
            select(r.item_id).where(r.item_id == item_id).limit(1)
        )
    if not rated:
        raise NotFound(f"item {item_id!r} is neither in the catalog nor rated")
    url = row[0] if row is not None else None
    if not url or not settings.server.image_proxy or not url.startswith(("http://", "https://")):
        return Image(PLACEHOLDER, PLACEHOLDER_TYPE, "none")
    folder = settings.home / "cache" / "images"
    key = hashlib.sha256(url.encode()).hexdigest()
    for media_type, ext in TYPES.items():
        cached = folder / f"{key}.{ext}"
        if cached.exists():
            return Image(cached.read_bytes(), media_type)
    failed_at = _failed.get(url)
    if failed_at is not None and time.monotonic() - failed_at < settings.server.image_retry_seconds:
        return Image(PLACEHOLDER, PLACEHOLDER_TYPE, "unavailable")
    fetched = _fetch(url, settings.server.image_timeout_seconds)
    if fetched is None:
        _failed[url] = time.monotonic()  # one dict store: atomic, no lock needed
        return Image(PLACEHOLDER, PLACEHOLDER_TYPE, "unavailable")
    content, media_type = fetched
    _keep(folder / f"{key}.{TYPES[media_type]}", content)
    return Image(content, media_type)


def _fetch(url: str, timeout: float) -> tuple[bytes, str] | None:
    """(bytes, media type) of an image URL; None for any failure or a non-image answer."""
    request = urllib.request.Request(url, headers={"User-Agent": "recsys-dashboard"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            media_type = response.headers.get_content_type()
            if media_type not in TYPES:
                return None
            content = response.read(MAX_IMAGE_BYTES + 1)
    except (OSError, ValueError, urllib.error.URLError):  # DNS, refused, timeout, bad URL
        return None
    if len(content) > MAX_IMAGE_BYTES:
        return None
    return content, media_type


def _keep(path: Path, content: bytes) -> None:
    """Write a cache file atomically; a full disk just means no cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError:
        pass


def clear() -> None:
    """Forget remembered failures (tests)."""
    _failed.clear()
