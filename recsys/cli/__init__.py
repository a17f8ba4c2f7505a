"""The typer CLI: parse flags -> call a service function -> render a rich table or JSON."""

from recsys.cli.app import app, main

# Command modules register themselves on import.
from recsys.cli import data_commands  # noqa: E402,F401  isort: skip
from recsys.cli import search_commands  # noqa: E402,F401  isort: skip
from recsys.cli import models_commands, recommend_commands  # noqa: E402,F401  isort: skip
from recsys.cli import serve_commands  # noqa: E402,F401  isort: skip

__all__ = ["app", "main"]
