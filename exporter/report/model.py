"""What a report says, as plain data, built from one aggregation core (no I/O, no formatting).

The three renderers (text, JSON, Markdown) read a :class:`Report`; none of them counts anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.aggregation.core import ERROR, FAILED_OPERATION, WARNING, Aggregator, ErrorTypeStats

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Summary:
    events: int
    errors: int
    warnings: int
    failed_operations: int
    sessions: int
    sessions_with_errors: int
    error_types: int            # distinct error types of kind "error"
    invalid_lines: int
    lines: int                  # lines read: events (in and out of the window) + invalid + blank
    blank_lines: int
    events_outside_window: int

    @staticmethod
    def percent(part: int, whole: int) -> float:
        return round(100.0 * part / whole, 2) if whole else 0.0

    @property
    def errors_percent(self) -> float:
        return self.percent(self.errors, self.events)

    @property
    def warnings_percent(self) -> float:
        return self.percent(self.warnings, self.events)

    @property
    def sessions_with_errors_percent(self) -> float:
        return self.percent(self.sessions_with_errors, self.sessions)


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One error (or warning) type."""

    error_type: str
    kind: str
    template: str
    example: str
    count: int
    sessions: int
    first_seen_ns: int
    last_seen_ns: int
    pages: tuple[tuple[str, int], ...]      # the top pages, most frequent first
    distinct_pages: int                      # pages in all (``pages`` is cut to the report's top)
    hours: tuple[int, ...]                   # 24 counts by UTC hour
    discovered_ts: float
    regressed_ts: float | None


@dataclass(frozen=True, slots=True)
class FailedOperationRow:
    name: str
    count: int
    sessions: int
    reasons: tuple[tuple[str, int], ...]    # most frequent first
    first_seen_ns: int
    last_seen_ns: int


@dataclass(frozen=True, slots=True)
class Inputs:
    files: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    generated_at_ns: int
    since_ns: int | None
    until_ns: int | None
    inputs: Inputs
    top: int
    summary: Summary
    events_by_type: tuple[tuple[str, int], ...]
    top_errors: tuple[ErrorRow, ...]
    top_warnings: tuple[ErrorRow, ...]
    failed_operations: tuple[FailedOperationRow, ...]
    errors_by_page: tuple[tuple[str, int], ...]
    errors_by_hour: tuple[int, ...]
    invalid_lines_by_reason: tuple[tuple[str, int], ...]
    warning_types: int = 0
    failed_operation_names: int = 0
    extra: dict = field(default_factory=dict)


def _by_count(items: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(items.items(), key=lambda kv: (-kv[1], kv[0])))


def _row(st: ErrorTypeStats, top: int) -> ErrorRow:
    return ErrorRow(
        error_type=st.error_type, kind=st.kind, template=st.template, example=st.example,
        count=st.count, sessions=len(st.sessions), first_seen_ns=st.first_seen_ns,
        last_seen_ns=st.last_seen_ns, pages=_by_count(st.pages)[:top],
        distinct_pages=len(st.pages), hours=tuple(st.hours),
        discovered_ts=st.discovered_ts, regressed_ts=st.regressed_ts)


def _top_rows(types: list[ErrorTypeStats], top: int) -> tuple[ErrorRow, ...]:
    ranked = sorted(types, key=lambda s: (-s.count, -len(s.sessions), s.first_seen_ns, s.error_type))
    return tuple(_row(s, top) for s in ranked[:top])


def _failed_operations(types: list[ErrorTypeStats]) -> list[FailedOperationRow]:
    by_name: dict[str, list[ErrorTypeStats]] = {}
    for st in types:
        by_name.setdefault(st.template, []).append(st)
    rows = []
    for name, group in by_name.items():
        sessions: set[str] = set()
        reasons: dict[str, int] = {}
        for st in group:
            sessions |= st.sessions
            for r, n in st.reasons.items():
                reasons[r] = reasons.get(r, 0) + n
        rows.append(FailedOperationRow(
            name=name, count=sum(s.count for s in group), sessions=len(sessions),
            reasons=_by_count(reasons), first_seen_ns=min(s.first_seen_ns for s in group),
            last_seen_ns=max(s.last_seen_ns for s in group)))
    rows.sort(key=lambda r: (-r.count, -r.sessions, r.name))
    return rows


def build_report(core: Aggregator, *, top: int = 10, generated_at_ns: int = 0,
                 inputs: Inputs = Inputs()) -> Report:
    """Everything the renderers print, read from the core (top lists cut to ``top``)."""
    failed = _failed_operations(core.error_types(FAILED_OPERATION))
    summary = Summary(
        events=core.events, errors=core.errors, warnings=core.warnings,
        failed_operations=core.failed_operations, sessions=core.sessions,
        sessions_with_errors=core.sessions_with_errors, error_types=core.error_type_count(ERROR),
        invalid_lines=core.invalid_lines, lines=core.lines, blank_lines=core.blank_lines,
        events_outside_window=core.events_outside_window)
    return Report(
        generated_at_ns=generated_at_ns,
        since_ns=core.window.since_ns,
        until_ns=core.window.until_ns,
        inputs=inputs,
        top=top,
        summary=summary,
        events_by_type=_by_count(core.events_by_type),
        top_errors=_top_rows(core.error_types(ERROR), top),
        top_warnings=_top_rows(core.error_types(WARNING), top),
        failed_operations=tuple(failed[:top]),
        errors_by_page=_by_count(core.errors_by_page()),
        errors_by_hour=tuple(core.errors_by_hour()),
        invalid_lines_by_reason=_by_count(core.invalid_by_reason),
        warning_types=core.error_type_count(WARNING),
        failed_operation_names=len(failed),
    )
