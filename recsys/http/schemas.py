"""Request bodies, the one error shape and training-job records of the HTTP API.

Responses of the model endpoints are the service's own Structs (recsys.schemas). Request Structs
are built per app by `request_types(settings)` because their bounds come from the config
(server.max_n, search.max_query_chars) and belong in the OpenAPI schema, where clients and
schemathesis can see them. (No `from __future__ import annotations`: the Structs are built
inside a function and msgspec must see their annotations as objects.)
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from recsys.config import Settings
from recsys.models.kinds import ACCEPTED_NAMES, RECOMMENDERS
from recsys.service.search import QUERY_WHITESPACE

# "some character that is not whitespace", spelled out so that JSON Schema's ECMA-262 regexes and
# Python's re agree (their \S differ: Python counts U+001C..U+001F as whitespace, ECMA does not)
QUERY_PATTERN = "[^" + QUERY_WHITESPACE.encode("unicode_escape").decode() + "]"

# The vocabularies come from the model table: every kind (and alias) can be trained over HTTP,
# every recommender asked for picks.
ModelType = Literal[ACCEPTED_NAMES]  # type: ignore[valid-type]
RecommenderModel = Annotated[
    Literal[(*RECOMMENDERS, "mf", "auto")],  # type: ignore[valid-type]
    Meta(description="the model to answer with; auto: recommend.model's choice"),
]
SearchMode = Literal["semantic", "keyword", "hybrid"]
JobState = Literal["queued", "running", "succeeded", "failed"]

ID_LENGTH = (1, 256)
Id = Annotated[
    str, Meta(min_length=ID_LENGTH[0], max_length=ID_LENGTH[1], description="an item or user id")
]
CATEGORY_LENGTH = (1, 256)
Category = Annotated[
    str,
    Meta(
        min_length=CATEGORY_LENGTH[0], max_length=CATEGORY_LENGTH[1],
        description="only this main_category",
    ),
]  # fmt: skip


class ErrorDetail(Struct, omit_defaults=True):
    code: str
    message: str
    status: int
    field: str | None = None  # the offending request field of a 400, when known


class ErrorBody(Struct):
    """Every error, from every route and layer, has this shape."""

    error: ErrorDetail


class TrainRequest(Struct, forbid_unknown_fields=True):
    model_type: ModelType
    force_retrain: bool = False


class JobProgress(Struct):
    done: int
    total: int


class Job(Struct, omit_defaults=True):
    """A training job as recorded in <home>/jobs/<id>.json (shared by all server workers)."""

    id: str
    kind: ModelType
    state: JobState
    force_retrain: bool
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    progress: JobProgress | None = None
    version: str | None = None  # the published model version (or the current one when skipped)
    skipped: bool = False  # nothing changed since the current version and force_retrain was false
    message: str | None = None
    error: ErrorDetail | None = None
    pid: int | None = None


class JobList(Struct):
    jobs: list[Job]


class Health(Struct):
    status: Literal["ok", "starting", "unavailable"]
    checks: dict[str, str] = {}


@dataclass(frozen=True)
class RequestTypes:
    # Any: the classes are built per configuration, so a type checker cannot know their fields
    similar: type[Any]
    user: type[Any]
    search: type[Any]
    model_similar: type[Any]  # /recommendations/similar: the similar request + `model`
    model_user: type[Any]  # /recommendations/user: the user request + `model`
    feedback: type[Any]  # POST /feedback
    items: type[Any]  # POST /items


def request_types(settings: Settings) -> RequestTypes:
    """Request Structs whose bounds are this configuration's limits."""
    max_n = settings.server.max_n
    N = Annotated[int, Meta(ge=1, le=max_n, description=f"how many results, 1..{max_n}")]
    Query = Annotated[
        str,
        Meta(
            min_length=1, max_length=settings.search.max_query_chars, pattern=QUERY_PATTERN,
            description="free text (not only whitespace: space, tab, CR, LF, FF, VT)",
        ),
    ]  # fmt: skip
    ItemIds = Annotated[
        list[Id],
        Meta(
            max_length=1000, description="items the user liked, for users the model does not know"
        ),
    ]

    ExcludeIds = Annotated[list[Id], Meta(max_length=1000, description="item ids never to return")]
    Categories = Annotated[
        list[Category],
        Meta(max_length=50, description="only items of any of these categories (any case)"),
    ]
    Price = Annotated[float, Meta(ge=0, description="catalog price bound (inclusive)")]

    class SimilarRequest(Struct, forbid_unknown_fields=True):
        item_id: Id
        n: N = 10
        category: Category | None = None
        exclude: ExcludeIds | None = None
        categories: Categories | None = None
        price_min: Price | None = None
        price_max: Price | None = None

    class UserRequest(Struct, forbid_unknown_fields=True):
        user_id: Id
        n: N = 10
        filter_already_liked: bool = True
        item_ids: ItemIds | None = None
        category: Category | None = None
        explain: bool = False
        exclude: ExcludeIds | None = None
        categories: Categories | None = None
        price_min: Price | None = None
        price_max: Price | None = None

    class SearchRequest(Struct, forbid_unknown_fields=True):
        query: Query
        top_k: N = 10
        mode: SearchMode | None = None
        category: Category | None = None
        exclude: ExcludeIds | None = None
        categories: Categories | None = None
        price_min: Price | None = None
        price_max: Price | None = None

    class ModelSimilarRequest(SimilarRequest, forbid_unknown_fields=True):
        model: RecommenderModel | None = None

    class ModelUserRequest(UserRequest, forbid_unknown_fields=True):
        model: RecommenderModel | None = None

    most = settings.feedback.max_events

    class FeedbackRequest(Struct, forbid_unknown_fields=True):
        # Each event is checked by the service, one error per bad event with its index (the good
        # ones are kept), so the schema describes them without rejecting the whole call.
        events: Annotated[
            list[dict[str, Any]],
            Meta(
                min_length=1, max_length=most,
                description=f"1..{most} events {{user_id, item_id, rating?, timestamp?}}: rating "
                "a finite number (default feedback.default_rating), timestamp UTC seconds or "
                "ISO 8601 (default now)",
            ),
        ]  # fmt: skip

    class ItemsRequest(Struct, forbid_unknown_fields=True):
        items: Annotated[
            list[dict[str, Any]],
            Meta(
                min_length=1, max_length=most,
                description=f"1..{most} products {{item_id, title?, main_category?, store?, "
                "price?, average_rating?, rating_count?, image_url?, features?, description?, "
                "categories?, details?, images?}}, each replacing the item's catalog fields",
            ),
        ]  # fmt: skip

    classes = (SimilarRequest, UserRequest, SearchRequest, ModelSimilarRequest, ModelUserRequest,
               FeedbackRequest, ItemsRequest)  # fmt: skip
    for cls in classes:
        cls.__qualname__ = cls.__name__  # the OpenAPI component name, without "request_types."
    return RequestTypes(
        similar=SimilarRequest, user=UserRequest, search=SearchRequest,
        model_similar=ModelSimilarRequest, model_user=ModelUserRequest,
        feedback=FeedbackRequest, items=ItemsRequest,
    )  # fmt: skip
