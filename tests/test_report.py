"""`report`: exact numbers on a generated corpus, time window, the three formats, CLI errors."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import unicodedata
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from markdown_it import MarkdownIt   # a dependency of rich: a CommonMark + GFM tables parser

from benchmarks.generate_corpus import generate
from exporter.aggregation import Aggregator
from exporter.aggregation.scan import ScanOptions, make_fingerprinter, scan
from exporter.report import command
from exporter.report.model import build_report
from exporter.report.render_json import report_dict
from exporter.report.render_markdown import code, render_markdown
from exporter.report.render_text import render_text
from tests.recount import session_id, walk

MAX_LINE = 256 * 1024
BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------------------- helpers

def run_report(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    code = command.run(parser.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return code, out, err


def report_json(capsys, *argv: str) -> dict:
    code, out, err = run_report(capsys, *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def line(type_="error", ts="2025-12-20T10:00:00.000Z", sid="s1", url="https://x/app/#/quiz",
         **data) -> str:
    obj = {"type": type_, "timestamp": ts, "url": url, "data": data}
    if sid is not None:
        obj["sessionId"] = sid
    return json.dumps(obj, ensure_ascii=False)


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c)
               else 1 for c in text)


# ---------------------------------------------------------------------------- the corpus

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus")
    manifest = generate(out, days=6, events=6000, seed=11, junk_rate=0.01, gzip_days=1,
                        long_lines=True)
    return out, manifest


def recount(directory: Path) -> dict:
    """An independent count, straight from the bytes with json.loads (no project code): the
    summary numbers. Error types are the generator's ground truth (see test below)."""
    c = {"by_type": Counter(), "invalid": Counter(), "blank": 0, "errors": 0, "warnings": 0,
         "failed": Counter(), "sessions": set(), "error_sessions": set(), "lines": 0}
    for _path, _line, kind, obj in walk(directory):
        c["lines"] += 1
        if kind == "blank":
            c["blank"] += 1
        elif kind == "invalid":
            c["invalid"][obj] += 1
        else:
            t = obj["type"]
            c["by_type"][t if t in ("error", "log", "metric", "vital", "event") else "other"] += 1
            sid = session_id(obj.get("sessionId"))
            if sid is not None:
                c["sessions"].add(sid)
            data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
            if t == "error":
                c["errors"] += 1
                if sid is not None:
                    c["error_sessions"].add(sid)
            elif t == "log" and str(data.get("level", "")).lower() in ("warn", "warning"):
                c["warnings"] += 1
            elif t == "metric" and data.get("status") == "error":
                c["failed"][data.get("name")] += 1
    return c


def test_exact_numbers_vs_manifest_and_recount(corpus, capsys):
    directory, m = corpus
    r = report_json(capsys, str(directory), "--top", "1000")
    s = r["summary"]
    c = recount(directory)
    # the generator's ground truth
    assert s["events"] == m["events_total"]
    assert r["events_by_type"] == {k: v for k, v in m["events_by_type"].items() if v}
    assert r["invalid_lines_by_reason"] == {k: v for k, v in m["invalid_by_reason"].items() if v}
    assert set(m["invalid_by_reason"]) == set(r["invalid_lines_by_reason"])  # every reason seen
    assert s["invalid_lines"] == m["invalid_total"]
    assert r["inputs"]["blank_lines"] == m["blank_lines"]
    assert r["inputs"]["lines"] == m["total_lines"]
    assert r["inputs"]["files"] == len(m["files"])
    assert s["errors"] == m["errors"] and s["warnings"] == m["warnings"]
    assert s["failed_operations"] == m["failed_operations"]["total"]
    assert {f["name"]: f["count"] for f in r["failed_operations"]} == m["failed_operations"]["by_name"]
    reasons = Counter()
    for f in r["failed_operations"]:
        for x in f["reasons"]:
            reasons[x["reason"]] += x["count"]
    assert dict(reasons) == m["failed_operations"]["by_reason"]
    assert s["sessions"] == m["sessions"]
    assert s["sessions_with_errors"] == m["sessions_with_errors"]
    # the independent recount
    assert r["events_by_type"] == dict(c["by_type"])
    assert r["invalid_lines_by_reason"] == dict(c["invalid"])
    assert r["inputs"]["blank_lines"] == c["blank"] and r["inputs"]["lines"] == c["lines"]
    assert (s["errors"], s["warnings"]) == (c["errors"], c["warnings"])
    assert {f["name"]: f["count"] for f in r["failed_operations"]} == dict(c["failed"])
    assert s["sessions"] == len(c["sessions"])
    assert s["sessions_with_errors"] == len(c["error_sessions"])
    # internal consistency
    assert sum(x["count"] for x in r["errors_by_page"]) == s["errors"]
    assert sum(x["count"] for x in r["errors_by_hour"]) == s["errors"]
    assert all(e["example"] in m["error_messages"] for e in r["top_errors"])
    assert sum(r["events_by_type"].values()) == s["events"]


@pytest.mark.parametrize("kind", ["error", "warning"])
def test_error_and_warning_types_are_the_generators_ground_truth(corpus, capsys, kind):
    """One report type per true type, with its exact count and sessions: a fingerprint that
    splits a type (a hash read as a number) or merges two ('map' and 'filter') fails here."""
    directory, m = corpus
    r = report_json(capsys, str(directory), "--top", "1000")
    rows = r["top_errors"] if kind == "error" else r["top_warnings"]
    truth, type_of = m[f"{kind}_types"], m[f"{kind}_type_of_message"]
    assert len(truth) >= (40 if kind == "error" else 10)    # the corpus has many types
    found = {}
    for row in rows:
        true_type = type_of[row["example"]]
        assert true_type not in found, f"{true_type!r} split: {found.get(true_type)!r} and {row['template']!r}"
        found[true_type] = row["template"]
        assert (row["count"], row["sessions"]) == (truth[true_type]["count"], truth[true_type]["sessions"]), true_type
    assert set(found) == set(truth)
    assert r["summary"]["error_types" if kind == "error" else "warning_types"] == len(truth)


def test_parallel_scan_equals_single_pass_on_corpus(corpus):
    directory, m = corpus
    files = sorted(p for p in directory.glob("telemetry-*.jsonl*"))
    one = scan(files, ScanOptions(), workers=1)
    many = scan(files, ScanOptions(), workers=2, chunk_bytes=200_000, in_process_below=0)
    assert many.workers == 2 and many.tasks > len(files)
    a, b = one.core.to_state(), many.core.to_state()
    for st in a["error_types"] + b["error_types"]:
        st.pop("regressed_ts")  # depends on arrival order across the split (see core docstring)
    assert a == b
    assert one.core.events == m["events_total"]


# ---------------------------------------------------------------------------- time window

@pytest.fixture
def window_files(tmp_path) -> Path:
    lines = [
        line(ts="2025-12-19T23:59:59.999Z", sid="before", message="early"),
        line(ts="2025-12-20T00:00:00.000Z", sid="at-since", message="a"),
        line(ts="2025-12-20T12:00:00.000Z", sid="middle", message="a"),
        line(ts="2025-12-20T23:59:59.999Z", sid="last-in", message="a"),
        line(ts="2025-12-21T00:00:00.000Z", sid="at-until", message="late"),
        "{broken",
        "",
    ]
    write(tmp_path / "logs" / "telemetry-2025-12-20.jsonl", lines)
    return tmp_path / "logs"


def test_since_until_half_open(window_files, capsys):
    r = report_json(capsys, str(window_files), "--since", "2025-12-20", "--until", "2025-12-21")
    assert r["summary"]["events"] == 3 and r["summary"]["errors"] == 3
    assert r["summary"]["sessions"] == 3
    assert r["inputs"]["events_outside_window"] == 2
    assert r["summary"]["invalid_lines"] == 1          # invalid lines: always counted
    assert r["window"] == {"since": "2025-12-20T00:00:00.000Z", "until": "2025-12-21T00:00:00.000Z"}
    assert [e["template"] for e in r["top_errors"]] == ["a"]
    assert r["top_errors"][0]["first_seen"] == "2025-12-20T00:00:00.000Z"
    assert r["top_errors"][0]["last_seen"] == "2025-12-20T23:59:59.999Z"


def test_since_and_until_accept_times_and_offsets(window_files, capsys):
    r = report_json(capsys, str(window_files), "--since", "2025-12-20T12:00:00Z")
    assert r["summary"]["events"] == 3       # middle, last-in, at-until
    r = report_json(capsys, str(window_files), "--until", "2025-12-20T13:00:00+01:00")
    assert r["summary"]["events"] == 2       # before, at-since (12:00Z is excluded)
    r = report_json(capsys, str(window_files), "--since", "2025-12-20T12:00:00")  # naive = UTC
    assert r["summary"]["events"] == 3


def test_days_counts_back_from_now(tmp_path, capsys):
    now = datetime.now(timezone.utc).timestamp()
    stamp = lambda days_ago: datetime.fromtimestamp(now - days_ago * 86400, timezone.utc).isoformat()  # noqa: E731
    write(tmp_path / "telemetry-x.jsonl", [line(ts=stamp(1), sid="new"), line(ts=stamp(3), sid="old"),
                                           line(ts=stamp(-0.001), sid="future")])
    r = report_json(capsys, str(tmp_path), "--days", "2")
    assert r["summary"]["events"] == 2 and r["summary"]["sessions"] == 2
    assert r["window"]["until"] is None


# ---------------------------------------------------------------------------- formats

@pytest.fixture
def tricky_files(tmp_path) -> Path:
    long_msg = "Very long error message " + "with many words " * 30
    lines = [
        line(message="Bad `value` | other column", sid="a", url="https://x/#/a|b"),
        line(message="Bad `value` | other column", sid="b"),
        line(message="Template with ``` fence inside", sid="a"),
        line(message="Template with ``` fence inside", sid="a"),
        line(message=long_msg, sid="c", url="https://x/#/" + "deep/" * 40),
        line(message="クイズの読み込みに失敗しました、もう一度お試しください。" * 5, sid="d"),
        line("log", level="warn", message="slow | network", sid="a"),
        line("metric", name="save_quiz", status="error", error="timeout", sid="a"),
        line("metric", name="save_quiz", status="error", sid="b"),
        line("custom", sid="z"),
    ]
    lines += [line(message=f"Distinct {c} thing", url=f"https://x/#/page{c}") for c in "abcdefghijklmn"]
    return write(tmp_path / "telemetry-2025-12-20.jsonl", lines).parent


def test_json_schema_keys_and_types(tricky_files, capsys):
    r = report_json(capsys, str(tricky_files))
    assert list(r) == ["schema_version", "generated_at", "window", "inputs", "summary",
                       "events_by_type", "top_errors", "top_warnings", "failed_operations",
                       "errors_by_page", "errors_by_hour", "invalid_lines_by_reason"]
    assert r["schema_version"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["generated_at"])
    for key in ("events", "errors", "warnings", "failed_operations", "sessions",
                "sessions_with_errors", "error_types", "invalid_lines"):
        assert type(r["summary"][key]) is int, key
    assert r["events_by_type"] == {"error": 20, "log": 1, "metric": 2, "other": 1}
    assert len(r["top_errors"]) == 10 and r["summary"]["error_types"] == 18
    e = r["top_errors"][0]
    assert list(e) == ["error_type", "template", "example", "count", "sessions", "first_seen",
                       "last_seen", "pages", "distinct_pages", "hours", "discovered_at",
                       "regressed_at"]
    assert re.fullmatch(r"[0-9a-f]{12}", e["error_type"])
    assert e["template"] == "Bad `value` | other column" and e["count"] == 2 and e["sessions"] == 2
    assert e["pages"] == [{"page": "#/a|b", "count": 1}, {"page": "#/quiz", "count": 1}]
    assert len(e["hours"]) == 24 and e["hours"][10] == 2
    assert e["first_seen"] == "2025-12-20T10:00:00.000Z"
    f = r["failed_operations"][0]
    assert f["name"] == "save_quiz" and f["count"] == 2 and f["sessions"] == 2
    assert {x["reason"] for x in f["reasons"]} == {"timeout", "<no reason>"}
    assert r["top_warnings"][0]["template"] == "slow | network"
    assert [h["hour"] for h in r["errors_by_hour"]] == list(range(24))
    assert r["invalid_lines_by_reason"] == {}


GFM = MarkdownIt("commonmark").enable("table")


def table_rows(markdown: str, header: str) -> list[list[list]]:
    """The body rows of the table whose first header cell is ``header``: per row, per cell,
    the inline tokens (as GitHub's parser reads them: cells are split before code spans)."""
    tokens = GFM.parse(markdown)
    rows, in_table, row = [], False, None
    for i, t in enumerate(tokens):
        if t.type == "table_open":
            in_table = tokens[i + 3].type == "th_open" and tokens[i + 4].content == header
        elif in_table and t.type == "tbody_open":
            rows = []
        elif in_table and t.type == "tr_open":
            row = []
        elif in_table and t.type == "inline" and row is not None:
            row.append(t.children or [])
        elif in_table and t.type == "tr_close":
            rows.append(row)
            row = None
        elif t.type == "table_close" and in_table:
            return rows
    raise AssertionError(f"no table with header {header!r}")


def code_text(children: list) -> str:
    """The cell is exactly one code span: its text."""
    assert [c.type for c in children] == ["code_inline"], [(c.type, c.content) for c in children]
    return children[0].content


def test_markdown_table_and_escaping(tricky_files, capsys):
    code_, out, _ = run_report(capsys, str(tricky_files), "--format", "markdown", "--top", "3")
    assert code_ == 0
    assert out.startswith("## Telemetry report")
    errors = table_rows(out, "#")
    assert len(errors) == 3 and all(len(r) == 7 for r in errors)   # no stray cell separator
    assert [code_text(r[1]) for r in errors[:2]] == ["Bad `value` | other column",
                                                     "Template with ``` fence inside"]
    assert code_text(errors[0][6][:1]) == "#/a|b"       # the page keeps its pipe too
    assert out.count("<details>") == 3 and out.count("</details>") == 3
    assert "````text\nTemplate with ``` fence inside\n````" in out
    assert "- **Errors:** 20" in out
    ops = table_rows(out, "Operation")
    assert [code_text(r[0]) for r in ops] == ["save_quiz"]


@pytest.mark.parametrize("text", [
    "a|b", "`x`", "Template with ``` fence inside", "ends with `", "` starts", "a\\|b \\",
    "@sentry/browser failed, see #123", "<b>bold</b> &amp; *star* _u_ [l](x)", "line1\nline2",
    "|", "``",
])
def test_code_spans_survive_a_table_cell(text):
    """What GitHub shows in the cell is the text (whitespace collapsed), as code."""
    rows = table_rows(f"| x |\n|---|\n| {code(text)} |\n", "x")
    assert code_text(rows[0][0]) == " ".join(text.split())


def test_markdown_neutralises_mentions_and_issue_references(tmp_path, capsys):
    """A pasted report pings nobody and links no issue: every @name and #123 that comes from
    the data is inside code (a table cell's code span or the summary's <code>)."""
    write(tmp_path / "telemetry-2025-12-20.jsonl", [
        line(message="@sentry/browser init failed, see #123", url="https://x/#/team/@me"),
        line(message="@sentry/browser init failed, see #456"),
        line(message="Fixes #7 by @octocat | cc @org/team"),
        line("log", level="warn", message="@here #99 slow"),
        line("metric", name="@ops/sync #42", status="error", error="ping @oncall re #5"),
    ])
    code_, out, _ = run_report(capsys, str(tmp_path), "--format", "markdown")
    assert code_ == 0
    html_out = GFM.render(out)
    outside_code = re.sub(r"<code>.*?</code>|<pre>.*?</pre>", "", html_out, flags=re.S)
    assert "@" not in outside_code
    assert not re.search(r"#\d", outside_code)
    # and nothing was lost: the templates are there, in code
    errors = table_rows(out, "#")
    assert {code_text(r[1]) for r in errors} == {"@sentry/browser init failed, see #<int>",
                                                 "Fixes #<int> by @octocat | cc @org/team"}
    assert "<summary><b>1. <code>@sentry/browser init failed, see #&lt;int&gt;</code></b>" in out


def test_text_fits_80_columns_and_has_no_ansi_when_piped(tricky_files, capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run_report(capsys, str(tricky_files))
    assert code == 0
    assert "\x1b" not in out                       # captured stdout is not a TTY
    assert max(width(ln) for ln in out.splitlines()) <= 80
    for heading in ("Summary", "Top errors", "Top warnings", "Failed operations",
                    "Errors by page", "Errors by hour of day (UTC)"):
        assert heading in out.splitlines() or any(ln.startswith(heading) for ln in out.splitlines())
    assert "Sessions with errors" in out and "Invalid lines" in out


class FakeTTY(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()

    def isatty(self) -> bool:
        return True


def run_on_tty(monkeypatch, directory: Path, *, no_color: bool) -> FakeTTY:
    """`report DIRECTORY` with stdout on a (fake) terminal; TERM unset, NO_COLOR as asked."""
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([str(directory)])
    monkeypatch.delenv("TERM", raising=False)
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    tty = FakeTTY()
    monkeypatch.setattr("sys.stdout", tty)
    assert command.run(args) == 0
    return tty


def test_colour_only_on_a_tty_and_never_with_no_color(tricky_files, monkeypatch):
    coloured = run_on_tty(monkeypatch, tricky_files, no_color=False).buffer.getvalue().decode()
    assert "\x1b[" in coloured
    plain = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert max(width(ln) for ln in plain.splitlines()) <= 80
    assert "\x1b" not in run_on_tty(monkeypatch, tricky_files, no_color=True).buffer.getvalue().decode()


def test_colour_on_a_windows_console_without_vt_mode_goes_through_rich(tricky_files, monkeypatch):
    """Such a console prints ANSI codes as garbage: rich colours the text with the console API
    instead. Here (not Windows) rich writes what it would colour as ANSI, so we can check that
    it is the same report, character for character, and still coloured."""
    import rich.console

    plain = run_on_tty(monkeypatch, tricky_files, no_color=True).buffer.getvalue().decode()
    monkeypatch.setattr(rich.console, "detect_legacy_windows", lambda: True)
    tty = run_on_tty(monkeypatch, tricky_files, no_color=False)
    assert tty.buffer.getvalue() == b""                 # nothing went around rich
    through_rich = tty.getvalue()
    assert "\x1b[" in through_rich
    assert re.sub(r"\x1b\[[0-9;]*m", "", through_rich) == plain


def test_renderers_are_pure_functions(tricky_files):
    core = Aggregator(make_fingerprinter())
    for p in tricky_files.glob("*.jsonl"):
        for raw in p.read_bytes().splitlines():
            core.add_line(raw)
    rep = build_report(core, top=5)
    assert render_text(rep) == render_text(rep)
    assert "\x1b[" in render_text(rep, color=True)
    assert max(width(ln) for ln in render_text(rep, width=60).splitlines()) <= 60
    assert report_dict(rep)["summary"]["errors"] == 20
    assert render_markdown(rep).count("<details>") == 5


# ---------------------------------------------------------------------------- edge cases

def test_empty_input(tmp_path, capsys):
    write(tmp_path / "telemetry-2025-12-20.jsonl", ["", "   ", ""])
    (tmp_path / "telemetry-2025-12-21.jsonl").write_bytes(b"")
    r = report_json(capsys, str(tmp_path))
    assert all(v == 0 for k, v in r["summary"].items()), r["summary"]
    assert r["inputs"]["blank_lines"] == 3 and r["inputs"]["files"] == 2
    assert r["top_errors"] == [] and r["errors_by_page"] == []
    assert r["errors_by_hour"] == [{"hour": h, "count": 0} for h in range(24)]
    for fmt in ("text", "markdown"):
        code, out, _ = run_report(capsys, str(tmp_path), "--format", fmt)
        assert code == 0 and out


def test_missing_empty_and_blank_session_ids_are_not_sessions(tmp_path, capsys):
    write(tmp_path / "telemetry-1.jsonl", [
        line(sid=None), line(sid=""), json.dumps({"type": "error", "sessionId": None,
                                                  "timestamp": "2025-12-20T10:00:00Z"}),
        line(sid="   "), line(sid="\t"), line(sid="\u3000"),   # whitespace only (an ideographic space too)
        line(sid="real"),
    ])
    r = report_json(capsys, str(tmp_path))
    assert r["summary"]["errors"] == 7
    assert r["summary"]["sessions"] == 1 and r["summary"]["sessions_with_errors"] == 1
    assert r["top_errors"][0]["sessions"] == 1


def test_numeric_session_ids_count_as_their_text(tmp_path, capsys):
    # The documented rule: a number is the session of its decimal text, so 42 and "42" are one.
    write(tmp_path / "telemetry-1.jsonl", [
        line(sid=42), line(sid="42"), line("log", sid=4.5, level="info", message="hi"),
        line("log", sid=True, level="info", message="a boolean is no session"),
    ])
    r = report_json(capsys, str(tmp_path))
    assert r["summary"]["sessions"] == 2                      # "42" and "4.5"
    assert r["summary"]["sessions_with_errors"] == 1          # "42"
    assert r["top_errors"][0]["count"] == 2 and r["top_errors"][0]["sessions"] == 1
    c = recount(tmp_path)                                      # the independent reader agrees
    assert (len(c["sessions"]), len(c["error_sessions"])) == (2, 1)


@pytest.mark.parametrize("argv, message", [
    (["--since", "yesterday"], "--since"),
    (["--until", "2025-13-45"], "--until"),
    (["--since", "2025-12-21", "--until", "2025-12-20"], "before"),
    (["--days", "2", "--since", "2025-12-20"], "--days"),
    (["--days", "0"], "--days"),
    (["--days", "-2"], "--days"),
    (["--days", "inf"], "--days"),          # was an OverflowError traceback
    (["--days", "1e308"], "--days"),
    (["--days", "nan"], "--days"),
    (["--days", "100000"], "at most 36,500"),   # a 1753 start: OSError on Windows
])
def test_usage_errors_exit_2(window_files, capsys, argv, message):
    code, out, err = run_report(capsys, str(window_files), *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_days_up_to_a_century_and_old_dates_are_written_in_full(window_files, capsys):
    r = report_json(capsys, str(window_files), "--days", "36500")
    assert r["summary"]["events"] == 5
    century_ago = datetime.now(timezone.utc).year - 100
    assert int(r["window"]["since"][:4]) in (century_ago - 1, century_ago)
    r = report_json(capsys, str(window_files), "--since", "0001-01-01", "--until", "1969-12-31T23:59:59.5Z")
    assert r["window"] == {"since": "0001-01-01T00:00:00.000Z", "until": "1969-12-31T23:59:59.500Z"}
    assert r["summary"]["events"] == 0
    for fmt in ("text", "markdown"):
        code, out, _ = run_report(capsys, str(window_files), "--since", "1753-01-01", "--format", fmt)
        assert code == 0 and "1753-01-01T00:00:00.000Z" in out


def test_path_matching_nothing_exits_2(tmp_path, capsys):
    code, out, err = run_report(capsys, str(tmp_path / "nope"))
    assert code == 2 and err.count("\n") == 1 and "nope" in err
    code, _, err = run_report(capsys, str(tmp_path / "*.jsonl"))
    assert code == 2


def test_through_the_cli(window_files, capsys):
    from exporter.cli import main

    assert main(["report", str(window_files), "--format", "json", "--since", "2025-12-20"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["summary"]["events"] == 4
    assert main(["report", str(window_files), "--since", "bad"]) == 2


def test_config_fingerprint_rules_and_max_line_bytes(tmp_path, capsys):
    write(tmp_path / "logs" / "telemetry-1.jsonl", [
        line(message="Loading chunk 12 failed"), line(message="Loading chunk 99 failed"),
        line(message="x" * 300),
    ])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_line_bytes: 250\nfingerprint:\n  rules:\n"
                   "    - match: 'Loading chunk'\n      group: 'Chunk load failures'\n")
    r = report_json(capsys, str(tmp_path / "logs"), "--config", str(cfg))
    assert [e["template"] for e in r["top_errors"]] == ["Chunk load failures"]
    assert r["invalid_lines_by_reason"] == {"too_long": 1}
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense_key: 1\n")
    code, _, err = run_report(capsys, str(tmp_path / "logs"), "--config", str(bad))
    assert code == 2 and err.count("\n") == 1
    bad.write_text("fingerprint:\n  rules:\n    - match: '('\n      group: x\n")
    code, _, err = run_report(capsys, str(tmp_path / "logs"), "--config", str(bad))
    assert code == 2 and err.count("\n") == 1 and "rule" in err


def test_truncated_gzip_exits_1_naming_the_file(tmp_path, capsys):
    data = gzip.compress(("\n".join(line(message=f"m{i}") for i in range(2000)) + "\n").encode())
    (tmp_path / "telemetry-2025-12-20.jsonl.gz").write_bytes(data[: len(data) // 2])
    code, out, err = run_report(capsys, str(tmp_path))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "telemetry-2025-12-20.jsonl.gz" in err
