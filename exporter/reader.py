"""Files -> chunks: read lines, parse them, compute Loki timestamps and metadata, cut chunks.

This is the import pipeline's producer. It holds at most one chunk in memory (the consumer's
queue bounds how many wait), so memory does not grow with file size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from exporter.batching import Chunk, EntryRef
from exporter.deadletter import DeadLetterRecord
from exporter.events import model
from exporter.events.model import Event, Invalid, page_of
from exporter.events.parse import parse_line
from exporter.events.timing import format_ns, loki_timestamp_ns
from exporter.positions import HEAD_BYTES, FilePosition, Positions, head_digest
from exporter.sources.files import open_binary, read_lines, skip_to

GroupFn = Callable[[Event], object]


@dataclass(frozen=True)
class ReaderSettings:
    app: str
    max_line_bytes: int
    batch_bytes: int
    batch_entries: int


def read_head(path: Path) -> bytes:
    with open_binary(path) as f:
        return f.read(HEAD_BYTES)


def metadata_for(event: Event, error_type: str | None, retimed: bool) -> dict[str, str] | None:
    """Structured metadata of one entry: bounded labels stay labels, the rest goes here."""
    md: dict[str, str] = {}
    if event.session_id:
        md["session_id"] = event.session_id
    page = page_of(event.url)
    if page:
        md["page"] = page
    if error_type:
        md["error_type"] = error_type
    if retimed:
        md["event_time"] = format_ns(event.time_ns)
    return md or None


class ChunkReader:
    """Turns files into chunks, starting each file where the positions say."""

    def __init__(self, settings: ReaderSettings, positions: Positions,
                 fingerprint: Callable[[Event], object | None] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.s = settings
        self.positions = positions
        self.fingerprint = fingerprint
        self.on_warning = on_warning or (lambda msg: None)
        self._labels = {t: {"app": settings.app, "type": t}
                        for t in (*sorted(model.KNOWN_TYPES), model.OTHER_TYPE)}
        self.skipped_bytes = 0   # bytes already delivered by an earlier run

    def chunks(self, files: list[Path], sizes: dict[Path, int] | None = None) -> Iterator[Chunk]:
        s = self.s
        chunk = Chunk()
        heads: dict[str, bytes] = {}
        done_bytes = 0
        files_done = 0
        for path in files:
            key = str(path)
            size = path.stat().st_size
            head = read_head(path)
            start, warning = self.positions.start_for(path, head, size)
            if warning:
                self.on_warning(warning)
            heads[key] = head
            self.skipped_bytes += start.offset if not path.name.endswith(".gz") else 0
            anchor = start.anchor_ns
            pos = FilePosition(start.offset, start.lineno, anchor)
            with open_binary(path) as f:
                skip_to(f, start.offset)
                raw_file = getattr(getattr(f, "raw", None), "fileobj", None)  # gzip: compressed position
                for rl in read_lines(f, offset=start.offset, lineno=start.lineno, max_line_bytes=s.max_line_bytes):
                    chunk.lines += 1
                    chunk.bytes += rl.end - rl.offset
                    if rl.length > s.max_line_bytes:
                        chunk.invalid.append(DeadLetterRecord(key, rl.lineno, rl.offset, model.TOO_LONG,
                                                              f"line of {rl.length} bytes exceeds {s.max_line_bytes}",
                                                              rl.data, rl.length))
                    elif not rl.data.strip():
                        chunk.blank += 1
                    else:
                        ev = parse_line(rl.data)
                        if isinstance(ev, Invalid):
                            chunk.invalid.append(DeadLetterRecord(key, rl.lineno, rl.offset, ev.reason, ev.detail, rl.data))
                        else:
                            if ev.received_ns is not None:
                                anchor = ev.received_ns
                            ts, retimed = loki_timestamp_ns(ev.time_ns, anchor, rl.offset)
                            stream = ev.stream
                            size_b = len(rl.data)
                            if not chunk.fits(stream, ts, size_b, s.batch_bytes, s.batch_entries):
                                chunk.progress_bytes = done_bytes + (raw_file.tell() if raw_file else rl.offset)
                                chunk.files_done = files_done
                                yield _sealed(chunk, heads)
                                chunk = Chunk()
                            group = self.fingerprint(ev) if self.fingerprint else None
                            chunk.add(stream, self._labels[stream], ts, ev.line,
                                      metadata_for(ev, getattr(group, "error_type", None), retimed),
                                      size_b, EntryRef(key, rl.lineno, rl.offset))
                            chunk.events_by_type[stream] += 1
                            if retimed:
                                chunk.retimed += 1
                    pos = FilePosition(rl.end, rl.lineno, anchor)
                    chunk.ends[key] = pos
            chunk.ends[key] = FilePosition(pos.offset, pos.lineno, pos.anchor_ns, done=True)
            done_bytes += size
            files_done += 1
        chunk.progress_bytes = done_bytes
        chunk.files_done = files_done
        yield _sealed(chunk, heads)


def _sealed(chunk: Chunk, heads: dict[str, bytes]) -> Chunk:
    """Give each end position the digest of the file's first bytes it covers."""
    for key, pos in chunk.ends.items():
        pos.head = head_digest(heads[key][: min(pos.offset, HEAD_BYTES)])
    return chunk
