"""`report --format text`: a terminal report that fits ``width`` (80) columns.

Pure: Report in, str out. Colour (ANSI) only when asked (the command asks when stdout is a TTY
and NO_COLOR is unset); the layout is computed on the plain text, so colour never changes it.
"""

from __future__ import annotations

import unicodedata

from exporter.events.timing import format_ns
from exporter.report.model import ErrorRow, Report

_BOLD, _RED, _YELLOW, _CYAN, _DIM = "1", "31", "33", "36", "2"


class _Out:
    def __init__(self, width: int, color: bool) -> None:
        self.width = width
        self.color = color
        self.lines: list[str] = []

    def style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def line(self, text: str = "", code: str | None = None) -> None:
        text = clip(text, self.width)
        self.lines.append(self.style(text, code) if code else text)

    def heading(self, text: str) -> None:
        if self.lines:
            self.lines.append("")
        self.line(text, _BOLD)


def _char_width(c: str) -> int:
    if unicodedata.combining(c):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns of ``text`` (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    return sum(_char_width(c) for c in text)


def clip(text: str, width: int) -> str:
    """One line of at most ``width`` terminal columns (control characters shown as spaces)."""
    text = "".join(c if c >= " " and c != "\x7f" and c not in "\u2028\u2029\x85" else " "
                   for c in text)
    if display_width(text) <= width:
        return text
    room = max(width - 3, 0)
    out, used = [], 0
    for c in text:
        w = _char_width(c)
        if used + w > room:
            break
        out.append(c)
        used += w
    return "".join(out) + "..."


def num(n: int) -> str:
    return f"{n:,}"


def _count(n: int, word: str) -> str:
    """"1 event", "2 events" (``word`` is the singular)."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def pct(p: float) -> str:
    return f"{p:.2f}%"


def when(ns: int) -> str:
    """2025-12-01T10:16:03.046Z -> 2025-12-01 10:16"""
    return format_ns(ns)[:16].replace("T", " ")


def _join_fitting(label: str, items: list[str], width: int, hidden: int = 0) -> str:
    """"label: a, b, c, +2 more" cut at whole items to fit ``width`` (``hidden``: items that
    were not given but exist)."""
    out = label
    for i, item in enumerate(items):
        sep = "" if i == 0 else ", "
        rest = len(items) - i - 1 + hidden
        more = f", +{rest} more" if rest else ""
        if display_width(out) + len(sep) + display_width(item) + len(more) > width:
            return out + (", " if i else "") + f"+{len(items) - i + hidden} more"
        out += sep + item
    if hidden:
        out += f"{', ' if items else ''}+{hidden} more"
    return out


def _wrap(indent: str, items: list[str], width: int) -> list[str]:
    """Items joined with ", " over as many lines as needed (an item too long is clipped)."""
    lines: list[str] = []
    cur = ""
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if cur and len(indent) + display_width(cur) + 1 + display_width(piece) > width:
            lines.append(indent + cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    if cur:
        lines.append(indent + cur)
    return lines


def _window(report: Report) -> str:
    since, until = report.since_ns, report.until_ns
    if since is None and until is None:
        return "all events"
    if until is None:
        return f"since {format_ns(since)}"  # type: ignore[arg-type]
    if since is None:
        return f"until {format_ns(until)} (excl.)"
    return f"{format_ns(since)} .. {format_ns(until)}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _error_rows(out: _Out, rows: tuple[ErrorRow, ...], code: str) -> None:
    if not rows:
        out.line("  (none)")
        return
    w = out.width
    for i, r in enumerate(rows, 1):
        prefix = f"{i:>3}. "
        out.line(prefix + clip(r.template, w - len(prefix)))
        count_text = num(r.count)
        events = "event" if r.count == 1 else "events"
        stats = clip(f"     {count_text} {events}, {_count(r.sessions, 'session')}, "
                     f"{when(r.first_seen_ns)} - {when(r.last_seen_ns)}", w)
        out.lines.append("     " + out.style(count_text, code) + stats[5 + len(count_text):])
        pages = [f"{p} {num(n)}" for p, n in r.pages]
        hidden = r.distinct_pages - len(r.pages)
        out.line(_join_fitting("     pages: ", pages, w, hidden))


def _bar_rows(out: _Out, rows: list[tuple[str, int]], total: int, label_width: int) -> None:
    w = out.width
    count_width = max([len(num(n)) for _, n in rows] + [5])
    bar_width = max(w - 2 - label_width - 2 - count_width - 2 - 7 - 2, 0)
    peak = max([n for _, n in rows] + [1])
    for label, n in rows:
        share = 100.0 * n / total if total else 0.0
        bar = "#" * (round(bar_width * n / peak) if n else 0)
        label = clip(label, label_width)
        label += " " * (label_width - display_width(label))
        text = (f"  {label}  {num(n):>{count_width}}  "
                f"{share:6.2f}%  ")
        out.lines.append((text + out.style(bar, _RED)).rstrip())


def render_text(report: Report, *, width: int = 80, color: bool = False) -> str:
    out = _Out(width, color)
    s = report.summary
    out.line("Telemetry report", _BOLD)
    out.line(f"  Window: {_window(report)} (times are UTC)")
    inputs = (f"  Input:  {_count(report.inputs.files, 'file')}, {_size(report.inputs.bytes)}, "
              f"{_count(s.lines, 'line')} ({num(s.blank_lines)} blank)")
    out.line(inputs)
    if s.events_outside_window:
        out.line(f"          {num(s.events_outside_window)} events outside the window not counted")

    out.heading("Summary")
    rows = [
        ("Events", num(s.events), ""),
        ("Errors", num(s.errors), f"{pct(s.errors_percent)} of events"),
        ("Warnings", num(s.warnings), f"{pct(s.warnings_percent)} of events"),
        ("Failed operations", num(s.failed_operations), ""),
        ("Sessions", num(s.sessions), ""),
        ("Sessions with errors", num(s.sessions_with_errors),
         f"{pct(s.sessions_with_errors_percent)} of sessions"),
        ("Error types", num(s.error_types), ""),
        ("Invalid lines", num(s.invalid_lines), ""),
    ]
    vw = max(len(v) for _, v, _ in rows)
    for label, value, note in rows:
        out.line(f"  {label:<22}{value:>{vw}}  {note}".rstrip())

    out.heading("Events by type")
    for text in _wrap("  ", [f"{t} {num(n)}" for t, n in report.events_by_type], width) or ["  (none)"]:
        out.line(text)
    if report.invalid_lines_by_reason:
        out.heading("Invalid lines by reason (counted whatever the window)")
        for text in _wrap("  ", [f"{r} {num(n)}" for r, n in report.invalid_lines_by_reason], width):
            out.line(text)

    out.heading(f"Top errors ({len(report.top_errors)} of {num(s.error_types)} types)")
    _error_rows(out, report.top_errors, _RED)
    out.heading(f"Top warnings ({len(report.top_warnings)} of {num(report.warning_types)} types)")
    _error_rows(out, report.top_warnings, _YELLOW)

    out.heading(f"Failed operations ({len(report.failed_operations)} of "
                f"{num(report.failed_operation_names)})")
    if not report.failed_operations:
        out.line("  (none)")
    for i, f in enumerate(report.failed_operations, 1):
        prefix = f"{i:>3}. "
        tail = f"  {_count(f.count, 'failure')}, {_count(f.sessions, 'session')}"
        out.line(prefix + clip(f.name, width - len(prefix) - len(tail)) + tail)
        out.line(_join_fitting("     reasons: ", [f"{r} {num(n)}" for r, n in f.reasons], width))

    out.heading("Errors by page")
    pages = list(report.errors_by_page)
    if not pages:
        out.line("  (none)")
    else:
        shown = pages[: report.top]
        _bar_rows(out, shown, s.errors, 28)
        if len(pages) > len(shown):
            rest = sum(n for _, n in pages[len(shown):])
            out.line(f"  ... {num(len(pages) - len(shown))} more pages, {num(rest)} errors")

    out.heading("Errors by hour of day (UTC)")
    if not s.errors:
        out.line("  (none)")
    else:
        _bar_rows(out, [(f"{h:02d}h", n) for h, n in enumerate(report.errors_by_hour)], s.errors, 3)
    return "\n".join(out.lines) + "\n"
