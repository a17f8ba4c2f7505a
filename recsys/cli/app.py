"""The typer app, global options on every command, error handling and output helpers."""

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from recsys.errors import RecsysError, disk_full

app = typer.Typer(
    name="recsys",
    help="Recommendations and semantic search from Amazon-style review dumps and product catalogs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are literal: "[mf.factors]" and "[.gz]" must show
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
err = Console(stderr=True)


@dataclass
class GlobalOptions:
    home: Path | None = None
    db: str | None = None
    config: Path | None = None
    debug: bool = False


_globals = GlobalOptions()

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Data home (SQLite file, model registry). Env RECSYS_HOME."),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="SQLAlchemy database URL. Env RECSYS_DB_URL. Default: SQLite in home."
    ),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Config file (TOML). Env RECSYS_CONFIG.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

_GLOBAL_PARAMS = [
    inspect.Parameter("home", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=HomeOpt),
    inspect.Parameter("db", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DbOpt),
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOpt),
    inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DebugOpt),
]


@app.callback()
def _root(
    home: HomeOpt = None, db: DbOpt = None, config: ConfigOpt = None, debug: DebugOpt = False
):
    _globals.__init__()  # type: ignore[misc]  # fresh per invocation (tests run many in one process)
    _remember(home=home, db=db, config=config, debug=debug)


def _remember(**values: Any) -> None:
    for name, value in values.items():
        if value not in (None, False):
            setattr(_globals, name, value)


def settings(**flags: Any):
    """Effective settings: the global options plus this command's flags ("section.key" -> value)."""
    from recsys.config import load_settings

    overrides = {
        "paths.home": str(_globals.home) if _globals.home else None,
        "store.url": _globals.db,
        **flags,
    }
    return load_settings(
        config_file=str(_globals.config) if _globals.config else None, overrides=overrides
    )


def command(group: typer.Typer, name: str, **kwargs: Any) -> Callable:
    """Register `fn` as a command that also accepts the global options and turns RecsysError
    into one red line and exit code 1."""

    def register(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            _remember(**{p.name: kw.pop(p.name) for p in _GLOBAL_PARAMS})
            try:
                return fn(*args, **kw)
            except RecsysError as exc:
                if _globals.debug:
                    raise
                fail(str(exc))
            except Exception as exc:  # a full disk is the environment, not a bug: one line
                full = disk_full(exc, _home_or_none())
                if full is None or _globals.debug:
                    raise
                fail(str(full))

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*signature.parameters.values(), *_GLOBAL_PARAMS]
        )
        wrapper.__annotations__ = {
            **fn.__annotations__,
            **{p.name: p.annotation for p in _GLOBAL_PARAMS},
        }
        group.command(name, **kwargs)(wrapper)
        return fn

    return register


def _home_or_none() -> Path | None:
    """The data home, to name the disk that filled up when the error does not say which file."""
    try:
        return settings().home
    except Exception:
        return None


def fail(message: str, code: int = 1) -> None:
    from rich.text import Text

    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    import msgspec

    sys.stdout.write(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode() + "\n")


def main() -> None:
    app()
