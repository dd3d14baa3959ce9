"""End to end: a real Prometheus scrapes a real `serve --no-loki`; every PromQL of the bundle runs.

* a corpus is generated (benchmarks.generate_corpus), `report --format json` gives the truth;
* `python -m exporter serve CORPUS --no-loki --listen ... --state-dir ...` backfills it, and a real
  `prometheus` (127.0.0.1, random port, scrape_interval 1s, job name read from
  prometheus/prometheus.yml) scrapes it;
* EVERY PromQL expression extracted from the dashboards and alert rules (Grafana variables
  substituted) must evaluate without error; the all-time panels, the Top errors / Top warnings
  Prometheus columns and the alerts' session counts must equal the report;
* the "New error type" expression (extracted from the alert rule) is exercised for real: after
  the backfill it returns nothing (or only types truly received in the last 10 minutes); a line
  with a never-seen error message appended to the newest file shows up within 60 s; after a
  restart of the exporter (SIGTERM, same state dir) nothing new shows up and the discovery time
  of the new type is unchanged.

Skipped when `prometheus` is not installed or `serve` (with --no-loki / --listen) is not
available yet.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from tests import bundle_queries as bq

pytestmark = pytest.mark.prometheus

ROOT = bq.ROOT
PROMETHEUS = shutil.which("prometheus")
JOB = "telemetry-exporter"
PROBE_MESSAGE = "Synthetic probe failure in the quokka carousel widget"


def _serve_available() -> bool:
    try:
        r = subprocess.run([sys.executable, "-m", "exporter", "serve", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and "--no-loki" in r.stdout and "--listen" in r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Exporter:
    def __init__(self, corpus: Path, state: Path, log: Path):
        self.port = _free_port()
        self.args = [sys.executable, "-m", "exporter", "serve", str(corpus), "--no-loki",
                     "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(state)]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "LOKI_URL"}
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=env, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        _wait("exporter /healthz", lambda: self._get("/healthz").status_code == 200, 30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("the exporter did not stop within 20 s of SIGTERM")
        self.proc = None

    def _get(self, path: str) -> httpx.Response:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"exporter exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def metric(self, name: str) -> float | None:
        for line in self._get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{}"):
                return float(line.rsplit(" ", 1)[1])
        return None


class Prometheus:
    def __init__(self, workdir: Path, target_port: int):
        self.port = _free_port()
        repo_cfg = bq.load_yaml(bq.PROMETHEUS_CONFIG)
        job = next(j for j in repo_cfg["scrape_configs"] if j["job_name"] == JOB)
        job = {**job, "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
               "scrape_interval": "1s", "scrape_timeout": "900ms"}
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [job]}
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.args = [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        _wait("prometheus /-/ready", lambda: httpx.get(self.url("/-/ready"), timeout=2).status_code == 200, 30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def query(self, expr: str) -> list[dict]:
        r = httpx.post(self.url("/api/v1/query"), data={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}\n-> {r.status_code} {r.text[:500]}"
        return body["data"]["result"] if body["data"]["resultType"] == "vector" else [
            {"metric": {}, "value": body["data"]["result"]}]

    def query_range(self, expr: str, seconds: int = 30) -> list[dict]:
        end = time.time()
        r = httpx.post(self.url("/api/v1/query_range"),
                       data={"query": expr, "start": end - seconds, "end": end, "step": "1s"}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}\n-> {r.status_code} {r.text[:500]}"
        return body["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {len(result)} series"
        return float(result[0]["value"][1]) if result else None


# ----------------------------------------------------------------------------------------------
# Fixture: corpus + report + exporter + Prometheus, backfill done and scraped
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`)")
    if not _serve_available():
        pytest.skip("`python -m exporter serve` with --no-loki/--listen is not available yet")
    from benchmarks.generate_corpus import generate

    work = tmp_path_factory.mktemp("e2e")
    corpus = work / "corpus"
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date()
    manifest = generate(corpus, days=3, events=2500, end_date=yesterday, seed=20260101)
    (corpus / "manifest.json").unlink(missing_ok=True)  # only telemetry files in the followed dir
    # The generator leaves the last line without a newline; `serve` holds such a line until its
    # newline arrives (or a newer day exists). Terminating it changes no count (same line for
    # `report`).
    newest = sorted(corpus.glob("*.jsonl"))[-1]
    if not newest.read_bytes().endswith(b"\n"):
        with newest.open("ab") as fh:
            fh.write(b"\n")
    report = json.loads(subprocess.run(
        [sys.executable, "-m", "exporter", "report", str(corpus), "--format", "json", "--top", "100000"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout)

    exporter = Exporter(corpus, work / "state", work / "exporter.log")
    prom = Prometheus(work, exporter.port)
    try:
        exporter.start()
        prom.start()

        def backfilled():
            done = exporter.metric("telemetry_exporter_backfill_complete")
            unread = exporter.metric("telemetry_exporter_unread_bytes")
            return done in (None, 1.0) and (unread in (None, 0.0))
        _wait("the exporter's backfill", backfilled, 60)
        lines = exporter.metric("telemetry_exporter_lines_read_total")
        _wait("Prometheus to scrape the backfilled exporter",
              lambda: prom.scalar(f'sum(telemetry_exporter_lines_read_total{{job="{JOB}"}})') == lines, 30)
        yield {"corpus": corpus, "manifest": manifest, "report": report, "exporter": exporter,
               "prom": prom, "work": work}
    finally:
        exporter.stop()
        prom.stop()


def _variable_values(**extra) -> dict[str, str]:
    return {"__rate_interval": "10s", "__interval": "1s", **extra}


def _panel_queries(title: str, dashboard: str = "telemetry-errors") -> list[bq.Query]:
    qs = [q for q in bq.promql_queries() if q.dashboard_uid == dashboard and q.panel_title == title]
    assert qs, f"no PromQL in panel {title!r}"
    return qs


def _alert_query(title: str, ref: str | None = None) -> str:
    """The PromQL of an alert rule: the one its condition reads, or the data query `ref`."""
    rule = next(r for _p, _g, r in bq.alert_rules() if r["title"] == title)
    if ref is None:
        return bq.prometheus_alert_expression(rule)
    return next(d for d in rule["data"] if d["refId"] == ref)["model"]["expr"]


def _by_column(query: bq.Query, prom: Prometheus) -> dict[str, dict[str, dict]]:
    """Run a table target tagged with label_replace(..., "column", NAME, ...):
    {column: {error_type: {"value": float, **labels}}}."""
    out: dict[str, dict[str, dict]] = {}
    for s in prom.query(bq.substitute(query.expr, _variable_values())):
        labels = dict(s["metric"])
        out.setdefault(labels.pop("column"), {})[labels["error_type"]] = {
            "value": float(s["value"][1]), **labels}
    return out


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


# ----------------------------------------------------------------------------------------------
# Every expression evaluates
# ----------------------------------------------------------------------------------------------
def test_every_promql_expression_evaluates(stack):
    prom = stack["prom"]
    queries = bq.promql_queries()
    assert len(queries) >= 40
    for q in queries:
        for error_type in (".*", "0123456789ab"):
            expr = bq.substitute(q.expr, _variable_values(error_type=error_type))
            if q.instant:
                prom.query(expr)
            else:
                prom.query_range(expr)
    for var in bq.variable_queries():
        inner = bq.variable_promql(var) if var.language == "promql" else None
        if inner:
            assert prom.query(bq.substitute(inner, _variable_values())), f"{var}: returns nothing"


# ----------------------------------------------------------------------------------------------
# Numbers equal the report
# ----------------------------------------------------------------------------------------------
ALL_TIME_STATS = {
    "All time: events": "events",
    "All time: errors": "errors",
    "All time: warnings": "warnings",
    "All time: failed operations": "failed_operations",
    "All time: sessions": "sessions",
    "All time: sessions with errors": "sessions_with_errors",
    "All time: error types": "error_types",
    "Invalid lines (all files)": "invalid_lines",
}


def test_all_time_panels_equal_the_report(stack):
    prom, summary = stack["prom"], stack["report"]["summary"]
    assert summary["errors"] > 0 and summary["warnings"] > 0 and summary["failed_operations"] > 0
    for title, key in ALL_TIME_STATS.items():
        (q,) = _panel_queries(title)
        assert prom.scalar(bq.substitute(q.expr, _variable_values())) == summary[key], title


def test_breakdown_panels_equal_the_report(stack):
    prom, report = stack["prom"], stack["report"]

    def series(title: str, *labels: str) -> dict:
        (q,) = _panel_queries(title)
        return {tuple(s["metric"].get(l, "") for l in labels): float(s["value"][1])
                for s in prom.query(bq.substitute(q.expr, _variable_values()))}

    assert series("All time: events by type", "type") == {
        (t,): n for t, n in report["events_by_type"].items() if n}
    assert series("Invalid lines by reason", "reason") == {
        (r,): n for r, n in report["invalid_lines_by_reason"].items() if n}
    assert series("All time: failed operations by reason", "operation", "reason") == {
        (f["name"], r["reason"]): r["count"] for f in report["failed_operations"] for r in f["reasons"]}


def test_top_errors_and_warnings_columns_equal_the_report(stack):
    prom, report = stack["prom"], stack["report"]
    columns = {}
    for q in _panel_queries("Top errors"):
        columns.update(_by_column(q, prom))
    assert set(columns) == {"all_time_count", "first_seen", "last_seen"}
    rows = report["top_errors"]
    assert len(rows) == report["summary"]["error_types"]  # --top 100000: every type
    assert set(columns["all_time_count"]) == {r["error_type"] for r in rows}
    sessions = {s["metric"]["error_type"]: float(s["value"][1])
                for s in prom.query(_alert_query("New error type", "SESSIONS_QUERY"))}
    for r in rows:
        et = r["error_type"]
        assert columns["all_time_count"][et]["template"] == r["template"]
        assert columns["all_time_count"][et]["value"] == r["count"]
        assert abs(columns["first_seen"][et]["value"] - _ms(r["first_seen"])) < 1.5, et
        assert abs(columns["last_seen"][et]["value"] - _ms(r["last_seen"])) < 1.5, et
        assert sessions[et] == r["sessions"], et

    warnings = {}
    for q in _panel_queries("Top warnings"):
        warnings.update(_by_column(q, prom))
    assert {et: (v["template"], v["value"]) for et, v in warnings["all_time_count"].items()} == {
        r["error_type"]: (r["template"], r["count"]) for r in report["top_warnings"]}

    discovered = _by_column(_panel_queries("Error types by discovery time")[0], prom)["discovered"]
    assert {et for et, v in discovered.items() if v["kind"] == "error"} == {r["error_type"] for r in rows}


def test_health_panels(stack):
    prom, report = stack["prom"], stack["report"]

    def value(title: str) -> float | None:
        (q,) = _panel_queries(title, "telemetry-exporter-health")
        return prom.scalar(bq.substitute(q.expr, _variable_values(instance=".*")))

    assert value("Exporter up") == 1
    assert value("Lines read") == report["inputs"]["lines"]
    assert value("Invalid lines") == report["summary"]["invalid_lines"]
    assert value("Entries rejected by Loki") == 0
    assert value("Initial backfill complete") in (None, 1)
    # the exporter-unhealthy alert stays quiet on a healthy exporter
    assert prom.query(_alert_query("Telemetry exporter unhealthy")) == []


# ----------------------------------------------------------------------------------------------
# New error type, for real
# ----------------------------------------------------------------------------------------------
def _new_types(prom: Prometheus) -> dict[str, tuple[str, float]]:
    return {s["metric"]["error_type"]: (s["metric"]["template"], float(s["value"][1]))
            for s in prom.query(_alert_query("New error type"))}


def _probe_line(corpus: Path) -> tuple[Path, str]:
    """A never-seen error, made from a real error line of the corpus, stamped now."""
    files = sorted(p for p in corpus.glob("*.jsonl"))
    assert files, "no uncompressed telemetry file to append to"
    sample = None
    for raw in files[-1].read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "error" and isinstance(obj.get("data"), dict):
            sample = obj
            break
    assert sample is not None, "no error line in the newest file"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    sample["data"] = {**sample["data"], "message": PROBE_MESSAGE}
    sample.pop("stack", None)
    sample["timestamp"] = now
    sample["sessionId"] = "e2e-probe-session"
    sample["_server"] = {"receivedAt": now, "batchSentAt": now}
    return files[-1], json.dumps(sample)


def test_new_error_type_fires_for_a_new_type_only_and_survives_a_restart(stack):
    prom, exporter, report = stack["prom"], stack["exporter"], stack["report"]

    # 1. after the backfill: nothing, except types whose first receipt really was < 10 min ago
    now = time.time()
    recent = {r["error_type"] for r in report["top_errors"]
              if r.get("discovered_at") and _ms(r["discovered_at"]) / 1000 > now - 660}
    before = _new_types(prom)
    assert set(before) <= recent, f"the backfill fired New error type for {set(before) - recent}"

    # 2. a never-seen error appended to the newest file: a result within 60 s
    path, line = _probe_line(stack["corpus"])
    appended_at = time.time()
    with path.open("ab") as fh:
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            fh.write(b"\n")
        fh.write(line.encode() + b"\n")

    def probe_found():
        found = {et: v for et, v in _new_types(prom).items() if "quokka carousel" in v[0]}
        return found or None
    found = _wait("New error type to return the probe's type", probe_found, 60, interval=1)
    assert len(found) == 1
    (probe_type, (template, discovered)), = found.items()
    assert appended_at - 5 <= discovered <= time.time() + 1, "discovery time is the wall-clock time of counting"
    assert set(_new_types(prom)) - set(before) == {probe_type}

    # 3. restart with the same state dir: nothing new, same discovery time
    exporter.stop()
    exporter.start()
    _wait("Prometheus to scrape the restarted exporter",
          lambda: prom.scalar(f'min(up{{job="{JOB}"}})') == 1
          and prom.scalar(f'sum(telemetry_exporter_lines_read_total{{job="{JOB}"}})') is not None, 30)
    time.sleep(3)  # a few scrapes of the restarted exporter
    after = _new_types(prom)
    assert set(after) - set(before) == {probe_type}, "a restart must not make any type new"
    assert after[probe_type] == (template, discovered), "the discovery time must survive the restart"
    direct = _wait("the restarted exporter to export the probe type", lambda: [
        s for s in prom.query(f'telemetry_error_type_discovered_timestamp_seconds{{job="{JOB}", '
                              f'error_type="{probe_type}"}}')], 15)
    assert float(direct[0]["value"][1]) == discovered
