"""Read-only routes for looking at the store and the registry (what the dashboard draws):
GET /items/{id}, /items/{id}/image, /users/{id}/ratings, /stats, /categories,
/evaluations/latest, and POST /search/similar (the semantic neighbours of a product).

They touch the database, the disk or the network (images), so they run in the thread pool.
Protected like every other route: the key is needed only with `server.protect_all`.
No `from __future__ import annotations` (Litestar reads the annotations).
"""

from typing import Annotated, Any

from litestar import Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter, RawBody

from recsys.config import Settings
from recsys.http.routes import _errors, _filters, _ok, _with_version, strict
from recsys.schemas import (
    CategoryCount,
    Evaluations,
    ProductDetails,
    Recommendations,
    StoreCharts,
    UserRatings,
)
from recsys.service import browse, images
from recsys.service.browse import MAX_HISTORY
from recsys.service.recommend import semantically_similar

ITEM_ID = Annotated[str, Parameter(min_length=1, max_length=256, description="an item id")]
USER_ID = Annotated[str, Parameter(min_length=1, max_length=256, description="a user id")]
PLACEHOLDER_HEADER = "X-Image-Placeholder"


def build_browse_handlers(
    settings: Settings, SimilarRequest: Any, security: list[dict[str, list[str]]] | None
) -> list[HTTPRouteHandler]:
    """The handlers, over `settings` (the server's, whose model cache the refresher swaps) and
    the app's SimilarRequest Struct (its bounds come from the config)."""

    @get(
        "/items/{item_id:str}", sync_to_thread=True, tags=["catalog"], security=security,
        summary="Every catalog field of a product and its number of ratings",
        responses={
            **_ok(ProductDetails, "the product", {"item_id": "B07XJ8C8F5", "title": "Wireless Earbuds",
                                                  "price": 29.99, "ratings": 12, "in_catalog": True}),
            **_errors(400, 401, 404, 503),
        },
    )  # fmt: skip
    def item(item_id: ITEM_ID) -> ProductDetails:
        return browse.item_details(settings, item_id)

    @get(
        "/items/{item_id:str}/image", sync_to_thread=True, tags=["catalog"], security=security,
        summary="The product's image, fetched by the server from its image_url (a placeholder SVG when none can be had)",
        responses={**_errors(400, 401, 404, 503)}, media_type="image/*",
    )  # fmt: skip
    def item_image(item_id: ITEM_ID) -> Response[bytes]:
        image = images.product_image(settings, item_id)
        headers = {"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}  # fmt: skip
        if image.placeholder:
            headers[PLACEHOLDER_HEADER] = image.placeholder
            headers["Cache-Control"] = "max-age=60"  # it may be fetchable later
        return Response(image.content, media_type=image.media_type, headers=headers)

    @get(
        "/users/{user_id:str}/ratings", sync_to_thread=True, tags=["catalog"], security=security,
        summary="A user's ratings as the store holds them now, newest first",
        responses={
            **_ok(UserRatings, "the ratings", {"user_id": "AE3Q6KSUK5P75D5HFYHCRAOLODSA", "total": 1, "ratings": [
                {"item_id": "B07XJ8C8F5", "rating": 5.0, "rated_at": "2026-11-26T12:00:00+00:00",
                 "title": "Wireless Earbuds"}]}),
            **_errors(400, 401, 404, 503),
        },
    )  # fmt: skip
    def user_ratings(
        user_id: USER_ID,
        limit: Annotated[int, Parameter(ge=1, le=MAX_HISTORY, description="how many")] = 50,
    ) -> UserRatings:
        return browse.user_ratings(settings, user_id, limit)

    @get(
        "/stats", sync_to_thread=True, tags=["catalog"], security=security,
        summary="Charts of the store: the long tail, ratings per month, the rating histogram",
        responses=_errors(401, 503),
    )  # fmt: skip
    def stats() -> StoreCharts:
        return browse.store_charts(settings)

    @get(
        "/categories", sync_to_thread=True, tags=["catalog"], security=security,
        summary="The main categories with the most products",
        responses=_errors(400, 401, 503),
    )  # fmt: skip
    def categories(
        limit: Annotated[int, Parameter(ge=1, le=1000, description="how many")] = 50,
    ) -> list[CategoryCount]:
        return browse.top_categories(settings, limit)

    @get(
        "/evaluations/latest", sync_to_thread=True, tags=["operations"], security=security,
        summary="The last `recsys evaluate` report and `recsys tune` record",
        responses=_errors(401),
    )  # fmt: skip
    def evaluations() -> Evaluations:
        return browse.latest_evaluations(settings)

    @post(
        "/search/similar", status_code=200, sync_to_thread=True, tags=["search"], security=security,
        summary="Products whose text is semantically nearest to a product's (the ss index)",
        responses={
            **_ok(Recommendations, "similar products; X-Model-Version names the semantic index",
                  {"kind": "similar", "query": "B0000XYZ", "strategy": "ss", "model": "ss",
                   "model_version": "20261126T120000Z", "items": []}),
            **_errors(400, 401, 404, 409, 413, 503),
        },
    )  # fmt: skip
    def search_similar(
        data: Annotated[
            SimilarRequest,
            Body(examples=[Example(id="similar_text", summary="10 products described like B0000XYZ",
                                   value={"item_id": "B0000XYZ", "n": 10})]),
        ],
        body: RawBody,
    ) -> Response[Recommendations]:  # fmt: skip
        data = strict(body, SimilarRequest)
        recs = semantically_similar(
            settings, data.item_id, n=data.n, category=data.category, filters=_filters(data)
        )
        return _with_version(recs, recs.model_version)

    return [item, item_image, user_ratings, stats, categories, evaluations, search_similar]
