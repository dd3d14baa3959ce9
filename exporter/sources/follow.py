"""Follow a directory of telemetry files: appended lines, new daily files, deletions,
truncation and replacement. Portable polling (os.stat), no inotify: works the same on
Windows, macOS and Linux, and costs one stat per file per poll when nothing changes.

A last line without its newline is not consumed until the newline arrives, unless the file is
finished: a newer daily file exists, or the file has not changed for ``partial_line_grace``
seconds (the PHP endpoint appends whole lines, so such a line is as complete as it will get).
"""

from __future__ import annotations

import time
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
    anchor_ns: int | None = None
    size: int = -1
    mtime_ns: int = -1
    head: str = ""           # digest of the first min(offset, 1 KiB) bytes, "" when unknown
    changed_at: float = 0.0  # monotonic time the size or mtime last changed
    partial: bool = False    # an unterminated last line is waiting

    @property
    def key(self) -> str:
        return file_key(self.path)


class DirectoryFollower:
    """Yields (file key, line) for every complete line not read yet, one poll at a time."""

    def __init__(self, directory: Path, start: dict[str, FilePosition] | None = None, *,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, read_budget: int = 8 << 20,
                 partial_line_grace: float = 15.0,
                 on_warning: Callable[[str], None] | None = None,
                 on_reset: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.files: dict[str, Followed] = {}
        self.max_line_bytes = max_line_bytes
        self.read_budget = read_budget
        self.partial_line_grace = partial_line_grace
        self.on_warning = on_warning or (lambda m: None)
        self.on_reset = on_reset or (lambda key: None)   # a file is read again from the start
        self._start = dict(start or {})
        self.unread = 0            # unread_bytes() as of the end of the last poll

    def _scan(self) -> list[Path]:
        try:
            found = [p for p in self.directory.iterdir() if is_telemetry_file(p)]
        except OSError:
            return []
        return one_per_day(sorted((p.resolve() for p in found), key=sort_key))

    def unread_bytes(self) -> int:
        """Bytes behind the end of the followed files (plain files; gzip archives count once read)."""
        return sum(max(0, f.size - f.offset) for f in self.files.values() if not f.path.name.endswith(".gz"))

    def poll(self) -> Iterator[tuple[Followed, RawLine]]:
        """One pass over the directory: yield new complete lines, file by file, oldest day first.

        Stops a file after ``read_budget`` bytes so one huge file cannot starve the others
        (the next poll continues it).
        """
        present = self._scan()
        keys = {file_key(p) for p in present}
        for key in [k for k in self.files if k not in keys]:
            del self.files[key]          # deleted by retention: forget it
        newest = present[-1] if present else None
        now = time.monotonic()
        for path in present:
            key = file_key(path)
            f = self.files.get(key)
            try:
                st = path.stat()
            except OSError:
                continue
            if f is not None and f.path != path:
                f.path = path            # gzipped in place: the same day, read on where it stopped
                f.mtime_ns = -1
            if f is None:
                f = Followed(path)
                pos = self._start.pop(key, None)
                if pos is not None:
                    f.offset, f.lineno, f.anchor_ns, f.head = pos.offset, pos.lineno, pos.anchor_ns, pos.head
                self.files[key] = f
                is_new = True
            else:
                is_new = False
            unchanged = not is_new and st.st_size == f.size and st.st_mtime_ns == f.mtime_ns
            finish = f.partial and (path != newest or now - f.changed_at >= self.partial_line_grace)
            if unchanged and not finish:
                continue
            if not unchanged:
                f.changed_at = now
            gz = path.name.endswith(".gz")
            if not gz and st.st_size < f.offset:
                self.on_warning(f"{path.name} was truncated ({st.st_size} < {f.offset} bytes): reading it from the start")
                f.offset, f.lineno, f.head, f.anchor_ns = 0, 0, "", None
                self.on_reset(key)
            elif f.offset and f.head:
                try:
                    with open_binary(path) as h:
                        head = h.read(HEAD_BYTES)
                except OSError:
                    continue
                if head_digest(head[: min(f.offset, HEAD_BYTES)]) != f.head:
                    self.on_warning(f"{path.name} was replaced: reading it from the start")
                    f.offset, f.lineno, f.head, f.anchor_ns = 0, 0, "", None
                    self.on_reset(key)
            f.size, f.mtime_ns = st.st_size, st.st_mtime_ns
            yield from self._read(f, finish or path != newest)
        self.unread = self.unread_bytes()

    def _read(self, f: Followed, finished: bool) -> Iterator[tuple[Followed, RawLine]]:
        budget = self.read_budget
        stopped = False
        try:
            fh = open_binary(f.path)
        except OSError:
            return
        with fh:
            skip_to(fh, f.offset)
            head_needed = not f.head
            for rl in read_lines(fh, offset=f.offset, lineno=f.lineno, max_line_bytes=self.max_line_bytes,
                                 partial_last_line=finished):
                f.offset, f.lineno = rl.end, rl.lineno
                yield f, rl
                budget -= rl.end - rl.offset
                if budget <= 0:
                    f.mtime_ns = -1      # not finished: look again at the next poll
                    stopped = True
                    break
        f.partial = not stopped and not f.path.name.endswith(".gz") and f.offset < f.size
        if head_needed or f.offset < HEAD_BYTES:
            try:
                with open_binary(f.path) as h:
                    f.head = head_digest(h.read(HEAD_BYTES)[: min(f.offset, HEAD_BYTES)])
            except OSError:
                pass
