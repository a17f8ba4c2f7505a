"""One exception handler per family, all answering with the one error shape (schemas.ErrorBody).

RecsysError -> its own .status and .code; Litestar's HTTP exceptions (validation 400, 401, 404,
405, 413) -> their status with a stable code; a store outage -> 503 (outage.py); a body nested too
deeply to decode -> 400; anything else -> 500 with a generic message, the traceback logged
server-side only.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from recsys.errors import RecsysError, StoreError
from recsys.http.access_log import CLIENT_GONE
from recsys.http.schemas import ErrorBody, ErrorDetail
from recsys.server.outage import RETRY_AFTER_SECONDS, is_store_error, outage

logger = logging.getLogger("recsys.http")

HTTP_CODES = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}
_PATH_RE = re.compile(r"at `\$\.?([^`]*)`$")
_FIELD_RE = re.compile(r"(?:missing required|unknown) field `([^`]*)`")


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: Any = None
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(ErrorDetail(code=code, message=message, status=status, field=field)),
        status_code=status,
        headers=headers,
    )


def handle_recsys_error(request: Request, exc: RecsysError) -> Response[ErrorBody]:
    if isinstance(exc, StoreError):
        return handle_store_error(request, exc)
    if exc.status >= 500:
        logger.error("%s: %s", type(exc).__name__, exc)
    return error_response(exc.status, exc.code, str(exc))


def handle_http_exception(request: Request, exc: HTTPException) -> Response[ErrorBody]:
    status = exc.status_code
    if request.scope.get(CLIENT_GONE):  # no one to answer: the observer counts it as 499
        logger.info("client hung up before sending the whole request: %s", exc.detail)
        return error_response(400, "client_closed_request", "client closed the request")
    if status >= 500:
        logger.error("HTTP %s: %s", status, exc.detail)
        return error_response(status, "internal_error", "internal server error")
    if isinstance(exc, ValidationException):
        message, field = _describe_validation(exc)
        return error_response(400, "invalid_input", message, field)
    code = HTTP_CODES.get(status, "bad_request")
    message = exc.detail or code.replace("_", " ")
    if status == 413:
        message = "request body too large"
    return error_response(status, code, message, headers=exc.headers)


def handle_store_error(_: Request, exc: Exception) -> Response[ErrorBody]:
    """503 store_unavailable with Retry-After; logged once per outage (outage.py)."""
    outage.failed(exc)
    return error_response(
        503, StoreError.code, "the store is unavailable; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )  # fmt: skip


TOO_DEEP = "while deserializing"  # msgspec's RecursionError on JSON nested ~1000 levels deep


def handle_recursion_error(request: Request, exc: RecursionError) -> Response[ErrorBody]:
    """A body nested too deeply for the JSON decoder is the client's fault: 400, no traceback."""
    if TOO_DEEP in str(exc):
        return error_response(400, "invalid_input", "request body: JSON is nested too deeply")
    return handle_internal_error(request, exc)


def handle_internal_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    if is_store_error(exc):
        return handle_store_error(request, exc)
    logger.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def _describe_validation(exc: ValidationException) -> tuple[str, str | None]:
    """The message and offending field of a body/parameter validation error."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        text = str(item.get("message", "")) or "invalid value"
        key = item.get("key")
        if key == "data":  # Litestar names the whole body after the handler parameter
            key = None
            if text == "'data'":
                return "request body is missing: send a JSON object", None
        found = _PATH_RE.search(text)
        if found:  # msgspec: "... - at `$.n`" names the field by its JSON path
            key = found.group(1) or None
            text = text[: found.start()].rstrip(" -")
        elif named := _FIELD_RE.search(text):  # "Object missing required field `item_id`"
            key = named.group(1)
        if key:
            return f"{key}: {text}", str(key)
        return f"request body: {text}" if item.get("source") == "body" else text, None
    return (exc.detail or "invalid request"), None
