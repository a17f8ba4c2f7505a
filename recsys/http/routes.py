"""Route handlers: parse the msgspec request Struct -> call the service function -> return its Struct.

Handlers are built per app (closures over the settings and the request Structs, whose bounds come
from the config). No `from __future__ import annotations` here: Litestar reads the handlers'
annotations, which refer to those per-app classes.

Threading: service calls are synchronous. The mf endpoints run on the event loop
(sync_to_thread=False): measured with benchmarks/bench_http.py at reference scale, the thread
pool gave the same throughput (the calls are CPU-bound, ~1.5 ms, mostly under the GIL) with a
higher p50 at 1 client and a higher p99 at 16 (GIL hand-offs between the loop and the workers).
They never load a model on the loop (see `served` below). Search encodes the query (tens of ms)
and /status, /health/ready and the job routes touch the database or files, so those run in the
thread pool and never stall the loop.
"""

import math
from dataclasses import replace
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Response, get, post, route
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter, RawBody

from recsys import service
from recsys.config import Settings
from recsys.http.schemas import ErrorBody, Health, Job, JobList, TrainRequest, request_types
from recsys.schemas import Recommendations, SearchResults, Status, WriteReport
from recsys.server.state import ServerState
from recsys.service.filters import Filters

VERSION_HEADER = "X-Model-Version"
SECURITY_SCHEME = "ApiKey"
JOB_ID = Annotated[
    str, Parameter(pattern="^[0-9a-f]{32}$", description="job id returned by POST /training")
]

_ERRORS = {
    400: "invalid body: the offending field is named in `error.field` and the message",
    401: "API key missing or wrong (X-API-Key header)",
    404: "unknown item or user",
    409: "conflict: the model is not trained yet, or a training of that kind already runs",
    413: "request body larger than server.max_body_bytes",
    503: "the store is unavailable",
    507: "the disk of the data home is full",
}


def _error_example(status: int, code: str, message: str, field: str | None = None) -> Example:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if field:
        error["field"] = field
    return Example(id=f"error_{status}_{code}", summary=code, value={"error": error})


_ERROR_EXAMPLES = {
    400: _error_example(400, "invalid_input", "n: Expected `int` <= 100", "n"),
    401: _error_example(
        401, "unauthorized", "missing or wrong API key: send it in the X-API-Key header"
    ),
    404: _error_example(404, "not_found", "unknown item 'B0000XYZ'"),
    409: _error_example(409, "not_trained", "no als model yet: run `recsys train als`"),
    413: _error_example(413, "body_too_large", "request body too large"),
    503: _error_example(503, "store_unavailable", "database is unavailable"),
    507: _error_example(507, "disk_full", "disk full while writing /data/recsys/jobs/..."),
}


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    """Document the error responses a route can give, all in the one shape."""
    return {
        code: ResponseSpec(
            ErrorBody, description=_ERRORS[code], generate_examples=False,
            examples=[_ERROR_EXAMPLES[code]],
        )
        for code in codes
    }  # fmt: skip


def _ok(container: Any, description: str, example: dict[str, Any]) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(
            container, description=description, generate_examples=False,
            examples=[Example(id="ok", summary="ok", value=example)],
        )
    }  # fmt: skip


_ITEM = {
    "item_id": "B07XJ8C8F5", "score": 0.8731, "title": "Wireless Earbuds, Bluetooth 5.3",
    "image_url": "https://example.com/img/B07XJ8C8F5.jpg", "price": 29.99, "category": "Electronics",
}  # fmt: skip
_RECS = {
    "kind": "similar", "query": "B0000XYZ", "strategy": "als",
    "model_version": "20261126T120000Z", "items": [_ITEM],
}  # fmt: skip
_SEARCH = {
    "query": "wireless earbuds",
    "mode": "hybrid",
    "model_version": "20261126T120000Z",
    "hits": [_ITEM],
}
_JOB = {
    "id": "6f1c0a9e2b7d4c35a1e8f0b2c4d6e8fa", "kind": "als", "state": "running", "force_retrain": False,
    "created_at": "2026-11-26T12:00:00.000+00:00", "started_at": "2026-11-26T12:00:00.210+00:00",
    "progress": {"done": 6, "total": 15}, "pid": 4242,
}  # fmt: skip


T = TypeVar("T")


def strict(body: bytes, type_: type[T]) -> T:
    """Decode a request body by its JSON schema, exactly.

    Litestar has already validated `data` (which documents the body), but in msgspec's lax mode:
    "5" for 5, 0 for false. Strict msgspec is stricter than JSON Schema in one way: 10.0 is a
    JSON Schema integer, so integral floats at the top level become ints first."""
    try:
        raw = msgspec.json.decode(body)
        if isinstance(raw, dict):
            for key, value in raw.items():
                if type(value) is float and value.is_integer() and abs(value) < 2**53:
                    raw[key] = int(value)
        return msgspec.convert(raw, type=type_)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationException(extra=[{"message": str(exc), "source": "body"}]) from None


def _with_version(content: Any, version: str | None) -> Response[Any]:
    return Response(content, headers={VERSION_HEADER: version} if version else None)


def _filters(data: Any) -> Filters:
    """The filter fields of a similar or user request (InvalidInput (400) for a bad range)."""
    return Filters.of(data.exclude, data.categories, data.price_min, data.price_max)


def build_handlers(settings: Settings, state: ServerState) -> list[HTTPRouteHandler]:
    # Requests never re-check the registry themselves: with an infinite check interval the model
    # cache hands them the loaded version at once, and the refresher thread (state.py) alone
    # checks for and loads new versions, so a request never pays for loading a big model. The
    # cache is shared per models folder, so the refresher's swap is what requests see.
    served = replace(settings, server=replace(settings.server, reload_check_seconds=math.inf))
    types = request_types(settings)
    SimilarRequest, UserRequest, SearchRequest = types.similar, types.user, types.search
    ModelSimilarRequest, ModelUserRequest = types.model_similar, types.model_user
    FeedbackRequest, ItemsRequest = types.feedback, types.items
    # OpenAPI security declarations mirror the guard in auth.py.
    keyed: list[dict[str, list[str]]] | None = (
        [{SECURITY_SCHEME: []}] if settings.server.api_key else None
    )
    default = keyed if settings.server.protect_all else None

    # The seed's /matrix_factor/* (ALS) and /recommendations/* (any model) share their bodies.
    def similar_by(data: Any, model: str | None) -> Response[Recommendations]:
        recs = service.similar_items(
            served, data.item_id, n=data.n, category=data.category, model=model,
            filters=_filters(data),
        )  # fmt: skip
        return _with_version(recs, recs.model_version)

    def user_by(data: Any, model: str | None) -> Response[Recommendations]:
        recs = service.recommend_user(
            served, data.user_id, n=data.n, include_seen=not data.filter_already_liked,
            items=data.item_ids, category=data.category, explain=data.explain, model=model,
            filters=_filters(data),
        )  # fmt: skip
        return _with_version(recs, recs.model_version)

    @post(
        "/matrix_factor/similar", status_code=200, sync_to_thread=False, tags=["recommendations"], security=default,
        summary="Items similar to an item (ALS item factors)",
        responses={
            **_ok(Recommendations, "similar items; X-Model-Version names the model", _RECS),
            **_errors(400, 401, 404, 409, 413, 503),
        },
    )  # fmt: skip
    def similar(
        data: Annotated[
            SimilarRequest,  # type: ignore[valid-type]
            Body(
                examples=[
                    Example(
                        id="similar",
                        summary="10 items like B0000XYZ",
                        value={"item_id": "B0000XYZ", "n": 10},
                    )
                ]
            ),
        ],
        body: RawBody,
    ) -> Response[Recommendations]:
        return similar_by(strict(body, SimilarRequest), "als")

    @post(
        "/matrix_factor/user", status_code=200, sync_to_thread=False, tags=["recommendations"], security=default,
        summary="Recommendations for a user (ALS; fold-in from item_ids for unknown users)",
        responses={
            **_ok(Recommendations, "recommended items; X-Model-Version names the model",
                  {**_RECS, "kind": "user", "query": "AE3Q6KSUK5P75D5HFYHCRAOLODSA"}),
            **_errors(400, 401, 404, 409, 413, 503),
        },
    )  # fmt: skip
    def user(
        data: Annotated[
            UserRequest,  # type: ignore[valid-type]
            Body(examples=[
                Example(id="known_user", summary="a user the model knows",
                        value={"user_id": "AE3Q6KSUK5P75D5HFYHCRAOLODSA", "n": 10,
                               "filter_already_liked": True}),
                Example(id="new_user", summary="a new user, from the items they liked",
                        value={"user_id": "new-visitor-17", "n": 5,
                               "item_ids": ["B0000XYZ", "B07XJ8C8F5"]}),
            ]),
        ],
        body: RawBody,
    ) -> Response[Recommendations]:  # fmt: skip
        return user_by(strict(body, UserRequest), "als")

    @post(
        "/recommendations/similar", status_code=200, sync_to_thread=False, tags=["recommendations"], security=default,
        summary="Items similar to an item, from any model (default recommend.model); the fallback chain fills in",
        responses={
            **_ok(Recommendations, "similar items; `model` and X-Model-Version name the model",
                  {**_RECS, "model": "ease", "strategy": "ease"}),
            **_errors(400, 401, 404, 409, 413, 503),
        },
    )  # fmt: skip
    def model_similar(
        data: Annotated[
            ModelSimilarRequest,  # type: ignore[valid-type]
            Body(examples=[Example(id="similar_ease", summary="10 items like B0000XYZ by EASE",
                                   value={"item_id": "B0000XYZ", "n": 10, "model": "ease"})]),
        ],
        body: RawBody,
    ) -> Response[Recommendations]:  # fmt: skip
        data = strict(body, ModelSimilarRequest)
        return similar_by(data, data.model)

    @post(
        "/recommendations/user", status_code=200, sync_to_thread=False, tags=["recommendations"], security=default,
        summary="Recommendations for a user from any model (fold-in from item_ids for unknown users)",
        responses={
            **_ok(Recommendations, "recommended items; `model` and X-Model-Version name the model",
                  {**_RECS, "kind": "user", "query": "AE3Q6KSUK5P75D5HFYHCRAOLODSA", "model": "ease",
                   "strategy": "ease"}),
            **_errors(400, 401, 404, 409, 413, 503),
        },
    )  # fmt: skip
    def model_user(
        data: Annotated[
            ModelUserRequest,  # type: ignore[valid-type]
            Body(examples=[Example(id="user_rp3beta", summary="a known user, RP3beta picks",
                                   value={"user_id": "AE3Q6KSUK5P75D5HFYHCRAOLODSA", "n": 10,
                                          "model": "rp3beta", "explain": True})]),
        ],
        body: RawBody,
    ) -> Response[Recommendations]:  # fmt: skip
        data = strict(body, ModelUserRequest)
        return user_by(data, data.model)

    @post(
        "/search", status_code=200, sync_to_thread=True, tags=["search"], security=default,
        summary="Semantic, keyword or hybrid product search",
        responses={
            **_ok(SearchResults, "hits; X-Model-Version names the semantic index", _SEARCH),
            **_errors(400, 401, 409, 413, 503),
        },
    )  # fmt: skip
    def search(
        data: Annotated[
            SearchRequest,  # type: ignore[valid-type]
            Body(examples=[
                Example(id="default-mode", summary="default mode (config search.mode)",
                        value={"query": "wireless earbuds", "top_k": 10}),
                Example(id="semantic_in_category", summary="semantic only, one category",
                        value={"query": "gift for a runner", "top_k": 5, "mode": "semantic",
                               "category": "Sports & Outdoors"}),
            ]),
        ],
        body: RawBody,
    ) -> Response[SearchResults]:  # fmt: skip
        data = strict(body, SearchRequest)
        results = service.search(
            served, data.query, k=data.top_k, mode=data.mode, category=data.category,
            filters=_filters(data),
        )  # fmt: skip
        return _with_version(results, results.model_version)

    @post(
        "/feedback", status_code=200, sync_to_thread=True, tags=["writes"], opt={"auth": "always"}, security=keyed,
        summary="Record feedback events; the next recommendation for the user reflects them",
        responses={
            **_ok(WriteReport, "events written; errors lists each bad event with its index",
                  {"accepted": 1, "inserted": 1, "updated": 0, "errors": [
                      {"index": 1, "code": "missing_item_id", "message": "missing item id",
                       "field": "item_id"}]}),
            **_errors(400, 401, 413, 503),
        },
    )  # fmt: skip
    def feedback(
        data: Annotated[
            FeedbackRequest,  # type: ignore[valid-type]
            Body(examples=[Example(id="purchase", summary="a purchase and a rating",
                                   value={"events": [{"user_id": "u1", "item_id": "B0000XYZ"},
                                                     {"user_id": "u1", "item_id": "B07XJ8C8F5",
                                                      "rating": 4, "timestamp": 1764400000}]})]),
        ],
        body: RawBody,
    ) -> WriteReport:  # fmt: skip
        data = strict(body, FeedbackRequest)
        return service.record_feedback(settings, data.events)

    @post(
        "/items", status_code=200, sync_to_thread=True, tags=["writes"], opt={"auth": "always"}, security=keyed,
        summary="Insert or replace products; keyword search and result lines show them at once",
        responses={
            **_ok(WriteReport, "items written; errors lists each bad item with its index",
                  {"accepted": 1, "inserted": 1, "updated": 0, "errors": []}),
            **_errors(400, 401, 413, 503),
        },
    )  # fmt: skip
    def items(
        data: Annotated[
            ItemsRequest,  # type: ignore[valid-type]
            Body(examples=[Example(id="new_product", summary="a new product",
                                   value={"items": [{"item_id": "B0NEW00001", "title": "Trail running shoes",
                                                     "main_category": "Sports & Outdoors", "price": 89.0}]})]),
        ],
        body: RawBody,
    ) -> WriteReport:  # fmt: skip
        data = strict(body, ItemsRequest)
        return service.upsert_items(settings, data.items)

    @get(
        "/status", sync_to_thread=True, tags=["operations"], security=default,
        summary="Store counts and each model kind's live version, size and age",
        responses=_errors(401, 503),
    )  # fmt: skip
    def status() -> Status:
        return state.status()

    # Litestar's automatic OPTIONS handler only lists the first handler's method when two handlers
    # share a path (GET and POST /training): answer OPTIONS here with the true Allow header.
    @route("/training", http_method=["OPTIONS"], include_in_schema=False, opt={"auth": "never"},
           sync_to_thread=False)  # fmt: skip
    def training_options() -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": "GET, OPTIONS, POST"})

    @post(
        "/training", status_code=202, sync_to_thread=True, tags=["training"], opt={"auth": "always"}, security=keyed,
        summary="Start a training job in a separate process",
        responses={
            202: ResponseSpec(Job, description="job accepted; poll GET /training/{job_id}",
                              generate_examples=False,
                              examples=[Example(id="queued", value={**_JOB, "state": "queued"})]),
            **_errors(400, 401, 409, 413, 507),
        },
    )  # fmt: skip
    def start_training(
        data: Annotated[
            TrainRequest,
            Body(examples=[Example(id="als", summary="retrain ALS (\"mf\" is accepted too)",
                                   value={"model_type": "als", "force_retrain": False})]),
        ],
        body: RawBody,
    ) -> Job:  # fmt: skip
        data = strict(body, TrainRequest)
        return state.jobs.start(data.model_type, data.force_retrain)

    @get(
        "/training", sync_to_thread=True, tags=["training"], opt={"auth": "always"}, security=keyed,
        summary="Recent training jobs, newest first",
        responses={
            **_ok(JobList, "jobs", {"jobs": [_JOB]}),
            **_errors(400, 401),
        },
    )  # fmt: skip
    def list_training(
        limit: Annotated[int, Parameter(ge=1, le=200, description="how many jobs")] = 50,
    ) -> JobList:
        return JobList(jobs=state.jobs.list(limit))

    @get(
        "/training/{job_id:str}", sync_to_thread=True, tags=["training"], opt={"auth": "always"}, security=keyed,
        summary="State, progress, timing and the published version or the error of a job",
        responses={**_ok(Job, "the job", _JOB), **_errors(400, 401, 404)},
    )  # fmt: skip
    def get_training(job_id: JOB_ID) -> Job:
        return state.jobs.get(job_id)

    @get("/health/live", sync_to_thread=False, tags=["operations"], opt={"auth": "never"},
         summary="The process answers")  # fmt: skip
    def live() -> Health:
        return Health(status="ok")

    @get(
        "/health/ready", sync_to_thread=True, tags=["operations"], opt={"auth": "never"},
        summary="200 once the store answers and the published models are loaded, else 503",
        responses={503: ResponseSpec(Health, description="not ready yet", generate_examples=False,
                                     examples=[Example(id="starting", value={
                                         "status": "starting", "checks": {"store": "ok", "ss": "loading"}})])},
    )  # fmt: skip
    def ready() -> Response[Health]:
        health = state.health()
        return Response(health, status_code=200 if health.status == "ok" else 503)

    @get(
        "/metrics", sync_to_thread=True, tags=["operations"], security=default, media_type="text/plain; version=0.0.4",
        summary="Prometheus text exposition", responses=_errors(401),
    )  # fmt: skip
    def metrics() -> str:
        return state.metrics.render(
            models=state.live_versions(), jobs=state.jobs.state_counts(), ready=state.ready
        )

    from recsys.http.browse_routes import build_browse_handlers  # it imports this module

    return [similar, user, model_similar, model_user, search, feedback, items, status, training_options, start_training, list_training, get_training, live,
            ready, metrics, *build_browse_handlers(served, SimilarRequest, default)]  # fmt: skip
