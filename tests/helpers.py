"""Small helpers shared by tests: run the CLI, read rows back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from recsys.cli import app

runner = CliRunner()


def cli(*args: str, expect: int | None = 0) -> Any:
    """Run `recsys ARGS`; return parsed JSON when --json was given, else the result."""
    result = runner.invoke(app, [str(a) for a in args])
    if expect is not None:
        assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    if "--json" in args and result.exit_code == 0:
        return json.loads(result.stdout)
    return result


def rows(url: str, query: str, **params: Any) -> list[tuple]:
    """Run one SQL statement (committed) with bound `params`; its rows, [] for a write."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(query), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def sqlite_url(home: Path) -> str:
    """The URL of a data home's default SQLite store."""
    return f"sqlite:///{home / 'recsys.db'}"
