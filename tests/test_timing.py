"""Event time and Loki timestamp rules."""

from __future__ import annotations

import pytest

from exporter.events.timing import (NS_PER_MS, NS_PER_S, TRUST_BEFORE_NS, event_time_ns, format_ns,
                                    loki_timestamp_ns, parse_time_ns)

T = 1_766_744_175 * NS_PER_S  # 2025-12-26T10:16:15Z


@pytest.mark.parametrize("value, expected", [
    ("2025-12-26T10:16:15Z", T),
    ("2025-12-26T10:16:15+00:00", T),
    ("2025-12-26T11:16:15+01:00", T),
    ("2025-12-26T10:16:15", T),              # naive = UTC
    ("2025-12-26T10:16:15.046Z", T + 46 * NS_PER_MS),
    (1_766_744_175, T),                       # epoch seconds
    (1_766_744_175_000, T),                   # epoch milliseconds
    ("", None), ("garbage", None), (None, None), (True, None), ([], None), (float("nan"), None),
    ("1970-01-01T00:00:00Z", None),           # implausible
])
def test_parse_time_ns(value, expected):
    assert parse_time_ns(value) == expected


def test_event_time_drift_correction():
    # client clock 3 h behind: timestamp and batchSentAt both shifted, receivedAt right
    h3 = 3 * 3600 * NS_PER_S
    ts, sent, received = T - h3 - 5 * NS_PER_S, T - h3, T
    assert event_time_ns(ts, received, sent) == T - 5 * NS_PER_S
    assert event_time_ns(ts, None, sent) == ts
    assert event_time_ns(ts, received, None) == ts
    assert event_time_ns(None, received, sent) == received
    assert event_time_ns(None, None, None) is None


def test_loki_timestamp_uses_event_time_near_receive_time():
    ev = T - 10 * NS_PER_S + 123 * NS_PER_MS
    ts, retimed = loki_timestamp_ns(ev, T, line_offset=4242)
    assert not retimed and ts == ev + 4242


def test_loki_timestamp_late_event_uses_receive_time():
    three_days = 3 * 86400 * NS_PER_S
    ts, retimed = loki_timestamp_ns(T - three_days, T, line_offset=10)
    assert retimed and ts == T + 10
    ts, retimed = loki_timestamp_ns(T - TRUST_BEFORE_NS - NS_PER_MS, T, 0)
    assert retimed and ts == T
    ts, retimed = loki_timestamp_ns(T + 3600 * NS_PER_S, T, 0)   # uncorrected clock ahead
    assert retimed and ts == T


def test_loki_timestamp_is_deterministic_and_distinct_per_offset():
    a = loki_timestamp_ns(T, T, 100)[0]
    assert a == loki_timestamp_ns(T, T, 100)[0]
    assert a != loki_timestamp_ns(T, T, 101)[0]
    assert loki_timestamp_ns(T, None, 5)[0] == T + 5


def test_format_ns():
    assert format_ns(T + 46 * NS_PER_MS) == "2025-12-26T10:16:15.046Z"


def test_fast_path_agrees_with_fromisoformat():
    import random
    from datetime import datetime, timezone
    rng = random.Random(3)
    for _ in range(2000):
        ms = rng.randrange(946_684_800_000, 4_102_444_799_000)
        text = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        assert parse_time_ns(text) == ms * NS_PER_MS, text
    for bad in ["2025-12-26T10:61:03.046Z", "2025-12-26T10:16:0x.046Z", "2025-13-26T10:16:03.046Z",
                "2025-12-26T24:16:03.046Z"]:
        assert parse_time_ns(bad) is None, bad
