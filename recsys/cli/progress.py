"""One rich progress bar for every long command (ingest by bytes, training by steps)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from recsys.cli.app import err


@contextmanager
def progress_bar(enabled: bool, label: str, *, bytes_: bool = False) -> Iterator[Callable | None]:
    """Yields `update(done, total, name=label)` while a transient bar shows on stderr, or None
    when disabled (--quiet, or stderr is not a terminal: cron and pipes stay clean)."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    amount = DownloadColumn() if bytes_ else MofNCompleteColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), amount, TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(done: int, total: int, name: str = label) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield update
