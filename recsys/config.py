"""Settings: built-in default < config file < RECSYS_* environment < CLI flag.

Every setting lives in a section dataclass below; its default and one-line help are the source of truth
for `config.toml` and `recsys config`. Environment variables are `RECSYS_<SECTION>_<KEY>`, plus the
short aliases in `ENV_ALIASES` (RECSYS_HOME, RECSYS_DB_URL, RECSYS_API_KEY).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _s(default: Any, help: str) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


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
    rating_min: float = _s(1.0, "smallest valid rating")
    rating_max: float = _s(5.0, "largest valid rating")


@dataclass
class MFSettings:
    factors: int = _s(0, "latent factors of the ALS model; 0 = auto (items / 40, between 8 and 64)")
    iterations: int = _s(15, "ALS iterations")
    regularization: float = _s(0.05, "L2 regularisation of the ALS factors")
    alpha: float = _s(2.0, "confidence = 1 + alpha * rating (confidence 'linear')")
    confidence: str = _s("linear", "how a rating becomes confidence: linear | binary")
    random_state: int = _s(42, "seed for the factor initialisation")
    test_fraction: float = _s(0.2, "evaluate: share of the ratings held out as the test set")
    min_user_ratings: int = _s(
        2,
        "users with fewer ratings are left out of the fit (one rating holds no co-occurrence; "
        "~10x faster at the reference scale); they are still served by fold-in. 1 = everyone",
    )


@dataclass
class SSSettings:
    fields: list[str] = _s(["title"], "product fields embedded for semantic search")
    batch_size: int = _s(128, "texts per encoder batch")
    index: str = _s("auto", "FAISS index: auto | flat | hnsw")
    hnsw_threshold: int = _s(50000, "auto picks HNSW at or above this many products")
    hnsw_m: int = _s(32, "HNSW graph degree")
    hnsw_ef_construction: int = _s(80, "HNSW build-time search depth")
    hnsw_ef_search: int = _s(64, "HNSW query-time search depth")


@dataclass
class SearchSettings:
    mode: str = _s("semantic", "default search mode: semantic | keyword | hybrid (README: why)")
    max_query_chars: int = _s(512, "longer queries are rejected")
    rrf_k: int = _s(60, "reciprocal rank fusion constant")
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
        "weight of the popularity prior added to keyword relevance (bm25 / the best one); hybrid "
        "fuses the two lists after each was re-ordered with its weight",
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
    log_format: str = _s("text", "request log lines: text | json")
    reload_check_seconds: float = _s(1.0, "how often the server looks for a newly published model")
    shutdown_timeout_seconds: float = _s(
        30.0, "on SIGTERM, in-flight requests get this long to finish before connections close"
    )
    training_nice: int = _s(10, "niceness of training jobs started over HTTP: serving stays fast")
    training_threads: int = _s(
        0, "CPU threads of HTTP-started training; 0: OMP_NUM_THREADS if set, else half the cores"
    )


@dataclass
class Settings:
    paths: PathsSettings = field(default_factory=PathsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    mf: MFSettings = field(default_factory=MFSettings)
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
            if section not in SECTIONS or not isinstance(values, dict):
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
    return settings


def _env_to_key(name: str) -> str | None:
    rest = name[len("RECSYS_") :].lower()
    for section in SECTIONS:
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1 :]
            if any(f.name == key for f in setting_fields(section)):
                return f"{section}.{key}"
    return None  # other RECSYS_* variables (e.g. test switches) are not settings


def _assign(settings: Settings, sources: dict[str, str], dotted: str, value: Any, origin: str):
    if dotted not in sources:
        raise ConfigError(f"{origin}: unknown setting '{dotted}'")
    section, key = dotted.split(".", 1)
    target = getattr(settings, section)
    setattr(target, key, _coerce(dotted, value, getattr(target, key), origin))
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
        "# recsys configuration: every setting with its built-in default.",
        "# Precedence: CLI flag > RECSYS_<SECTION>_<KEY> environment > this file > default.",
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
            lines.append(f"{f.name} = {text}")
        lines.append("")
    return "\n".join(lines)
