"""End to end: a real Prometheus scrapes a real `serve` pushing to a Loki; every PromQL of the bundle runs.

* a corpus is generated (benchmarks.generate_corpus, ending 10 days ago), `report --format json`
  gives the truth;
* a Loki emulator (tests/loki_emulator.py) configured with loki/loki-config.yaml's limits
  receives the pushes, so the exporter's Loki metrics (entries sent, push latency, last success,
  retries, failures, rejections) exist as in the bundle;
* `python -m exporter serve CORPUS --loki-url EMULATOR --listen ... --state-dir ...` backfills it,
  and a real `prometheus` (127.0.0.1, random port, scrape_interval 1s, job name read from
  prometheus/prometheus.yml) scrapes it; the tests wait for enough scrapes for rate()/increase();
* EVERY PromQL expression extracted from the dashboards and alert rules (Grafana variables
  substituted) must evaluate, and return data: right after the backfill everything except the
  alert expressions (and the two columns/panels fed only by what the alerts watch), which must
  return NOTHING then, since none of their conditions holds; at the end, after the live events
  below, every single expression returns data (range queries: at least one finite value);
* the all-time panels, the Top errors / Top warnings Prometheus columns and the alerts' session
  counts must equal the report; the error type variable's regex maps every series of its
  query, as Grafana's query_result() prints it, back to its error type and template;
* the alerts fire for real:
  - "New error type": a line with a never-seen error message appended to the newest file shows
    up within 60 s; after a restart of the exporter (SIGTERM, same state dir) nothing new shows
    up and the discovery time of the new type is unchanged;
  - "Error type regression": an error of a corpus type, 10+ days after its last event;
  - "Telemetry exporter unhealthy": an entry older than the Loki's 90-day limit is rejected
    (problem loki_entries_rejected); pushes answered 500 beyond the retries (loki_push_failing);
    with a second, tiny exporter capped at one error type, a second type makes
    telemetry_error_types_overflow_total grow (error_types_over_cap).

Skipped when `prometheus` is not installed or `serve` (with --loki-url / --listen) is not
available yet.
"""

from __future__ import annotations

import json
import math
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
from tests.loki_emulator import LokiEmulator

pytestmark = pytest.mark.prometheus

ROOT = bq.ROOT
PROMETHEUS = shutil.which("prometheus")
JOB = "telemetry-exporter"
PROBE_MESSAGE = "Synthetic probe failure in the quokka carousel widget"
CORPUS_AGE_DAYS = 10      # the corpus ends this many days ago: its types are "silent" for 7+ days
# A failing push gives up after 2 attempts, so "pushes failing" shows within seconds.
FAST_RETRIES = ["--max-retries", "1", "--min-backoff", "0.1", "--max-backoff", "0.2"]

# Right after the backfill these must return nothing: each is an alert condition (or a panel fed
# only by one) that does not hold for a freshly backfilled, healthy exporter.
EMPTY_AFTER_BACKFILL = {
    "alert 'New error type' (telemetry-new-error-type) / NEW":
        "no type was discovered live: backfilled types carry their historical discovery time",
    "alert 'Error type regression' (telemetry-error-type-regression) / REGRESSED":
        "nothing came back after 7 days of silence while live",
    "alert 'Telemetry exporter unhealthy' (telemetry-exporter-unhealthy) / PROBLEMS":
        "the exporter is up, Loki accepts everything, no type is over the cap",
    "telemetry-errors / panel 39 'Error types by discovery time' / REGRESSED":
        "no type has regressed (the corpus spans 3 days)",
    "telemetry-exporter-health / panel 20 'Entries rejected by reason' / A":
        "Loki rejected nothing: the rejected counter has no reason series yet",
}


def _serve_available() -> bool:
    try:
        r = subprocess.run([sys.executable, "-m", "exporter", "serve", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and all(flag in r.stdout for flag in ("--loki-url", "--listen", "--max-retries"))


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


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Exporter:
    def __init__(self, corpus: Path, state: Path, log: Path, *options: str):
        self.port = _free_port()
        self.args = [sys.executable, "-m", "exporter", "serve", str(corpus), *options,
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

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample of /metrics (the sum, when several series match ``labels``)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        total = None
        for line in self._get("/metrics").text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, rest = series.partition("{")
            if metric != name or (want and not all(part in rest for part in want.split(","))):
                continue
            total = (total or 0.0) + float(value)
        return total


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
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.time()
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

    def query_range(self, expr: str, start: float | None = None) -> list[dict]:
        """Every step (1 s) from ``start`` (default: the last 30 s) to now."""
        end = time.time()
        start = end - 30 if start is None else start
        r = httpx.post(self.url("/api/v1/query_range"),
                       data={"query": expr, "start": start, "end": end, "step": "1s"}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}\n-> {r.status_code} {r.text[:500]}"
        return body["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def scrapes(self, seconds: int = 60) -> float:
        return self.scalar(f'sum(count_over_time(up{{job="{JOB}"}}[{seconds}s]))') or 0.0


def _wait_scraped(prom: Prometheus, exporter: Exporter, scrapes: int = 8) -> None:
    """Prometheus has the exporter's current lines-read value and enough samples for rate()."""
    lines = exporter.metric("telemetry_exporter_lines_read_total")
    _wait("Prometheus to scrape the exporter's current state",
          lambda: prom.scalar(f'sum(telemetry_exporter_lines_read_total{{job="{JOB}"}})') == lines, 30)
    _wait(f"{scrapes} scrapes (rate() and increase() need several)", lambda: prom.scrapes() >= scrapes, 30)


def _terminate_last_line(corpus: Path) -> None:
    # The generator leaves the last line without a newline; `serve` holds such a line for its
    # 15 s partial-line grace. Terminating it changes no count (same line for `report`).
    newest = sorted(corpus.glob("*.jsonl"))[-1]
    if not newest.read_bytes().endswith(b"\n"):
        with newest.open("ab") as fh:
            fh.write(b"\n")


def _report(corpus: Path) -> dict:
    return json.loads(subprocess.run(
        [sys.executable, "-m", "exporter", "report", str(corpus), "--format", "json", "--top", "100000"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout)


# ----------------------------------------------------------------------------------------------
# Fixture: corpus + report + Loki emulator + exporter + Prometheus, backfill done and scraped
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package `prometheus`)")
    if not _serve_available():
        pytest.skip("`python -m exporter serve` with --loki-url/--listen/--max-retries is not available yet")
    from benchmarks.generate_corpus import generate

    work = tmp_path_factory.mktemp("e2e")
    corpus = work / "corpus"
    end = (datetime.now(timezone.utc) - timedelta(days=CORPUS_AGE_DAYS)).date()
    manifest = generate(corpus, days=3, events=2500, end_date=end, seed=20260101)
    (corpus / "manifest.json").unlink(missing_ok=True)  # only telemetry files in the followed dir
    _terminate_last_line(corpus)
    report = _report(corpus)

    loki = LokiEmulator(**bq.loki_emulator_kwargs()).start()
    exporter = Exporter(corpus, work / "state", work / "exporter.log", "--loki-url", loki.url, *FAST_RETRIES)
    prom = Prometheus(work, exporter.port)
    try:
        exporter.start()
        prom.start()

        def delivered():
            done = exporter.metric("telemetry_exporter_backfill_complete")
            unread = exporter.metric("telemetry_exporter_unread_bytes")
            sent = exporter.metric("telemetry_exporter_loki_entries_sent_total")
            return done in (None, 1.0) and unread in (None, 0.0) and sent == report["summary"]["events"]
        _wait("the exporter's backfill, delivered to Loki", delivered, 90)
        _wait_scraped(prom, exporter)
        yield {"corpus": corpus, "manifest": manifest, "report": report, "exporter": exporter,
               "prom": prom, "loki": loki, "work": work, "done": {}}
    finally:
        exporter.stop()
        prom.stop()
        loki.stop()


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


def _run(prom: Prometheus, q: bq.Query, since: float, error_type: str = ".*") -> list[float]:
    """Evaluate one bundle query as Grafana would (instant, or range since ``since``): its values."""
    expr = bq.substitute(q.expr, _variable_values(error_type=error_type))
    if q.instant:
        return [float(s["value"][1]) for s in prom.query(expr)]
    return [float(v) for s in prom.query_range(expr, since) for _t, v in s["values"]]


def _problems(prom: Prometheus) -> set[str]:
    return {s["metric"]["problem"] for s in prom.query(_alert_query("Telemetry exporter unhealthy"))}


# ----------------------------------------------------------------------------------------------
# Every expression evaluates; after the backfill, all but the alert conditions return data
# ----------------------------------------------------------------------------------------------
def test_every_promql_expression_evaluates_and_returns_data_after_the_backfill(stack):
    prom = stack["prom"]
    if stack["done"]:
        pytest.skip(f"live steps {sorted(stack['done'])} already ran (tests out of file order)")
    queries = bq.promql_queries()
    assert len(queries) >= 50
    wheres = {q.where for q in queries}
    assert set(EMPTY_AFTER_BACKFILL) <= wheres, "EMPTY_AFTER_BACKFILL names a query that no longer exists"
    empty = set()
    for q in queries:
        _run(prom, q, prom.started_at, error_type="0123456789ab")   # an unknown type: must evaluate
        if not _run(prom, q, prom.started_at):
            empty.add(q.where)
    assert empty == set(EMPTY_AFTER_BACKFILL), (
        f"returned nothing: {sorted(empty - set(EMPTY_AFTER_BACKFILL))}; "
        f"returned data but must not yet: {sorted(set(EMPTY_AFTER_BACKFILL) - empty)}")
    for var in bq.variable_queries():
        inner = bq.variable_promql(var) if var.language == "promql" else None
        if inner:
            assert prom.query(bq.substitute(inner, _variable_values())), f"{var}: returns nothing"


def test_error_type_variable_maps_every_series_back(stack):
    prom = stack["prom"]
    var = next(q for q in bq.variable_queries() if q.ref_id == "error_type")
    series = prom.query(bq.variable_promql(var))
    assert series
    regex = bq.variable_regex(var.raw)
    for s in series:
        m = regex.search(bq.grafana_query_result_text(s))
        assert m, bq.grafana_query_result_text(s)
        assert (m.group("value"), m.group("text")) == (s["metric"]["error_type"], s["metric"]["template"])


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
    assert set(columns) == {"all_time_count", "all_time_first_seen", "all_time_last_seen"}
    rows = report["top_errors"]
    assert len(rows) == report["summary"]["error_types"]  # --top 100000: every type
    assert set(columns["all_time_count"]) == {r["error_type"] for r in rows}
    sessions = {s["metric"]["error_type"]: float(s["value"][1])
                for s in prom.query(_alert_query("New error type", "SESSIONS_QUERY"))}
    for r in rows:
        et = r["error_type"]
        assert columns["all_time_count"][et]["template"] == r["template"]
        assert columns["all_time_count"][et]["value"] == r["count"]
        assert abs(columns["all_time_first_seen"][et]["value"] - _ms(r["first_seen"])) < 1.5, et
        assert abs(columns["all_time_last_seen"][et]["value"] - _ms(r["last_seen"])) < 1.5, et
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
    assert value("Pushing to Loki") == 1
    assert value("Lines read") == report["inputs"]["lines"]
    assert value("Invalid lines") == report["summary"]["invalid_lines"]
    assert value("Entries sent to Loki") == report["summary"]["events"]
    assert value("Entries rejected by Loki") == 0
    assert value("Push failures (total)") == 0
    assert value("Initial backfill complete") in (None, 1)
    assert 0 <= value("Since last successful push") < time.time() - prom.started_at + 60
    assert len(stack["loki"].entries()) == report["summary"]["events"], "Loki holds every valid event"


# ----------------------------------------------------------------------------------------------
# Live events: each alert fires for real (each step runs once, whichever test needs it first)
# ----------------------------------------------------------------------------------------------
def _sample_error(corpus: Path) -> dict:
    """A real error event of the corpus (its newest file)."""
    for raw in sorted(corpus.glob("*.jsonl"))[-1].read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "error" and isinstance(obj.get("data"), dict):
            return obj
    raise AssertionError("no error line in the newest file")


def _append(corpus: Path, event: dict, when: float | None = None) -> float:
    """Append ``event`` to the newest file, stamped ``when`` (default now) by client and server."""
    now = time.time()
    stamp = _iso(now if when is None else when)
    event = {**event, "timestamp": stamp, "_server": {"receivedAt": stamp, "batchSentAt": stamp}}
    path = sorted(corpus.glob("*.jsonl"))[-1]
    with path.open("ab") as fh:
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            fh.write(b"\n")
        fh.write(json.dumps(event).encode() + b"\n")
    return now


def _new_types(prom: Prometheus) -> dict[str, tuple[str, float]]:
    return {s["metric"]["error_type"]: (s["metric"]["template"], float(s["value"][1]))
            for s in prom.query(_alert_query("New error type"))}


def _step(stack, name: str, run):
    """Run a live step once per module; later calls return its first observation."""
    if name not in stack["done"]:
        stack["done"][name] = run()
    return stack["done"][name]


def _probe_new_type(stack) -> dict:
    prom, exporter, report = stack["prom"], stack["exporter"], stack["report"]

    def run():
        # after the backfill: nothing, except types whose first receipt really was < 10 min ago
        now = time.time()
        recent = {r["error_type"] for r in report["top_errors"]
                  if r.get("discovered_at") and _ms(r["discovered_at"]) / 1000 > now - 660}
        before = _new_types(prom)
        assert set(before) <= recent, f"the backfill fired New error type for {set(before) - recent}"

        sample = _sample_error(stack["corpus"])
        probe = {**sample, "data": {**sample["data"], "message": PROBE_MESSAGE}, "sessionId": "e2e-probe-session"}
        probe.pop("stack", None)
        appended_at = _append(stack["corpus"], probe)

        def probe_found():
            found = {et: v for et, v in _new_types(prom).items() if "quokka carousel" in v[0]}
            return found or None
        found = _wait("New error type to return the probe's type", probe_found, 60, interval=1)
        assert len(found) == 1
        (probe_type, (template, discovered)), = found.items()
        assert appended_at - 5 <= discovered <= time.time() + 1, "discovery time is the wall-clock time of counting"
        assert set(_new_types(prom)) - set(before) == {probe_type}

        # restart with the same state dir: nothing new, same discovery time
        exporter.stop()
        exporter.start()
        _wait("Prometheus to scrape the restarted exporter",
              lambda: prom.scalar(f'min(up{{job="{JOB}"}})') == 1
              and prom.scalar(f'sum(telemetry_exporter_lines_read_total{{job="{JOB}"}})') is not None, 30)
        time.sleep(3)  # a few scrapes of the restarted exporter
        return {"before": before, "type": probe_type, "template": template, "discovered": discovered,
                "after": _new_types(prom)}
    return _step(stack, "new type", run)


def _regression(stack) -> dict:
    prom, report = stack["prom"], stack["report"]

    def run():
        regressed = _alert_query("Error type regression")
        assert prom.query(regressed) == [], "nothing has regressed yet"
        sample = _sample_error(stack["corpus"])
        _append(stack["corpus"], {**sample, "sessionId": "e2e-regression-session"})   # same type, now
        found = _wait("Error type regression to return the type that came back",
                      lambda: prom.query(regressed) or None, 60, interval=1)
        return {"series": found}
    return _step(stack, "regression", run)


def _rejection(stack) -> dict:
    prom, exporter = stack["prom"], stack["exporter"]

    def run():
        # older than reject_old_samples_max_age (90 days): Loki stores the rest, rejects this one
        _append(stack["corpus"], {"type": "event", "data": {"name": "e2e_too_old"}, "sessionId": "e2e-old-session"},
                when=time.time() - 100 * 86400)
        _wait("the exporter to count Loki's rejection",
              lambda: (exporter.metric("telemetry_exporter_loki_entries_rejected_total") or 0) >= 1, 30)
        return {"problems": _wait("the unhealthy alert to report rejected entries",
                                  lambda: (p := _problems(prom)) and "loki_entries_rejected" in p and p, 30)}
    return _step(stack, "rejection", run)


def _push_failure(stack) -> dict:
    prom, exporter = stack["prom"], stack["exporter"]

    def run():
        stack["loki"].inject(500, "internal error (injected by the e2e test)", times=2)  # = 1 + --max-retries
        _append(stack["corpus"], {"type": "event", "data": {"name": "e2e_after_outage"}, "sessionId": "e2e-outage"})
        _wait("a push failure after all retries",
              lambda: (exporter.metric("telemetry_exporter_loki_push_failures_total") or 0) >= 1, 30)
        _wait("the line to be delivered once Loki answers again",
              lambda: any(e.labels.get("type") == "event" and "e2e_after_outage" in e.line
                          for e in stack["loki"].entries()), 30)
        return {"problems": _wait("the unhealthy alert to report failing pushes",
                                  lambda: (p := _problems(prom)) and "loki_push_failing" in p and p, 30)}
    return _step(stack, "push failure", run)


def test_new_error_type_fires_for_a_new_type_only_and_survives_a_restart(stack):
    seen = _probe_new_type(stack)
    assert set(seen["after"]) - set(seen["before"]) == {seen["type"]}, "a restart must not make any type new"
    assert seen["after"][seen["type"]] == (seen["template"], seen["discovered"]), \
        "the discovery time must survive the restart"
    prom = stack["prom"]
    direct = _wait("the restarted exporter to export the probe type", lambda: [
        s for s in prom.query(f'telemetry_error_type_discovered_timestamp_seconds{{job="{JOB}", '
                              f'error_type="{seen["type"]}"}}')], 15)
    assert float(direct[0]["value"][1]) == seen["discovered"]


def test_regression_fires_for_a_type_back_after_7_days(stack):
    report = stack["report"]
    (series,) = _regression(stack)["series"]
    row = next(r for r in report["top_errors"] if r["error_type"] == series["metric"]["error_type"])
    assert series["metric"]["template"] == row["template"]
    assert _ms(row["last_seen"]) / 1000 < time.time() - 7 * 86400, "the type had been silent for 7+ days"
    assert time.time() - 90 <= float(series["value"][1]) <= time.time() + 1, "regressed now (wall clock, live)"
    # its dashboard column shows it too
    cols = _by_column(_panel_queries("Error types by discovery time")[0], stack["prom"])
    cols.update(_by_column(_panel_queries("Error types by discovery time")[1], stack["prom"]))
    assert series["metric"]["error_type"] in cols["regressed"]


def test_unhealthy_fires_for_rejected_entries_and_failing_pushes(stack):
    assert "loki_entries_rejected" in _rejection(stack)["problems"]
    assert "loki_push_failing" in _push_failure(stack)["problems"]
    assert "exporter_down" not in _problems(stack["prom"])


def test_every_promql_expression_returns_data_once_the_alerts_fired(stack):
    """After the live events, no expression of the bundle is left without data."""
    for step in (_probe_new_type, _regression, _rejection, _push_failure):
        step(stack)
    prom = stack["prom"]
    _wait_scraped(prom, stack["exporter"], scrapes=8)
    no_data = []
    for q in bq.promql_queries():
        values = _run(prom, q, prom.started_at)
        if not any(math.isfinite(v) for v in values):
            no_data.append(q.where)
    assert no_data == [], f"no (finite) value: {no_data}"


# ----------------------------------------------------------------------------------------------
# Error types over the cap (a second, tiny exporter: one error type allowed)
# ----------------------------------------------------------------------------------------------
def _max_error_types_available() -> bool:
    r = subprocess.run([sys.executable, "-m", "exporter", "serve", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    return "--max-error-types" in r.stdout and "--no-loki" in r.stdout


def test_unhealthy_fires_when_error_types_go_over_the_cap(stack, tmp_path):
    if not _max_error_types_available():
        pytest.skip("serve has no --max-error-types / --no-loki")
    corpus = tmp_path / "tiny"
    corpus.mkdir()
    sample = _sample_error(stack["corpus"])
    first = {**sample, "data": {"message": "Tiny corpus: the only error type allowed"}, "sessionId": "cap-1"}
    (corpus / f"telemetry-{datetime.now(timezone.utc).date()}.jsonl").write_text("")
    _append(corpus, first, when=time.time() - 3600)
    exporter = Exporter(corpus, tmp_path / "state", tmp_path / "exporter.log", "--no-loki",
                        "--max-error-types", "1")
    prom = Prometheus(tmp_path, exporter.port)
    try:
        exporter.start()
        prom.start()
        _wait_scraped(prom, exporter, scrapes=4)
        assert _problems(prom) == set(), "one type, within the cap: nothing to report"
        _append(corpus, {**first, "data": {"message": "Tiny corpus: a second error type, over the cap"},
                         "sessionId": "cap-2"})
        _wait("the overflow counter", lambda: (exporter.metric("telemetry_error_types_overflow_total") or 0) >= 1, 30)
        assert _wait("the unhealthy alert to report types over the cap",
                     lambda: "error_types_over_cap" in _problems(prom), 30)
        assert _new_types(prom) == {}, "a type past the cap cannot fire New error type: that is why this alert exists"
    finally:
        exporter.stop()
        prom.stop()
