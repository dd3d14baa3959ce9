"""Loki emulator fixtures and helpers (a plain module: import what you need).

    from tests.conftest_loki import loki_clock, loki_emulator, loki_factory, push_json  # noqa: F401

or, for a whole directory, ``pytest_plugins = ["tests.conftest_loki"]`` in a conftest.

* ``loki_clock``: a :class:`FrozenClock` at the recordings' instant (unix seconds; ``.advance(s)``).
* ``loki_emulator``: a started :class:`LokiEmulator` on that clock (Loki defaults otherwise).
* ``loki_factory(**kwargs)``: start emulators with other settings (clock defaults to ``loki_clock``);
  all are stopped at teardown.
* ``push_json(emu, streams, ...)``: POST a push built from ``[(labels, [(ts_ns, line[, metadata])])]``.
* ``http()``: a shared httpx.Client.
"""

from __future__ import annotations

import gzip as _gzip
from typing import Any, Iterable

import httpx
import orjson
import pytest

try:
    from tests.loki_emulator import FrozenClock, LokiEmulator, PUSH_PATH
except ImportError:  # tests/ not importable as a package
    from loki_emulator import FrozenClock, LokiEmulator, PUSH_PATH  # type: ignore[no-redef]

# The instant of /work/shared/reference/loki-recordings.jsonl (its instant query's `time`).
RECORDING_TIME = 1796326140.0198863
RECORDING_TIME_NS = 1796326140019886336


@pytest.fixture
def loki_clock() -> FrozenClock:
    return FrozenClock(RECORDING_TIME)


@pytest.fixture
def loki_emulator(loki_clock: FrozenClock):
    emu = LokiEmulator(now=loki_clock).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def loki_factory(loki_clock: FrozenClock):
    started: list[LokiEmulator] = []

    def make(**kwargs: Any) -> LokiEmulator:
        kwargs.setdefault("now", loki_clock)
        emu = LokiEmulator(**kwargs).start()
        started.append(emu)
        return emu

    try:
        yield make
    finally:
        for emu in started:
            emu.stop()


def push_body(streams: dict[Any, Iterable[tuple]] | list[tuple[dict[str, str], Iterable[tuple]]]) -> bytes:
    """JSON push body. ``streams``: {frozenset/tuple of label items or dict: entries} or
    [(labels dict, entries)]; an entry is (ts_ns, line) or (ts_ns, line, metadata)."""
    items = streams.items() if isinstance(streams, dict) else streams
    out = []
    for labels, entries in items:
        labels = dict(labels)
        values = [[str(e[0]), e[1]] + ([e[2]] if len(e) > 2 and e[2] else []) for e in entries]
        out.append({"stream": labels, "values": values})
    return orjson.dumps({"streams": out})


_CLIENT: httpx.Client | None = None


def http() -> httpx.Client:
    """A shared keep-alive client (creating an httpx.Client per request costs ~20 ms)."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = httpx.Client(timeout=10.0)
    return _CLIENT


def push_json(emu: LokiEmulator, streams: Any, *, gzip: bool = False, headers: dict[str, str] | None = None,
              timeout: float = 10.0) -> httpx.Response:
    body = push_body(streams) if not isinstance(streams, (bytes, bytearray)) else bytes(streams)
    hdrs = {"Content-Type": "application/json"}
    if gzip:
        body = _gzip.compress(body)
        hdrs["Content-Encoding"] = "gzip"
    hdrs.update(headers or {})
    return http().post(emu.url + PUSH_PATH, content=body, headers=hdrs, timeout=timeout)
