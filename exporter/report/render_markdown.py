"""`report --format markdown`: a body ready to paste into a GitHub issue. Pure: Report -> str."""

from __future__ import annotations

import html
import re

from exporter.events.timing import format_ns
from exporter.report.model import ErrorRow, Report

_BACKTICKS = re.compile(r"`+")


def _fence(text: str, shortest: int) -> str:
    """A run of backticks longer than any run in ``text`` (at least ``shortest``)."""
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=0)
    return "`" * max(shortest, longest + 1)


def code(text: str) -> str:
    """``text`` as an inline code span, safe in a GFM table cell of a GitHub issue.

    One line (whitespace runs become one space). Inside a code span nothing is Markdown or
    HTML, and GitHub links no @mention (``@sentry/browser``), no ``#123`` and no commit SHA.
    A ``|`` is escaped: tables are split into cells before code spans are read (GFM); the
    fence is longer than any run of backticks inside, padded with a space when the text
    starts or ends with one.
    """
    text = " ".join(text.split())
    if not text:
        return ""
    fence = _fence(text, 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return fence + pad + text.replace("|", "\\|") + pad + fence


def code_block(text: str) -> str:
    """A fenced block whose fence is longer than any run of backticks in ``text``."""
    fence = _fence(text, 3)
    return f"{fence}text\n{text}\n{fence}"


def _when(ns: int) -> str:
    return format_ns(ns)[:19].replace("T", " ")


def _short(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _error_table(rows: tuple[ErrorRow, ...], label: str) -> list[str]:
    if not rows:
        return [f"No {label}.", ""]
    out = [f"| # | {label.capitalize()[:-1]} | Count | Sessions | First seen (UTC) | Last seen (UTC) | Top page |",
           "|---:|---|---:|---:|---|---|---|"]
    for i, r in enumerate(rows, 1):
        page = f"{code(r.pages[0][0])} ({r.pages[0][1]:,})" if r.pages else ""
        out.append(f"| {i} | {code(_short(r.template))} | {r.count:,} | {r.sessions:,} | "
                   f"{_when(r.first_seen_ns)} | {_when(r.last_seen_ns)} | {page} |")
    out.append("")
    return out


def _details(i: int, r: ErrorRow) -> list[str]:
    out = [
        "<details>",
        # <code>: GitHub links no @mention or #123 inside it (a summary is HTML, not Markdown)
        f"<summary><b>{i}. <code>{html.escape(_short(r.template, 120))}</code></b> "
        f"&mdash; {r.count:,} events, {r.sessions:,} sessions</summary>",
        "",
        f"- **Error type:** `{r.error_type}`",
        f"- **First seen:** {format_ns(r.first_seen_ns)}",
        f"- **Last seen:** {format_ns(r.last_seen_ns)}",
        "",
        "**Template**",
        "",
        code_block(r.template),
        "",
        "**Example**",
        "",
        code_block(r.example),
        "",
        "**Pages**",
        "",
        "| Page | Count |",
        "|---|---:|",
    ]
    out += [f"| {code(p)} | {n:,} |" for p, n in r.pages]
    if r.distinct_pages > len(r.pages):
        rest = r.count - sum(n for _, n in r.pages)
        out.append(f"| _{r.distinct_pages - len(r.pages):,} more pages_ | {rest:,} |")
    out += ["", "</details>", ""]
    return out


def render_markdown(report: Report) -> str:
    s = report.summary
    if report.since_ns is None and report.until_ns is None:
        window = "All events"
    else:
        parts = []
        if report.since_ns is not None:
            parts.append(f"from {format_ns(report.since_ns)}")
        if report.until_ns is not None:
            parts.append(f"until {format_ns(report.until_ns)} (excluded)")
        window = "Events " + " ".join(parts)
    out = [
        "## Telemetry report",
        "",
        f"{window}, by drift-corrected event time (UTC); {report.inputs.files:,} files, "
        f"{s.lines:,} lines.",
        "",
        "### Summary",
        "",
        f"- **Events:** {s.events:,}",
        f"- **Errors:** {s.errors:,} ({s.errors_percent:.2f}% of events)",
        f"- **Warnings:** {s.warnings:,} ({s.warnings_percent:.2f}% of events)",
        f"- **Failed operations:** {s.failed_operations:,}",
        f"- **Sessions:** {s.sessions:,}",
        f"- **Sessions with errors:** {s.sessions_with_errors:,} "
        f"({s.sessions_with_errors_percent:.2f}% of sessions)",
        f"- **Error types:** {s.error_types:,}",
        f"- **Invalid lines:** {s.invalid_lines:,}"
        + (" (" + ", ".join(f"{r}: {n:,}" for r, n in report.invalid_lines_by_reason) + ")"
           if report.invalid_lines_by_reason else ""),
        "",
        f"### Top errors ({len(report.top_errors)} of {s.error_types:,} types)",
        "",
    ]
    out += _error_table(report.top_errors, "errors")
    for i, r in enumerate(report.top_errors, 1):
        out += _details(i, r)
    out += [f"### Top warnings ({len(report.top_warnings)} of {report.warning_types:,} types)", ""]
    out += _error_table(report.top_warnings, "warnings")
    out += [f"### Failed operations ({len(report.failed_operations)} of "
            f"{report.failed_operation_names:,})", ""]
    out += _table(["| Operation | Count | Sessions | Reasons |", "|---|---:|---:|---|"],
                  [f"| {code(f.name)} | {f.count:,} | {f.sessions:,} | "
                   + ", ".join(f"{code(r)} ({n:,})" for r, n in f.reasons) + " |"
                   for f in report.failed_operations], "No failed operations.")
    out += ["### Errors by page", ""]
    out += _table(["| Page | Errors |", "|---|---:|"],
                  [f"| {code(p)} | {n:,} |" for p, n in report.errors_by_page], "No errors.")
    out += ["### Errors by hour of day (UTC)", ""]
    out += _table(["| Hour | Errors |", "|---:|---:|"],
                  [f"| {h:02d} | {n:,} |" for h, n in enumerate(report.errors_by_hour)] if s.errors else [],
                  "No errors.")
    return "\n".join(out).rstrip("\n") + "\n"


def _table(header: list[str], rows: list[str], empty: str) -> list[str]:
    """A Markdown table followed by a blank line, or ``empty`` when there are no rows."""
    return [*header, *rows, ""] if rows else [empty, ""]
