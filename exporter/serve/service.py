"""The long-running service: follow the files -> aggregation core -> /metrics, and -> Loki.

Threads: a metrics follower (reads, feeds the core, saves state), a Loki follower (reads the
same files through the importer's LineProcessor and chunks), a sender (waits for Loki, then
delivers the chunks in order, retrying while Loki is down), the HTTP endpoint, and the main
thread waiting for SIGTERM/SIGINT. A worker thread that dies stops the service, which then
reports the failure (`serve` exits 1).

The two followers have their own cursors: how far the core has counted (saved with the core
in the state file) and how far Loki has acknowledged (the positions file `import` uses too).
So a restart neither double-counts nor pushes twice, and a Loki outage, even at startup,
never stalls /metrics (nor the alerts built on it): only the Loki follower waits, behind a
bounded queue.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from prometheus_client import CollectorRegistry

from exporter.aggregation.core import Aggregator, Limits, LiveClock
from exporter.config import Config, redact_url
from exporter.deadletter import DeadLetter
from exporter.events.model import Event
from exporter.importer import Delivery, ImportStats
from exporter.metrics.collector import CoreCollector
from exporter.metrics.http import MetricsServer
from exporter.metrics.selfmetrics import SelfMetrics
from exporter.positions import FilePosition, Positions
from exporter.reader import LineProcessor, ReaderSettings
from exporter.serve.state import ServeState
from exporter.sinks.loki.client import LokiClient, LokiError
from exporter.sinks.loki.retry import backoff
from exporter.sources.follow import DirectoryFollower

POLL_INTERVAL = 0.25
SAVE_INTERVAL = 5.0
EXPIRE_INTERVAL = 60.0
CLOCK_EVERY = 4096        # lines between two readings of the wall clock within a poll
_STOP = object()
_FLUSH = object()   # sender: ask Loki to flush (after the backfill is delivered)


class Service:
    def __init__(self, cfg: Config, directory: Path, *, loki: bool = True, listen: str | None = None,
                 fingerprinter=None, log: Callable[[str], None] = print,
                 poll_interval: float = POLL_INTERVAL, save_interval: float = SAVE_INTERVAL) -> None:
        self.cfg = cfg
        self.directory = directory
        self.log = log
        self.poll_interval = poll_interval
        self.save_interval = save_interval
        state_dir = Path(cfg.state_dir)
        self.state_path = state_dir / "serve-state.json"
        self.fingerprinter = fingerprinter
        m = cfg.metrics
        limits = Limits(max_error_types=m.max_error_types, max_sessions=m.max_sessions,
                        session_idle_seconds=m.session_idle_seconds,
                        max_labels_per_type=m.max_labels_per_type)
        state = ServeState.load(self.state_path)
        read: dict[str, FilePosition] = {}
        # W of the discovery clock: up to when the directory has been watched. A fresh state:
        # from now on (what is there already is history); a restored one: as saved.
        self.watched_until = time.time()
        if state is not None and state.core is not None:
            self.core = Aggregator.from_state(state.core, fingerprinter, limits)
            read = state.read
            self.backfill_complete = state.backfill_complete
            if state.watched_until is not None:
                self.watched_until = state.watched_until
        else:
            self.core = Aggregator(fingerprinter, limits)
            self.backfill_complete = False
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.caught_up = threading.Event()
        self.loki_ready = threading.Event()
        self.failure: str | None = None     # set when a worker thread died

        self.registry = CollectorRegistry()
        self.selfm = SelfMetrics(self.registry)
        self.client: LokiClient | None = None
        self.positions: Positions | None = None
        self.delivery: Delivery | None = None
        self.stats = ImportStats()
        loki_start: dict[str, FilePosition] = {}
        if loki:
            self.client = LokiClient(cfg.loki, on_retry=lambda why, d: self.selfm.retries.inc(),
                                     on_duration=self.selfm.duration.observe,
                                     on_warning=lambda m: self.log(f"warning: {m}"))
            target = redact_url(cfg.loki.url) + (f"#{cfg.loki.tenant}" if cfg.loki.tenant else "")
            self.positions = Positions.load(state_dir / "positions.json", target)
            loki_start = dict(self.positions.files)
            dead = DeadLetter(state_dir / "dead-letter.jsonl")
            dead.resume_at(self.positions.dead_letter_bytes)
            self.delivery = Delivery(self.client, self.positions, dead)
        self.selfm.loki_enabled.set(1 if loki else 0)
        if self.positions is not None and self.positions.acknowledged_at is not None:
            # a restart is not "no push for 56 years": the last acknowledgement is in the positions
            self.selfm.last_success.set(self.positions.acknowledged_at)
        warn = lambda m: self.log(f"warning: {m}")  # noqa: E731
        self.follower = DirectoryFollower(directory, read, max_line_bytes=cfg.max_line_bytes, on_warning=warn)
        self._saved_read = self.follower.positions()
        self._dirty = False      # the state changed since the last save
        self.loki_follower: DirectoryFollower | None = None
        if loki:
            self.proc = LineProcessor(ReaderSettings(cfg.app, cfg.max_line_bytes, cfg.loki.batch_bytes,
                                                     cfg.loki.batch_entries),
                                      fingerprinter.group if fingerprinter else None)
            self.proc.replay_until = dict(self.positions.inflight)
            # the metrics follower already warns about truncated or replaced files
            self.loki_follower = DirectoryFollower(directory, loki_start, max_line_bytes=cfg.max_line_bytes)
        self.registry.register(CoreCollector(lambda: self.core, self.lock, self._unread))
        self.server = MetricsServer(listen or cfg.metrics.listen, self.registry,
                                    healthy=self._healthy, ready=self._ready)
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._threads: list[threading.Thread] = []
        self._sender_done = threading.Event()
        self._chunk_started: float | None = None
        self._last_save = time.monotonic()
        self._last_expire = time.monotonic()

    def _unread(self) -> int:
        """Bytes behind the end of the files, for the slower of the two followers."""
        return max(self.follower.unread, self.loki_follower.unread if self.loki_follower else 0)

    # -- metrics follower -------------------------------------------------------------------------
    def _follow_metrics(self) -> None:
        core, lock, follower = self.core, self.lock, self.follower
        max_line_bytes = self.cfg.max_line_bytes
        try:
            while not self.stop_event.is_set():
                polled_at = time.time()
                live = LiveClock(polled_at, self.watched_until)
                lines = nbytes = 0
                for f, rl in follower.poll():
                    with lock:   # per line: a scrape never waits long, even during a backfill
                        res = core.add_line(rl.data, rl.length, max_line_bytes=max_line_bytes, live=live,
                                            anchor_ns=f.anchor_ns)
                    if type(res) is Event and res.received_ns is not None:
                        f.anchor_ns = res.received_ns   # saved with the cursor
                    lines += 1
                    nbytes += rl.end - rl.offset
                    if lines % CLOCK_EVERY == 0:
                        live = LiveClock(time.time(), live.watched_since)
                    if self.stop_event.is_set():
                        break
                self.selfm.lines.inc(lines)
                self.selfm.bytes.inc(nbytes)
                self._dirty = self._dirty or lines > 0
                if not follower.pending and not self.stop_event.is_set():
                    # every file was read to its end: whatever the server receives from now on is new
                    self.watched_until = max(self.watched_until, polled_at)
                    self._caught_up()
                mono = time.monotonic()
                if mono - self._last_expire >= EXPIRE_INTERVAL:
                    with lock:
                        self._dirty = core.expire_sessions(time.time()) > 0 or self._dirty
                    self._last_expire = mono
                if mono - self._last_save >= self.save_interval:
                    self.save(only_if_changed=True)
                if lines == 0:
                    self.stop_event.wait(self.poll_interval)
        finally:
            self.save()

    def _caught_up(self) -> None:
        if not self.caught_up.is_set():
            self.caught_up.set()
            self.selfm.backfill_done.set(1)
            if not self.backfill_complete:
                self.backfill_complete = True
                self._dirty = True
                self.log("backfill complete: following new lines")

    # -- Loki follower ----------------------------------------------------------------------------
    def _follow_loki(self) -> None:
        assert self.loki_follower is not None
        proc = self.proc
        backfilled = 0          # lines read before first catching up, in this run
        flush_pending = self.cfg.loki.flush_after_backfill
        try:
            while not self.stop_event.is_set():
                lines = 0
                for f, rl in self.loki_follower.poll():
                    if self._chunk_started is None:
                        self._chunk_started = time.monotonic()
                    proc.feed(f.key, rl, f, f.path)
                    lines += 1
                    if proc.sealed:
                        self._hand_over()
                    if self.stop_event.is_set():
                        break
                caught_up = not self.loki_follower.pending
                backfilled += lines
                if flush_pending and caught_up:
                    self._maybe_seal(True, force=True)
                    if backfilled:
                        self._put(_FLUSH)   # after the backfill's chunks: the sender keeps order
                    flush_pending = False
                else:
                    self._maybe_seal(caught_up=caught_up)
                if lines == 0:
                    self.stop_event.wait(self.poll_interval)
        finally:
            self._maybe_seal(True, force=True)
            self._put(_STOP, force=True)

    def _maybe_seal(self, caught_up: bool, force: bool = False) -> None:
        """Push a partial chunk once it has waited the batch wait (or at shutdown)."""
        if self._chunk_started is None:
            return
        age = time.monotonic() - self._chunk_started
        if force or (caught_up and age + self.poll_interval >= self.cfg.loki.batch_wait):
            if self.proc.chunk.lines:
                self.proc.seal()
                self._hand_over()
            self._chunk_started = None

    def _hand_over(self) -> None:
        for chunk in self.proc.sealed:
            self._put(chunk)
        self.proc.sealed.clear()

    def _put(self, item, force: bool = False) -> None:
        """Queue for the sender; while stopping, only ``force`` items wait, and only for a sender
        that is still delivering (Loki unreachable: the next start re-sends from the positions)."""
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop_event.is_set() and (not force or self._sender_done.is_set()):
                    return

    # -- sender thread --------------------------------------------------------------------------
    def _send(self) -> None:
        assert self.delivery is not None
        try:
            if self._wait_for_loki():
                self._deliver_queue()
        finally:
            self._sender_done.set()

    def _pause(self, attempt: int) -> bool:
        """Wait before trying Loki again (the push backoff settings); True when stopping."""
        return self.stop_event.wait(backoff(attempt, self.cfg.loki.min_backoff, self.cfg.loki.max_backoff))

    def _wait_for_loki(self) -> bool:
        """Until Loki is ready (True), however long, or the service stops (False). /metrics and
        the metrics follower run meanwhile; the Loki follower's bounded queue fills up. Each
        ``ready_timeout`` without Loki counts one push failure (the exporter-unhealthy alert)."""
        assert self.client is not None
        url = self.client.safe_url
        started = period_start = time.monotonic()
        attempt = 0
        while not self.stop_event.is_set():
            try:
                ready, why = self.client.probe_ready()
            except LokiError as exc:        # refused credentials: may be fixed without a restart
                ready, why = False, str(exc)
            if ready:
                if why:
                    self.log(f"warning: {why}")
                if attempt:
                    self.log(f"Loki at {url} is ready after {time.monotonic() - started:.0f}s: delivering")
                self.loki_ready.set()
                return True
            if attempt == 0:
                self.log(f"warning: Loki at {url} is not ready ({why}): waiting for it; /metrics is "
                         "served meanwhile and the lines wait to be pushed")
            elif time.monotonic() - period_start >= self.cfg.loki.ready_timeout:
                self.selfm.failures.inc()
                self.log(f"warning: Loki at {url} is still not ready after {time.monotonic() - started:.0f}s "
                         f"({why}): still waiting")
                period_start = time.monotonic()
            if self._pause(attempt):
                return False
            attempt += 1
        return False

    def _deliver_queue(self) -> None:
        assert self.delivery is not None
        while True:
            chunk = self._queue.get()
            if chunk is _STOP:
                return
            if chunk is _FLUSH:
                self._flush_loki()
                continue
            attempt = 0
            while True:
                before_sent, before_rej = self.stats.delivered, dict(self.stats.rejected)
                try:
                    self.delivery.deliver(chunk, self.stats)
                    break
                except LokiError as exc:
                    self.selfm.failures.inc()
                    self.log(f"warning: {exc}; trying again")
                    if self._pause(attempt):
                        return   # shutting down: positions stay at the last delivered chunk
                    attempt += 1
            self.selfm.sent.inc(self.stats.delivered - before_sent)
            for reason, n in self.stats.rejected.items():
                if n - before_rej.get(reason, 0):
                    self.selfm.rejected.labels(reason).inc(n - before_rej.get(reason, 0))
            if chunk.pushes:
                self.selfm.last_success.set(time.time())

    def _flush_loki(self) -> None:
        assert self.client is not None
        warning = self.client.flush()
        self.log(f"warning: {warning}" if warning else
                 "backfill delivered: asked Loki to flush, so its history is queryable now")

    # -- state ----------------------------------------------------------------------------------
    def save(self, only_if_changed: bool = False) -> None:
        """Write the state file (atomically). ``only_if_changed``: not when nothing but the clock
        moved since the last save (an idle exporter writes nothing)."""
        read = self.follower.positions()
        if only_if_changed and not self._dirty and read == self._saved_read:
            self._last_save = time.monotonic()
            return
        with self.lock:
            state = ServeState(read, self.core.to_state(), self.backfill_complete, self.watched_until)
        state.save(self.state_path)
        self._saved_read, self._dirty = read, False
        self._last_save = time.monotonic()

    def _healthy(self) -> bool:
        return self.failure is None and all(t.is_alive() for t in self._threads) and not self.stop_event.is_set()

    def _ready(self) -> tuple[bool, str]:
        """Ready = the metrics backfill is complete (/metrics counts every line of the files that
        were there); Loki's state is only mentioned."""
        if not self.caught_up.is_set():
            return False, "backfilling: reading the existing files"
        if self.client is not None and not self.loki_ready.is_set():
            return True, "ready (Loki not reachable yet: the lines wait to be pushed)"
        return True, "ready"

    # -- lifecycle ------------------------------------------------------------------------------
    def _worker(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
                if not self.stop_event.is_set():
                    self.failure = self.failure or f"the {name} thread ended unexpectedly"
            except BaseException as exc:  # noqa: BLE001 - reported, then the service stops
                self.failure = self.failure or f"the {name} thread failed: {type(exc).__name__}: {exc}"
                self.log(f"error: the {name} thread failed:\n"
                         + "".join(traceback.format_exception(exc)).rstrip())
            self.stop_event.set()
        return threading.Thread(target=run, name=name, daemon=True)

    def start(self) -> "Service":
        """Serve /metrics and follow the files at once; the sender waits for Loki by itself."""
        self.server.start()
        self._threads = [self._worker("metrics follower", self._follow_metrics)]
        if self.delivery is not None:
            self._threads += [self._worker("Loki follower", self._follow_loki),
                              self._worker("sender", self._send)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful: stop reading, deliver what was read (bounded), save state."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        if self.delivery is not None:
            self.delivery.close()
        if self.client is not None:
            self.client.close()
        self.server.stop()
