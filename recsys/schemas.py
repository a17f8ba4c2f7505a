"""The msgspec Structs that service functions return and both adapters render (CLI and HTTP)."""

from __future__ import annotations

import msgspec


class BadLineInfo(msgspec.Struct):
    file: str
    line: int
    reason: str


class FileReport(msgspec.Struct):
    file: str
    format: str
    kind: str
    lines_read: int = 0
    bad_lines: int = 0
    rows: int = 0  # good rows parsed (before de-duplication against the store)
    cleaned: dict[str, int] = {}  # values cleaned away, e.g. junk_title, junk_price


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


class Recommendations(msgspec.Struct):
    kind: str  # "similar" | "user"
    query: str  # the item id or user id asked about
    strategy: str  # "als" | "popular" | "fold_in"
    model_version: str | None
    items: list[ScoredItem]
    message: str | None = None


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
    """Top-k metrics averaged over evaluated users; coverage = share of the catalog recommended."""

    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float


class EvaluationReport(msgspec.Struct):
    kind: str  # the model kind evaluated, "mf"
    k: int
    split: str  # "time" | "random"
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
    models: dict[str, RankingMetrics] = {}  # "als", "popular"
    params: dict[str, object] = {}
    seconds: float = 0.0
