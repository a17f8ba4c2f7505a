"""Settings: built-in default < config file < RECSYS_* environment < CLI flag.

Every setting lives in a section dataclass below; its default and one-line help are the source of truth
for `config.toml` and `recsys config`. Environment variables are `RECSYS_<SECTION>_<KEY>`, plus the
short aliases in `ENV_ALIASES` (RECSYS_HOME, RECSYS_DB_URL, RECSYS_API_KEY).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.errors import ConfigError
from recsys.models.kinds import ALIASES, KINDS, RECOMMENDERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _s(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A setting: its default, one line of help and, for a vocabulary, the allowed values
    (checked on load, and offered as choices by the CLI flags generated from it)."""
    metadata = {"help": help, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class PathsSettings:
    home: str = _s("~/.recsys", "data home: default SQLite file and model registry")


@dataclass
class StoreSettings:
    url: str = _s("", "SQLAlchemy URL; empty means a SQLite file recsys.db in the data home")
    busy_timeout_ms: int = _s(10000, "SQLite: how long a writer waits for a lock before failing")


@dataclass
class IngestSettings:
    batch_size: int = _s(250000, "rows per transaction; a crash loses at most the batch in flight")
    batch_max_bytes: int = _s(
        83_886_080, "a batch is also written once its lines reach this many bytes (caps memory)"
    )
    max_errors: int = _s(
        -1, "stop with exit 1 once more than this many bad lines were seen; -1 never"
    )
    max_line_bytes: int = _s(4_194_304, "longer lines are bad lines (reason line_too_long)")
    max_reported_errors: int = _s(
        1000, "bad lines listed one by one in the report; all are counted"
    )
    rating_min: float = _s(
        1.0, "Amazon files: smallest valid rating (generic logs take any finite rating)"
    )
    rating_max: float = _s(5.0, "Amazon files: largest valid rating (--rating-range overrides)")


@dataclass
class ALSSettings:
    factors: int = _s(0, "latent factors of the ALS model; 0 = auto (items / 40, between 8 and 64)")
    iterations: int = _s(15, "ALS iterations")
    regularization: float = _s(
        0.05, "L2 regularisation of the ALS factors (engine spark: of a user with the mean count)"
    )
    alpha: float = _s(2.0, "confidence = 1 + alpha * rating (confidence 'linear')")
    confidence: str = _s(
        "linear", "how a rating becomes confidence: linear | binary", ("linear", "binary")
    )
    random_state: int = _s(42, "seed for the factor initialisation")
    min_user_ratings: int = _s(
        2,
        "users with fewer ratings are left out of the fit (one rating holds no co-occurrence; "
        "~10x faster at the reference scale); they are still served by fold-in. 1 = everyone",
    )
    # Spark: for ratings that outgrow one machine (README: Training on Spark).
    engine: str = _s(
        "implicit",
        "who fits ALS: implicit (this machine) or spark (Spark MLlib, pip install "
        "'recsys[spark]' and Java 17; regularization is then scaled per user, README)",
        ("implicit", "spark"),
    )
    spark_master: str = _s("local[*]", "Spark master URL for engine spark, e.g. spark://host:7077")
    spark_staging: str = _s(
        "",
        "folder for the Parquet files Spark reads (shared storage on a cluster); empty: "
        "<data home>/spark",
    )


@dataclass
class EASESettings:
    regularization: float = _s(500.0, "lambda, the L2 regularisation of EASE's closed form")
    max_items: int = _s(
        10000,
        "EASE models only this many most popular items (its dense matrix is items^2 x 4 bytes; "
        "the fit needs ~20 bytes per cell); the others are left to the fallback chain",
    )


@dataclass
class ItemKNNSettings:
    weighting: str = _s(
        "cosine",
        "item similarity: cosine, or bm25 (implicit's BM25-weighted dot product); cosine "
        "measured better untuned (MovieLens NDCG@10 0.278 against 0.197)",
        ("bm25", "cosine"),
    )
    neighbours: int = _s(100, "most similar items kept per item")
    bm25_k1: float = _s(1.2, "BM25 term saturation K1 (weighting bm25)")
    bm25_b: float = _s(0.75, "BM25 length normalisation B (weighting bm25)")


@dataclass
class RP3betaSettings:
    alpha: float = _s(1.0, "exponent of the random walk's transition probabilities")
    beta: float = _s(0.5, "popularity penalty: weights are divided by popularity^beta")
    neighbours: int = _s(100, "largest weights kept per item")


@dataclass
class RecommendSettings:
    model: str = _s(
        "auto",
        "model answering recommend and /recommendations: a kind, or auto (the model that "
        "validated best in `recsys tune`; als when nothing was tuned)",
        ("auto", *RECOMMENDERS, *ALIASES),
    )
    fallback: list[str] = _s(
        ["ss", "popularity"],
        "tried in order when the model has nothing for an item: ss (semantic neighbours of the "
        "product text), popularity (bestsellers of the item's category), or another model",
        (*KINDS, *ALIASES),
    )


@dataclass
class FeedbackSettings:
    max_events: int = _s(
        1000, "most events (or items) one POST /feedback, /items or CLI call takes"
    )
    default_rating: float = _s(
        5.0, "rating stored for a feedback event without one (a purchase counts as top marks)"
    )


@dataclass
class EvaluateSettings:
    models: list[str] = _s(
        ["als", "ease", "itemknn", "rp3beta", "popularity"],
        "models `recsys evaluate` and `recsys tune` compare",
        (*RECOMMENDERS, *ALIASES),
    )
    split: str = _s(
        "time",
        "time: the latest ratings are the test set; random: per-user random hold-out",
        ("time", "random"),
    )
    test_fraction: float = _s(0.2, "share of the ratings held out as the test set")
    seed: int = _s(42, "seed of the random split")
    k: int = _s(10, "cut-off of the top-k metrics")


@dataclass
class TuneSettings:
    trials: int = _s(30, "hyperparameter trials per model (optuna TPE)")
    time_budget_seconds: float = _s(0.0, "stop each model's search after this long; 0 = no limit")
    validation_fraction: float = _s(
        0.2, "share of the training part held out to validate trials (the test part is never seen)"
    )


@dataclass
class SSSettings:
    fields: list[str] = _s(["title"], "product fields embedded for semantic search")
    batch_size: int = _s(128, "texts per encoder batch")
    index: str = _s(
        "auto", "FAISS index: auto | flat | hnsw | ivfpq", ("auto", "flat", "hnsw", "ivfpq")
    )
    hnsw_threshold: int = _s(50000, "auto picks HNSW at or above this many products")
    hnsw_m: int = _s(32, "HNSW graph degree")
    hnsw_ef_construction: int = _s(80, "HNSW build-time search depth")
    hnsw_ef_search: int = _s(64, "HNSW query-time search depth")
    ivfpq_threshold: int = _s(
        1_000_000,
        "auto picks IVF-PQ (compressed, re-ranked exactly) at or above this many products: "
        "HNSW keeps ~1.8 KB a vector in RAM, IVF-PQ ~60 bytes (docs/SCALING.md)",
    )
    ivfpq_nlist: int = _s(0, "IVF-PQ coarse cells; 0 = about sqrt(products)")
    ivfpq_m: int = _s(0, "IVF-PQ sub-quantizers (bytes per code); 0 = dimensions / 8 (48)")
    ivfpq_nprobe: int = _s(16, "IVF-PQ cells searched per query")
    ivfpq_rerank: int = _s(20, "IVF-PQ shortlist per hit asked for, re-scored with exact vectors")


@dataclass
class SearchSettings:
    mode: str = _s(
        "hybrid",
        "default search mode: semantic | keyword | hybrid (README: why)",
        ("semantic", "keyword", "hybrid"),
    )
    max_query_chars: int = _s(512, "longer queries are rejected")
    hybrid_semantic_weight: float = _s(
        0.5,
        "hybrid: share of semantic relevance in the blend of the two pools' min-max normalised "
        "cosine and bm25 (0..1; the rest is keyword's)",
    )
    keyword_common_docs: int = _s(
        1000,
        "keyword search (SQLite): a query term held by more products than this only scores "
        "products that hold a rarer term of the query, as Lucene's common-terms query; 0: off",
    )
    filter_pool_factor: int = _s(
        50, "with exclude/categories/price filters, rank this many candidates per hit asked for"
    )
    candidates: int = _s(
        50, "products each mode ranks before the popularity prior re-orders them (at least 5 x k)"
    )
    popularity_weight_semantic: float = _s(
        0.02,
        "weight of the popularity prior (0..1, from ratings count and average) added to semantic "
        "relevance (cosine / the best one); 0 ranks by relevance alone (README: search ranking)",
    )
    popularity_weight_keyword: float = _s(
        0.3,
        "weight of the popularity prior added to keyword relevance (bm25 / the best one)",
    )
    popularity_weight_hybrid: float = _s(
        0.2,
        "weight of the popularity prior added to hybrid's blend of semantic and keyword relevance",
    )
    placeholder_patterns: list[str] = _s(
        [r"\bconfiguration asin\b", r"\btest (listing|product|item|asin)\b",
         r"\bplaceholder\b", r"\bdo not (buy|order|purchase)\b", r"\bdummy (listing|product|item)\b"],
        "regular expressions (case-insensitive) marking test or placeholder listings by title: "
        "they rank after every other match",
    )  # fmt: skip


@dataclass
class ServerSettings:
    host: str = _s("127.0.0.1", "bind address of recsys serve")
    port: int = _s(8000, "port of recsys serve")
    workers: int = _s(1, "uvicorn worker processes")
    max_body_bytes: int = _s(65536, "larger request bodies get 413")
    max_n: int = _s(100, "largest n / top_k a client may ask for")
    api_key: str = _s("", "when set, clients send it in X-API-Key (always for /training)")
    protect_all: bool = _s(False, "require the API key on every route, not only /training")
    cors_origins: list[str] = _s([], "allowed CORS origins; empty disables CORS")
    log_format: str = _s("text", "request log lines: text | json", ("text", "json"))
    reload_check_seconds: float = _s(1.0, "how often the server looks for a newly published model")
    shutdown_timeout_seconds: float = _s(
        30.0, "on SIGTERM, in-flight requests get this long to finish before connections close"
    )
    header_timeout_seconds: float = _s(
        10.0, "a connection must send a request's complete headers within this long; 0: no limit"
    )
    body_timeout_seconds: float = _s(
        30.0, "...and its complete body within this long after the headers; 0: no limit"
    )
    max_connections: int = _s(
        1000, "open connections per worker (kept below the open-file limit); more get 503"
    )
    training_nice: int = _s(10, "niceness of training jobs started over HTTP: serving stays fast")
    training_threads: int = _s(
        0, "CPU threads of HTTP-started training; 0: OMP_NUM_THREADS if set, else half the cores"
    )
    dashboard: bool = _s(True, "serve the dashboard pages at / (the JSON API stays either way)")
    image_proxy: bool = _s(
        True,
        "the dashboard's product images are fetched by the server (pages request no other host)",
    )
    image_timeout_seconds: float = _s(3.0, "how long the server waits for a product image")
    image_retry_seconds: float = _s(
        600.0, "a product image that failed is not fetched again for this long"
    )


@dataclass
class Settings:
    paths: PathsSettings = field(default_factory=PathsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    als: ALSSettings = field(default_factory=ALSSettings)
    ease: EASESettings = field(default_factory=EASESettings)
    itemknn: ItemKNNSettings = field(default_factory=ItemKNNSettings)
    rp3beta: RP3betaSettings = field(default_factory=RP3betaSettings)
    recommend: RecommendSettings = field(default_factory=RecommendSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)
    tune: TuneSettings = field(default_factory=TuneSettings)
    ss: SSSettings = field(default_factory=SSSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    # "section.key" -> where its value came from: default | file <path> | env <NAME> | flag
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def home(self) -> Path:
        return Path(self.paths.home).expanduser()

    @property
    def db_url(self) -> str:
        if self.store.url:
            return self.store.url
        if os.path.isabs(self.paths.home):  # the common case, remembered (see _sqlite_url)
            return _sqlite_url(self.paths.home)
        return f"sqlite:///{self.home / 'recsys.db'}"  # follows HOME / the cwd

    @property
    def models_dir(self) -> Path:
        return self.home / "models"


@functools.lru_cache(maxsize=16)
def _sqlite_url(absolute_home: str) -> str:
    # Path work costs ~8 us, and the server asks for the store on every request.
    return f"sqlite:///{Path(absolute_home) / 'recsys.db'}"


SECTIONS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Settings) if f.name != "sources"
)
# Old names that keep working: the ALS section was called [mf] (and RECSYS_MF_*), and its
# evaluation share lived there before `recsys evaluate` compared several models.
KEY_ALIASES = {"mf.test_fraction": "evaluate.test_fraction"}
SECTION_ALIASES = {"mf": "als"}
ENV_ALIASES = {
    "RECSYS_HOME": "paths.home",
    "RECSYS_DB_URL": "store.url",
    "RECSYS_API_KEY": "server.api_key",
}


def setting_fields(section: str) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(getattr(Settings(), section))


def _coerce(key: str, value: Any, default: Any, origin: str) -> Any:
    """Check a value from a file (typed TOML) or the environment (a string) against the default's type."""
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        value = _parse_env_string(key, value, kind, origin)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{origin}: setting '{key}' must be a list of strings")
        return value
    if type(value) is not kind:
        raise ConfigError(
            f"{origin}: setting '{key}' must be {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _parse_env_string(key: str, raw: str, kind: type, origin: str) -> Any:
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is list:
            return [part.strip() for part in raw.split(",") if part.strip()]
        return kind(raw)
    except ValueError:
        raise ConfigError(
            f"{origin}: setting '{key}' must be {kind.__name__}, got {raw!r}"
        ) from None


def find_config_file(explicit: str | None) -> Path | None:
    """--config > RECSYS_CONFIG > ./config.toml > user config dir (~/.config/recsys/config.toml)."""
    chosen = explicit or os.environ.get("RECSYS_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    base = Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")).expanduser()
    for candidate in (Path("config.toml"), base / "recsys" / "config.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    *,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the effective settings. `overrides` maps "section.key" to CLI flag values (None = unset)."""
    env = os.environ if environ is None else environ
    settings = Settings()
    sources = {f"{s}.{f.name}": "default" for s in SECTIONS for f in setting_fields(s)}

    path = find_config_file(config_file)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        for section, values in data.items():
            if SECTION_ALIASES.get(section, section) not in SECTIONS or not isinstance(
                values, dict
            ):
                raise ConfigError(f"{path}: unknown section [{section}]")
            for key, value in values.items():
                _assign(settings, sources, f"{section}.{key}", value, f"file {path}")

    for name, value in env.items():
        if not name.startswith("RECSYS_") or name == "RECSYS_CONFIG":
            continue
        dotted = ENV_ALIASES.get(name) or _env_to_key(name)
        if dotted is not None:
            _assign(settings, sources, dotted, value, f"env {name}")

    for dotted, value in (overrides or {}).items():
        if value is not None:
            _assign(settings, sources, dotted, value, "flag")
    settings.sources = sources
    _check_ranges(settings)
    _check_home(settings)
    return settings


def _check_ranges(settings: Settings) -> None:
    """Values each of the right type can still contradict each other: say which keys, and where from."""
    low, high = settings.ingest.rating_min, settings.ingest.rating_max
    where = ", ".join(
        sorted({settings.sources[f"ingest.{k}"] for k in ("rating_min", "rating_max")})
    )
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(
            f"{where}: settings 'ingest.rating_min' and 'ingest.rating_max' must be finite "
            f"(got {low}, {high})"
        )
    if low > high:
        raise ConfigError(
            f"{where}: setting 'ingest.rating_min' ({low}) must be <= 'ingest.rating_max' ({high})"
        )
    feedback = settings.feedback
    if feedback.max_events < 1:
        raise ConfigError(
            f"{settings.sources['feedback.max_events']}: setting 'feedback.max_events' must be "
            f">= 1 (got {feedback.max_events})"
        )
    if not math.isfinite(feedback.default_rating):
        raise ConfigError(
            f"{settings.sources['feedback.default_rating']}: setting 'feedback.default_rating' "
            f"must be finite (got {feedback.default_rating})"
        )
    share = settings.search.hybrid_semantic_weight
    if not (math.isfinite(share) and 0 <= share <= 1):
        raise ConfigError(
            f"{settings.sources['search.hybrid_semantic_weight']}: setting "
            f"'search.hybrid_semantic_weight' must be within 0..1 (got {share})"
        )
    timeout = settings.server.image_timeout_seconds
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(
            f"{settings.sources['server.image_timeout_seconds']}: setting "
            f"'server.image_timeout_seconds' must be a positive number of seconds (got {timeout})"
        )


def _check_home(settings: Settings) -> None:
    """The data home must be a directory (or not exist yet): a regular file there would end in
    an OSError deep inside the first command that writes."""
    home = settings.home
    if home.exists() and not home.is_dir():
        origin = settings.sources.get("paths.home", "default")
        named = {"flag": "--home", "env RECSYS_HOME": "RECSYS_HOME"}.get(origin, origin)
        raise ConfigError(f"data home {home} is not a directory (set by {named})")


def _env_to_key(name: str) -> str | None:
    rest = name[len("RECSYS_") :].lower()
    for section in (*SECTIONS, *SECTION_ALIASES):
        if rest.startswith(section + "_"):
            dotted = f"{section}.{rest[len(section) + 1 :]}"
            real_section, _, key = _canonical_key(dotted).partition(".")
            if any(f.name == key for f in setting_fields(real_section)):
                return dotted
    return None  # other RECSYS_* variables (e.g. test switches) are not settings


def _canonical_key(dotted: str) -> str:
    section, _, key = dotted.partition(".")
    return KEY_ALIASES.get(dotted) or f"{SECTION_ALIASES.get(section, section)}.{key}"


def _assign(settings: Settings, sources: dict[str, str], dotted: str, value: Any, origin: str):
    written = dotted  # errors name the key as the user wrote it (e.g. an old mf.* name)
    dotted = _canonical_key(dotted)
    if dotted not in sources:
        raise ConfigError(f"{origin}: unknown setting '{written}'")
    section, key = dotted.split(".", 1)
    target = getattr(settings, section)
    value = _coerce(written, value, getattr(target, key), origin)
    choices = next(f for f in setting_fields(section) if f.name == key).metadata["choices"]
    values = value if isinstance(value, list) else [value]
    wrong = [v for v in values if v not in choices] if choices else []
    if wrong:
        raise ConfigError(
            f"{origin}: setting '{written}' must be one of {' | '.join(choices)}, got {wrong[0]!r}"
        )
    setattr(target, key, value)
    sources[dotted] = origin


def settings_table(settings: Settings) -> list[dict[str, Any]]:
    """Every effective setting with its source and help, for `recsys config`."""
    rows = []
    for section in SECTIONS:
        for f in setting_fields(section):
            key = f"{section}.{f.name}"
            value = getattr(getattr(settings, section), f.name)
            if key == "server.api_key" and value:
                value = "***"  # never print a secret
            rows.append(
                {
                    "key": key,
                    "value": value,
                    "source": settings.sources.get(key, "default"),
                    "help": f.metadata["help"],
                }
            )
    return rows


def render_default_toml() -> str:
    """The text of config.toml: every setting with its default and help (a test keeps them equal)."""
    import json

    lines = [
        "# recsys configuration: every setting with its built-in default, commented out.",
        "# Uncomment a line to set it. Precedence: CLI flag > RECSYS_<SECTION>_<KEY> environment",
        "# > this file > hyperparameters recorded by `recsys tune` > built-in default (a line left",
        "# commented does not pin a tuned hyperparameter to its default).",
        "# Found via --config, RECSYS_CONFIG, ./config.toml or ~/.config/recsys/config.toml.",
        "",
    ]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for f in setting_fields(section):
            default = getattr(getattr(Settings(), section), f.name)
            lines.append(f"# {f.metadata['help']}")
            if isinstance(default, bool):
                text = "true" if default else "false"
            else:
                text = json.dumps(default)
            lines.append(f"#{f.name} = {text}")  # as sshd_config: "#key" is a setting
        lines.append("")
    return "\n".join(lines)
