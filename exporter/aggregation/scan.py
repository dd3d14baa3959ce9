"""Feed telemetry files into aggregation cores, in parallel processes, and merge them.

One task per file; a large plain file is split into byte ranges whose boundaries are moved to
line starts (a task owns every line that *starts* in its range). Each task runs in a worker
process started with the "spawn" method (no reliance on fork: Windows and macOS), builds its
own :class:`~exporter.aggregation.core.Aggregator`, and returns ``to_state()``; the parent
merges the states in file order. A single small input is scanned in-process.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from exporter.aggregation.core import Aggregator, Limits, Window
from exporter.sources.files import BOM, DEFAULT_MAX_LINE_BYTES, KEEP_OF_LONG_LINE, open_binary

DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024     # split plain files larger than this
IN_PROCESS_BELOW_BYTES = 16 * 1024 * 1024  # total input below this: no worker processes
_SKIP_READ = 1 << 20
_BLOCK = 1 << 22                            # bytes per read when scanning


@dataclass(frozen=True, slots=True)
class Task:
    """Lines of ``path`` that start in [start, end) (end None = to the end of the file)."""

    path: str
    start: int = 0
    end: int | None = None


@dataclass(frozen=True, slots=True)
class ScanOptions:
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    fingerprint_rules: tuple[dict, ...] = ()
    limits: Limits = Limits()
    window: Window = Window()


@dataclass(frozen=True, slots=True)
class ScanResult:
    core: Aggregator
    files: int
    bytes: int          # bytes on disk of the files scanned
    tasks: int
    workers: int        # 0 = scanned in-process
    seconds: float


def make_fingerprinter(rules: Iterable[dict] = ()):
    """The project's Fingerprinter (exporter.events.fingerprint) built from config rules."""
    from exporter.events.fingerprint import Fingerprinter, rules_from_config

    return Fingerprinter(rules_from_config([dict(r) for r in rules]))


def plan_tasks(paths: Iterable[Path], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Task]:
    """One task per file; plain files larger than ``chunk_bytes`` are split into byte ranges."""
    tasks: list[Task] = []
    for path in paths:
        p = str(path)
        size = os.path.getsize(p)
        if p.endswith(".gz") or size <= chunk_bytes:
            tasks.append(Task(p))
            continue
        parts = -(-size // chunk_bytes)
        bounds = [size * i // parts for i in range(parts + 1)]
        tasks.extend(Task(p, bounds[i], bounds[i + 1] if i + 1 < parts else None)
                     for i in range(parts))
    return tasks


def _line_start_at_or_after(f: BinaryIO, pos: int) -> int:
    """Offset of the first line that starts at or after ``pos`` (the file is seekable)."""
    if pos <= 0:
        return 0
    f.seek(pos - 1)
    while True:  # the line holding byte pos-1 belongs before pos: skip to its end
        chunk = f.readline(_SKIP_READ)
        if not chunk or chunk[-1:] == b"\n":
            return f.tell()


def task_lines(task: Task, max_line_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(data, length) of every line that starts in the task's byte range.

    Equivalent to :func:`exporter.sources.files.read_lines` for counting (same lines; same data
    for lines up to ``max_line_bytes``; a longer line has length > ``max_line_bytes`` and only
    its head as data): lines split on \\n, a trailing \\r and a BOM at the start of the file
    are not part of the line. Read in large blocks and split with ``bytes.split``, several times
    faster than a ``readline`` per line. tests/test_aggregation.py checks the equivalence.
    """
    # Past this, a line without newline yet is too long whatever \r or BOM it may still shed.
    skip_above = max_line_bytes + 8
    with open_binary(Path(task.path)) as f:
        start = _line_start_at_or_after(f, task.start)
        stop = None if task.end is None else _line_start_at_or_after(f, task.end)
        if stop is not None and stop <= start:
            return
        if start or stop is not None:
            f.seek(start)
        left = -1 if stop is None else stop - start   # bytes of the range still to read
        carry = b""
        bom_line = False                 # the file is a BOM and nothing else so far
        if start == 0:
            want = 3 if left < 0 else min(3, left)
            head = f.read(want)
            while len(head) < want and (more := f.read(want - len(head))):
                head += more
            if left > 0:
                left -= len(head)
            if head == BOM:
                bom_line = True
                head = b""
        else:
            head = b""
        long_head: bytes | None = None   # head of a too-long line being skipped
        long_len = 0
        while True:
            if head:
                block, head = head, b""
            else:
                if left == 0:
                    break
                block = f.read(_BLOCK if left < 0 else min(_BLOCK, left))
                if not block:
                    break
                if left > 0:
                    left -= len(block)
            bom_line = False
            if long_head is not None:
                nl = block.find(b"\n")
                if nl < 0:
                    long_len += len(block)
                    continue
                yield long_head, long_len + nl
                long_head = None
                block = block[nl + 1:]
            data = carry + block if carry else block
            lines = data.split(b"\n")
            carry = lines.pop()
            if b"\r" in data:
                lines = [ln[:-1] if ln[-1:] == b"\r" else ln for ln in lines]
            for ln in lines:
                yield ln, len(ln)
            if len(carry) > skip_above:
                long_head, long_len = carry[:KEEP_OF_LONG_LINE], len(carry)
                carry = b""
        if long_head is not None:
            yield long_head, long_len
        elif bom_line:
            yield b"", 0
        elif carry:
            if carry[-1:] == b"\r":
                carry = carry[:-1]
            yield carry, len(carry)


class ScanError(Exception):
    """A file could not be read (missing, unreadable, corrupt or truncated gzip)."""


def scan_into(core: Aggregator, task: Task, max_line_bytes: int) -> None:
    add_line = core.add_line
    try:
        for data, length in task_lines(task, max_line_bytes):
            add_line(data, length, max_line_bytes=max_line_bytes)
    except (OSError, EOFError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise ScanError(f"{task.path}: {detail}") from None


_worker_fp: tuple[tuple, object] | None = None


def _fingerprinter_for(rules: tuple[dict, ...]):
    global _worker_fp
    key = tuple(repr(sorted(r.items())) for r in rules)
    if _worker_fp is None or _worker_fp[0] != key:
        _worker_fp = (key, make_fingerprinter(rules))
    return _worker_fp[1]


def scan_task(task: Task, options: ScanOptions) -> dict:
    """Worker entry point: scan one task into a fresh core and return its state."""
    core = Aggregator(_fingerprinter_for(options.fingerprint_rules), options.limits, options.window)
    scan_into(core, task, options.max_line_bytes)
    return core.to_state()


def scan(paths: list[Path], options: ScanOptions = ScanOptions(), *, workers: int | None = None,
         chunk_bytes: int = DEFAULT_CHUNK_BYTES,
         in_process_below: int = IN_PROCESS_BELOW_BYTES) -> ScanResult:
    """Scan files into one merged core. ``workers`` None = one per CPU; 0 or 1 = in-process."""
    started = time.perf_counter()
    paths = list(paths)
    total = sum(os.path.getsize(p) for p in paths)
    tasks = plan_tasks(paths, chunk_bytes)
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # Windows, macOS
            workers = os.cpu_count() or 1
    workers = min(workers, len(tasks))
    fp = _fingerprinter_for(options.fingerprint_rules)
    core = Aggregator(fp, options.limits, options.window)
    if workers <= 1 or total < in_process_below:
        for task in tasks:
            scan_into(core, task, options.max_line_bytes)
        workers = 0
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for state in pool.map(scan_task, tasks, repeat(options)):
                core.merge(Aggregator.from_state(state, fp, options.limits))
    return ScanResult(core, len(paths), total, len(tasks), workers, time.perf_counter() - started)
