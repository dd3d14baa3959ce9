"""Reading Loki's 400 bodies (texts taken from the real Loki recordings)."""

from __future__ import annotations

import pytest

from exporter.sinks.loki.rejections import (LINE_TOO_LONG, TOO_FAR_BEHIND, TOO_NEW, attribute, reason_of)
from exporter.sinks.loki.retry import backoff, is_retryable, parse_retry_after

BEHIND = ("entry with timestamp 2026-12-03 14:28:58.433541917 +0000 UTC ignored, reason: 'entry too far behind, "
          "entry timestamp is: 2026-12-03T14:28:58Z, oldest acceptable timestamp is: 2026-12-03T18:28:00Z',\n"
          "user 'fake', total ignored: 1 out of 3 for stream: {app=\"rec\", service_name=\"rec\", type=\"event\"}\n")


def test_recorded_too_far_behind_is_attributed_exactly():
    ts = [1796326080433541917, 1796308138433541917, 1796326081433541917]
    att = attribute(BEHIND, ts, [4, 23, 4])
    assert att.complete
    assert list(att.rejected) == [1]
    assert att.rejected[1][0] == TOO_FAR_BEHIND


def test_more_rejections_than_listed_is_incomplete():
    body = BEHIND.replace("total ignored: 1 out of 3", "total ignored: 12 out of 30")
    ts = [1796308138433541917] + list(range(1796326080000000000, 1796326080000000029))
    att = attribute(body, ts, [1] * 30)
    assert not att.complete and list(att.rejected) == [0]


def test_too_new_and_line_too_long():
    new = "entry for stream '{app=\"rec\", service_name=\"rec\", type=\"future\"}' has timestamp too new: 2026-12-03T20:28:58Z\n"
    att = attribute(new, [1796326000000000000, 1796329738433541917], [5, 5])
    assert att.complete and list(att.rejected) == [1] and att.rejected[1][0] == TOO_NEW
    long = ("max entry size '262144' bytes exceeded for stream '{app=\"rec\", service_name=\"rec\", type=\"big\"}' "
            "while adding an entry with length '307200' bytes\n")
    att = attribute(long, [1, 2], [10, 307200])
    assert att.complete and list(att.rejected) == [1] and att.rejected[1][0] == LINE_TOO_LONG


def test_unknown_body_is_incomplete():
    att = attribute("something went wrong\n", [1, 2], [1, 1])
    assert not att.complete and not att.rejected


@pytest.mark.parametrize("status, retry", [(None, True), (429, True), (500, True), (502, True), (503, True),
                                           (400, False), (401, False), (404, False), (413, False), (422, False),
                                           (204, False)])
def test_only_429_5xx_and_connection_errors_are_retried(status, retry):
    assert is_retryable(status) is retry


def test_backoff_is_bounded_and_honours_retry_after():
    import random
    rng = random.Random(1)
    delays = [backoff(a, 0.5, 30, rng=rng) for a in range(12)]
    assert all(0.25 <= d <= 30 for d in delays) and delays[-1] >= 15
    assert backoff(0, 0.5, 30, retry_after=7, rng=rng) == 7
    assert backoff(0, 0.5, 30, retry_after=3600, rng=rng) == 30
    # serve waits for Loki forever: the 2000th attempt (hours of an outage) is still 15-30 s
    assert 15 <= backoff(2000, 0.5, 30, rng=rng) <= 30
    assert parse_retry_after("12") == 12.0 and parse_retry_after(None) is None and parse_retry_after("x") is None


def test_reason_of():
    assert reason_of("Per stream rate limit exceeded") == "rate_limited"
    assert reason_of("entry too far behind") == TOO_FAR_BEHIND


def test_grouped_distributor_errors():
    """Loki groups identical validation errors into one line (util.GroupedErrors)."""
    stream = "{app=\"a\", service_name=\"a\", type=\"error\"}"
    old = f"entry for stream '{stream}' has timestamp too old: 2025-12-30T00:00:00Z, oldest acceptable timestamp is: 2025-12-31T00:00:00Z"
    old2 = f"entry for stream '{stream}' has timestamp too old: 2025-12-30T00:00:01Z, oldest acceptable timestamp is: 2025-12-31T00:00:00Z"
    body = f"3 errors like: {old}; 1 errors like: {old2}\n"
    sec = 1767052800 * 10**9  # 2025-12-30T00:00:00Z
    ts = [sec + 1, sec + 2, sec + 3, sec + 10**9 + 5, sec + 86400 * 10**9 * 3]
    att = attribute(body, ts, [1] * 5)
    assert att.complete
    assert sorted(att.rejected) == [0, 1, 2, 3]
    assert {r for r, _ in att.rejected.values()} == {"too_old"}
    single = attribute(old + "\n", [sec, sec * 2], [1, 1])
    assert single.complete and list(single.rejected) == [0]
