"""Find telemetry files and stream their lines with byte offsets, in constant memory.

Lines are split on ``\\n``; a trailing ``\\r`` (CRLF files) and a UTF-8 BOM at the start of a file
are not part of the line. A line longer than ``max_line_bytes`` is never held whole in memory:
its first bytes are kept (for the dead letter) and the rest is skipped.
"""

from __future__ import annotations

import glob
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

BOM = b"\xef\xbb\xbf"
DEFAULT_MAX_LINE_BYTES = 256 * 1024  # Loki's default max_line_size
KEEP_OF_LONG_LINE = 4096              # bytes of a too-long line kept for the dead letter
_READ_BUFFER = 1 << 20
_DATED = re.compile(r"(\d{4}-\d{2}-\d{2})")


class SourceError(Exception):
    """A PATH argument that names nothing readable (a usage error, exit code 2)."""


@dataclass(slots=True)
class RawLine:  # not frozen: a frozen dataclass costs ~3x more to create, and one is made per line
    lineno: int        # 1-based line number in the file
    offset: int        # byte offset of the line's first byte (in the decompressed stream for .gz)
    end: int           # byte offset just past the line ending
    data: bytes        # the line without line ending and BOM (only the head of a too-long line)
    length: int        # the line's full length in bytes (without line ending)
    terminated: bool   # False for a last line without newline


def is_telemetry_file(path: Path) -> bool:
    return path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")


def file_key(path: Path) -> str:
    """The identity of a telemetry file in positions and state: its path without ``.gz``.

    Retention gzips old days in place (``telemetry-2025-12-01.jsonl`` becomes ``...jsonl.gz``);
    offsets count decompressed bytes, so the archive continues exactly where the plain file
    stopped and nothing is delivered or counted twice.
    """
    s = str(path)
    return s[:-3] if s.endswith(".gz") else s


def one_per_day(paths: list[Path], on_warning: Callable[[str], None] | None = None) -> list[Path]:
    """Drop a ``.jsonl.gz`` whose plain ``.jsonl`` twin is also there (the same day, caught in
    the middle of being compressed, or kept twice): reading both would count every line twice.
    The plain file wins: it is complete, the archive may still be being written."""
    plain = {file_key(p) for p in paths if not p.name.endswith(".gz")}
    kept = []
    for p in paths:
        if p.name.endswith(".gz") and file_key(p) in plain:
            if on_warning:
                on_warning(f"{p.name} skipped: {p.name[:-3]} holds the same day")
            continue
        kept.append(p)
    return kept


def discover(paths: list[str] | None, default: str = "telemetry-logs",
             on_warning: Callable[[str], None] | None = None) -> list[Path]:
    """Expand PATH arguments (files, directories, globs) into telemetry files, oldest day first.

    A directory contributes its ``*.jsonl`` and ``*.jsonl.gz`` files (not recursive). Files are
    sorted by the date in their name, then by name, so days are delivered in time order whatever
    order they were given in; a day present both plain and gzipped is read once (see
    :func:`one_per_day`). Raises SourceError when a PATH matches nothing.
    """
    found: dict[Path, None] = {}
    for arg in paths or [default]:
        p = Path(arg)
        if p.is_dir():
            matches = [c for c in p.iterdir() if c.is_file() and is_telemetry_file(c)]
            if not matches:
                raise SourceError(f"{arg}: directory has no *.jsonl or *.jsonl.gz files")
        elif p.is_file():
            matches = [p]
        else:
            matches = [Path(m) for m in glob.glob(arg)] if glob.has_magic(arg) else []
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise SourceError(f"{arg}: no such file, directory or matching files")
        for m in matches:
            found[m.resolve()] = None
    return one_per_day(sorted(found, key=sort_key), on_warning)


def sort_key(path: Path) -> tuple[str, str]:
    m = _DATED.search(path.name)
    return (m.group(1) if m else "9999-99-99", path.name)


def open_binary(path: Path) -> BinaryIO:
    """Open a plain or gzip file for buffered binary reading."""
    if path.name.endswith(".gz"):
        return io.BufferedReader(gzip.GzipFile(path, "rb"), buffer_size=_READ_BUFFER)  # type: ignore[arg-type]
    return open(path, "rb", buffering=_READ_BUFFER)


def skip_to(f: BinaryIO, offset: int) -> None:
    """Position a stream at ``offset`` (seek for plain files, read-through for gzip)."""
    if offset <= 0:
        return
    if f.seekable() and not isinstance(getattr(f, "raw", None), gzip.GzipFile):
        f.seek(offset)
        return
    left = offset
    while left > 0:
        chunk = f.read(min(left, _READ_BUFFER))
        if not chunk:
            break
        left -= len(chunk)


def read_lines(
    f: BinaryIO,
    *,
    offset: int = 0,
    lineno: int = 0,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    partial_last_line: bool = True,
) -> Iterator[RawLine]:
    """Yield the lines of an open stream positioned at ``offset`` (line ``lineno`` already read).

    Blank lines are yielded too (with empty data): the caller decides what they count as.
    With ``partial_last_line=False`` (follow mode), a last line without newline is not
    consumed: it is left for when its newline arrives.
    """
    limit = max_line_bytes + 2  # room for "\r\n"
    readline = f.readline
    while True:
        chunk = readline(limit)
        if not chunk:
            return
        start = offset
        if chunk[-1:] == b"\n":
            data = chunk[:-1]
            offset += len(chunk)
            terminated = True
            length = len(data)
        else:
            length = len(chunk)
            terminated = False
            head = chunk
            if length >= limit:  # too long: skip the rest of the line without holding it
                while True:
                    more = readline(_READ_BUFFER)
                    if not more:
                        break
                    if more[-1:] == b"\n":
                        length += len(more) - 1
                        terminated = True
                        break
                    length += len(more)
            offset = start + length + (1 if terminated else 0)
            if not terminated and not partial_last_line:
                return
            data = head[:KEEP_OF_LONG_LINE] if length > max_line_bytes else head
        if data[-1:] == b"\r" and len(data) == length:
            data = data[:-1]
            length -= 1
        if start == 0 and data[:3] == BOM:
            data = data[3:]
            length -= 3
        lineno += 1
        yield RawLine(lineno, start, offset, data, length, terminated)
