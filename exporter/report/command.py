"""`telemetry-exporter report [PATH ...]`: read telemetry files, print what went wrong.

Works with nothing else running: the files are scanned (in parallel worker processes for large
inputs) into one aggregation core, and the core is rendered as text, JSON or Markdown.

Time filter: ``--days``/``--since``/``--until`` select events by drift-corrected event time in
the half-open range [since, until). Invalid lines have no trustworthy time: they are all counted,
whatever the window (so are blank lines).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

from rich.console import Console
from rich.text import Text

from exporter.aggregation.core import Limits, Window
from exporter.aggregation.scan import ScanError, ScanOptions, make_fingerprinter, scan
from exporter.config import Config, ConfigError, load_config
from exporter.report.model import Inputs, build_report
from exporter.report.render_json import render_json
from exporter.report.render_markdown import render_markdown
from exporter.report.render_text import render_text
from exporter.sources.files import SourceError, discover

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S
FORMATS = ("text", "json", "markdown")
MAX_DAYS = 36_500        # --days: a century back is plenty (and stays a representable date)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class UsageError(Exception):
    """A bad command line: exit code 2."""


def parse_when(text: str, option: str) -> int:
    """An ISO 8601 date or date-time -> unix ns. A date is midnight UTC; a naive time is UTC."""
    value = text.strip()
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not an ISO date or time "
                         f"(e.g. 2025-12-20 or 2025-12-20T10:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def window_from_args(args: argparse.Namespace, now_ns: int) -> Window:
    days = getattr(args, "days", None)
    since_text = getattr(args, "since", None)
    until_text = getattr(args, "until", None)
    if days is not None and since_text is not None:
        raise UsageError("--days and --since cannot be used together")
    since = until = None
    if days is not None:
        if not 0 < days <= MAX_DAYS:   # NaN and infinities fail this too
            raise UsageError(f"--days: must be a number of days above 0 and at most {MAX_DAYS:,}, "
                             f"not {days:g}")
        since = now_ns - int(round(days * DAY_NS))
    if since_text is not None:
        since = parse_when(since_text, "--since")
    if until_text is not None:
        until = parse_when(until_text, "--until")
    if since is not None and until is not None and since >= until:
        raise UsageError("--since must be before --until")
    return Window(since, until)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _days(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of days: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `report` options, PATH included (files, directories or globs)."""
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="telemetry files, directories or globs (default: ./telemetry-logs, "
                             "or 'logs' from the config)")
    parser.add_argument("--days", type=_days, metavar="N",
                        help="only events of the last N days (event time >= now - N*24h; "
                             f"0 < N <= {MAX_DAYS})")
    parser.add_argument("--since", metavar="WHEN",
                        help="only events at or after WHEN (ISO date or time, UTC if no offset; "
                             "a date means 00:00Z)")
    parser.add_argument("--until", metavar="WHEN",
                        help="only events before WHEN (ISO date or time, excluded)")
    parser.add_argument("--top", type=_positive_int, default=10, metavar="N",
                        help="how many errors, warnings, operations and pages to list (default 10)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="output format (default text)")
    if "--config" not in parser._option_string_actions:  # exporter.cli adds the common settings
        parser.add_argument("--config", metavar="FILE", help="YAML configuration file")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes for large inputs (default: one per CPU; 1 = none)")


def _use_color(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _write(stream, text: str) -> None:
    """Write ``text`` as UTF-8 (to the byte buffer when there is one: a Windows pipe would
    otherwise encode it as cp1252 and fail on non-Latin text)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        buffer.write(text.encode("utf-8", "replace"))
        buffer.flush()
    else:
        stream.write(text)
        stream.flush()


def _write_colored(stream, text: str) -> None:
    """Write text with ANSI colours so that every terminal shows colours, not codes.

    Terminals that read ANSI codes (Linux, macOS, Windows Terminal, a Windows console in VT
    mode) get the text as is. A Windows console without VT mode would print the codes as
    garbage: rich (already a dependency) detects it and colours the same text through the
    Windows console API instead, without changing a character of the layout.
    """
    console = Console(file=stream, force_terminal=True, color_system="standard", soft_wrap=True,
                      highlight=False, markup=False, emoji=False)
    if console.legacy_windows:
        console.print(Text.from_ansi(text), end="")
    else:
        _write(stream, text)


def run(args: argparse.Namespace, cfg: Config | None = None) -> int:
    """Run `report`. 0 = ok, 1 = a file could not be read, 2 = usage error, 130 = Ctrl-C.

    ``cfg`` is the effective configuration when the caller (exporter.cli) built it already;
    otherwise it is loaded from ``args.config`` (and ``args.max_line_bytes`` if present)."""
    err = sys.stderr
    now_ns = time.time_ns()
    try:
        if cfg is None:
            cfg = load_config(getattr(args, "config", None),
                              flags={"max_line_bytes": getattr(args, "max_line_bytes", None)})
        window = window_from_args(args, now_ns)
        paths = getattr(args, "paths", None) or None
        files = discover(paths, default=cfg.logs, on_warning=lambda m: print(f"report: warning: {m}", file=err))
        make_fingerprinter(cfg.fingerprint_rules)   # bad rules: a usage error, before any work
    except (ConfigError, SourceError, UsageError, ValueError) as exc:
        print(f"report: error: {exc}", file=err)
        return 2
    options = ScanOptions(max_line_bytes=cfg.max_line_bytes,
                          fingerprint_rules=tuple(cfg.fingerprint_rules),
                          limits=Limits(), window=window)
    try:
        result = scan(files, options, workers=getattr(args, "workers", None))
    except (ScanError, OSError) as exc:  # unreadable file, corrupt or truncated gzip
        print(f"report: error: cannot read {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print("report: interrupted", file=err)
        return 130
    report = build_report(result.core, top=getattr(args, "top", 10) or 10, generated_at_ns=now_ns,
                          inputs=Inputs(files=result.files, bytes=result.bytes))
    fmt = getattr(args, "format", "text") or "text"
    out = sys.stdout
    color = fmt == "text" and _use_color(out)
    if fmt == "json":
        text = render_json(report)
    elif fmt == "markdown":
        text = render_markdown(report)
    else:
        text = render_text(report, width=80, color=color)
    try:
        if color:
            _write_colored(out, text)
        else:
            _write(out, text)
    except BrokenPipeError:  # `report | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
    return 0
