"""The one aggregation core: every number that `report` prints and `/metrics` exports.

An :class:`Aggregator` is fed events (or raw lines, which it parses with the project's only
parser) and keeps, in memory that grows with the number of error types and sessions but never
with the number of events:

* lines read, blank lines, invalid lines by reason;
* events in the time window, by Loki stream type (``event.stream``), and events outside it;
* errors, warnings and failed operations (as classified by the fingerprinter);
* distinct sessions and distinct sessions with errors (a missing/empty sessionId is no session);
* per error type (:class:`ErrorTypeStats`): count, sessions, first/last seen (drift-corrected
  event time), pages, hours of day (UTC), failure reasons, and the ``discovered_ts`` /
  ``regressed_ts`` used for "new error type" and "regression" alerts;
* optionally (``Limits.max_sessions``), a table of the most recently active sessions with their
  error counts, with idle expiry and an evicted-sessions counter (for `/metrics`).

The clock
---------
Each event is counted with a "when did we learn about this" clock (unix s), which sets
``discovered_ts``, ``regressed_ts`` and session activity and never changes a count.
``add(event)`` (`report`): the event's server receive time (``received_ns``, else its event
time). ``add(event, clock=...)``: the caller's; `serve` passes :func:`discovery_clock` (via
``add_line(..., live=LiveClock(now, watched_since), anchor_ns=...)``): ``now`` for a line the
server received since the exporter has been watching the directory, else its receive time.

Merging
-------
``a.merge(b)`` folds ``b`` into ``a`` as if ``b``'s events had been fed to ``a`` after ``a``'s
own. All counts, distinct-session counts, first/last seen, pages and hours are exactly those of
a single pass (sets of session ids are merged). Without caps (``Limits()``, as `report` runs) the
set of error types is exact too; with a cap, which types get their own bucket may depend on the
split. ``regressed_ts`` is exact when each part's events arrive in event-time order per type.

For `/metrics`
--------------
Build the core with ``Limits(max_error_types=cfg.metrics.max_error_types,
max_sessions=cfg.metrics.max_sessions, session_idle_seconds=cfg.metrics.session_idle_seconds)``,
feed it with ``add_line(data, length, max_line_bytes=..., live=LiveClock(...), anchor_ns=...)``;
call ``expire_sessions(time.time())`` before a scrape
and read ``events_by_type``, ``kind_counts``, ``invalid_by_reason``, ``error_types()``,
``recent_sessions(limit)``, ``evicted_sessions``. Persist with ``to_state()`` /
``from_state()``. The core is not thread-safe: feed and read it under one lock.

This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import orjson

from exporter.events.model import TOO_LONG, Event, Invalid, page_of
from exporter.events.parse import parse_line

STATE_VERSION = 1

ERROR = "error"
WARNING = "warning"
FAILED_OPERATION = "failed_operation"
KINDS = (ERROR, WARNING, FAILED_OPERATION)

OVERFLOW = "overflow"                       # error_type of the bucket past Limits.max_error_types
OVERFLOW_TEMPLATE = "(other error types past the cap)"
NO_PAGE = "(none)"                          # page of an event without URL
OTHER_LABEL = "(other)"                     # page/reason past Limits.max_labels_per_type
NO_REASON = "<no reason>"                   # failed operation without data.error

NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_S
DEFAULT_REGRESSION_SECONDS = 7 * 24 * 3600.0
LIVE_SLACK_SECONDS = 300.0   # see discovery_clock
EXAMPLE_MAX_CHARS = 2000

_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")


class Grouper(Protocol):
    """What the core needs of ``exporter.events.fingerprint.Fingerprinter``."""

    def group(self, event: Event) -> Any: ...  # ErrorGroup | None


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for a long-running core (`/metrics`). ``Limits()`` = uncapped, as `report` runs.

    max_error_types: distinct error types with their own bucket, per kind (errors, warnings and
        failed operations each have this many, so a flood of unique warnings cannot take the
        room of new errors); events of further types are counted in their kind's ``"overflow"``
        bucket only (a type past the cap is never "discovered"). None = no cap.
    max_sessions: size of the per-session table (most recently active kept). 0 = no table
        (`report`), None = unbounded.
    session_idle_seconds: :meth:`Aggregator.expire_sessions` drops sessions idle for longer.
    regression_seconds: an event of a known type whose event time is at least this long after
        the type's previous last_seen marks the type as regressed.
    max_labels_per_type: distinct pages (and failure reasons) kept per error type; further ones
        are counted under ``"(other)"``. None = no cap.
    """

    max_error_types: int | None = None
    max_sessions: int | None = 0
    session_idle_seconds: float | None = None
    regression_seconds: float = DEFAULT_REGRESSION_SECONDS
    max_labels_per_type: int | None = None

    def to_dict(self) -> dict:
        return {
            "max_error_types": self.max_error_types,
            "max_sessions": self.max_sessions,
            "session_idle_seconds": self.session_idle_seconds,
            "regression_seconds": self.regression_seconds,
            "max_labels_per_type": self.max_labels_per_type,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Limits":
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open range [since_ns, until_ns) of drift-corrected event time; None = unbounded."""

    since_ns: int | None = None
    until_ns: int | None = None

    def contains(self, t_ns: int) -> bool:
        return (self.since_ns is None or t_ns >= self.since_ns) and (
            self.until_ns is None or t_ns < self.until_ns)

    def to_dict(self) -> dict:
        return {"since_ns": self.since_ns, "until_ns": self.until_ns}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Window":
        d = d or {}
        return cls(d.get("since_ns"), d.get("until_ns"))


@dataclass(slots=True)
class ErrorTypeStats:
    """Everything known about one error type (or a kind's overflow bucket)."""

    kind: str                      # "error" | "warning" | "failed_operation"
    error_type: str                # 12 hex digits, or "overflow"
    template: str                  # normalised message (failed operations: the operation name)
    example: str                   # the original message of the earliest event (by event time)
    count: int = 0
    sessions: set[str] = field(default_factory=set)
    first_seen_ns: int = 0         # min drift-corrected event time
    last_seen_ns: int = 0          # max drift-corrected event time
    pages: dict[str, int] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)   # by UTC hour of event time
    reasons: dict[str, int] = field(default_factory=dict)        # failed operations: data.error
                                   # normalised (NO_REASON when absent); sums to count
    discovered_ts: float = 0.0     # unix s: when the type was first counted (see module doc)
    regressed_ts: float | None = None  # unix s: last time it came back after regression_seconds
    first_arrival_ns: int = 0      # event time of the first event counted (arrival order)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "error_type": self.error_type,
            "template": self.template,
            "example": self.example,
            "count": self.count,
            "sessions": sorted(self.sessions),
            "first_seen_ns": self.first_seen_ns,
            "last_seen_ns": self.last_seen_ns,
            "pages": dict(sorted(self.pages.items())),
            "hours": list(self.hours),
            "reasons": dict(sorted(self.reasons.items())),
            "discovered_ts": self.discovered_ts,
            "regressed_ts": self.regressed_ts,
            "first_arrival_ns": self.first_arrival_ns,
        }

    @classmethod
    def from_dict(cls, d: dict, intern: dict[str, str] | None = None) -> "ErrorTypeStats":
        sessions = d.get("sessions", ())
        if intern is not None:
            sessions = (intern.setdefault(s, s) for s in sessions)
        hours = list(d.get("hours") or [0] * 24)
        if len(hours) != 24:
            raise ValueError("error type state: 'hours' must have 24 entries")
        return cls(
            kind=d["kind"],
            error_type=d["error_type"],
            template=d["template"],
            example=d.get("example", ""),
            count=int(d["count"]),
            sessions=set(sessions),
            first_seen_ns=int(d["first_seen_ns"]),
            last_seen_ns=int(d["last_seen_ns"]),
            pages={str(k): int(v) for k, v in (d.get("pages") or {}).items()},
            hours=[int(h) for h in hours],
            reasons={str(k): int(v) for k, v in (d.get("reasons") or {}).items()},
            discovered_ts=float(d.get("discovered_ts", 0.0)),
            regressed_ts=None if d.get("regressed_ts") is None else float(d["regressed_ts"]),
            first_arrival_ns=int(d.get("first_arrival_ns", d["first_seen_ns"])),
        )


@dataclass(slots=True)
class SessionStats:
    """One session in the per-session table (`/metrics`)."""

    session_id: str
    events: int = 0
    errors: int = 0
    warnings: int = 0
    failed_operations: int = 0
    last_active_ts: float = 0.0    # unix s, on the core's clock (now, or receive time)

    def to_dict(self) -> dict:
        return {"session_id": self.session_id, "events": self.events, "errors": self.errors,
                "warnings": self.warnings, "failed_operations": self.failed_operations,
                "last_active_ts": self.last_active_ts}

    @classmethod
    def from_dict(cls, d: dict) -> "SessionStats":
        return cls(str(d["session_id"]), int(d["events"]), int(d["errors"]), int(d["warnings"]),
                   int(d["failed_operations"]), float(d["last_active_ts"]))


def _add_counts(into: dict[str, int], more: dict[str, int], cap: int | None) -> None:
    for key, n in more.items():
        if key not in into and cap is not None and len(into) >= cap:
            key = OTHER_LABEL
        into[key] = into.get(key, 0) + n


def discovery_clock(received_ns: int | None, anchor_ns: int | None, event_ns: int, *,
                    now: float, watched_since: float) -> float:
    """`serve`'s clock for one line (unix s): what its error type's discovery (and regression)
    time and its session's activity are.

    R, when the server received the line: its ``receivedAt``, else the file's anchor (the last
    ``receivedAt`` above it in the same file), else its event time; never later than ``now``
    (a skewed client clock cannot put a discovery in the future). A line with R >=
    ``watched_since`` - LIVE_SLACK_SECONDS is news: ``now``. ``watched_since`` (W) is the time up
    to which the exporter has been watching the directory, so any line received earlier is
    history (the first backfill, an old file copied in): R. The slack covers lines written just
    before W but not yet read, and the server's clock being a little ahead of ours.
    """
    r_ns = received_ns if received_ns is not None else anchor_ns if anchor_ns is not None else event_ns
    received = min(r_ns / NS_PER_S, now)
    return now if received >= watched_since - LIVE_SLACK_SECONDS else received


@dataclass(frozen=True, slots=True)
class LiveClock:
    """What `serve` knows when it counts a line: wall-clock ``now``, and ``watched_since`` (W,
    see :func:`discovery_clock`)."""

    now: float
    watched_since: float

    def of(self, event: Event, anchor_ns: int | None) -> float:
        return discovery_clock(event.received_ns, anchor_ns, event.time_ns, now=self.now,
                               watched_since=self.watched_since)


def _clock(event: Event, clock: float | None) -> float:
    """The caller's clock, else (`report`) the event's receive time, else its event time."""
    if clock is not None:
        return clock
    return (event.received_ns if event.received_ns is not None else event.time_ns) / NS_PER_S


_MESSAGE_KEYS = {ERROR: ("message", "error", "reason", "name"), WARNING: ("message",),
                 FAILED_OPERATION: ("error",)}


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, ValueError):
            return repr(value)
    return "null" if value is None else str(value)


def example_of(event: Event, kind: str, template: str) -> str:
    """The original (not normalised) text of an error, warning or failed operation: the data
    field the fingerprinter reads (errors: message, else error/reason/name; warnings: message;
    failed operations: error), else the template."""
    data = event.data
    for key in _MESSAGE_KEYS[kind]:
        value = data.get(key)
        if value is not None and value != "" and value != [] and value != {}:
            text = _text(value)
            if text.strip():
                return text[:EXAMPLE_MAX_CHARS]
    return template[:EXAMPLE_MAX_CHARS]


def _count_capped(counts: dict[str, int], key: str, cap: int | None) -> None:
    """counts[key] += 1, but past ``cap`` distinct keys new ones are counted under OTHER_LABEL."""
    if key in counts:
        counts[key] += 1
    elif cap is not None and len(counts) >= cap:
        counts[OTHER_LABEL] = counts.get(OTHER_LABEL, 0) + 1
    else:
        counts[key] = 1


class Aggregator:
    """The aggregation core. See the module docstring.

    ``fingerprinter`` classifies and groups events (``Fingerprinter.group(event)``); without one,
    events are counted by type and session only.
    """

    __slots__ = ("limits", "window", "_fp", "lines", "blank_lines", "events",
                 "events_outside_window", "events_by_type", "invalid_by_reason", "kind_counts",
                 "_sessions", "_error_sessions", "_types", "_real_types", "_session_table",
                 "evicted_sessions", "_reg_ns")

    def __init__(self, fingerprinter: Grouper | None = None, limits: Limits | None = None,
                 window: Window | None = None) -> None:
        self.limits = limits or Limits()
        self.window = window or Window()
        self._fp = fingerprinter
        self.lines = 0                  # lines given to add_line (events + invalid + blank)
        self.blank_lines = 0
        self.events = 0                 # valid events inside the window
        self.events_outside_window = 0  # valid events outside the window (not counted anywhere)
        self.events_by_type: dict[str, int] = {}
        self.invalid_by_reason: dict[str, int] = {}
        self.kind_counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._sessions: dict[str, str] = {}       # distinct sessions (and string intern table)
        self._error_sessions: set[str] = set()
        self._types: dict[str, dict[str, ErrorTypeStats]] = {k: {} for k in KINDS}
        self._real_types = dict.fromkeys(KINDS, 0)  # error types with their own bucket, per kind
        self._session_table: dict[str, SessionStats] = {}  # least recently active first
        self.evicted_sessions = 0
        self._reg_ns = int(self.limits.regression_seconds * NS_PER_S)

    # ------------------------------------------------------------------ feeding

    def add_line(self, data: bytes, length: int | None = None, *,
                 max_line_bytes: int | None = None, live: LiveClock | None = None,
                 anchor_ns: int | None = None) -> Event | Invalid | None:
        """Count one raw line (without its line ending). Returns the parsed Event, the Invalid,
        or None for a blank line. ``length`` is the line's full length when ``data`` is only
        its head (a too-long line, see sources.files.read_lines). With ``live`` (`serve`), the
        event's clock is ``live.of(event, anchor_ns)``; ``anchor_ns`` is the last receive time
        seen above this line in its file."""
        self.lines += 1
        if max_line_bytes is not None and (len(data) if length is None else length) > max_line_bytes:
            self.add_invalid(TOO_LONG)
            return Invalid(TOO_LONG, f"line longer than {max_line_bytes} bytes")
        if not data or (data[0] in _WHITESPACE and not data.strip()):
            self.blank_lines += 1
            return None
        parsed = parse_line(data)
        if type(parsed) is Invalid:
            reason = parsed.reason
            self.invalid_by_reason[reason] = self.invalid_by_reason.get(reason, 0) + 1
            return parsed
        self.add(parsed, None if live is None else live.of(parsed, anchor_ns))  # type: ignore[arg-type]
        return parsed

    def add_blank(self) -> None:
        """Count a blank line that the caller read itself."""
        self.lines += 1
        self.blank_lines += 1

    def add_invalid(self, reason: str) -> None:
        """Count an invalid line (invalid lines have no trustworthy time: never filtered)."""
        self.invalid_by_reason[reason] = self.invalid_by_reason.get(reason, 0) + 1

    def add(self, event: Event, clock: float | None = None) -> Any:
        """Count one event, learnt about at ``clock`` (unix s; None: its receive time, see _clock).

        Returns the event's ErrorGroup (or None), so a caller needs no second fingerprinting;
        returns None for an event outside the window (which is counted nowhere else)."""
        t = event.time_ns
        w = self.window
        if (w.since_ns is not None and t < w.since_ns) or (w.until_ns is not None and t >= w.until_ns):
            self.events_outside_window += 1
            return None
        self.events += 1
        stream = event.stream
        ebt = self.events_by_type
        ebt[stream] = ebt.get(stream, 0) + 1
        sid = event.session_id
        if sid is not None:
            sid = self._sessions.setdefault(sid, sid)
        group = self._fp.group(event) if self._fp is not None else None
        if group is not None:
            self._add_group(event, group, sid, clock)
        if sid is not None and self.limits.max_sessions != 0:
            self._touch_session(sid, group.kind if group is not None else None, _clock(event, clock))
        return group

    def _add_group(self, event: Event, group: Any, sid: str | None, clock: float | None) -> None:
        kind = group.kind
        self.kind_counts[kind] += 1
        if sid is not None and kind == ERROR:
            self._error_sessions.add(sid)
        types = self._types[kind]
        st = types.get(group.error_type)
        t = event.time_ns
        if st is None:
            cap = self.limits.max_error_types
            if cap is not None and self._real_types[kind] >= cap:
                st = types.get(OVERFLOW)
                if st is None:
                    st = types[OVERFLOW] = self._new_type(kind, OVERFLOW, OVERFLOW_TEMPLATE,
                                                          group.template, event, clock)
                    st.count = -1  # marks "just created" for the update below
            else:
                self._real_types[kind] += 1
                st = types[group.error_type] = self._new_type(kind, group.error_type,
                                                              group.template, group.template,
                                                              event, clock)
                st.count = -1
        if st.count < 0:
            st.count = 0
        else:
            if t >= st.last_seen_ns + self._reg_ns:
                st.regressed_ts = _clock(event, clock)
            if t < st.first_seen_ns:
                st.first_seen_ns = t
                st.example = example_of(event, kind, group.template)
            elif t > st.last_seen_ns:
                st.last_seen_ns = t
        st.count += 1
        if sid is not None:
            st.sessions.add(sid)
        cap = self.limits.max_labels_per_type
        _count_capped(st.pages, page_of(event.url) or NO_PAGE, cap)
        st.hours[(t // NS_PER_HOUR) % 24] += 1
        if kind == FAILED_OPERATION:
            reason = group.reason
            _count_capped(st.reasons, NO_REASON if reason is None else reason, cap)

    @staticmethod
    def _new_type(kind: str, error_type: str, template: str, group_template: str, event: Event,
                  clock: float | None) -> ErrorTypeStats:
        t = event.time_ns
        return ErrorTypeStats(
            kind=kind, error_type=error_type, template=template,
            example=example_of(event, kind, group_template),
            first_seen_ns=t, last_seen_ns=t, discovered_ts=_clock(event, clock), first_arrival_ns=t)

    def _touch_session(self, sid: str, kind: str | None, clock: float) -> None:
        table = self._session_table
        st = table.pop(sid, None)
        if st is None:
            st = SessionStats(sid)
            cap = self.limits.max_sessions
            if cap is not None and len(table) >= cap:
                # evict the least recently active (the first in the table)
                del table[next(iter(table))]
                self.evicted_sessions += 1
        st.events += 1
        if kind == ERROR:
            st.errors += 1
        elif kind == WARNING:
            st.warnings += 1
        elif kind == FAILED_OPERATION:
            st.failed_operations += 1
        if clock > st.last_active_ts:
            st.last_active_ts = clock
        table[sid] = st

    def expire_sessions(self, now: float) -> int:
        """Drop sessions idle for more than ``limits.session_idle_seconds`` before ``now``.
        Returns how many were dropped (they are added to ``evicted_sessions``)."""
        idle = self.limits.session_idle_seconds
        if idle is None or not self._session_table:
            return 0
        cutoff = now - idle
        stale = [sid for sid, st in self._session_table.items() if st.last_active_ts < cutoff]
        for sid in stale:
            del self._session_table[sid]
        self.evicted_sessions += len(stale)
        return len(stale)

    # ------------------------------------------------------------------ reading

    @property
    def invalid_lines(self) -> int:
        return sum(self.invalid_by_reason.values())

    @property
    def errors(self) -> int:
        return self.kind_counts[ERROR]

    @property
    def warnings(self) -> int:
        return self.kind_counts[WARNING]

    @property
    def failed_operations(self) -> int:
        return self.kind_counts[FAILED_OPERATION]

    @property
    def sessions(self) -> int:
        """Distinct sessions among the counted events."""
        return len(self._sessions)

    @property
    def sessions_with_errors(self) -> int:
        """Distinct sessions with at least one error (kind "error")."""
        return len(self._error_sessions)

    def session_ids(self) -> Iterable[str]:
        return self._sessions.keys()

    def error_types(self, kind: str | None = None) -> list[ErrorTypeStats]:
        """Error types (and overflow buckets) of one kind, or all, in first-counted order."""
        if kind is not None:
            return list(self._types[kind].values())
        return [st for k in KINDS for st in self._types[k].values()]

    def error_type(self, kind: str, error_type: str) -> ErrorTypeStats | None:
        return self._types[kind].get(error_type)

    def error_type_count(self, kind: str | None = ERROR) -> int:
        """Distinct error types of a kind (all kinds for None), overflow buckets not included."""
        kinds = KINDS if kind is None else (kind,)
        return sum(len(self._types[k]) - (OVERFLOW in self._types[k]) for k in kinds)

    def recent_sessions(self, limit: int | None = None) -> list[SessionStats]:
        """The per-session table, most recently active first."""
        out = sorted(self._session_table.values(), key=lambda s: (-s.last_active_ts, s.session_id))
        return out if limit is None else out[:limit]

    def errors_by_page(self) -> dict[str, int]:
        """Errors (kind "error") by page, from the per-type page counts."""
        out: dict[str, int] = {}
        for st in self._types[ERROR].values():
            for page, n in st.pages.items():
                out[page] = out.get(page, 0) + n
        return out

    def errors_by_hour(self) -> list[int]:
        """Errors (kind "error") by UTC hour of day of their event time (24 entries)."""
        hours = [0] * 24
        for st in self._types[ERROR].values():
            for h, n in enumerate(st.hours):
                hours[h] += n
        return hours

    # ------------------------------------------------------------------ merge / state

    def merge(self, other: "Aggregator") -> "Aggregator":
        """Fold ``other`` (fed after self, e.g. the next file) into self. Returns self."""
        if other.window != self.window:
            raise ValueError("cannot merge cores with different time windows")
        self.lines += other.lines
        self.blank_lines += other.blank_lines
        self.events += other.events
        self.events_outside_window += other.events_outside_window
        _add_counts(self.events_by_type, other.events_by_type, None)
        _add_counts(self.invalid_by_reason, other.invalid_by_reason, None)
        _add_counts(self.kind_counts, other.kind_counts, None)
        intern = self._sessions
        for sid in other._sessions:
            intern.setdefault(sid, sid)
        self._error_sessions.update(intern[s] for s in other._error_sessions)
        for kind in KINDS:
            mine = self._types[kind]
            for key, ost in other._types[kind].items():
                st = mine.get(key)
                if st is None:
                    cap = self.limits.max_error_types
                    if key != OVERFLOW and (cap is None or self._real_types[kind] < cap):
                        self._real_types[kind] += 1
                    else:
                        st = mine.get(OVERFLOW)
                        if st is None:
                            st = mine[OVERFLOW] = ErrorTypeStats(kind, OVERFLOW, OVERFLOW_TEMPLATE, "")
                if st is None:
                    copy = ErrorTypeStats.from_dict(ost.to_dict(), intern)
                    mine[key] = copy
                else:
                    self._merge_type(st, ost)
        self._merge_sessions(other)
        return self

    def _merge_type(self, st: ErrorTypeStats, ost: ErrorTypeStats) -> None:
        cap = self.limits.max_labels_per_type
        regressed = [ts for ts in (st.regressed_ts, ost.regressed_ts) if ts is not None]
        if st.count and ost.count and ost.first_arrival_ns >= st.last_seen_ns + self._reg_ns:
            regressed.append(ost.discovered_ts)
        st.regressed_ts = max(regressed) if regressed else None
        if not st.count:
            st.discovered_ts = ost.discovered_ts
            st.first_arrival_ns = ost.first_arrival_ns
            st.first_seen_ns, st.last_seen_ns, st.example = ost.first_seen_ns, ost.last_seen_ns, ost.example
        elif ost.count:
            st.discovered_ts = min(st.discovered_ts, ost.discovered_ts)
            if ost.first_seen_ns < st.first_seen_ns:
                st.first_seen_ns, st.example = ost.first_seen_ns, ost.example
            st.last_seen_ns = max(st.last_seen_ns, ost.last_seen_ns)
        st.count += ost.count
        intern = self._sessions
        st.sessions.update(intern.get(s, s) for s in ost.sessions)
        _add_counts(st.pages, ost.pages, cap)
        _add_counts(st.reasons, ost.reasons, cap)
        st.hours = [a + b for a, b in zip(st.hours, ost.hours)]

    def _merge_sessions(self, other: "Aggregator") -> None:
        self.evicted_sessions += other.evicted_sessions
        if self.limits.max_sessions == 0:
            return
        table = self._session_table
        for sid, ost in other._session_table.items():
            st = table.get(sid)
            if st is None:
                table[sid] = SessionStats(**ost.to_dict())
            else:
                st.events += ost.events
                st.errors += ost.errors
                st.warnings += ost.warnings
                st.failed_operations += ost.failed_operations
                st.last_active_ts = max(st.last_active_ts, ost.last_active_ts)
        ordered = sorted(table.values(), key=lambda s: (s.last_active_ts, s.session_id))
        cap = self.limits.max_sessions
        if cap is not None and len(ordered) > cap:
            self.evicted_sessions += len(ordered) - cap
            ordered = ordered[len(ordered) - cap:]
        self._session_table = {s.session_id: s for s in ordered}

    def to_state(self) -> dict:
        """The whole state as a JSON-able dict (lists sorted: equal states give equal dicts)."""
        return {
            "version": STATE_VERSION,
            "limits": self.limits.to_dict(),
            "window": self.window.to_dict(),
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "events": self.events,
            "events_outside_window": self.events_outside_window,
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
            "kind_counts": dict(self.kind_counts),
            "sessions": sorted(self._sessions),
            "sessions_with_errors": sorted(self._error_sessions),
            "error_types": [st.to_dict() for k in KINDS
                            for _, st in sorted(self._types[k].items())],
            "session_table": [s.to_dict() for s in
                              sorted(self._session_table.values(),
                                     key=lambda s: (s.last_active_ts, s.session_id))],
            "evicted_sessions": self.evicted_sessions,
        }

    @classmethod
    def from_state(cls, state: dict, fingerprinter: Grouper | None = None,
                   limits: Limits | None = None) -> "Aggregator":
        """Rebuild a core from :meth:`to_state` output. ``limits`` overrides the saved ones."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported aggregation state version {state.get('version')!r}")
        core = cls(fingerprinter, limits or Limits.from_dict(state.get("limits") or {}),
                   Window.from_dict(state.get("window")))
        core.lines = int(state.get("lines", 0))
        core.blank_lines = int(state.get("blank_lines", 0))
        core.events = int(state["events"])
        core.events_outside_window = int(state.get("events_outside_window", 0))
        core.events_by_type = {str(k): int(v) for k, v in state["events_by_type"].items()}
        core.invalid_by_reason = {str(k): int(v) for k, v in state["invalid_by_reason"].items()}
        for k in KINDS:
            core.kind_counts[k] = int(state["kind_counts"].get(k, 0))
        intern = core._sessions
        for sid in state["sessions"]:
            intern[sid] = sid
        core._error_sessions = {intern.setdefault(s, s) for s in state["sessions_with_errors"]}
        for d in state["error_types"]:
            st = ErrorTypeStats.from_dict(d, intern)
            if st.kind not in core._types:
                raise ValueError(f"unknown error kind {st.kind!r} in state")
            core._types[st.kind][st.error_type] = st
            if st.error_type != OVERFLOW:
                core._real_types[st.kind] += 1
        for d in state.get("session_table", ()):
            s = SessionStats.from_dict(d)
            core._session_table[s.session_id] = s
        core.evicted_sessions = int(state.get("evicted_sessions", 0))
        return core
