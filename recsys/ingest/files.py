"""Opening plain or gzipped files and reading them line by line with a byte budget.

Every format gets the same two courtesies here: a UTF-8 byte-order mark (Excel's "CSV UTF-8") is
dropped from the first line, and a file with classic-Mac line ends (CR only, no LF in its first
8 KB) is split on CR. Lines keep a trailing b"\n" either way."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from recsys.errors import InvalidInput

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
_BARE_CR = re.compile(rb"\r[^\n]")
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
        self.count = 0  # physical lines read so far
        try:
            start = self.stream.read(1 << 16)
            self.stream.seek(0)
        except (OSError, EOFError, zlib.error):
            start = b""  # a broken gzip is reported by the real read
            self.stream.seek(0)
        # CR-only: a CR followed by something else than LF, and no LF at all in the first 64 KB
        self.cr_line_ends = b"\n" not in start and _BARE_CR.search(start) is not None

    @property
    def position(self) -> int:
        return self.raw.tell()

    def lines(self, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
        if self.cr_line_ends:
            yield from self._cr_lines(max_bytes)
            return
        readline = self.stream.readline
        number = 0
        while True:
            line = readline(max_bytes + 1)
            if not line:
                return
            number += 1
            self.count = number
            if number == 1 and line.startswith(BOM):
                line = line[len(BOM) :]
            if len(line) > max_bytes and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of the giant line
                    line = readline(1 << 20)
                yield number, TOO_LONG
                continue
            yield number, line

    def _cr_lines(self, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
        """Lines of a CR-only file, each ending in b"\n" like the lines of any other file."""
        number, rest, skipping = 0, b"", False
        while True:
            chunk = self.stream.read(1 << 20)
            if number == 0 and not rest and chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
            if not chunk:  # end of file: the last line may lack its CR
                if rest or skipping:
                    self.count = number + 1
                    yield number + 1, TOO_LONG if skipping else rest + b"\n"
                return
            *complete, rest = (rest + chunk).split(b"\r")
            for line in complete:
                number += 1
                self.count = number
                too_long, skipping = skipping or len(line) > max_bytes, False
                yield number, TOO_LONG if too_long else line + b"\n"
            if len(rest) > max_bytes:  # a giant line: drop what we have, skip to its end
                rest, skipping = b"", True

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
