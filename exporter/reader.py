"""Lines -> events -> chunks: the per-line work shared by `import` and `serve`.

``LineProcessor.feed`` parses one line, gives it its Loki timestamp and structured metadata,
and adds it to the current chunk (or to the chunk's invalid lines), sealing chunks as they
fill. ``ChunkReader`` drives it over a list of files for `import`; `serve` drives it from the
directory follower. Memory holds at most the current chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from exporter.batching import Chunk
from exporter.deadletter import DeadLetterRecord
from exporter.events import model
from exporter.events.model import Event, Invalid, page_of
from exporter.events.parse import parse_line
from exporter.events.timing import format_ns, loki_timestamp_ns
from exporter.positions import HEAD_BYTES, FilePosition, Positions, head_digest
from exporter.sources.files import RawLine, file_key, open_binary, read_lines, skip_to, sort_key


@dataclass(frozen=True)
class ReaderSettings:
    app: str
    max_line_bytes: int
    batch_bytes: int
    batch_entries: int


def read_head(path: Path) -> bytes:
    with open_binary(path) as f:
        return f.read(HEAD_BYTES)


def first_receive_ns(path: Path, max_lines: int = 200) -> int | None:
    """The server receive time of the first event (among the first lines) of a file."""
    with open_binary(path) as f:
        for i, rl in enumerate(read_lines(f)):
            if i >= max_lines:
                break
            ev = parse_line(rl.data) if rl.data.strip() and rl.length == len(rl.data) else None
            if isinstance(ev, Event) and ev.received_ns is not None:
                return ev.received_ns
    return None


def delivery_order(files: list[Path]) -> list[Path]:
    """Files in server-receive order, whatever their names: by the receive time of their first
    event (files are appended in receive order), then by the day in their name. Loki's per-stream
    ordering window needs the days in order; names alone may lie (exports, copies)."""
    keyed = []
    for path in files:
        first = first_receive_ns(path)
        keyed.append(((0, first) if first is not None else (1, 0), sort_key(path), path))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [k[2] for k in keyed]


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


class LineProcessor:
    def __init__(self, settings: ReaderSettings,
                 fingerprint: Callable[[Event], object | None] | None = None) -> None:
        self.s = settings
        self.fingerprint = fingerprint
        self._labels = {t: {"app": settings.app, "type": t}
                        for t in (*sorted(model.KNOWN_TYPES), model.OTHER_TYPE)}
        self.chunk = Chunk()
        self.sealed: list[Chunk] = []
        self._max_raw = 4 * settings.batch_bytes  # raw bytes of any kind in one chunk
        self._key: str | None = None    # the file being read, and its cursor
        self._pos = None
        self.replay_until: dict[str, int] = {}  # file -> end of the chunk in flight when interrupted
        self.replay_all = False                 # --restart: Loki may hold any of these lines already
        self._looked_ahead: set[str] = set()    # files searched for a first receive time

    def seal(self) -> None:
        """Close the current chunk (even if partial) and start a new one."""
        self._snapshot()
        self.sealed.append(self.chunk)
        self.chunk = Chunk()

    def end_of_file(self, key: str, pos, done: bool = True) -> None:
        """The file ``key`` was read to its end: record that in the current chunk."""
        self.chunk.ends[key] = FilePosition(pos.offset, pos.lineno, pos.anchor_ns, done=done)
        if self._key == key:
            self._key = self._pos = None

    def feed(self, key: str, rl: RawLine, pos: FilePosition, path: Path | None = None) -> Event | Invalid | None:
        """Process one line of file ``key`` (its :func:`file_key`; ``path``, the file itself, when
        it differs: a ``.gz``); ``pos`` (that file's cursor) moves past it.

        Returns the Event, the Invalid (with its reason), or None for a blank line.
        """
        s = self.s
        chunk = self.chunk
        name = key if path is None else str(path)
        result: Event | Invalid | None = None
        if rl.length > s.max_line_bytes:
            result = Invalid(model.TOO_LONG, f"line of {rl.length} bytes exceeds {s.max_line_bytes}")
            chunk.invalid.append(DeadLetterRecord(name, rl.lineno, rl.offset, model.TOO_LONG, result.detail,
                                                  rl.data, rl.length))
        elif not rl.data.strip():
            chunk.blank += 1
        else:
            ev = result = parse_line(rl.data)
            if isinstance(ev, Invalid):
                chunk.invalid.append(DeadLetterRecord(name, rl.lineno, rl.offset, ev.reason, ev.detail, rl.data))
            else:
                if ev.received_ns is not None:
                    pos.anchor_ns = ev.received_ns
                elif pos.anchor_ns is None and key not in self._looked_ahead:
                    # no receive time yet in this file: anchor on the first one further down, so
                    # a skewed client clock at the top of a file cannot set its streams' pace
                    self._looked_ahead.add(key)
                    pos.anchor_ns = first_receive_ns(Path(name))
                ts, retimed = loki_timestamp_ns(ev.time_ns, pos.anchor_ns, rl.offset)
                stream = ev.stream
                size = len(rl.data)
                if not chunk.fits(size, s.batch_bytes, s.batch_entries):
                    self.seal()
                    chunk = self.chunk
                group = self.fingerprint(ev) if self.fingerprint else None
                chunk.add(stream, self._labels[stream], ts, ev.line,
                          metadata_for(ev, getattr(group, "error_type", None), retimed),
                          size, (name, rl.lineno, rl.offset,
                                 self.replay_all or rl.offset < self.replay_until.get(key, 0)))
                chunk.events_by_type[stream] += 1
                if retimed:
                    chunk.retimed += 1
        chunk.lines += 1
        chunk.bytes += rl.end - rl.offset
        pos.offset, pos.lineno = rl.end, rl.lineno
        if self._key is not key:
            self._snapshot()
            self._key, self._pos = key, pos
        if chunk.bytes >= self._max_raw:
            # mostly junk: cut anyway, so the dead-letter records held in memory stay bounded
            self.seal()
        return result

    def _snapshot(self) -> None:
        """Record, in the current chunk, how far the file being read has got."""
        if self._key is not None:
            p = self._pos
            self.chunk.ends[self._key] = FilePosition(p.offset, p.lineno, p.anchor_ns, p.head)


class ChunkReader:
    """For `import`: turns a list of files into chunks, starting each where the positions say."""

    def __init__(self, settings: ReaderSettings, positions: Positions,
                 fingerprint: Callable[[Event], object | None] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.s = settings
        self.positions = positions
        self.proc = LineProcessor(settings, fingerprint)
        self.proc.replay_until = dict(positions.inflight)
        self.on_warning = on_warning or (lambda msg: None)
        self.skipped_bytes = 0   # bytes already delivered by an earlier run

    def chunks(self, files: list[Path]) -> Iterator[Chunk]:
        proc = self.proc
        heads: dict[str, bytes] = {}
        done_bytes = 0
        for files_done, path in enumerate(files):
            key = file_key(path)
            size = path.stat().st_size
            heads[key] = read_head(path)
            start, warning = self.positions.start_for(path, heads[key], size)
            if warning:
                self.on_warning(warning)
            if not path.name.endswith(".gz"):
                self.skipped_bytes += start.offset
            pos = FilePosition(start.offset, start.lineno, start.anchor_ns)
            with open_binary(path) as f:
                skip_to(f, start.offset)
                raw_file = getattr(getattr(f, "raw", None), "fileobj", None)  # gzip: compressed position
                for rl in read_lines(f, offset=start.offset, lineno=start.lineno,
                                     max_line_bytes=self.s.max_line_bytes):
                    proc.feed(key, rl, pos, path)
                    if proc.sealed:
                        for chunk in proc.sealed:
                            chunk.progress_bytes = done_bytes + (raw_file.tell() if raw_file else rl.offset)
                            chunk.files_done = files_done
                            yield seal_heads(chunk, heads)
                        proc.sealed.clear()
            proc.end_of_file(key, pos)
            done_bytes += size
        proc.seal()
        last = proc.sealed.pop()
        last.progress_bytes = done_bytes
        last.files_done = len(files)
        yield seal_heads(last, heads)


def seal_heads(chunk: Chunk, heads: dict[str, bytes]) -> Chunk:
    """Give each end position the digest of the file's first bytes it covers."""
    for key, pos in chunk.ends.items():
        if key in heads:
            pos.head = head_digest(heads[key][: min(pos.offset, HEAD_BYTES)])
    return chunk
