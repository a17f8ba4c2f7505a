"""The msgspec Structs that service functions return and both adapters render (CLI and HTTP)."""

from __future__ import annotations

import msgspec


class BadLineInfo(msgspec.Struct, omit_defaults=True):
    file: str
    line: int  # 1-based; for a CSV record spanning lines, its first line
    reason: str  # a short code, counted in IngestReport.bad_by_reason
    detail: str = ""  # this line's particulars, e.g. "rating 7 outside 1..5"


class FileReport(msgspec.Struct):
    file: str
    format: str
    kind: str
    lines_read: int = 0
    bad_lines: int = 0
    rows: int = 0  # good rows parsed (before de-duplication against the store)
    cleaned: dict[str, int] = {}  # values cleaned away, e.g. junk_title, junk_price
    mapping: dict[str, str] = {}  # generic logs: recsys field -> the column or key it came from
    warnings: list[str] = []  # e.g. no rating column found, numeric columns left unmapped
    rating_range: list[float] | None = None  # [lowest, highest] rating among the rows kept


class TableCounts(msgspec.Struct):
    inserted: int = 0
    updated: int = 0


class IngestReport(msgspec.Struct):
    files: list[FileReport] = []
    lines_read: int = 0
    bad_lines: int = 0
    bad_by_reason: dict[str, int] = {}
    errors: list[BadLineInfo] = []  # the first ingest.max_reported_errors bad lines
    errors_truncated: bool = False
    ratings: TableCounts = msgspec.field(default_factory=TableCounts)
    products: TableCounts = msgspec.field(default_factory=TableCounts)
    seconds: float = 0.0
    aborted: str | None = None  # set when --max-errors stopped the run


class ModelInfo(msgspec.Struct):
    kind: str
    version: str
    created_at: str
    size_bytes: int
    age_seconds: float
    params: dict[str, object] = {}
    counts: dict[str, int] = {}
    metrics: dict[str, object] = {}
    current: bool = False  # the version `current` points at (models list)
    training_seconds: float | None = None  # wall time of the training that published it


class StoreStatus(msgspec.Struct):
    database: str
    schema_version: int
    products: int
    ratings: int
    users: int
    rated_items: int
    ratings_without_product: int
    last_ingest_at: str | None
    # True while the store changed since the counts were taken (the server never waits for a
    # recount during an ingest: it recounts in the background and answers with the last counts)
    counts_stale: bool = False


class Status(msgspec.Struct):
    store: StoreStatus
    models: dict[str, ModelInfo | None] = {}  # the server: the versions it serves
    refused: dict[str, str] = {}  # kind -> "version: why" of a current version the server refused


class ScoredItem(msgspec.Struct):
    """One result line, the same in every listing (recommendations and search hits)."""

    item_id: str
    score: float
    title: str | None = None
    image_url: str | None = None
    price: float | None = None
    category: str | None = None
    because: list[str] | None = None  # --explain: the user's items that drove this pick
    model: str | None = None  # the model kind that produced this line (see recommend.fallback)


class Recommendations(msgspec.Struct):
    kind: str  # "similar" | "user"
    query: str  # the item id or user id asked about
    strategy: str  # the model kind for personal picks / similar items, "fold_in", "popular", "none"
    model_version: str | None
    items: list[ScoredItem]
    message: str | None = None
    model: str | None = None  # the model kind asked (lines name their own, see ScoredItem.model)


class TrainResult(msgspec.Struct):
    kind: str
    version: str | None
    skipped: bool = False
    message: str = ""
    seconds: float = 0.0
    counts: dict[str, int] = {}
    params: dict[str, object] = {}
    metrics: dict[str, object] = {}
    timings: dict[str, float] = {}  # seconds per phase: read, matrix, fit, evaluate, publish


class SearchResults(msgspec.Struct):
    query: str
    mode: str
    model_version: str | None
    hits: list[ScoredItem]
    message: str | None = None  # why there are no hits, when a filter explains it


class RankingMetrics(msgspec.Struct):
    """Top-k metrics averaged over evaluated users (see recsys.evaluate for definitions)."""

    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float  # share of the catalog recommended to anyone
    novelty: float = 0.0  # mean self-information of recommended items, bits
    gini: float = 0.0  # Gini index of exposure over the catalog
    diversity: float | None = None  # intra-list category diversity (None: no categories)
    p_value: float | None = None  # Wilcoxon signed-rank vs the best model's per-user NDCG
    fit_seconds: float = 0.0


class EvaluationReport(msgspec.Struct):
    k: int
    split: str  # "time" | "random"
    split_description: str  # the split, named precisely enough to repeat it
    test_fraction: float
    seed: int
    train_interactions: int
    test_interactions: int
    test_users: int  # distinct users with test interactions
    evaluated_users: int  # test users known to train with at least one test item known to train
    cold_users: int  # test users the train part never saw (not scored, counted here)
    cold_user_interactions: int
    cold_items: int  # distinct test items the train part never saw (no model can rank them)
    cold_item_interactions: int
    catalog_items: int  # items the train part saw: the ranked catalog
    models: dict[str, RankingMetrics] = {}  # model kind -> metrics, best NDCG first
    best: str | None = None  # the model with the highest NDCG@k
    params: dict[str, dict[str, object]] = {}  # model kind -> hyperparameters used
    seconds: float = 0.0


class TunedModel(msgspec.Struct):
    model: str
    params: dict[str, object]
    validation_ndcg: float
    test_ndcg: float
    default_test_ndcg: float  # the same split and test, with the parameters before tuning
    trials: int
    seconds: float


class TuneReport(msgspec.Struct):
    k: int
    split_description: str
    validation_description: str
    models: list[TunedModel] = []  # best validation NDCG first
    best: str | None = None  # the model that validated best (what recommend.model = auto serves)
    seconds: float = 0.0


class WriteError(msgspec.Struct, omit_defaults=True):
    index: int  # 0-based position of the event or item in the call
    code: str  # the ingest bad-line reason, e.g. missing_user_id, invalid_rating
    message: str
    field: str | None = None


class WriteReport(msgspec.Struct):
    accepted: int  # events (items) that passed the checks and were written
    inserted: int  # new rows
    updated: int  # rows changed (an older rating replaced); accepted - inserted - updated: no-ops
    errors: list[WriteError] = []


# ---- browsing the store (the dashboard's data; GET /items/{id}, /users/{id}/ratings, /stats) ----
class ProductDetails(msgspec.Struct):
    item_id: str
    title: str | None = None
    main_category: str | None = None
    store: str | None = None
    price: float | None = None
    average_rating: float | None = None
    rating_count: int | None = None  # as the catalog file says
    image_url: str | None = None
    features: list[object] = []
    description: list[object] = []
    categories: list[object] = []
    details: dict[str, object] = {}
    ratings: int = 0  # ratings of this item in the store
    in_catalog: bool = True  # False: the item is only known from ratings


class RatedItem(msgspec.Struct):
    item_id: str
    rating: float
    rated_at: str  # ISO 8601, UTC
    title: str | None = None
    image_url: str | None = None
    price: float | None = None
    category: str | None = None


class UserRatings(msgspec.Struct):
    user_id: str
    total: int  # ratings of the user in the store
    ratings: list[RatedItem]  # newest first, at most `limit`


class Series(msgspec.Struct):
    x: list[float]
    y: list[float]


class StoreCharts(msgspec.Struct):
    """Pictures of the store: ratings per item by popularity rank (the long tail, sampled at
    log-spaced ranks), ratings per month (x: month start, UTC epoch seconds) and the rating
    histogram (x: rating value)."""

    long_tail: Series
    ratings_per_month: Series
    rating_histogram: Series
    ratings: int
    items: int


class CategoryCount(msgspec.Struct):
    name: str
    products: int


class Evaluations(msgspec.Struct):
    """The last `recsys evaluate` report and `recsys tune` record in the registry (None: never
    run); `evaluated_at` is when the report was written."""

    evaluation: EvaluationReport | None = None
    evaluated_at: str | None = None
    tuning: dict[str, object] | None = None
