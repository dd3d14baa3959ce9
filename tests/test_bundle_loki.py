"""Every LogQL query of the bundle, run on a real Loki over an imported corpus, gives the report's numbers.

    docker compose -f docker-compose.telemetry.yml up -d loki      # the bundle's Loki config
    LOKI_URL=http://127.0.0.1:3100 python -m pytest -q tests/test_bundle_loki.py

When LOKI_URL is set (skipped otherwise), the module:

1. generates a corpus dated up to yesterday (recent, so inside any Loki's reject_old_samples
   window; not today, whose receive times would partly lie in the future and be refused as too
   new), and computes `telemetry-exporter report --format json` on it;
2. imports it under a fresh `app` label (`import --flush`), asserts Loki rejected nothing, then
   POSTs /flush again and polls until Loki's count for the app equals the report's event count
   (imported history is invisible until the ingester flushes, loki-behaviour.md);
3. extracts every LogQL expression of the dashboards (panel targets, from the JSON) and the alert
   rules, substitutes the variables as Grafana would ($app = the fresh label, $error_type = All,
   $__range = the corpus' whole time range, $__auto = the range query's step), runs each through
   Loki's HTTP API (instant queries at the end of the range, range queries over it, the logs
   panel as a log query) and compares with the report: events, errors, warnings, failed
   operations, sessions, sessions with errors and the percentages; events by type; per error
   type counts, sessions, first and last seen (errors and warnings); failed operations by
   operation; errors by page (count and share) and by hour (all 24 hours); the time series
   panels summed over their steps; the recent error lines. Two numbers the report does not
   print come from importing the same files into the Loki emulator (the exporter's own intent):
   how many entries carry `event_time` (re-timed) and which error_type each failed operation has.
   The alert rules' queries look at the last minutes of every app: they only have to succeed.

Response formats: Loki's documented HTTP API (`/loki/api/v1/query`, `query_range`,
`label/<name>/values`), as recorded in shared/reference/loki-recordings.jsonl: `{"status":
"success", "data": {"resultType": "vector" | "matrix" | "streams", "result": [...]}}`.

The same harness also runs, always, against the Loki emulator for the queries the emulator
understands (it implements no parser stages: "Events by type" and "Events over time by type"),
so its import, flush, polling, query and comparison code is exercised on every run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tests import bundle_queries as bq

ROOT = bq.ROOT
LIMIT_LINES = 1000          # the Loki datasource's maxLines (grafana/provisioning/datasources)
STEP_S = 3600               # $__auto of the time series panels, and the range queries' step


@dataclass
class Corpus:
    directory: Path
    report: dict
    app: str
    start: float            # the time range: every Loki timestamp of the corpus lies within
    end: float
    facts: dict = field(default_factory=dict)   # from the emulator import: retimed, op_of_type

    @property
    def range_s(self) -> int:
        return int(math.ceil(self.end - self.start))


def make_corpus(directory: Path, app: str, events: int = 3000) -> Corpus:
    from benchmarks.generate_corpus import generate
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date()
    days = 3
    generate(directory, days=days, events=events, end_date=yesterday, seed=4242)
    (directory / "manifest.json").unlink(missing_ok=True)
    report = json.loads(subprocess.run(
        [sys.executable, "-m", "exporter", "report", str(directory), "--format", "json", "--top", "100000"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout)
    first_day = datetime.combine(yesterday - timedelta(days=days - 1), datetime.min.time(), timezone.utc)
    # Loki timestamps lie within [first receive time - 15 min, last receive time + 1 min]
    return Corpus(directory, report, app, start=first_day.timestamp() - 3600, end=time.time())


def import_corpus(corpus: Corpus, url: str, state: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "LOKI_URL"}
    done = subprocess.run([sys.executable, "-m", "exporter", "import", str(corpus.directory), "--loki-url", url,
                           "--app", corpus.app, "--state-dir", str(state), "-q", "--flush"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr   # 1: the corpus has junk lines
    assert "rejected by Loki   0" in done.stdout, done.stdout
    return done.stdout


def emulator_facts(corpus: Corpus, tmp: Path) -> dict:
    """What the exporter sends for these files, read back from the Loki emulator."""
    from tests.loki_emulator import LokiEmulator
    emu = LokiEmulator(reject_old_samples=False).start()
    try:
        import_corpus(corpus, emu.url, tmp / "emulator-state")
        entries = emu.entries(app=corpus.app)
    finally:
        emu.stop()
    op_of_type = {}
    for e in entries:
        if e.labels.get("type") == "metric" and e.metadata.get("error_type"):
            op_of_type[e.metadata["error_type"]] = json.loads(e.line)["data"]["name"]
    return {"entries": len(entries), "retimed": sum(1 for e in entries if "event_time" in e.metadata),
            "op_of_type": op_of_type}


class Loki:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.headers = {"X-Scope-OrgID": os.environ["LOKI_TENANT"]} if os.environ.get("LOKI_TENANT") else {}
        self.http = httpx.Client(timeout=180, headers=self.headers)

    def get(self, path: str, **params) -> httpx.Response:
        return self.http.get(self.url + path, params=params)

    def flush(self) -> None:
        self.http.post(self.url + "/flush")

    def data(self, resp: httpx.Response, what: str) -> dict:
        hint = (" (the bundle's Loki allows more series: loki/loki-config.yaml max_query_series)"
                if "series" in resp.text and "max" in resp.text else "")
        assert resp.status_code == 200, f"{what}: {resp.status_code} {resp.text[:500]}{hint}"
        body = resp.json()
        assert body["status"] == "success", f"{what}: {body}"
        return body["data"]

    def instant(self, expr: str, at: float) -> list[dict]:
        data = self.data(self.get("/loki/api/v1/query", query=expr, time=f"{at:.3f}"), expr)
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        return data["result"]

    def range(self, expr: str, start: float, end: float, step: int) -> list[dict]:
        data = self.data(self.get("/loki/api/v1/query_range", query=expr, start=f"{start:.3f}",
                                  end=f"{end:.3f}", step=str(step)), expr)
        assert data["resultType"] == "matrix", f"{expr}: {data['resultType']}"
        return data["result"]

    def logs(self, expr: str, start: float, end: float, limit: int) -> list[dict]:
        data = self.data(self.get("/loki/api/v1/query_range", query=expr, start=str(int(start * 1e9)),
                                  end=str(int(end * 1e9)), limit=str(limit), direction="backward"), expr)
        assert data["resultType"] == "streams", f"{expr}: {data['resultType']}"
        return data["result"]

    def count(self, app: str, corpus: Corpus) -> int:
        result = self.instant(f'sum(count_over_time({{app="{app}"}}[{corpus.range_s}s]))', corpus.end)
        return int(float(result[0]["value"][1])) if result else 0


def wait_visible(loki: Loki, corpus: Corpus, timeout: float = 180) -> None:
    """Flush, then poll until Loki counts every event of the corpus (twice in a row)."""
    want = corpus.report["summary"]["events"]
    deadline, seen, last_flush = time.monotonic() + timeout, [], 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - last_flush > 10:
            loki.flush()
            last_flush = time.monotonic()
        seen.append(loki.count(corpus.app, corpus))
        if seen[-2:] == [want, want]:
            return
        time.sleep(2)
    raise AssertionError(f"Loki counts {seen[-5:]} entries for app {corpus.app}, the report {want}")


# ----------------------------------------------------------------------------------------------
# What each dashboard query must return, from the report (and the emulator facts)
# ----------------------------------------------------------------------------------------------
def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def expected(corpus: Corpus) -> dict[tuple[str, str], tuple[tuple[str, ...], dict]]:
    """(panel title, refId) -> (label names, {label values: value}); () labels = one number."""
    r, s = corpus.report, corpus.report["summary"]
    facts = corpus.facts
    def per(rows, key):
        # a type whose events carry no session has no series in a per-session count: leave it out
        return {(row["error_type"],): (_ms(row[key]) if "seen" in key else row[key])
                for row in rows if not (key == "sessions" and row[key] == 0)}
    ops = {f["name"]: f for f in r["failed_operations"]}
    op_types = {et: name for et, name in facts.get("op_of_type", {}).items() if name in ops}
    pages = {(p["page"],): p["count"] for p in r["errors_by_page"]}
    one = lambda v: ((), {(): v})
    out = {
        ("Events", "A"): one(s["events"]),
        ("Errors", "A"): one(s["errors"]),
        ("Errors %", "A"): one(100 * s["errors"] / s["events"]),
        ("Warnings", "A"): one(s["warnings"]),
        ("Warnings %", "A"): one(100 * s["warnings"] / s["events"]),
        ("Failed operations", "A"): one(s["failed_operations"]),
        ("Sessions", "A"): one(s["sessions"]),
        ("Sessions with errors", "A"): one(s["sessions_with_errors"]),
        ("Sessions with errors %", "A"): one(100 * s["sessions_with_errors"] / s["sessions"]),
        ("Error types", "A"): one(s["error_types"]),
        ("Events by type", "A"): (("type",), {(t,): n for t, n in r["events_by_type"].items() if n}),
        ("Events over time by type", "A"): (("type",), {(t,): n for t, n in r["events_by_type"].items() if n}),
        ("Errors by page", "COUNT"): (("page",), pages),
        ("Errors by page", "PERCENT"): (("page",), {k: 100 * n / s["errors"] for k, n in pages.items()}),
        ("Errors by hour of day (UTC)", "A"): (("hour",), {(f"{h['hour']:02d}",): h["count"]
                                                           for h in r["errors_by_hour"]}),
        ("Errors over time by error type", "A"): (("error_type",), per(r["top_errors"], "count")),
        ("Warnings and failed operations over time", "A"): one(s["warnings"]),
        ("Warnings and failed operations over time", "B"): (("operation",), {(n,): f["count"] for n, f in ops.items()}),
        ("Failure reasons", "A"): (("operation",), {(n,): f["count"] for n, f in ops.items()}),   # summed over reasons
    }
    for title, rows in (("Top errors", r["top_errors"]), ("Top warnings", r["top_warnings"])):
        for ref, key in (("COUNT", "count"), ("SESSIONS", "sessions"), ("FIRST", "first_seen"), ("LAST", "last_seen")):
            out[(title, ref)] = (("error_type",), per(rows, key))
    if "retimed" in facts:
        out[("Re-timed events (late/skewed)", "A")] = one(facts["retimed"])
    if op_types:
        out[("Failed operations", "COUNT")] = (("error_type",), {(et,): ops[n]["count"] for et, n in op_types.items()})
        out[("Failed operations", "SESSIONS")] = (("error_type",), {(et,): ops[n]["sessions"] for et, n in op_types.items()
                                                                   if ops[n]["sessions"]})
    return out


TOP_K = {("Errors by page", "COUNT"): 20, ("Failure reasons", "A"): 20}


def substitute(q: bq.Query, corpus: Corpus) -> str:
    return bq.substitute(q.expr, {"app": corpus.app, "error_type": ".*", "__range": f"{corpus.range_s}s",
                                  "__auto": f"{STEP_S}s"})


def run_query(loki: Loki, q: bq.Query, corpus: Corpus) -> dict[tuple, float]:
    """{label values (all labels, sorted by name): value}; range queries summed over their steps."""
    expr = substitute(q, corpus)
    if q.instant:
        rows = [(s["metric"], [float(s["value"][1])]) for s in loki.instant(expr, corpus.end)]
    else:
        rows = [(s["metric"], [float(v) for _t, v in s["values"]])
                for s in loki.range(expr, corpus.start, corpus.end, STEP_S)]
    out: dict[tuple, float] = {}
    for metric, values in rows:
        key = tuple(sorted(metric.items()))
        out[key] = out.get(key, 0.0) + sum(values)
    return out


def compare(key: tuple[str, str], got: dict[tuple, float], want: tuple[tuple[str, ...], dict]) -> list[str]:
    labels, values = want
    projected: dict[tuple, float] = {}
    for series, v in got.items():
        d = dict(series)
        k = tuple(d.get(name, "") for name in labels)
        projected[k] = projected.get(k, 0.0) + v   # "Failure reasons": (operation, reason) -> operation
    problems = []
    top = TOP_K.get(key)
    expect = values
    if top and len(got) >= top:
        if key == ("Failure reasons", "A"):
            # the top 20 (operation, raw reason) pairs: per operation at most the report's count
            return [f"{key} {k}: Loki {v!r} > report {values.get(k)!r}" for k, v in projected.items()
                    if k not in values or v > values[k]]
        # topk: the top `top` keys (ties may pick either), each with the report's value
        expect = {k: values[k] for k in projected if k in values}
        if len(got) != top:
            problems.append(f"{key}: {len(got)} rows, want the top {top}")
    if set(projected) != set(expect):
        problems.append(f"{key}: keys {sorted(set(projected) ^ set(expect))[:10]} differ")
    for k in set(projected) & set(expect):
        tol = 1.5 if key[1] in ("FIRST", "LAST") else 1e-6 * max(1.0, abs(expect[k]))
        if abs(projected[k] - expect[k]) > tol:
            problems.append(f"{key} {k}: Loki {projected[k]!r}, report {expect[k]!r}")
    return problems


def check_dashboards(loki: Loki, corpus: Corpus, skip_unsupported: bool = False) -> list[tuple[str, str]]:
    """Run every dashboard LogQL query and compare; returns the (title, refId) compared.
    ``skip_unsupported``: leave out queries the server refuses to parse (the emulator)."""
    want = expected(corpus)
    compared, problems = [], []
    for q in bq.logql_queries():
        if q.origin != "panel":
            continue
        key = (q.panel_title, q.ref_id)
        try:
            if q.panel_title == "Recent error log lines":
                streams = loki.logs(substitute(q, corpus), corpus.start, corpus.end, LIMIT_LINES)
                lines = [line for s in streams for _ts, line in s["values"]]
                if len(lines) != min(LIMIT_LINES, corpus.report["summary"]["errors"]):
                    problems.append(f"{key}: {len(lines)} lines")
                problems += [f"{key}: not an error line: {line[:80]}" for line in lines
                             if json.loads(line).get("type") != "error"]
                compared.append(key)
                continue
            got = run_query(loki, q, corpus)
        except AssertionError as exc:
            if skip_unsupported and "parse error" in str(exc):
                continue
            raise
        assert key in want, f"{q}: no expected value for this query: add it to expected()"
        problems += compare(key, got, want[key])
        compared.append(key)
    assert problems == [], "\n".join(problems)
    return compared


# ----------------------------------------------------------------------------------------------
# Against a real Loki (LOKI_URL)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_loki_corpus(tmp_path_factory):
    url = os.environ.get("LOKI_URL")
    if not url:
        pytest.skip("LOKI_URL is not set: the dashboards' LogQL needs a Loki (see the module docstring)")
    tmp = tmp_path_factory.mktemp("real-loki")
    corpus = make_corpus(tmp / "corpus", app="b" + uuid.uuid4().hex[:10])
    corpus.facts = emulator_facts(corpus, tmp)
    assert corpus.facts["entries"] == corpus.report["summary"]["events"]
    import_corpus(corpus, url, tmp / "state")
    loki = Loki(url)
    wait_visible(loki, corpus)
    corpus.end = time.time()
    return loki, corpus


@pytest.mark.real_loki
def test_every_dashboard_logql_query_equals_the_report_on_a_real_loki(real_loki_corpus):
    loki, corpus = real_loki_corpus
    compared = check_dashboards(loki, corpus)
    panel_queries = [q for q in bq.logql_queries() if q.origin == "panel"]
    assert len(compared) == len(panel_queries), "every dashboard LogQL query is compared"


@pytest.mark.real_loki
def test_alert_logql_runs_and_the_app_variable_lists_the_app(real_loki_corpus):
    loki, corpus = real_loki_corpus
    for q in bq.logql_queries():
        if q.origin == "alert":
            for s in loki.instant(bq.substitute(q.expr), time.time()):
                assert math.isfinite(float(s["value"][1])), q
    values = loki.data(loki.get("/loki/api/v1/label/app/values", start=f"{corpus.start:.0f}",
                                end=f"{corpus.end:.0f}"), "label values")
    assert corpus.app in values


# ----------------------------------------------------------------------------------------------
# The same harness against the Loki emulator (always runs)
# ----------------------------------------------------------------------------------------------
def test_the_harness_on_the_loki_emulator(tmp_path):
    from tests.loki_emulator import LokiEmulator
    emu = LokiEmulator(reject_old_samples=False).start()
    try:
        corpus = make_corpus(tmp_path / "corpus", app="h" + uuid.uuid4().hex[:10], events=1500)
        import_corpus(corpus, emu.url, tmp_path / "state")
        loki = Loki(emu.url)
        wait_visible(loki, corpus, timeout=30)
        compared = check_dashboards(loki, corpus, skip_unsupported=True)
        assert set(compared) == {("Events by type", "A"), ("Events over time by type", "A")}
        # and it notices a wrong number
        corpus.report["events_by_type"]["error"] += 1
        with pytest.raises(AssertionError, match="Events by type"):
            check_dashboards(loki, corpus, skip_unsupported=True)
    finally:
        emu.stop()
