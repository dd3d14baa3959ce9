"""Cut the event stream into checkpoint units ("chunks"), each pushed as one request per stream.

A chunk is the unit of acknowledgement: the positions file advances to a chunk's end only
after Loki has answered for every stream of it, and the next chunk is pushed only then.
A chunk is cut when it reaches the byte or entry budget, or when one of its streams would span
more than MAX_STREAM_SPAN_NS of Loki time. That last rule makes a resume after ``kill -9``
safe: re-sent entries are never more than 45 min older than anything Loki may already hold
for their stream, so Loki's 1 h ordering window cannot reject them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from exporter.deadletter import DeadLetterRecord
from exporter.positions import FilePosition
from exporter.sinks.loki.request import Push

MAX_STREAM_SPAN_NS = 45 * 60 * 1_000_000_000


@dataclass(slots=True)
class EntryRef:
    """Where a pushed entry came from (for the dead letter when Loki ignores it)."""

    file: str
    lineno: int
    offset: int


@dataclass
class Chunk:
    pushes: dict[str, Push] = field(default_factory=dict)             # stream type -> push
    refs: dict[str, list[EntryRef]] = field(default_factory=dict)     # stream type -> refs, same order
    spans: dict[str, list[int]] = field(default_factory=dict)         # stream type -> [min ts, max ts]
    invalid: list[DeadLetterRecord] = field(default_factory=list)
    ends: dict[str, FilePosition] = field(default_factory=dict)       # file -> position after this chunk
    lines: int = 0
    blank: int = 0
    bytes: int = 0
    events: int = 0
    retimed: int = 0
    line_bytes: int = 0
    events_by_type: Counter = field(default_factory=Counter)
    progress_bytes: int = 0      # bytes of input consumed so far, for the progress bar
    files_done: int = 0          # files fully read so far

    @property
    def entries(self) -> int:
        return sum(len(p.values) for p in self.pushes.values())

    def fits(self, stream: str, ts_ns: int, size: int, max_bytes: int, max_entries: int) -> bool:
        """Can this entry join the chunk without breaking a budget or the span rule?"""
        if self.events and (self.line_bytes + size > max_bytes or self.events >= max_entries):
            return False
        span = self.spans.get(stream)
        if span is not None and (ts_ns - span[0] > MAX_STREAM_SPAN_NS or span[1] - ts_ns > MAX_STREAM_SPAN_NS):
            return False
        return True

    def add(self, stream: str, labels: dict[str, str], ts_ns: int, line: str,
            metadata: dict[str, str] | None, size: int, ref: EntryRef) -> None:
        push = self.pushes.get(stream)
        if push is None:
            push = self.pushes[stream] = Push(labels)
            self.refs[stream] = []
            self.spans[stream] = [ts_ns, ts_ns]
        else:
            span = self.spans[stream]
            if ts_ns < span[0]:
                span[0] = ts_ns
            elif ts_ns > span[1]:
                span[1] = ts_ns
        push.add(ts_ns, line, metadata, size)
        self.refs[stream].append(ref)
        self.line_bytes += size
        self.events += 1
