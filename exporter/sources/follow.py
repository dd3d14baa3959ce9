"""Follow a directory of telemetry files: appended lines, new daily files, deletions,
truncation and replacement. Portable polling (os.stat), no inotify: works the same on
Windows, macOS and Linux, and costs one stat per file per poll when nothing changes.

Rules:

* A position is never forgotten. A file that disappears (retention, a move, a mount hiccup)
  keeps its cursor; if a file with the same key comes back with the same first bytes and at
  least as long, it is read on from there, otherwise from the start (with a warning).
* A directory that cannot be listed skips the poll (one warning until it is back): it is not
  taken for a directory without files.
* A file's key is its path without ``.gz`` (:func:`file_key`): a day gzipped in place is read on
  where the plain file stopped (offsets count decompressed bytes), so nothing is read twice.
* A last line without its newline is not consumed until its newline arrives, unless the file
  is finished: a newer daily file exists (the writer has moved on), or it is a gzip archive.
* A plain file is read at most ``read_budget`` bytes per poll, so one huge file cannot starve
  the others; a gzip archive is read to its end in one go (streaming, bounded memory), since
  resuming it would mean decompressing it from the start again. ``pending`` says whether the
  last poll left a file unfinished (the caller is not caught up yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from exporter.positions import HEAD_BYTES, FilePosition, head_digest
from exporter.sources.files import (DEFAULT_MAX_LINE_BYTES, RawLine, file_key, is_telemetry_file, one_per_day,
                                    open_binary, read_lines, skip_to, sort_key)


@dataclass
class Followed:
    path: Path
    offset: int = 0
    lineno: int = 0
    anchor_ns: int | None = None  # last server receive time seen before `offset` (kept by the caller)
    head: str = ""           # digest of the first min(offset, 1 KiB) bytes, "" when unknown
    size: int = -1
    mtime_ns: int = -1
    present: bool = False    # in the directory at the last poll
    at_end: bool = False     # the last read reached the end (not stopped by the budget)
    partial: bool = False    # an unterminated last line is waiting

    @property
    def key(self) -> str:
        return file_key(self.path)

    @property
    def gz(self) -> bool:
        return self.path.name.endswith(".gz")

    def position(self) -> FilePosition:
        return FilePosition(self.offset, self.lineno, self.anchor_ns, self.head)


class DirectoryFollower:
    """Yields (followed file, line) for every complete line not read yet, one poll at a time."""

    def __init__(self, directory: Path, start: dict[str, FilePosition] | None = None, *,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, read_budget: int = 8 << 20,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.files: dict[str, Followed] = {
            key: Followed(Path(key), pos.offset, pos.lineno, pos.anchor_ns, pos.head)
            for key, pos in (start or {}).items()}
        self.max_line_bytes = max_line_bytes
        self.read_budget = read_budget
        self.on_warning = on_warning or (lambda m: None)
        self.unread = 0            # unread_bytes() as of the end of the last poll
        self.pending = True        # the last poll left a file unfinished (or there was none yet)
        self._listing_error: str | None = None

    def positions(self) -> dict[str, FilePosition]:
        """Every file's cursor, those of vanished files included."""
        return {key: f.position() for key, f in self.files.items()}

    def _scan(self) -> list[Path] | None:
        """The telemetry files, one per day, oldest first; None when the directory cannot be listed."""
        try:
            found = [p.resolve() for p in self.directory.iterdir() if is_telemetry_file(p)]
        except OSError as exc:
            if self._listing_error is None:
                self.on_warning(f"cannot list {self.directory} ({exc.strerror or exc}): waiting for it "
                                "to come back; every file keeps its position")
            self._listing_error = str(exc)
            return None
        if self._listing_error is not None:
            self.on_warning(f"{self.directory} can be listed again: following it")
            self._listing_error = None
        return one_per_day(sorted(found, key=sort_key))

    def unread_bytes(self) -> int:
        """Bytes behind the end of the files in the directory: the rest of each plain file, and
        the compressed size of a gzip archive not read to its end."""
        return sum((0 if f.at_end else f.size) if f.gz else max(0, f.size - f.offset)
                   for f in self.files.values() if f.present)

    def poll(self) -> Iterator[tuple[Followed, RawLine]]:
        """One pass over the directory: yield new complete lines, file by file, oldest day first."""
        self.pending = True        # until this poll has gone through every file
        present = self._scan()
        if present is None:
            return
        keys = {file_key(p) for p in present}
        for key, f in self.files.items():
            if key not in keys:
                f.present = False    # deleted or moved away: its position is kept
        newest = present[-1] if present else None
        pending = False
        for path in present:
            key = file_key(path)
            f = self.files.get(key)
            if f is None:
                f = self.files[key] = Followed(path)
            try:
                st = path.stat()
            except OSError:
                continue
            came_back, f.present = not f.present, True
            if f.path != path:
                f.path = path        # gzipped in place: the same day, read on where it stopped
                came_back = True
            finished = f.gz or path != newest
            unchanged = not came_back and f.at_end and st.st_size == f.size and st.st_mtime_ns == f.mtime_ns
            if unchanged and not (f.partial and finished):
                continue
            if not self._same_file(f, st.st_size):
                f.offset, f.lineno, f.head, f.anchor_ns = 0, 0, "", None
            f.size, f.mtime_ns = st.st_size, st.st_mtime_ns
            yield from self._read(f, finished)
            pending = pending or not f.at_end
        self.pending = pending
        self.unread = self.unread_bytes()

    def _same_file(self, f: Followed, size: int) -> bool:
        """Is ``f.path`` still the file read up to ``f.offset`` (not truncated, not replaced)?"""
        if not f.offset:
            return True
        if not f.gz and size < f.offset:
            self.on_warning(f"{f.path.name} was truncated ({size} < {f.offset} bytes): reading it from the start")
            return False
        if f.head:
            try:
                head = _read_head(f.path, f.offset)
            except OSError:
                return True      # unreadable now: the read will fail too and be tried again
            if head_digest(head) != f.head:
                self.on_warning(f"{f.path.name} was replaced: reading it from the start")
                return False
        return True

    def _read(self, f: Followed, finished: bool) -> Iterator[tuple[Followed, RawLine]]:
        f.at_end = f.partial = False
        budget = None if f.gz else self.read_budget
        try:
            fh = open_binary(f.path)
        except OSError:
            return
        if f.offset and not f.head:     # a cursor saved without its head (older versions): as it is now
            try:
                f.head = head_digest(_read_head(f.path, f.offset))
            except OSError:
                pass
        with fh:
            skip_to(fh, f.offset)
            for rl in read_lines(fh, offset=f.offset, lineno=f.lineno, max_line_bytes=self.max_line_bytes,
                                 partial_last_line=finished):
                if f.offset < HEAD_BYTES:   # keep the head digest in step with the offset
                    try:
                        f.head = head_digest(_read_head(f.path, rl.end))
                    except OSError:
                        f.head = ""      # unknown: not checked
                f.offset, f.lineno = rl.end, rl.lineno
                yield f, rl
                if budget is not None:
                    budget -= rl.end - rl.offset
                    if budget <= 0:
                        return           # not finished: the next poll goes on
        f.at_end = True
        f.partial = not f.gz and f.offset < f.size


def _read_head(path: Path, offset: int) -> bytes:
    """The file's first min(offset, HEAD_BYTES) bytes (what a position's head digest covers)."""
    with open_binary(path) as h:
        return h.read(min(offset, HEAD_BYTES))
