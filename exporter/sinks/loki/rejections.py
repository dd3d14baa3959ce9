"""Read a Loki 400 body: which entries of the push were ignored, and why.

A real Loki answers 400 while storing the push's other entries. Its body has one line per
ignored entry, in these forms (Loki 3.x, pkg/ingester/stream.go and pkg/validation):

    entry with timestamp 2026-12-03 14:28:58.433541917 +0000 UTC ignored, reason: 'entry too far behind, ...',
    user 'fake', total ignored: 1 out of 3 for stream: {app="rec", service_name="rec", type="event"}
    entry for stream '{...}' has timestamp too new: 2026-12-03T20:28:58Z
    entry for stream '{...}' has timestamp too old: 2026-11-01T00:00:00Z, oldest acceptable timestamp is: ...
    max entry size '262144' bytes exceeded for stream '{...}' while adding an entry with length '307200' bytes

The ingester lists at most 10 entries per stream, and a distributor-level rejection can be
hidden behind an ingester error. :func:`attribute` therefore says whether the body accounts
for every ignored entry; when it does not, the client finds the rest by re-pushing halves
(safe: Loki stores an identical (timestamp, line) once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

TOO_FAR_BEHIND = "too_far_behind"
TOO_NEW = "too_new"
TOO_OLD = "too_old"
LINE_TOO_LONG = "line_too_long"
RATE_LIMITED = "rate_limited"
OTHER = "other"

_GO_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{1,9}))? ([+-]\d{4}) [A-Za-z0-9+-]+"
_RFC3339 = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))"
_INGESTER_ENTRY = re.compile(r"^entry with timestamp " + _GO_TIME + r" ignored, reason: '(.*)',?$")
_INGESTER_TOTAL = re.compile(r"total ignored: (\d+) out of (\d+) for stream")
# Distributor validation errors, grouped by Loki's util.GroupedErrors into one line:
# "<msg>" alone, or "N errors like: <msg>; M errors like: <msg2>" (identical messages counted).
_COUNT = r"(?:(\d+) errors like: )?"
_DISTRIBUTOR = re.compile(
    _COUNT + r"(?:"
    r"entry for stream '[^']*' has timestamp (too new): " + _RFC3339 +
    r"|entry for stream '[^']*' has timestamp (too old): " + _RFC3339 + r", oldest acceptable timestamp is: " + _RFC3339 +
    r"|max entry size '\d+' bytes exceeded for stream '[^']*' while adding an entry with length '(\d+)' bytes)")


def reason_of(message: str) -> str:
    low = message.lower()
    if "too far behind" in low or "out of order" in low:
        return TOO_FAR_BEHIND
    if "too new" in low:
        return TOO_NEW
    if "too old" in low:
        return TOO_OLD
    if "max entry size" in low or "line too long" in low:
        return LINE_TOO_LONG
    if "rate limit" in low:
        return RATE_LIMITED
    return OTHER


def _go_time_ns(date: str, frac: str | None, offset: str) -> int:
    dt = datetime.strptime(date + offset, "%Y-%m-%d %H:%M:%S%z")
    return int(dt.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def _rfc3339_s(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(timezone.utc).timestamp())


@dataclass(slots=True)
class Attribution:
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (reason, message)
    complete: bool = False


def attribute(body: str, ts_ns: list[int], line_bytes: list[int]) -> Attribution:
    """Map a 400 body onto the pushed entries (their timestamps and line sizes, in push order)."""
    result = Attribution()
    rejected = result.rejected
    by_ts: dict[int, list[int]] = {}
    by_sec: dict[int, list[int]] = {}
    by_len: dict[int, list[int]] = {}
    for i, t in enumerate(ts_ns):
        by_ts.setdefault(t, []).append(i)
        by_sec.setdefault(t // 1_000_000_000, []).append(i)
        by_len.setdefault(line_bytes[i], []).append(i)
    understood = True

    def take(cands: list[int] | None, n: int, reason: str, message: str, latest_first: bool = False) -> bool:
        free = [i for i in (cands or ()) if i not in rejected]
        if latest_first:  # of several entries in one second, the latest ones are "too new"
            free.sort(key=lambda i: ts_ns[i], reverse=True)
        for i in free[:n]:
            rejected[i] = (reason, message)
        return len(free) >= n

    ingester_total: int | None = None
    ingester_seen: int | None = None
    listed = 0
    distributor = 0
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _INGESTER_ENTRY.match(line)
        if m:
            listed += 1
            msg = m.group(4)
            understood &= take(by_ts.get(_go_time_ns(m.group(1), m.group(2), m.group(3))), 1, reason_of(msg), msg)
            continue
        m = _INGESTER_TOTAL.search(line)
        if m:
            ingester_total, ingester_seen = int(m.group(1)), int(m.group(2))
            continue
        rest = line
        for m in _DISTRIBUTOR.finditer(line):
            n = int(m.group(1) or 1)
            distributor += n
            msg = m.group(0)[len(f"{m.group(1)} errors like: "):] if m.group(1) else m.group(0)
            if m.group(2):
                understood &= take(by_sec.get(_rfc3339_s(m.group(3))), n, TOO_NEW, msg, latest_first=True)
            elif m.group(4):
                understood &= take(by_sec.get(_rfc3339_s(m.group(5))), n, TOO_OLD, msg)
            else:
                understood &= take(by_len.get(int(m.group(7))), n, LINE_TOO_LONG, msg)
            rest = rest.replace(m.group(0), "", 1)
        if rest.replace(";", "").strip():
            understood = False  # text we do not know how to attribute

    complete = understood and bool(rejected)
    if ingester_total is not None:
        complete = complete and listed == ingester_total
        if ingester_seen is not None and ingester_seen + distributor != len(ts_ns):
            complete = False  # some entries never reached the ingester and were not named
    result.complete = complete
    return result
