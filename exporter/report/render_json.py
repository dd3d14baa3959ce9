"""`report --format json`: the stable schema documented in docs/report-json-schema.md."""

from __future__ import annotations

import json

from exporter.events.timing import format_ns
from exporter.report.model import SCHEMA_VERSION, ErrorRow, Report


def _iso(ns: int | None) -> str | None:
    return None if ns is None else format_ns(ns)


def _iso_s(ts: float | None) -> str | None:
    return None if ts is None else format_ns(int(round(ts * 1_000_000_000)))


def _error(row: ErrorRow) -> dict:
    return {
        "error_type": row.error_type,
        "template": row.template,
        "example": row.example,
        "count": row.count,
        "sessions": row.sessions,
        "first_seen": format_ns(row.first_seen_ns),
        "last_seen": format_ns(row.last_seen_ns),
        "pages": [{"page": p, "count": n} for p, n in row.pages],
        "distinct_pages": row.distinct_pages,
        "hours": list(row.hours),
        "discovered_at": _iso_s(row.discovered_ts),
        "regressed_at": _iso_s(row.regressed_ts),
    }


def report_dict(report: Report) -> dict:
    """The report as a JSON-able dict (key order is part of the schema)."""
    s = report.summary
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(report.generated_at_ns),
        "window": {"since": _iso(report.since_ns), "until": _iso(report.until_ns)},
        "inputs": {"files": report.inputs.files, "bytes": report.inputs.bytes,
                   "lines": s.lines, "blank_lines": s.blank_lines,
                   "events_outside_window": s.events_outside_window},
        "summary": {
            "events": s.events,
            "errors": s.errors,
            "warnings": s.warnings,
            "failed_operations": s.failed_operations,
            "sessions": s.sessions,
            "sessions_with_errors": s.sessions_with_errors,
            "error_types": s.error_types,
            "invalid_lines": s.invalid_lines,
            "errors_percent": s.errors_percent,
            "warnings_percent": s.warnings_percent,
            "sessions_with_errors_percent": s.sessions_with_errors_percent,
            "warning_types": report.warning_types,
            "failed_operation_names": report.failed_operation_names,
        },
        "events_by_type": dict(report.events_by_type),
        "top_errors": [_error(r) for r in report.top_errors],
        "top_warnings": [_error(r) for r in report.top_warnings],
        "failed_operations": [
            {"name": f.name, "count": f.count, "sessions": f.sessions,
             "reasons": [{"reason": r, "count": n} for r, n in f.reasons],
             "first_seen": format_ns(f.first_seen_ns), "last_seen": format_ns(f.last_seen_ns)}
            for f in report.failed_operations
        ],
        "errors_by_page": [{"page": p, "count": n} for p, n in report.errors_by_page],
        "errors_by_hour": [{"hour": h, "count": n} for h, n in enumerate(report.errors_by_hour)],
        "invalid_lines_by_reason": dict(report.invalid_lines_by_reason),
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"
