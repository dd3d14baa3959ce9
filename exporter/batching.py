"""Cut the event stream into checkpoint units ("chunks"), each pushed as one request per stream.

A chunk is the unit of acknowledgement: before it is pushed, the positions file records it as
in flight; the positions advance to its end only after Loki has answered for every stream of
it, and the next chunk is pushed only then. So per stream, entries reach Loki in file order.
A chunk is cut when it reaches the byte or entry budget (or, in follow mode, the batch wait).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from exporter.deadletter import DeadLetterRecord
from exporter.positions import FilePosition
from exporter.sinks.loki.request import Push

# Where a pushed entry came from (for the dead letter when Loki ignores it): (file, line number,
# byte offset, replay). ``replay``: re-sent after an interruption, Loki may hold it already.
# A plain tuple: one is made per event on the hot path.
EntryRef = tuple[str, int, int, bool]


@dataclass
class Chunk:
    pushes: dict[str, Push] = field(default_factory=dict)             # stream type -> push
    refs: dict[str, list[EntryRef]] = field(default_factory=dict)     # stream type -> refs, same order
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

    def fits(self, size: int, max_bytes: int, max_entries: int) -> bool:
        """Can one more entry of ``size`` bytes join the chunk within its budgets?"""
        return not self.events or (self.line_bytes + size <= max_bytes and self.events < max_entries)

    def add(self, stream: str, labels: dict[str, str], ts_ns: int, line: str,
            metadata: dict[str, str] | None, size: int, ref: EntryRef) -> None:
        push = self.pushes.get(stream)
        if push is None:
            push = self.pushes[stream] = Push(labels)
            self.refs[stream] = []
        # Push.add, inlined: this runs once per event
        push.values.append([str(ts_ns), line, metadata] if metadata else [str(ts_ns), line])
        push.line_bytes += size
        self.refs[stream].append(ref)
        self.line_bytes += size
        self.events += 1
