from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import pgcluster  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def recsys_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data home and no stray RECSYS_* settings or config file."""
    for name in list(os.environ):
        if name.startswith("RECSYS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("RECSYS_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # so ./config.toml of the repository is not picked up
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    from recsys.service import data, models
    from recsys.store import catalog_cache, counts

    data._engine.cache_clear()
    models.clear()
    catalog_cache.clear()
    counts.clear()
    yield home
    import gc

    gc.unfreeze()  # a server state of the test froze what was alive (state.freeze_long_lived)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    why = pgcluster.available()
    if why:
        pytest.skip(f"PostgreSQL tests need a local cluster: {why}")
    with pgcluster.pg_cluster() as url:
        yield url


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (clone without ../shared)")
    return SHARED_DATA


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database on each backend: a SQLite file, or a new database in the cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    import uuid

    from sqlalchemy import create_engine, text

    base = request.getfixturevalue("pg_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return base.rsplit("/", 1)[0] + "/" + name
