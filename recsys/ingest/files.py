"""Opening plain or gzipped files and reading them line by line with a byte budget."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from recsys.errors import InvalidInput

GZIP_MAGIC = b"\x1f\x8b"
TOO_LONG = None  # yielded instead of a line that exceeds the byte budget


class LineSource:
    """Yields (line number, raw line or TOO_LONG); `position` is the compressed bytes read so far."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot open: {exc.strerror}") from None
        self.size = path.stat().st_size
        self.gzipped = self.raw.read(2) == GZIP_MAGIC
        self.raw.seek(0)
        # GzipFile buffers by itself; a bigger buffer on top would lose more lines of a truncated file.
        self.stream: BinaryIO = gzip.GzipFile(fileobj=self.raw) if self.gzipped else self.raw  # type: ignore[assignment]

    @property
    def position(self) -> int:
        return self.raw.tell()

    def lines(self, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
        readline = self.stream.readline
        number = 0
        while True:
            line = readline(max_bytes + 1)
            if not line:
                return
            number += 1
            if len(line) > max_bytes and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of the giant line
                    line = readline(1 << 20)
                yield number, TOO_LONG
                continue
            yield number, line

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def read_head(path: Path, lines: int = 20, max_bytes: int = 1 << 20) -> list[bytes]:
    """The first non-blank lines (for format detection)."""
    source = LineSource(path)
    head: list[bytes] = []
    try:
        for _, line in source.lines(max_bytes):
            if line is not TOO_LONG and line.strip():
                head.append(line.rstrip(b"\r\n"))
            if len(head) >= lines:
                break
    except (OSError, EOFError, gzip.BadGzipFile):
        pass  # a broken gzip is reported by the real read
    finally:
        source.close()
    return head
