"""The import pipeline: a reader thread cuts chunks; this side pushes and checkpoints them.

For each chunk, one push per stream goes out concurrently (streams are independent in Loki),
the answers are accounted (ignored entries -> dead letter), and only then is the positions
file advanced and the next chunk pushed. Per stream, pushes are therefore strictly in order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from exporter.batching import Chunk
from exporter.deadletter import DeadLetter, DeadLetterRecord
from exporter.positions import Positions
from exporter.reader import ChunkReader
from exporter.sinks.loki.client import PushResult
from exporter.sinks.loki.rejections import TOO_FAR_BEHIND
from exporter.sinks.loki.request import Push


class Pusher(Protocol):
    def push(self, push: Push) -> PushResult: ...


@dataclass
class ImportStats:
    files: int = 0
    files_done: int = 0
    total_bytes: int = 0
    lines: int = 0
    bytes: int = 0
    blank: int = 0
    events: int = 0
    delivered: int = 0
    retimed: int = 0
    already_delivered: int = 0
    requests: int = 0
    retries: int = 0
    invalid: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    events_by_type: Counter = field(default_factory=Counter)
    skipped_bytes: int = 0
    progress_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    def elapsed_now(self) -> float:
        return time.monotonic() - self.started

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0


_DONE = object()


class Delivery:
    """Push one chunk (one request per stream, concurrently), account Loki's answers, checkpoint.

    Shared by `import` and `serve`. Positions advance only after every stream of the chunk is
    answered; a LokiError propagates and leaves them at the last delivered chunk.
    """

    def __init__(self, pusher: Pusher | None, positions: Positions, dead_letter: DeadLetter,
                 *, max_in_flight: int = 8) -> None:
        self.pusher = pusher            # None = dry run
        self.positions = positions
        self.dead_letter = dead_letter
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="push") if pusher else None
        self._unsaved = False

    def checkpoint(self) -> None:
        """Write the positions of every chunk delivered so far (no-op in a dry run)."""
        if self.pusher is not None and self._unsaved:
            self.positions.save()
            self._unsaved = False

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.dead_letter.close()

    def deliver(self, chunk: Chunk, stats: ImportStats, *, checkpoint: bool = True) -> None:
        """Push ``chunk`` and account for it. With ``checkpoint=False`` the advanced positions
        are written with the next chunk's in-flight record (one write per chunk instead of
        two) or by :meth:`checkpoint`: on disk there is always either (positions before the
        chunk, chunk in flight) or (positions after it), both safe to resume from."""
        streams = list(chunk.pushes)
        if self.pusher is not None and streams:
            self.positions.inflight = {k: p.offset for k, p in chunk.ends.items()}
            self.positions.save()   # also records the progress of the chunks before it
        if self._pool and streams:
            futures = [self._pool.submit(self.pusher.push, chunk.pushes[s]) for s in streams]  # type: ignore[union-attr]
            results = [f.result() for f in futures]  # raises LokiError: positions stay at the last chunk
        else:
            results = [PushResult() for _ in streams]
        for stream, result in zip(streams, results):
            stats.requests += result.requests
            stats.retries += result.retries
            values = chunk.pushes[stream].values
            refs = chunk.refs[stream]
            already = 0
            for i, (reason, message) in sorted(result.rejected.items()):
                file, lineno, offset, replay = refs[i]
                if replay and reason == TOO_FAR_BEHIND:
                    already += 1
                    continue
                stats.rejected[reason] += 1
                self.dead_letter.write(DeadLetterRecord(file, lineno, offset, "loki_" + reason, message,
                                                        values[i][1]))
            stats.delivered += len(values) - len(result.rejected) + already
            stats.already_delivered += already
        for rec in chunk.invalid:
            stats.invalid[rec.reason] += 1
            self.dead_letter.write(rec)
        self.positions.dead_letter_bytes = self.dead_letter.flush()
        self.positions.files.update(chunk.ends)
        self.positions.inflight = {}
        if self.pusher is not None and streams:
            self.positions.acknowledged_at = time.time()
        self._unsaved = True
        if checkpoint:
            self.checkpoint()
        stats.lines += chunk.lines
        stats.bytes += chunk.bytes
        stats.blank += chunk.blank
        stats.events += chunk.events
        stats.retimed += chunk.retimed
        stats.events_by_type.update(chunk.events_by_type)
        stats.progress_bytes = chunk.progress_bytes
        stats.files_done = chunk.files_done


class Importer:
    """`import`: a reader thread cuts chunks from the files; this thread delivers them in order."""

    def __init__(self, reader: ChunkReader, pusher: Pusher | None, positions: Positions,
                 dead_letter: DeadLetter, *, on_chunk: Callable[[ImportStats, Chunk], None] | None = None,
                 queue_size: int = 2) -> None:
        self.reader = reader
        self.positions = positions
        self.dead_letter = dead_letter
        self.delivery = Delivery(pusher, positions, dead_letter)
        self.on_chunk = on_chunk
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._reader_error: BaseException | None = None

    def _produce(self, files: list[Path]) -> None:
        try:
            for chunk in self.reader.chunks(files):
                while not self._stop.is_set():
                    try:
                        self._queue.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # surfaced in the consumer
            self._reader_error = exc
        finally:
            while True:
                try:
                    self._queue.put(_DONE, timeout=0.2)
                    return
                except queue.Full:
                    if self._stop.is_set():
                        return

    def run(self, files: list[Path], stats: ImportStats | None = None) -> ImportStats:
        stats = stats or ImportStats()
        stats.files = len(files)
        stats.total_bytes = sum(p.stat().st_size for p in files)
        self.dead_letter.resume_at(self.positions.dead_letter_bytes)
        producer = threading.Thread(target=self._produce, args=(files,), name="reader", daemon=True)
        producer.start()
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    break
                self.delivery.deliver(item, stats, checkpoint=False)
                if self.on_chunk:
                    self.on_chunk(stats, item)
            if self._reader_error is not None:
                raise self._reader_error
        finally:
            self._stop.set()
            self.delivery.checkpoint()
            self.delivery.close()
            producer.join(timeout=5)
            stats.skipped_bytes = self.reader.skipped_bytes
            stats.elapsed = time.monotonic() - stats.started
        return stats
