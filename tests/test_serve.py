"""`serve`: backfill, follow (append, partial line, new file, truncation, deletion, gzip, a
vanishing directory), metrics, discovery times, restart, SIGTERM, Loki down, failures."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load_config
from exporter.events.fingerprint import Fingerprinter
from exporter.serve.service import Service

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "telemetry-logs"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def event_line(message: str, *, etype="error", session="1766744160751-newsess", when="2025-12-31T23:59:00.000Z",
               received: str | None = "2025-12-31T23:59:05+00:00") -> str:
    """One event line; ``received="now"``: received by the server just now (a live line)."""
    data = {"message": message} if etype == "error" else {"name": "page_view"}
    obj = {"type": etype, "data": data, "timestamp": when, "sessionId": session,
           "url": "https://saberloop.com/app/#/quiz"}
    if received is not None:
        obj["_server"] = {"receivedAt": iso(time.time()) if received == "now" else received, "batchSentAt": when}
    return json.dumps(obj) + "\n"


def scrape(svc: Service) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://{svc.server.address}/metrics").text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples, name) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def wait_for(pred, timeout=5.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture
def logs(tmp_path):
    """The sample, whose last line is terminated here: serve consumes an unterminated last line
    only once a newer daily file exists (test_partial_line_* check that rule)."""
    d = tmp_path / "logs"
    shutil.copytree(EXAMPLES, d, ignore=shutil.ignore_patterns("manifest.json"))
    with open(newest(d), "a") as f:
        f.write("\n")
    return d


def newest(logs: Path) -> Path:
    return sorted(logs.glob("*.jsonl"))[-1]


def discovered(samples) -> dict[str, float]:
    """error_type -> discovery time."""
    return {dict(k[1])["error_type"]: v for k, v in samples.items()
            if k[0] == "telemetry_error_type_discovered_timestamp_seconds"}


def start(tmp_path, logs, loki_url=None, **kw) -> Service:
    env = {"LOKI_URL": loki_url, **kw.pop("env", {})} if loki_url else {}
    cfg = load_config(None, env=env, flags={"state_dir": str(tmp_path / "state")},
                      metrics_flags={"listen": "127.0.0.1:0", **kw.pop("metrics", {})})
    svc = Service(cfg, logs, loki=loki_url is not None, fingerprinter=Fingerprinter(), log=kw.pop("log", lambda m: None),
                  **kw)
    return svc.start()


def manifest():
    return json.loads((EXAMPLES / "manifest.json").read_text())


def test_backfill_then_append_is_visible_within_a_second(tmp_path, logs):
    m = manifest()
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: svc.caught_up.is_set() and total(scrape(svc), "telemetry_events_total") == m["events_total"])
        s = scrape(svc)
        assert total(s, "telemetry_errors_total") == m["errors"]
        assert s[("telemetry_sessions", ())] == m["sessions"]
        assert s[("telemetry_sessions_with_errors", ())] == m["sessions_with_errors"]
        assert total(s, "telemetry_invalid_lines_total") == sum(m["invalid_by_reason"].values())
        assert httpx.get(f"http://{svc.server.address}/ready").status_code == 200
        assert httpx.get(f"http://{svc.server.address}/healthz").status_code == 200
        before = total(s, "telemetry_errors_total")
        with open(newest(logs), "a") as f:
            f.write(event_line("Brand new failure in checkout", received="now"))
        t0 = time.monotonic()
        assert wait_for(lambda: total(scrape(svc), "telemetry_errors_total") == before + 1, timeout=1.0)
        assert time.monotonic() - t0 <= 1.0
    finally:
        svc.stop()


def test_partial_line_waits_for_its_newline(tmp_path, logs):
    """However long its writer takes: no time-based grace (it used to be 15 s)."""
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: svc.caught_up.is_set() and
                        total(scrape(svc), "telemetry_events_total") == manifest()["events_total"])
        base = total(scrape(svc), "telemetry_events_total")
        line = event_line("Half written", etype="event")
        with open(newest(logs), "a") as f:
            f.write(line[:40])
        os.utime(newest(logs), (time.time() - 3600, time.time() - 3600))   # "unchanged for an hour"
        time.sleep(1.0)
        s = scrape(svc)
        assert total(s, "telemetry_events_total") == base
        assert total(s, "telemetry_invalid_lines_total") == sum(manifest()["invalid_by_reason"].values())
        with open(newest(logs), "a") as f:
            f.write(line[40:])
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == base + 1, timeout=1.5)
    finally:
        svc.stop()


def test_partial_line_is_consumed_once_a_newer_day_exists(tmp_path, logs):
    """The writer moved on to a new day: the old day's unterminated last line is as complete as it
    will get, and is counted (here, cut short: invalid, not_json), exactly once, also after a restart."""
    m = manifest()
    invalid = sum(m["invalid_by_reason"].values())
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == m["events_total"])
        with open(newest(logs), "a") as f:
            f.write(event_line("Cut short", etype="event")[:40])
        time.sleep(0.6)
        assert total(scrape(svc), "telemetry_invalid_lines_total") == invalid
        (logs / "telemetry-2026-01-01.jsonl").write_text(event_line("next day", etype="event"))
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == m["events_total"] + 1)
        assert wait_for(lambda: scrape(svc)[("telemetry_invalid_lines_total", (("reason", "not_json"),))]
                        == m["invalid_by_reason"].get("not_json", 0) + 1)
        assert total(scrape(svc), "telemetry_invalid_lines_total") == invalid + 1
    finally:
        svc.stop()
    svc = start(tmp_path, logs)
    try:
        assert wait_for(svc.caught_up.is_set)
        time.sleep(0.5)
        s = scrape(svc)
        assert total(s, "telemetry_events_total") == m["events_total"] + 1
        assert total(s, "telemetry_invalid_lines_total") == invalid + 1
    finally:
        svc.stop()


def test_new_file_deleted_file_and_truncation(tmp_path, logs):
    svc = start(tmp_path, logs)
    try:
        assert wait_for(svc.caught_up.is_set)
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == manifest()["events_total"])
        base = total(scrape(svc), "telemetry_events_total")
        (logs / "telemetry-2026-01-01.jsonl").write_text(event_line("x", etype="event") * 3)
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == base + 3)
        oldest = sorted(logs.glob("telemetry-*.jsonl"))[0]
        oldest.unlink()                                   # retention: counters never go down
        time.sleep(0.6)
        assert total(scrape(svc), "telemetry_events_total") == base + 3
        new = logs / "telemetry-2026-01-01.jsonl"
        new.write_text(event_line("y", etype="event"))  # truncated and rewritten
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == base + 4)
    finally:
        svc.stop()


def test_restart_neither_double_counts_nor_loses_and_keeps_discovery_times(tmp_path, logs):
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: svc.caught_up.is_set() and
                        total(scrape(svc), "telemetry_events_total") == manifest()["events_total"])
        first = scrape(svc)
    finally:
        svc.stop()
    # historical backfill of a fresh state: discovery times are the events' own (old) times
    disc = {k: v for k, v in first.items() if k[0] == "telemetry_error_type_discovered_timestamp_seconds"}
    assert disc and max(disc.values()) < time.time() - 86400
    svc = start(tmp_path, logs)
    try:
        assert wait_for(svc.caught_up.is_set)
        again = scrape(svc)
        for name in ("telemetry_events_total", "telemetry_errors_total", "telemetry_invalid_lines_total",
                     "telemetry_sessions"):
            assert total(again, name) == total(first, name), name
        assert {k: v for k, v in again.items() if k[0] == "telemetry_error_type_discovered_timestamp_seconds"} == disc
        with open(newest(logs), "a") as f:
            f.write(event_line("A never seen failure 42", received="now"))
        assert wait_for(lambda: len([k for k in scrape(svc) if k[0] == "telemetry_error_type_discovered_timestamp_seconds"]) == len(disc) + 1)
        new = {k: v for k, v in scrape(svc).items()
               if k[0] == "telemetry_error_type_discovered_timestamp_seconds" and k not in disc}
        (key, value), = new.items()
        assert dict(key[1])["template"] == "A never seen failure <int>"
        assert abs(value - time.time()) < 5        # live: discovered now -> the alert fires
    finally:
        svc.stop()


def test_cardinality_caps(tmp_path, logs):
    svc = start(tmp_path, logs, metrics={"max_sessions": 5, "max_error_types": 3})
    try:
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == manifest()["events_total"])
        s = scrape(svc)
        assert len([k for k in s if k[0] == "telemetry_session_errors_total"]) <= 5
        assert s[("telemetry_sessions_evicted_total", ())] > 0
        kinds: dict[str, int] = {}
        for k in s:
            if k[0] == "telemetry_error_type_discovered_timestamp_seconds":
                kinds[dict(k[1])["kind"]] = kinds.get(dict(k[1])["kind"], 0) + 1
        assert kinds == {"error": 3, "warning": 3, "failed_operation": 3}     # the cap is per kind
        assert {dict(k[1])["kind"]: v for k, v in s.items() if k[0] == "telemetry_error_types"} == kinds
        assert s[("telemetry_error_types_overflow_total", ())] > 0
        # nothing is lost: all errors are still counted (overflow bucket included)
        assert total(s, "telemetry_errors_total") == manifest()["errors"]
    finally:
        svc.stop()


def test_serve_pushes_to_loki_within_the_batch_wait_and_once_across_restarts(tmp_path, logs, loki):
    m = manifest()
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        assert wait_for(lambda: len(loki.entries()) == m["events_total"], timeout=10)
        with open(newest(logs), "a") as f:
            f.write(event_line("Pushed quickly", etype="event", received="now"))
        t0 = time.monotonic()
        assert wait_for(lambda: len(loki.entries()) == m["events_total"] + 1, timeout=2)
        assert time.monotonic() - t0 < 1.5
        s = scrape(svc)
        assert s[("telemetry_exporter_loki_entries_sent_total", ())] == m["events_total"] + 1
        counts, pushes = _counts(svc), _loki_pushes(loki)
    finally:
        svc.stop()
    _restart_changes_nothing(tmp_path, logs, loki, counts, pushes)
    lines = [e.line for e in loki.entries()]
    assert len(lines) == len(set(lines)) == m["events_total"] + 1


def test_last_successful_push_survives_a_restart(tmp_path, logs, loki):
    """After a restart with nothing new to push, 'time since the last successful push' is the
    real one (from the positions), not 'since 1970'."""
    m = manifest()
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        assert wait_for(lambda: len(loki.entries()) == m["events_total"], timeout=10)
        assert wait_for(lambda: scrape(svc)[("telemetry_exporter_loki_last_success_timestamp_seconds", ())] > 0)
        first = scrape(svc)[("telemetry_exporter_loki_last_success_timestamp_seconds", ())]
    finally:
        svc.stop()
    assert time.time() - 30 < first <= time.time()
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        assert wait_for(svc.caught_up.is_set)
        assert scrape(svc)[("telemetry_exporter_loki_last_success_timestamp_seconds", ())] == pytest.approx(first, abs=2)
    finally:
        svc.stop()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal delivery")
def test_sigterm_is_graceful(tmp_path, logs):
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "serve", str(logs), "--no-loki", "--listen",
                             "127.0.0.1:0", "--state-dir", str(state)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 10
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "backfill complete" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=15)[1]
        assert proc.returncode == 0, "".join(lines) + rest
        assert "stopped" in rest
        saved = json.loads((state / "serve-state.json").read_text())
        assert saved["core"]["events"] == manifest()["events_total"]
        assert saved["backfill_complete"] is True
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_after_import_counts_everything_and_pushes_nothing_again(tmp_path, logs, loki):
    from exporter.cli import main
    m = manifest()
    assert main(["import", str(logs), "--loki-url", loki.url, "--state-dir", str(tmp_path / "state"), "-q"]) == 1
    pushes = len(loki.push_requests)
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        assert wait_for(lambda: svc.caught_up.is_set() and
                        total(scrape(svc), "telemetry_events_total") == m["events_total"])
        time.sleep(0.5)
        assert len(loki.push_requests) == pushes        # the import delivered it all already
        assert len(loki.entries()) == m["events_total"]
    finally:
        svc.stop()


def test_a_loki_outage_does_not_stall_metrics(tmp_path, logs, loki):
    """Loki down long enough to fill the sender's queue: /metrics (and so the alerts) keep up."""
    m = manifest()
    cfg = load_config(None, env={"LOKI_URL": loki.url},
                      flags={"state_dir": str(tmp_path / "state")},
                      loki_flags={"batch_wait": 0.05, "max_retries": 0},
                      metrics_flags={"listen": "127.0.0.1:0"})
    svc = Service(cfg, logs, loki=True, fingerprinter=Fingerprinter(), log=lambda msg: None,
                  poll_interval=0.05).start()
    try:
        assert wait_for(lambda: len(loki.entries()) == m["events_total"], timeout=10)
        loki.inject(503, "Ingester not ready\n", times=100_000)        # Loki down
        today = newest(logs)
        base = total(scrape(svc), "telemetry_errors_total")
        for i in range(12):                                          # > the queue's 4 chunks
            with open(today, "a") as f:
                f.write(event_line(f"During the outage {i}"))
            assert wait_for(lambda: total(scrape(svc), "telemetry_errors_total") == base + i + 1, timeout=1.0), i
            time.sleep(0.12)
        assert len(loki.entries()) == m["events_total"]
        loki.clear()                                                  # Loki back, empty
        assert wait_for(lambda: sum("During the outage" in e.line for e in loki.entries()) == 12, timeout=40)
        assert scrape(svc)[("telemetry_exporter_loki_push_failures_total", ())] >= 1
    finally:
        svc.stop()


def test_flush_after_backfill_makes_history_queryable_once(tmp_path, logs, loki):
    """LOKI_FLUSH_AFTER_BACKFILL: one POST /flush, after every backfill push was answered; none for
    live lines, none after a restart that had nothing to backfill."""
    m = manifest()
    flushes = lambda: [i for i, r in enumerate(loki.requests) if r.route == "/flush"]  # noqa: E731
    svc = start(tmp_path, logs, loki_url=loki.url, env={"LOKI_FLUSH_AFTER_BACKFILL": "true"})
    try:
        assert wait_for(lambda: len(flushes()) == 1, timeout=10)
        pushes = [i for i, r in enumerate(loki.requests) if r.route == "/loki/api/v1/push"]
        assert pushes and max(pushes) < flushes()[0]
        assert len(loki.entries()) == m["events_total"]
        with open(newest(logs), "a") as f:
            f.write(event_line("Live line", etype="event"))
        assert wait_for(lambda: len(loki.entries()) == m["events_total"] + 1, timeout=3)
        time.sleep(0.5)
        assert len(flushes()) == 1
    finally:
        svc.stop()
    svc = start(tmp_path, logs, loki_url=loki.url, env={"LOKI_FLUSH_AFTER_BACKFILL": "true"})
    try:
        assert wait_for(svc.caught_up.is_set)
        time.sleep(0.6)
        assert len(flushes()) == 1
    finally:
        svc.stop()


def _word(i: int) -> str:
    """Distinct words the fingerprinter keeps as they are (no digits, no hex)."""
    return "zone " + chr(103 + i // 20) + chr(103 + i % 20) + "x"


def test_pages_and_failure_reasons_per_type_are_bounded(tmp_path):
    """Default metrics.max_labels_per_type (50): 60 distinct failure reasons of one operation
    give 50 series plus "(other)" holding the remaining 10; pages of an error type likewise."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = []
    for i in range(60):
        lines.append(json.dumps({"type": "metric", "timestamp": "2025-12-20T10:00:00Z", "sessionId": "s1",
                                 "data": {"name": "save_quiz", "status": "error", "error": f"quota for {_word(i)}"}}))
        lines.append(json.dumps({"type": "error", "timestamp": "2025-12-20T10:00:00Z", "sessionId": "s1",
                                 "url": f"https://saberloop.com/app/#/{_word(i).replace(' ', '-')}",
                                 "data": {"message": "Same failure everywhere"}}))
    (logs / "telemetry-2025-12-20.jsonl").write_text("\n".join(lines) + "\n")
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == 120)
        s = scrape(svc)
        reasons = {dict(k[1])["reason"]: v for k, v in s.items() if k[0] == "telemetry_failed_operations_total"}
        assert len(reasons) == 51
        assert reasons["(other)"] == 10
        assert sum(reasons.values()) == 60
    finally:
        svc.stop()
    saved = json.loads((tmp_path / "state" / "serve-state.json").read_text())
    (error_type,) = [t for t in saved["core"]["error_types"] if t["kind"] == "error"]
    assert len(error_type["pages"]) == 51 and error_type["pages"]["(other)"] == 10


# ------------------------------------------------------------------ files that vanish and come back

def _loki_pushes(loki) -> int:
    return len(loki.push_requests)


def _counts(svc) -> tuple[float, float, float]:
    s = scrape(svc)
    return (total(s, "telemetry_events_total"), total(s, "telemetry_errors_total"),
            total(s, "telemetry_invalid_lines_total"))


def _settled(svc, loki, m) -> tuple[tuple[float, float, float], int]:
    assert wait_for(lambda: svc.caught_up.is_set() and total(scrape(svc), "telemetry_events_total") == m["events_total"])
    assert wait_for(lambda: len(loki.entries()) == m["events_total"], timeout=10)
    time.sleep(0.3)
    return _counts(svc), _loki_pushes(loki)


def _restart_changes_nothing(tmp_path, logs, loki, counts, pushes) -> None:
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        assert wait_for(svc.caught_up.is_set)
        time.sleep(0.6)
        assert _counts(svc) == counts
        assert _loki_pushes(loki) == pushes
    finally:
        svc.stop()


def test_a_file_deleted_and_restored_is_neither_counted_nor_pushed_again(tmp_path, logs, loki):
    m = manifest()
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        counts, pushes = _settled(svc, loki, m)
        oldest = sorted(logs.glob("*.jsonl"))[0]
        aside = tmp_path / "aside.jsonl"
        shutil.move(oldest, aside)                       # deleted (or moved away) ...
        time.sleep(0.6)
        shutil.move(aside, oldest)                       # ... and restored, without a restart
        time.sleep(0.8)
        assert _counts(svc) == counts
        assert _loki_pushes(loki) == pushes
        with open(oldest, "a") as f:                     # and it is still followed
            f.write(event_line("Late line in a restored file", etype="event"))
        assert wait_for(lambda: _counts(svc)[0] == counts[0] + 1)
        assert wait_for(lambda: len(loki.entries()) == m["events_total"] + 1, timeout=5)
        counts, pushes = _counts(svc), _loki_pushes(loki)
    finally:
        svc.stop()
    _restart_changes_nothing(tmp_path, logs, loki, counts, pushes)


def test_a_directory_missing_for_a_moment_is_neither_counted_nor_pushed_again(tmp_path, logs, loki):
    m = manifest()
    messages: list[str] = []
    svc = start(tmp_path, logs, loki_url=loki.url, log=messages.append)
    try:
        counts, pushes = _settled(svc, loki, m)
        away = tmp_path / "away"
        logs.rename(away)                                # mv dir away (a mount hiccup) ...
        time.sleep(1.0)                                  # several polls
        away.rename(logs)                                # ... and back
        time.sleep(0.8)
        assert _counts(svc) == counts
        assert _loki_pushes(loki) == pushes
        assert len([msg for msg in messages if "cannot list" in msg]) == 1   # once, not once a poll
    finally:
        svc.stop()
    _restart_changes_nothing(tmp_path, logs, loki, counts, pushes)


def test_a_day_gzipped_in_place_is_neither_counted_nor_pushed_again(tmp_path, logs, loki):
    m = manifest()
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        counts, pushes = _settled(svc, loki, m)
        for plain in sorted(logs.glob("*.jsonl"))[:-1]:  # retention compresses the old days
            gz = plain.with_name(plain.name + ".gz")
            gz.write_bytes(gzip.compress(plain.read_bytes()))
            time.sleep(0.3)                              # both there for a moment
            plain.unlink()
        time.sleep(0.8)
        assert len(list(logs.glob("*.jsonl.gz"))) == 6
        assert _counts(svc) == counts
        assert _loki_pushes(loki) == pushes
    finally:
        svc.stop()
    _restart_changes_nothing(tmp_path, logs, loki, counts, pushes)
    # and what serve left is what import expects: same positions, nothing sent again
    from exporter.cli import main
    assert main(["import", str(logs), "--loki-url", loki.url, "--state-dir", str(tmp_path / "state"), "-q"]) in (0, 1)
    assert _loki_pushes(loki) == pushes


def test_import_after_serve_sends_nothing_again_and_sees_no_replaced_file(tmp_path, logs, loki, capsys):
    m = manifest()
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        _, pushes = _settled(svc, loki, m)
    finally:
        svc.stop()
    from exporter.cli import main
    capsys.readouterr()
    main(["import", str(logs), "--loki-url", loki.url, "--state-dir", str(tmp_path / "state"), "-v"])
    assert "replaced" not in capsys.readouterr().err
    assert _loki_pushes(loki) == pushes


# ------------------------------------------------------------------ gzip backfill and the read budget

def _big_gzip_backfill(tmp_path: Path) -> Path:
    """A 9.6 MB day as .jsonl.gz (more than the 8 MiB read budget), then a plain day: 20,001 events."""
    logs = tmp_path / "logs"
    logs.mkdir()
    pad = "p" * 380
    body = "".join(event_line(f"Old failure kind {_word(i % 300)} {pad}",
                              received="2025-12-01T10:00:00+00:00", when="2025-12-01T10:00:00.000Z")
                   for i in range(20_000))
    assert len(body) > 9 << 20
    (logs / "telemetry-2025-12-01.jsonl.gz").write_bytes(gzip.compress(body.encode(), compresslevel=1))
    (logs / "telemetry-2025-12-02.jsonl").write_text(event_line("Next day", etype="event",
                                                                received="2025-12-02T10:00:00+00:00"))
    return logs


def test_a_gzip_backfill_bigger_than_the_read_budget_is_complete_only_once_counted(tmp_path, loki):
    """A 9.6 MB .jsonl.gz (the per-poll budget is 8 MiB): the backfill is complete (and Loki asked
    to flush) only once every line is counted and delivered, and no type is discovered "now"."""
    logs = _big_gzip_backfill(tmp_path)
    holder: dict = {}
    at_completion: list[float] = []

    def log(msg: str) -> None:
        if msg.startswith("backfill complete"):
            at_completion.append(holder["svc"].core.events)
    cfg = load_config(None, env={"LOKI_URL": loki.url, "LOKI_FLUSH_AFTER_BACKFILL": "true"},
                      flags={"state_dir": str(tmp_path / "state")}, metrics_flags={"listen": "127.0.0.1:0"})
    svc = holder["svc"] = Service(cfg, logs, loki=True, fingerprinter=Fingerprinter(), log=log)
    svc.start()
    try:
        assert wait_for(svc.caught_up.is_set, timeout=30)
        assert wait_for(lambda: at_completion, timeout=2)
        assert at_completion == [20_001]
        flushes = lambda: [i for i, r in enumerate(loki.requests) if r.route == "/flush"]  # noqa: E731
        assert wait_for(lambda: flushes(), timeout=30)
        assert len(loki.entries()) == 20_001             # all delivered before the flush
        assert max(i for i, r in enumerate(loki.requests) if r.route == "/loki/api/v1/push") < flushes()[0]
        assert max(discovered(scrape(svc)).values()) < time.time() - 86400
    finally:
        svc.stop()


# ------------------------------------------------------------------ discovery times

def test_history_copied_in_after_the_first_backfill_is_not_new(tmp_path):
    """`docker compose up` with an empty directory, then 30 days of history copied in: no type is
    discovered "now" (no alert); a genuinely new line afterwards is."""
    logs = tmp_path / "logs"
    logs.mkdir()
    svc = start(tmp_path, logs)
    try:
        assert wait_for(svc.caught_up.is_set)
        for p in sorted(EXAMPLES.glob("*.jsonl")):
            shutil.copy(p, logs / p.name)
        with open(newest(logs), "a") as f:
            f.write("\n")
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == manifest()["events_total"])
        old = discovered(scrape(svc))
        assert old and max(old.values()) < time.time() - 86400
        with open(newest(logs), "a") as f:
            f.write(event_line("Checkout exploded after the copy", received="now"))
        assert wait_for(lambda: len(discovered(scrape(svc))) == len(old) + 1)
        (new,) = set(discovered(scrape(svc)).values()) - set(old.values())
        assert abs(new - time.time()) < 5
    finally:
        svc.stop()


def test_skewed_clocks_never_put_a_discovery_in_the_future(tmp_path):
    """A line without receivedAt takes its file's anchor (the last receive time above it); at the
    top of a file, its event time, but never later than now."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "telemetry-2025-12-30.jsonl").write_text(
        event_line("Anchored one", received="2025-12-30T08:00:00+00:00")
        + event_line("Skewed but anchored", received=None, when="2031-06-01T00:00:00.000Z"))
    (logs / "telemetry-2025-12-31.jsonl").write_text(
        event_line("Skewed at the top", received=None, when="2031-06-01T00:00:00.000Z"))
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == 3)
        s = scrape(svc)
        by_template = {dict(k[1])["template"]: v for k, v in s.items()
                       if k[0] == "telemetry_error_type_discovered_timestamp_seconds"}
        anchor = 1767081600.0            # 2025-12-30T08:00:00Z
        assert by_template["Anchored one"] == anchor
        assert by_template["Skewed but anchored"] == anchor
        assert by_template["Skewed at the top"] <= time.time()
    finally:
        svc.stop()


def test_lines_received_while_the_exporter_was_down_are_new_after_a_restart_but_copied_history_is_not(tmp_path, logs):
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == manifest()["events_total"])
        before = discovered(scrape(svc))
    finally:
        svc.stop()
    stopped_at = time.time()
    saved = json.loads((tmp_path / "state" / "serve-state.json").read_text())
    assert stopped_at - 5 < saved["watched_until"] <= stopped_at
    # while it is down: a new type arrives, and an old day of another app copy is dropped in
    time.sleep(0.2)
    with open(newest(logs), "a") as f:
        f.write(event_line("Arrived while the exporter was down", received="now"))
    (logs / "telemetry-2025-11-15.jsonl").write_text(
        event_line("Old history dropped in", received="2025-11-15T09:00:00+00:00", when="2025-11-15T09:00:00.000Z"))
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: len(discovered(scrape(svc))) == len(before) + 2)
        s = scrape(svc)
        by_template = {dict(k[1])["template"]: v for k, v in s.items()
                       if k[0] == "telemetry_error_type_discovered_timestamp_seconds"}
        assert abs(by_template["Arrived while the exporter was down"] - time.time()) < 5   # alerts
        assert by_template["Old history dropped in"] == 1763197200.0                    # does not
        assert {k: v for k, v in discovered(s).items() if k in before} == before
    finally:
        svc.stop()


# ------------------------------------------------------------------ Loki down at startup

def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_loki_down_at_startup_still_serves_metrics_and_delivers_once_it_is_up(tmp_path, logs):
    from tests.loki_emulator import LokiEmulator
    m = manifest()
    port = _free_port()                                    # nothing listens: connection refused
    messages: list[str] = []
    cfg = load_config(None, env={"LOKI_URL": f"http://127.0.0.1:{port}"},
                      flags={"state_dir": str(tmp_path / "state")},
                      loki_flags={"min_backoff": 0.05, "max_backoff": 0.2, "ready_timeout": 0.5},
                      metrics_flags={"listen": "127.0.0.1:0"})
    t0 = time.monotonic()
    svc = Service(cfg, logs, loki=True, fingerprinter=Fingerprinter(), log=messages.append).start()
    emu = None
    try:
        assert time.monotonic() - t0 < 1.0                 # start() does not wait for Loki
        assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == m["events_total"], timeout=3)
        assert total(scrape(svc), "telemetry_errors_total") == m["errors"]
        ready = httpx.get(f"http://{svc.server.address}/ready")
        assert ready.status_code == 200 and "Loki not reachable" in ready.text   # /ready: the metrics backfill
        assert wait_for(lambda: scrape(svc)[("telemetry_exporter_loki_push_failures_total", ())] >= 1, timeout=3)
        assert any("not ready" in msg and "waiting" in msg for msg in messages)
        emu = LokiEmulator(port=port, reject_old_samples=False).start()   # Loki comes up
        assert wait_for(lambda: len(emu.entries()) == m["events_total"], timeout=10)
        assert httpx.get(f"http://{svc.server.address}/ready").text == "ready\n"
    finally:
        svc.stop()
        if emu is not None:
            emu.stop()


def test_loki_answering_503_at_start_does_not_delay_metrics(tmp_path, logs):
    from tests.loki_emulator import LokiEmulator
    m = manifest()
    with LokiEmulator(ready_after=3.0, reject_old_samples=False) as emu:
        cfg = load_config(None, env={"LOKI_URL": emu.url}, flags={"state_dir": str(tmp_path / "state")},
                          loki_flags={"min_backoff": 0.05, "max_backoff": 0.2},
                          metrics_flags={"listen": "127.0.0.1:0"})
        t0 = time.monotonic()
        svc = Service(cfg, logs, loki=True, fingerprinter=Fingerprinter(), log=lambda msg: None).start()
        try:
            assert wait_for(lambda: total(scrape(svc), "telemetry_events_total") == m["events_total"], timeout=2)
            assert time.monotonic() - t0 < 2.5 and not emu.entries()
            assert wait_for(lambda: len(emu.entries()) == m["events_total"], timeout=10)
        finally:
            svc.stop()


# ------------------------------------------------------------------ failures and idle saves

def _serve(logs: Path, state: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "exporter", "serve", str(logs), "--no-loki", "--listen",
                             "127.0.0.1:0", "--state-dir", str(state), *extra], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_dead_worker_thread_makes_serve_exit_1_with_a_clear_message(tmp_path, logs):
    state = tmp_path / "state"
    proc = _serve(logs, state)
    try:
        seen = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            seen.append(proc.stderr.readline())
            if "backfill complete" in seen[-1]:
                break
        target = state / "serve-state.json"
        while True:                     # the state file becomes a directory: the next save fails
            try:
                target.mkdir(parents=True)
                break
            except FileExistsError:
                target.unlink()
        with open(newest(logs), "a") as f:
            f.write(event_line("Something to save", etype="event"))
        rest = proc.communicate(timeout=30)[1]
        assert proc.returncode == 1, "".join(seen) + rest
        assert "the metrics follower thread failed" in rest and "serve-state.json" in rest
        assert "exit code 1" in rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_an_idle_exporter_does_not_rewrite_its_state(tmp_path, logs):
    path = tmp_path / "state" / "serve-state.json"
    sig = lambda: (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size)  # noqa: E731
    svc = start(tmp_path, logs, save_interval=0.1)
    try:
        assert wait_for(lambda: svc.caught_up.is_set() and path.exists())
        time.sleep(0.4)
        idle = sig()
        time.sleep(1.0)                                   # ten save intervals, nothing new
        assert sig() == idle
        with open(newest(logs), "a") as f:
            f.write(event_line("Worth saving", etype="event"))
        assert wait_for(lambda: sig() != idle, timeout=2)
        assert json.loads(path.read_text())["core"]["events"] == manifest()["events_total"] + 1
        idle = sig()
    finally:
        svc.stop()
    assert sig() != idle                                  # and always on shutdown


def test_serve_counts_exactly_what_the_generator_wrote(tmp_path):
    """Every line through the core's one line path (add_line): events by type, invalid lines by
    reason (too_long included), blank lines, errors and sessions equal the corpus' own counts,
    a gzipped day included."""
    from benchmarks.generate_corpus import generate
    logs = tmp_path / "logs"
    m = generate(logs, days=3, events=1500, seed=3, junk_rate=0.02, gzip_days=1, long_lines=True)
    (logs / "manifest.json").unlink()
    with open(newest(logs), "ab") as f:
        f.write(b"\n")
    svc = start(tmp_path, logs)
    try:
        assert wait_for(lambda: svc.caught_up.is_set() and total(scrape(svc), "telemetry_events_total") == m["events_total"])
        s = scrape(svc)
        assert {dict(k[1])["type"]: v for k, v in s.items() if k[0] == "telemetry_events_total"} == m["events_by_type"]
        assert {dict(k[1])["reason"]: v for k, v in s.items()
                if k[0] == "telemetry_invalid_lines_total"} == m["invalid_by_reason"]
        assert m["invalid_by_reason"]["too_long"] >= 1
        assert total(s, "telemetry_errors_total") == m["errors"]
        assert s[("telemetry_sessions", ())] == m["sessions"]
    finally:
        svc.stop()
    core = json.loads((tmp_path / "state" / "serve-state.json").read_text())["core"]
    assert (core["lines"], core["blank_lines"]) == (m["total_lines"], m["blank_lines"])


def test_a_restart_in_the_middle_of_a_gzip_backfill_neither_double_counts_nor_loses(tmp_path, loki):
    logs = _big_gzip_backfill(tmp_path)
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        assert wait_for(lambda: 0 < svc.core.events, timeout=10)
        assert not svc.caught_up.is_set()                 # stopped in the middle of the archive
    finally:
        svc.stop()
    assert 0 < json.loads((tmp_path / "state" / "serve-state.json").read_text())["core"]["events"] < 20_001
    svc = start(tmp_path, logs, loki_url=loki.url)
    try:
        assert wait_for(lambda: svc.caught_up.is_set() and total(scrape(svc), "telemetry_events_total") == 20_001,
                        timeout=30)
        assert total(scrape(svc), "telemetry_errors_total") == 20_000
        assert wait_for(lambda: len(loki.entries()) == 20_001, timeout=30)
        time.sleep(0.5)
        assert len(loki.entries()) == 20_001
        assert total(scrape(svc), "telemetry_events_total") == 20_001
    finally:
        svc.stop()
