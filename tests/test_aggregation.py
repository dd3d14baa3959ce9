"""The aggregation core: counts, window, caps, clocks, merge, state, and parallel scanning."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as hst

from exporter.aggregation import (ERROR, FAILED_OPERATION, NO_PAGE, OVERFLOW, WARNING, Aggregator,
                                  Limits, LiveClock, Window, discovery_clock)
from exporter.aggregation import scan as scan_mod
from exporter.aggregation.scan import ScanOptions, Task, plan_tasks, scan, scan_into, task_lines
from exporter.events.model import Event
from exporter.sources.files import open_binary, read_lines

NS = 1_000_000_000
HOUR = 3600 * NS
DAY = 24 * HOUR
T0 = 1_766_000_000 * NS   # 2025-12-17T19:33:20Z


@dataclass(frozen=True, slots=True)
class G:
    """Stand-in for fingerprint.ErrorGroup: the core only reads these four attributes."""

    kind: str
    error_type: str
    template: str
    reason: str | None = None


class StubGrouper:
    """Deterministic grouping for core tests: error -> message, warn log, metric with status error."""

    def group(self, e: Event):
        d = e.data
        if e.type == "error":
            msg = str(d.get("message", ""))
            return G(ERROR, hashlib.sha1(b"e" + msg.encode()).hexdigest()[:12], msg)
        if e.type == "log" and d.get("level") == "warn":
            msg = str(d.get("message", ""))
            return G(WARNING, hashlib.sha1(b"w" + msg.encode()).hexdigest()[:12], msg)
        if e.type == "metric" and d.get("status") == "error":
            name = str(d.get("name", ""))
            return G(FAILED_OPERATION, hashlib.sha1(b"f" + name.encode()).hexdigest()[:12], name,
                     str(d.get("error", "")))
        return None


def ev(type_="event", t=T0, sid="s1", url="https://x/app/#/quiz", received=None, **data) -> Event:
    return Event(type=type_, time_ns=t, received_ns=received, session_id=sid, url=url, data=data)


def err(msg="boom", t=T0, sid="s1", **kw) -> Event:
    return ev("error", t, sid, message=msg, **kw)


def canon(core: Aggregator) -> dict:
    return json.loads(json.dumps(core.to_state()))


def random_events(n: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + rng.randrange(-3 * DAY, 3 * DAY)
        sid = rng.choice(["a", "b", "c", "d", "e", None, None])
        url = rng.choice(["https://x/app/#/quiz?x=1", "https://x/app/#/home", None, "https://x/p/q"])
        kind = rng.random()
        if kind < 0.3:
            e = ev("error", t, sid, url, message=rng.choice(["m1", "m2", "m3", "m4"]))
        elif kind < 0.45:
            e = ev("log", t, sid, url, level="warn", message=rng.choice(["w1", "w2"]))
        elif kind < 0.6:
            e = ev("metric", t, sid, url, name=rng.choice(["save", "load"]), status="error",
                   error=rng.choice(["timeout", "network_error"]))
        else:
            e = ev(rng.choice(["event", "vital", "log", "custom"]), t, sid, url)
        e.received_ns = T0 + i * NS
        out.append(e)
    return out


# ---------------------------------------------------------------------------- counting

def test_counts_types_sessions_and_kinds():
    core = Aggregator(StubGrouper())
    core.add(ev("event", sid="a"))
    core.add(ev("custom_thing", sid=None))          # unknown type -> "other"; no session
    core.add(ev("log", sid="b", level="warn", message="slow"))
    core.add(err("boom", sid="a"))
    core.add(err("boom", sid="c", t=T0 + HOUR))
    core.add(ev("metric", sid="b", name="save", status="error", error="timeout"))
    assert core.events == 6
    assert core.events_by_type == {"event": 1, "other": 1, "log": 1, "error": 2, "metric": 1}
    assert (core.errors, core.warnings, core.failed_operations) == (2, 1, 1)
    assert core.sessions == 3 and core.sessions_with_errors == 2
    assert core.error_type_count(ERROR) == 1
    st = core.error_types(ERROR)[0]
    assert st.count == 2 and len(st.sessions) == 2
    assert st.first_seen_ns == T0 and st.last_seen_ns == T0 + HOUR
    assert st.pages == {"#/quiz": 2}
    fo = core.error_types(FAILED_OPERATION)[0]
    assert fo.template == "save" and fo.reasons == {"timeout": 1}


def test_missing_or_empty_session_is_not_a_session():
    core = Aggregator(StubGrouper())
    core.add_line(b'{"type":"error","timestamp":"2025-12-20T10:00:00Z","data":{"message":"x"}}')
    core.add_line(b'{"type":"error","timestamp":"2025-12-20T10:00:00Z","sessionId":"","data":{}}')
    core.add_line(b'{"type":"error","timestamp":"2025-12-20T10:00:00Z","sessionId":null}')
    assert core.events == 3 and core.errors == 3
    assert core.sessions == 0 and core.sessions_with_errors == 0
    assert all(not st.sessions for st in core.error_types())


def test_add_line_blank_invalid_and_too_long():
    core = Aggregator(StubGrouper())
    assert core.add_line(b"") is None
    assert core.add_line(b"  \t ") is None
    assert core.add_line(b"not json").reason == "not_json"
    assert core.add_line(b"[1]").reason == "not_object"
    long = b'{"type":"log","timestamp":"2025-12-20T10:00:00Z","x":"' + b"a" * 200 + b'"}'
    assert core.add_line(long[:50], len(long), max_line_bytes=100).reason == "too_long"
    assert core.add_line(long, max_line_bytes=1000).type == "log"
    assert core.lines == 6 and core.blank_lines == 2 and core.events == 1
    assert core.invalid_by_reason == {"not_json": 1, "not_object": 1, "too_long": 1}
    assert core.invalid_lines == 3


def test_pages_and_hours():
    core = Aggregator(StubGrouper())
    core.add(err(url="https://x/app/#/quiz?id=3", t=T0))           # 19h UTC
    core.add(err(url=None, t=T0 + 5 * HOUR))                         # 00h
    core.add(err(url="https://x/app/results?q=1", t=T0 + 6 * HOUR))  # 01h
    assert core.errors_by_page() == {"#/quiz": 1, NO_PAGE: 1, "/app/results": 1}
    hours = core.errors_by_hour()
    assert hours[19] == 1 and hours[0] == 1 and hours[1] == 1 and sum(hours) == 3


def test_window_is_half_open_and_excluded_events_count_nowhere():
    core = Aggregator(StubGrouper(), window=Window(T0, T0 + DAY))
    core.add(err(t=T0 - 1, sid="early"))
    core.add(err(t=T0, sid="in1"))
    core.add(err(t=T0 + DAY - 1, sid="in2"))
    core.add(err(t=T0 + DAY, sid="late"))
    core.add_line(b"garbage")
    assert core.events == 2 and core.errors == 2 and core.events_outside_window == 2
    assert set(core.session_ids()) == {"in1", "in2"}
    assert core.invalid_lines == 1   # invalid lines have no time: always counted


def test_memory_does_not_grow_with_events():
    def state_size(n: int) -> int:
        core = Aggregator(StubGrouper())
        for i in range(n):
            core.add(err("same", t=T0 + i * NS, sid=f"s{i % 5}"))
            core.add(ev("event", t=T0 + i * NS, sid=f"s{i % 5}"))
        return len(json.dumps(core.to_state()))
    small, big = state_size(10), state_size(5000)
    assert big - small < 40   # only the digits of the counters grow


# ---------------------------------------------------------------------------- clocks

def test_discovered_ts_historical_uses_receive_time():
    core = Aggregator(StubGrouper())
    core.add(err("a", t=T0, received=T0 + 5 * NS))
    core.add(err("b", t=T0))                          # no receive time: event time
    core.add(err("a", t=T0 + HOUR, received=T0 + HOUR))
    a, b = core.error_types(ERROR)
    assert a.discovered_ts == (T0 + 5 * NS) / NS
    assert b.discovered_ts == T0 / NS


def test_discovered_ts_live_uses_now():
    core = Aggregator(StubGrouper())
    core.add(err("a", t=T0, received=T0), clock=1_800_000_000.5)
    core.add(err("a", t=T0, received=T0), clock=1_800_000_999.0)
    assert core.error_types(ERROR)[0].discovered_ts == 1_800_000_000.5


W = 1_800_000_000.0          # watched since (unix s)
NOW = W + 3600.0


@pytest.mark.parametrize("received, anchor, event, expected", [
    (NOW - 10, None, NOW - 99, NOW),            # received while watched: news, discovered now
    (W - 299, None, W - 10 * 86400, NOW),       # just before W (within the 5 min slack): news
    (W - 301, None, NOW, W - 301),              # before W: history, at its receive time
    (W - 86400, None, W - 86400 - 30, W - 86400),  # an old file copied in: history
    (None, W - 86400, NOW + 5 * 86400, W - 86400),  # no receivedAt: the file's anchor, not the skewed clock
    (None, None, W - 7 * 86400, W - 7 * 86400),  # no receivedAt nor anchor: the event time
    (None, None, NOW + 3 * 86400, NOW),           # ... never in the future: now at the latest
    (NOW + 600, None, NOW, NOW),                 # a server clock ahead of ours: now
])
def test_discovery_clock_rule(received, anchor, event, expected):
    ns = lambda s: None if s is None else int(s * NS)  # noqa: E731
    assert discovery_clock(ns(received), ns(anchor), ns(event), now=NOW, watched_since=W) == pytest.approx(expected)


def test_discovery_clock_never_in_the_future_even_for_history():
    # a fresh state (W = start) reading a line whose client clock is 3 days ahead and that has no
    # receive time: history would be its event time, but that is after now: now
    assert discovery_clock(None, None, int((W + 3 * 86400) * NS), now=W, watched_since=W) == W


def test_add_line_with_a_live_clock_uses_the_anchor_and_sets_sessions_on_the_same_clock():
    core = Aggregator(StubGrouper(), Limits(max_sessions=10))
    live = LiveClock(now=NOW, watched_since=W)
    skewed = json.dumps({"type": "error", "timestamp": "2031-01-01T00:00:00Z", "sessionId": "s9",
                         "data": {"message": "skewed"}}).encode()
    core.add_line(skewed, live=live, anchor_ns=int((W - 86400) * NS))
    (st,) = core.error_types(ERROR)
    assert st.discovered_ts == W - 86400
    assert core.recent_sessions()[0].last_active_ts == W - 86400
    core.add_line(skewed.replace(b"skewed", b"fresh"), live=live, anchor_ns=int((NOW - 1) * NS))
    assert core.error_type(ERROR, st.error_type).discovered_ts == W - 86400
    assert [t.discovered_ts for t in core.error_types(ERROR)][1] == NOW
    assert core.recent_sessions()[0].last_active_ts == NOW


def test_regression_detection_historical_and_live():
    core = Aggregator(StubGrouper())
    core.add(err("a", t=T0, received=T0))
    core.add(err("a", t=T0 + 6 * DAY, received=T0 + 6 * DAY))      # < 7 days after last_seen
    assert core.error_types(ERROR)[0].regressed_ts is None
    core.add(err("a", t=T0 + 13 * DAY, received=T0 + 13 * DAY + NS))  # exactly 7 days: regressed
    assert core.error_types(ERROR)[0].regressed_ts == (T0 + 13 * DAY + NS) / NS
    core.add(err("a", t=T0 + 30 * DAY), clock=2_000_000_000.0)         # live: now
    assert core.error_types(ERROR)[0].regressed_ts == 2_000_000_000.0
    core.add(err("a", t=T0 + 31 * DAY), clock=2_000_000_100.0)         # 1 day later: no change
    assert core.error_types(ERROR)[0].regressed_ts == 2_000_000_000.0


def test_regression_threshold_is_configurable():
    core = Aggregator(StubGrouper(), Limits(regression_seconds=3600))
    core.add(err("a", t=T0, received=T0))
    core.add(err("a", t=T0 + HOUR, received=T0 + HOUR))
    assert core.error_types(ERROR)[0].regressed_ts == (T0 + HOUR) / NS


def test_regression_across_merge_boundary():
    a, b, single = (Aggregator(StubGrouper()) for _ in range(3))
    first = [err("x", t=T0, received=T0)]
    second = [err("x", t=T0 + 10 * DAY, received=T0 + 10 * DAY), err("x", t=T0 + 10 * DAY + 1)]
    for e in first:
        a.add(e)
        single.add(e)
    for e in second:
        b.add(e)
        single.add(e)
    assert b.error_types(ERROR)[0].regressed_ts is None
    assert canon(a.merge(b)) == canon(single)
    assert single.error_types(ERROR)[0].regressed_ts == (T0 + 10 * DAY) / NS


# ---------------------------------------------------------------------------- caps

def test_error_type_cap_counts_the_rest_in_overflow():
    core = Aggregator(StubGrouper(), Limits(max_error_types=3))
    for i in range(10):
        core.add(err(f"unique {i}", t=T0 + i, sid=f"s{i}"))
    core.add(err("unique 1", t=T0 + 100))    # a known type keeps its own bucket
    types = {st.error_type: st for st in core.error_types(ERROR)}
    assert len(types) == 4 and OVERFLOW in types
    assert types[OVERFLOW].count == 7 and len(types[OVERFLOW].sessions) == 7
    assert sum(st.count for st in types.values()) == core.errors == 11
    assert core.error_type_count(ERROR) == 3
    assert core.sessions_with_errors == 10   # distinct counts stay exact
    # the report core runs uncapped
    uncapped = Aggregator(StubGrouper())
    for i in range(600):
        uncapped.add(err(f"unique {i}"))
    assert uncapped.error_type_count(ERROR) == 600


def test_error_type_cap_is_per_kind_so_a_warning_flood_leaves_room_for_new_errors():
    core = Aggregator(StubGrouper(), Limits(max_error_types=3))
    for i in range(50):                                   # a flood of unique warnings
        core.add(ev("log", level="warn", message=f"w{i}"), clock=1000.0)
    for i in range(5):
        core.add(ev("metric", name=f"op{i}", status="error", error="x"), clock=1000.0)
    core.add(err("a genuinely new error"), clock=2000.0)
    errors = core.error_types(ERROR)
    assert [(st.template, st.discovered_ts) for st in errors] == [("a genuinely new error", 2000.0)]
    assert core.error_type_count(WARNING) == 3 and core.error_type(WARNING, OVERFLOW).count == 47
    assert core.error_type_count(FAILED_OPERATION) == 3
    assert core.error_type(FAILED_OPERATION, OVERFLOW).count == 2
    # the cap per kind survives a state round trip and a merge
    again = Aggregator.from_state(core.to_state(), StubGrouper(), Limits(max_error_types=3))
    for i in range(3):
        again.add(err(f"more {i}"))
    assert again.error_type_count(ERROR) == 3 and again.error_type(ERROR, OVERFLOW).count == 1
    other = Aggregator(StubGrouper(), Limits(max_error_types=3))
    other.add(err("from the other part"))
    merged = Aggregator.from_state(core.to_state(), StubGrouper(), Limits(max_error_types=3)).merge(other)
    assert merged.error_type_count(ERROR) == 2 and merged.error_type(ERROR, OVERFLOW) is None


def test_label_cap_per_type():
    core = Aggregator(StubGrouper(), Limits(max_labels_per_type=2))
    for p in ("a", "b", "c", "d"):
        core.add(err(url=f"https://x/#/{p}"))
    assert core.error_types(ERROR)[0].pages == {"#/a": 1, "#/b": 1, "(other)": 2}


def test_session_table_cap_eviction_and_idle_expiry():
    core = Aggregator(StubGrouper(), Limits(max_sessions=3, session_idle_seconds=100))
    for i, sid in enumerate(["a", "b", "c"]):
        core.add(err(sid=sid), clock=1000.0 + i)
    core.add(ev("event", sid="a"), clock=1010.0)       # a becomes the most recent
    core.add(err(sid="d"), clock=1020.0)                # evicts b (least recently active)
    recent = core.recent_sessions()
    assert [s.session_id for s in recent] == ["d", "a", "c"]
    assert recent[1].events == 2 and recent[1].errors == 1
    assert core.evicted_sessions == 1
    assert core.sessions == 4                         # distinct sessions are not capped
    assert core.expire_sessions(now=1105.0) == 1      # c idle since 1002
    assert [s.session_id for s in core.recent_sessions()] == ["d", "a"]
    assert core.evicted_sessions == 2
    assert core.recent_sessions(limit=1)[0].session_id == "d"


def test_report_mode_keeps_no_session_table():
    core = Aggregator(StubGrouper())
    core.add(err(sid="a"))
    assert core.recent_sessions() == [] and core.sessions == 1


# ---------------------------------------------------------------------------- merge / state

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merge_equals_single_pass(seed):
    events = random_events(400, seed)
    single = Aggregator(StubGrouper(), window=Window(T0 - 2 * DAY, T0 + 2 * DAY))
    for e in events:
        single.add(e)
    cuts = sorted(random.Random(seed).sample(range(1, len(events)), 3))
    parts = []
    for lo, hi in zip([0, *cuts], [*cuts, len(events)]):
        core = Aggregator(StubGrouper(), window=Window(T0 - 2 * DAY, T0 + 2 * DAY))
        for e in events[lo:hi]:
            core.add(e)
        parts.append(core)
    merged = Aggregator(StubGrouper(), window=Window(T0 - 2 * DAY, T0 + 2 * DAY))
    for p in parts:
        merged.merge(Aggregator.from_state(json.loads(json.dumps(p.to_state())), StubGrouper()))
    a, b = canon(merged), canon(single)
    for st in a["error_types"] + b["error_types"]:   # see core docstring: not exact for
        st.pop("regressed_ts")                       # out-of-order event times
    assert a == b


def test_merge_refuses_different_windows():
    with pytest.raises(ValueError):
        Aggregator(window=Window(1, 2)).merge(Aggregator(window=Window(1, 3)))


def test_merge_with_caps_keeps_totals():
    limits = Limits(max_error_types=2, max_sessions=2)
    a, b = Aggregator(StubGrouper(), limits), Aggregator(StubGrouper(), limits)
    for i in range(3):
        a.add(err(f"a{i}", sid=f"a{i}"), clock=100.0 + i)
        b.add(err(f"b{i}", sid=f"b{i}"), clock=200.0 + i)
    a.merge(b)
    assert sum(st.count for st in a.error_types(ERROR)) == a.errors == 6
    assert a.error_type_count(ERROR) == 2
    assert a.error_type(ERROR, OVERFLOW).count == 4
    assert [s.session_id for s in a.recent_sessions()] == ["b2", "b1"]
    assert a.evicted_sessions == 4 and a.sessions == 6


def test_state_round_trip():
    core = Aggregator(StubGrouper(), Limits(max_error_types=5, max_sessions=10,
                                            session_idle_seconds=60.0), Window(T0 - DAY, None))
    for e in random_events(300, 7):
        core.add(e)
    core.add_line(b"junk")
    core.add_line(b"")
    state = core.to_state()
    text = json.dumps(state)                      # JSON-able
    back = Aggregator.from_state(json.loads(text), StubGrouper())
    assert back.to_state() == state
    assert back.limits == core.limits and back.window == core.window
    # a restored core keeps counting where it stopped
    back.add(err("m1", t=T0))
    assert back.errors == core.errors + 1


def test_from_state_rejects_unknown_version():
    with pytest.raises(ValueError):
        Aggregator.from_state({"version": 99})


def test_empty_core_state_and_merge():
    empty = Aggregator(StubGrouper())
    assert empty.events == empty.errors == empty.sessions == empty.invalid_lines == 0
    assert empty.errors_by_hour() == [0] * 24 and empty.errors_by_page() == {}
    assert canon(Aggregator(StubGrouper()).merge(empty)) == canon(empty)


# ---------------------------------------------------------------------------- scanning files

def _line(i: int, t_s: int) -> str:
    kinds = [
        '{"type":"error","timestamp":%d,"sessionId":"s%d","url":"https://x/#/q","data":{"message":"e%d"}}',
        '{"type":"log","timestamp":%d,"sessionId":"s%d","data":{"level":"warn","message":"w%d"}}',
        '{"type":"metric","timestamp":%d,"sessionId":"s%d","data":{"name":"n%d","status":"error","error":"x"}}',
        '{"type":"vital","timestamp":%d,"sessionId":"s%d","data":{"v":%d}}',
    ]
    return kinds[i % 4] % (t_s * 1000, i % 17, i % 5)


def _write_corpus(d: Path) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    lines = [_line(i, 1_766_000_000 + i) for i in range(2000)]
    lines[100] = "x" * 3000                      # too long (max_line_bytes=1024 below)
    lines[101] = ""                               # blank
    lines[102] = "{not json"
    a = d / "telemetry-2025-12-01.jsonl"
    a.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines[:1000]).encode() + b"\n")
    b = d / "telemetry-2025-12-02.jsonl"
    b.write_bytes("\r\n".join(lines[1000:]).encode())   # CRLF, no final newline
    return [a, b]


def test_byte_range_tasks_count_every_line_once(tmp_path):
    files = _write_corpus(tmp_path)
    whole = Aggregator(StubGrouper())
    for t in plan_tasks(files, chunk_bytes=10**9):
        scan_into(whole, t, 1024)
    assert whole.lines == 2000 and whole.events == 1997
    assert whole.invalid_by_reason == {"too_long": 1, "not_json": 1} and whole.blank_lines == 1
    for chunk in (97, 1000, 4096, 30_000):
        tasks = plan_tasks(files, chunk_bytes=chunk)
        assert len(tasks) > 2
        merged = Aggregator(StubGrouper())
        for t in tasks:
            part = Aggregator(StubGrouper())
            scan_into(part, t, 1024)
            merged.merge(part)
        assert canon(merged) == canon(whole), chunk


def test_parallel_scan_equals_in_process(tmp_path, monkeypatch):
    files = _write_corpus(tmp_path)
    monkeypatch.setattr(scan_mod, "_fingerprinter_for", lambda rules: None)
    opts = ScanOptions(max_line_bytes=1024)
    inproc = scan(files, opts, workers=1)
    assert inproc.workers == 0
    par = scan(files, opts, workers=2, chunk_bytes=40_000, in_process_below=0)
    assert par.workers == 2 and par.tasks > 2
    # (workers are spawned: they build the real fingerprinter; compare what it does not decide)
    a, b = canon(inproc.core), canon(par.core)
    for k in ("lines", "blank_lines", "events", "events_by_type", "invalid_by_reason", "sessions"):
        assert a[k] == b[k], k


# ---------------------------------------------------------------------------- line splitting

_pieces = hst.lists(hst.sampled_from([b"\n", b"\r\n", b"\r", b"a", b"{}", b" ", b"\xef\xbb\xbf",
                                    b"x" * 7, b"y" * 13]), max_size=60)


def _reference(path: Path, max_line_bytes: int) -> list[tuple[bytes | None, bool]]:
    with open_binary(path) as f:
        return [(None if r.length > max_line_bytes else r.data, r.length > max_line_bytes)
                for r in read_lines(f, max_line_bytes=max_line_bytes)]


@settings(max_examples=200, deadline=None)
@given(pieces=_pieces, bom=hst.booleans(), max_line=hst.integers(1, 20), block=hst.integers(1, 9),
       cuts=hst.lists(hst.integers(0, 400), max_size=3))
def test_block_splitter_matches_read_lines(tmp_path_factory, pieces, bom, max_line, block, cuts):
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(pieces)
    # read_lines quirk (reported): a first line with BOM of max+3 or max+4 raw bytes goes through
    # its long-line path and comes out truncated (or too_long) although its content fits.
    assume(not (data[:3] == b"\xef\xbb\xbf" and len(data.split(b"\n")[0]) in (max_line + 3, max_line + 4)))
    path = tmp_path_factory.mktemp("split") / "f.jsonl"
    path.write_bytes(data)
    expected = _reference(path, max_line)
    old = scan_mod._BLOCK
    scan_mod._BLOCK = block
    try:
        bounds = sorted({0, *[c for c in cuts if c < len(data)]})
        got = []
        for lo, hi in zip(bounds, [*bounds[1:], None]):
            got += [(None if n > max_line else d, n > max_line)
                    for d, n in task_lines(Task(str(path), lo, hi), max_line)]
    finally:
        scan_mod._BLOCK = old
    assert got == expected
