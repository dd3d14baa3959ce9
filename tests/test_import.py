"""`telemetry-exporter import` against the Loki emulator: exact payloads, exactly-once delivery,
ordering-window safety, retries, resume, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from exporter.cli import main
from tests.recount import walk
from exporter.events.timing import NS_PER_S

ROOT = Path(__file__).resolve().parents[1]


def run_import(loki_url, *args, state=None, env_extra=None, capsys=None):
    argv = ["import", *map(str, args), "--loki-url", loki_url, "--ready-timeout", "5", "-q"]
    if state is not None:
        argv += ["--state-dir", str(state)]
    return main(argv)


def line(**kw) -> str:
    doc = {"type": "event", "data": {"name": "page_view"}, "timestamp": "2025-12-26T10:16:03.046Z",
           "sessionId": "1766744160751-qg4abun", "url": "https://saberloop.com/app/#/quiz",
           "_server": {"receivedAt": "2025-12-26T10:16:15+00:00", "batchSentAt": "2025-12-26T10:16:03.000Z"}}
    doc.update(kw)
    return json.dumps(doc, separators=(",", ":"))


def stored_lines(loki) -> Counter:
    return Counter(e.line for e in loki.entries())


def valid_lines_of(directory: Path) -> Counter:
    """Independent recount (tests/recount.py, not the project's parser): the event lines."""
    return Counter(line.decode() for _, line, kind, _ in walk(directory) if kind == "event")


# --- exact payloads ---------------------------------------------------------------------------

def test_exact_push_payload(tmp_path, loki):
    logs = tmp_path / "logs"
    logs.mkdir()
    err = line(type="error", data={"message": "Failed to fetch"})
    late = line(type="vital", data={"name": "LCP", "value": 2100}, sessionId="",
                timestamp="2025-12-23T08:00:00.000Z",
                _server={"receivedAt": "2025-12-26T10:16:20+00:00", "batchSentAt": "2025-12-26T10:16:19.000Z"})
    (logs / "telemetry-2025-12-26.jsonl").write_text(err + "\n" + late + "\n")
    code = run_import(loki.url, logs, state=tmp_path / "state")
    assert code == 0
    pushes = [r for r in loki.requests if r.path == "/loki/api/v1/push"]
    assert len(pushes) == 2                       # one request per stream
    assert all("Content-Encoding" not in r.headers for r in pushes)   # auto: no compression on loopback
    bodies = {r.json["streams"][0]["stream"]["type"]: r.json for r in pushes}
    assert [len(b["streams"]) for b in bodies.values()] == [1, 1]
    e = bodies["error"]["streams"][0]
    assert e["stream"] == {"app": "saberloop", "type": "error"}
    # event time 10:16:03.046 + (10:16:15 - 10:16:03.000) = 10:16:15.046; line offset 0
    ts = (1766744175 * NS_PER_S) + 46_000_000
    assert e["values"][0][0] == str(ts)
    assert e["values"][0][1] == err               # byte-exact line
    md = e["values"][0][2]
    assert md["session_id"] == "1766744160751-qg4abun" and md["page"] == "#/quiz"
    assert len(md["error_type"]) == 12
    v = bodies["vital"]["streams"][0]
    # delivered 3 days late: stamped at receive time (+ line offset in the sub-ms digits)
    offset = len(err) + 1
    assert v["values"][0][0] == str(1766744180 * NS_PER_S + offset)
    # its real (drift-corrected) time is kept: 08:00:00.000 + (10:16:20 - 10:16:19.000)
    assert v["values"][0][2] == {"page": "#/quiz", "event_time": "2025-12-23T08:00:01.000Z"}
    assert v["values"][0][1] == late


def test_lines_without_receive_time_at_the_top_of_a_file_take_the_first_one_below(tmp_path, loki):
    """A skewed client clock (2 days ahead) on a line with no `_server` at the top of a file must
    not set the stream's pace: it is stamped at the first receive time of the file, and every
    following line of the stream is stored."""
    logs = tmp_path / "logs"
    logs.mkdir()
    ahead = line(timestamp="2025-12-28T10:00:00.000Z", _server=None)
    sane = line(timestamp="2025-12-26T10:16:10.000Z", _server=None)
    rest = [line(data={"name": f"view {i}"}) for i in range(3)]
    (logs / "telemetry-2025-12-26.jsonl").write_text("\n".join([ahead, sane, *rest]) + "\n")
    assert run_import(loki.url, logs, state=tmp_path / "state") == 0
    stored = {e.line: e for e in loki.entries()}
    assert sorted(stored) == sorted([ahead, sane, *rest])
    received = 1766744175 * NS_PER_S                   # 2025-12-26T10:16:15Z, from the lines below
    assert stored[ahead].ts_ns == received       # offset 0 in the sub-ms digits
    assert stored[ahead].metadata["event_time"] == "2025-12-28T10:00:00.000Z"
    # within 15 min before the receive time: its own time is kept
    assert stored[sane].ts_ns == 1766744170 * NS_PER_S + len(ahead) + 1
    assert "event_time" not in stored[sane].metadata


# --- the corpus: everything delivered once, nothing rejected ---------------------------------

def test_corpus_delivered_exactly_once_with_skewed_and_late_events(tmp_path, loki, corpus, capsys):
    directory, manifest = corpus
    state = tmp_path / "state"
    code = run_import(loki.url, directory, state=state)
    out = capsys.readouterr().out
    assert code == 1                              # the corpus has junk lines
    assert stored_lines(loki) == valid_lines_of(directory)
    assert sum(stored_lines(loki).values()) == manifest["events_total"]
    assert f"delivered to Loki  {manifest['events_total']:,}" in out
    assert "rejected by Loki   0" in out
    by_type = Counter(e.labels["type"] for e in loki.entries())
    assert dict(by_type) == {k: v for k, v in manifest["events_by_type"].items() if v}
    dead = [orjson.loads(x) for x in (state / "dead-letter.jsonl").read_bytes().splitlines()]
    assert Counter(d["reason"] for d in dead) == Counter({k: v for k, v in manifest["invalid_by_reason"].items() if v})
    for d in dead:
        assert d["file"] and d["line"] >= 1 and d["offset"] >= 0 and "raw" in d


def test_rerun_sends_nothing_and_restart_stores_nothing_twice(tmp_path, loki, corpus, capsys):
    directory, manifest = corpus
    state = tmp_path / "state"
    run_import(loki.url, directory, state=state)
    n_requests = len(loki.requests)
    assert run_import(loki.url, directory, state=state) == 0   # nothing new, nothing invalid
    pushes = [r for r in loki.requests[n_requests:] if r.path.endswith("/push")]
    assert pushes == []
    code = main(["import", str(directory), "--loki-url", loki.url, "--state-dir", str(state), "--restart", "-q"])
    out = capsys.readouterr().out
    assert code == 1                                      # the junk lines again, nothing else
    assert "rejected by Loki   0" in out and "were already there" in out
    assert sum(stored_lines(loki).values()) == manifest["events_total"]


def test_files_in_any_order_give_the_same_result(tmp_path, loki, corpus):
    directory, manifest = corpus
    files = sorted(p for p in directory.iterdir() if ".jsonl" in p.name)
    code = main(["import", *map(str, reversed(files)), "--loki-url", loki.url, "--state-dir", str(tmp_path), "-q"])
    assert code == 1
    assert sum(stored_lines(loki).values()) == manifest["events_total"]


# --- Loki misbehaving ------------------------------------------------------------------------

def test_429_and_5xx_storms_are_retried(tmp_path, loki, corpus, capsys):
    directory, manifest = corpus
    loki.inject(429, "ingestion rate limit exceeded", times=3, retry_after="0")
    loki.inject(503, "upstream unavailable", times=2)
    loki.inject(500, "internal error", times=2)
    code = main(["import", str(directory), "--loki-url", loki.url, "--state-dir", str(tmp_path), "-q",
                 "--config", str(_fast_retry_config(tmp_path))])
    out = capsys.readouterr().out
    assert code == 1
    assert sum(stored_lines(loki).values()) == manifest["events_total"]
    assert "(7 retries)" in out


def test_pushes_bigger_than_lokis_rate_limit_burst_are_split_not_lost(tmp_path, corpus, capsys):
    """A Loki whose rate-limit burst (64 KiB) is smaller than a push refuses that push with 429
    forever (recorded: 3 MB against a 1 MB burst). The client sends such a push in halves, in
    order, and from then on smaller pushes: every event arrives, once, with a warning that says
    what to tune."""
    from tests.loki_emulator import LokiEmulator
    directory, manifest = corpus
    with LokiEmulator(reject_old_samples=False, ingestion_rate_mb=64, ingestion_burst_size_mb=1 / 16) as emu:
        code = main(["import", str(directory), "--loki-url", emu.url, "--state-dir", str(tmp_path), "-q",
                     "--batch-bytes", "262144", "--config", str(_fast_retry_config(tmp_path))])
        captured = capsys.readouterr()
        lines = stored_lines(emu)
        refused = [r for r in emu.push_requests if r.status == 429]
    assert code == 1, captured.err                     # the corpus' junk lines only
    assert lines == valid_lines_of(directory)          # every event, each exactly once
    assert "rejected by Loki   0" in captured.out
    assert refused and all("ingestion rate limit exceeded" in r.response_body for r in refused)
    assert "Loki keeps rate-limiting pushes of" in captured.err and "--batch-bytes" in captured.err


def test_an_entry_bigger_than_the_burst_gives_up_with_a_hint(tmp_path, capsys):
    from tests.loki_emulator import LokiEmulator
    logs = tmp_path / "logs"
    logs.mkdir()
    line = ('{"type":"event","data":{"name":"%s"},"timestamp":"2025-12-30T10:00:00.000Z"}\n' % ("x" * 5000))
    (logs / "telemetry-2025-12-30.jsonl").write_text(line)
    with LokiEmulator(reject_old_samples=False, ingestion_rate_mb=64, ingestion_burst_size_mb=0.001) as emu:
        code = main(["import", str(logs), "--loki-url", emu.url, "--state-dir", str(tmp_path / "s"), "-q",
                     "--config", str(_fast_retry_config(tmp_path))])
    err = capsys.readouterr().err
    assert code == 3
    assert "giving up on Loki" in err and "429 ingestion rate limit exceeded" in err
    assert "raise its ingestion_rate_mb / ingestion_burst_size_mb" in err


def _fast_retry_config(tmp_path):
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("loki:\n  min_backoff: 0.01\n  max_backoff: 0.05\n  max_retries: 5\n")
    return cfg


def test_retries_exhausted_exit_3_and_resume_later(tmp_path, loki, corpus, capsys):
    directory, manifest = corpus
    loki.inject(503, "down", times=10_000)
    code = main(["import", str(directory), "--loki-url", loki.url, "--state-dir", str(tmp_path), "-q",
                 "--config", str(_fast_retry_config(tmp_path))])
    err = capsys.readouterr().err
    assert code == 3 and "giving up on Loki" in err and "resume" in err


def test_loki_not_ready_at_start_is_waited_for(tmp_path, corpus, capsys):
    from tests.loki_emulator import LokiEmulator
    directory, manifest = corpus
    with LokiEmulator(ready_after=1.5, reject_old_samples=False) as emu:
        code = main(["import", str(directory), "--loki-url", emu.url, "--state-dir", str(tmp_path), "-q"])
        err = capsys.readouterr().err
        assert "waiting for Loki" in err and "503" in err
        assert code == 1 and len(emu.entries()) == manifest["events_total"]


def test_loki_unreachable_exits_3_quickly(tmp_path, corpus, capsys):
    directory, _ = corpus
    started = time.monotonic()
    code = main(["import", str(directory), "--loki-url", "http://user:hunter2@127.0.0.1:9", "--ready-timeout", "1",
                 "--state-dir", str(tmp_path), "-q"])
    captured = capsys.readouterr()
    assert code == 3
    assert "not ready after 1s" in captured.err and "http://127.0.0.1:9" in captured.err
    assert "hunter2" not in captured.err + captured.out
    assert time.monotonic() - started < 10


def test_rejections_are_accounted_with_lokis_reason(tmp_path, corpus, capsys):
    """A Loki keeping only 2 days: older entries are rejected (400, more than 10 per stream):
    every one of them is found, counted and dead-lettered; the rest is stored."""
    from tests.loki_emulator import LokiEmulator
    directory, manifest = corpus
    # the corpus ends 2025-12-31; a clock at 2026-01-02 with 2 days of max age rejects most of it
    now = 1767312000.0  # 2026-01-02T00:00:00Z
    with LokiEmulator(now=lambda: now, reject_old_samples_max_age=2 * 86400) as emu:
        code = main(["import", str(directory), "--loki-url", emu.url, "--state-dir", str(tmp_path), "-q"])
        out = capsys.readouterr().out
        assert code == 1
        dead = [orjson.loads(x) for x in (tmp_path / "dead-letter.jsonl").read_bytes().splitlines()]
        too_old = [d for d in dead if d["reason"] == "loki_too_old"]
        stored = len(emu.entries())
        assert too_old and stored
        assert stored + len(too_old) == manifest["events_total"]
        assert f"rejected by Loki   {len(too_old):,}  (too_old {len(too_old):,})" in out
        assert "too_old: older than Loki's reject_old_samples_max_age" in out


def test_older_day_imported_after_newer_one_is_rejected_accounted_and_explained(tmp_path, capsys):
    """Loki's per-stream window cannot take a day older than what a stream already holds: a user
    who imports the last day first and the first day later loses nothing silently."""
    from benchmarks.generate_corpus import generate
    from tests.loki_emulator import LokiEmulator
    logs = tmp_path / "logs"
    generate(logs, days=3, events=600, seed=5, junk_rate=0)
    days = sorted(logs.glob("telemetry-*.jsonl"))
    state = tmp_path / "state"
    with LokiEmulator(reject_old_samples=False) as emu:
        assert main(["import", str(days[-1]), "--loki-url", emu.url, "--state-dir", str(state), "-q"]) == 0
        capsys.readouterr()
        stored_before = len(emu.entries())
        code = main(["import", str(days[0]), "--loki-url", emu.url, "--state-dir", str(state), "-q"])
        out = capsys.readouterr().out
        dead = [orjson.loads(x) for x in (state / "dead-letter.jsonl").read_bytes().splitlines()]
    behind = [d for d in dead if d["reason"] == "loki_too_far_behind"]
    first_day_events = sum(1 for line in days[0].read_bytes().splitlines() if line.strip())
    assert code == 1
    assert len(behind) == first_day_events
    assert len(emu.entries()) == stored_before
    assert f"(too_far_behind {len(behind):,})" in out
    assert "older files were imported after newer ones" in out


def test_tenant_and_basic_auth_are_sent_and_never_printed(tmp_path, capsys):
    from tests.loki_emulator import LokiEmulator
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "telemetry-2025-12-26.jsonl").write_text(line() + "\n")
    with LokiEmulator(tenant="team-a", basic_auth=("alice", "s3cret-pw"), reject_old_samples=False) as emu:
        env = {"LOKI_PASSWORD": "s3cret-pw"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            code = main(["import", str(logs), "--loki-url", emu.url, "--tenant", "team-a", "--username", "alice",
                         "--state-dir", str(tmp_path / "s"), "-v"])
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        captured = capsys.readouterr()
        assert code == 0 and len(emu.entries()) == 1
        assert "s3cret-pw" not in captured.out + captured.err
        push = [r for r in emu.requests if r.path.endswith("/push")][0]
        assert push.headers["X-Scope-OrgID"] == "team-a"


# --- dry run, usage -----------------------------------------------------------------------------

def test_dry_run_sends_nothing(tmp_path, corpus, capsys):
    directory, manifest = corpus
    code = main(["import", str(directory), "--dry-run", "--loki-url", "http://127.0.0.1:9", "-q",
                 "--state-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "Dry run: nothing was sent" in out
    assert f"valid events       {manifest['events_total']:,}" in out
    assert '{app="saberloop", type="error"}' in out
    assert not (tmp_path / "positions.json").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["import", str(tmp_path / "nope"), "--dry-run"]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["import", "--compression", "brotli"])
    assert exc.value.code == 2


# --- kill -9 at any moment, then resume: exactly once -----------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")
@pytest.mark.parametrize("kill_after_pushes", [3, 17])
def test_kill_9_then_resume_delivers_exactly_once(tmp_path, corpus, kill_after_pushes):
    from tests.loki_emulator import LokiEmulator
    directory, manifest = corpus
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "exporter", "import", str(directory), "--state-dir", str(state),
           "--batch-bytes", "20000", "-q"]
    with LokiEmulator(reject_old_samples=False) as emu:
        env = {**os.environ, "LOKI_URL": emu.url, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(1 for r in list(emu.requests) if r.path.endswith("/push")) >= kill_after_pushes:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = len(emu.entries())
        assert partial < manifest["events_total"]       # it really was interrupted
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 1, done.stderr       # junk lines in the corpus, nothing else
        assert stored_lines(emu) == valid_lines_of(directory)
        assert "rejected by Loki   0" in done.stdout
    dead = [orjson.loads(x) for x in (state / "dead-letter.jsonl").read_bytes().splitlines()]
    keys = [(d["file"], d["offset"]) for d in dead]
    assert len(keys) == len(set(keys)) == sum(manifest["invalid_by_reason"].values())


def test_gzip_compression_when_asked(tmp_path, loki):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "telemetry-2025-12-26.jsonl").write_text(line() + "\n")
    assert main(["import", str(logs), "--loki-url", loki.url, "--compression", "gzip", "-q",
                 "--state-dir", str(tmp_path / "s")]) == 0
    push = [r for r in loki.requests if r.path.endswith("/push")][0]
    assert push.headers["Content-Encoding"] == "gzip" and push.json["streams"][0]["values"][0][1] == line()


def test_auto_compression():
    from exporter.sinks.loki.client import effective_compression
    assert effective_compression("auto", "http://127.0.0.1:3100") == "none"
    assert effective_compression("auto", "http://localhost:3100") == "none"
    assert effective_compression("auto", "http://loki:3100") == "gzip"
    assert effective_compression("auto", "https://logs-prod.grafana.net") == "gzip"
    assert effective_compression("gzip", "http://127.0.0.1:3100") == "gzip"


def test_truncated_or_replaced_file_is_read_again(tmp_path, loki, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "telemetry-2025-12-26.jsonl"
    a = [line(data={"name": f"a{i}"}) for i in range(5)]
    f.write_text("\n".join(a) + "\n")
    state = tmp_path / "s"
    assert run_import(loki.url, logs, state=state) == 0
    f.write_text(a[0] + "\n")                                      # truncated
    assert run_import(loki.url, logs, state=state) == 0
    assert "is shorter than last time" in capsys.readouterr().err
    b = [line(data={"name": f"b{i}"}) for i in range(5)]
    f.write_text("\n".join(b) + "\n")                              # replaced, same size
    assert run_import(loki.url, logs, state=state) == 0
    assert "was replaced since last time" in capsys.readouterr().err
    assert set(stored_lines(loki)) == set(a) | set(b)


def test_loki_without_structured_metadata_still_gets_every_line(tmp_path, corpus, capsys):
    from tests.loki_emulator import LokiEmulator
    directory, manifest = corpus
    with LokiEmulator(reject_old_samples=False, allow_structured_metadata=False) as emu:
        code = main(["import", str(directory), "--loki-url", emu.url, "--state-dir", str(tmp_path), "-q"])
        captured = capsys.readouterr()
        assert code == 1                                       # the corpus' junk lines only
        assert "does not accept structured metadata" in captured.err
        assert "rejected by Loki   0" in captured.out
        assert stored_lines(emu) == valid_lines_of(directory)
        assert all(not e.metadata for e in emu.entries())


def test_the_push_url_itself_is_accepted_as_loki_url(tmp_path, loki):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "telemetry-2025-12-26.jsonl").write_text(line() + "\n")
    assert run_import(loki.url + "/loki/api/v1/push", logs, state=tmp_path / "state") == 0
    assert [e.line for e in loki.entries()] == [line()]
    assert {r.route for r in loki.requests} == {"/ready", "/loki/api/v1/push"}
    pushes = len(loki.push_requests)
    assert run_import(loki.url + "/", logs, state=tmp_path / "state") == 0   # the same target
    assert len(loki.push_requests) == pushes


def test_loki_behind_a_gateway_without_ready_endpoint(tmp_path, loki, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "telemetry-2025-12-26.jsonl").write_text(line() + "\n")
    loki.inject(404, "404 page not found\n", path="/ready")
    code = main(["import", str(logs), "--loki-url", loki.url, "--state-dir", str(tmp_path / "s"), "-q"])
    assert code == 0 and len(loki.entries()) == 1
    assert "no /ready endpoint" in capsys.readouterr().err


def test_a_file_of_junk_is_cut_into_bounded_chunks(tmp_path):
    from exporter.positions import Positions
    from exporter.reader import ChunkReader, ReaderSettings
    f = tmp_path / "telemetry-2025-12-26.jsonl"
    f.write_bytes(b"this is not json at all, not even close\n" * 20_000)   # 800 KB, no event
    reader = ChunkReader(ReaderSettings("saberloop", 262144, 10_000, 1000), Positions(None))
    chunks = list(reader.chunks([f]))
    assert len(chunks) >= 20
    assert max(len(c.invalid) for c in chunks) <= 1_100
    assert sum(len(c.invalid) for c in chunks) == 20_000


@pytest.mark.parametrize("status, body, hint", [
    (401, "no org id\n", "set LOKI_TENANT (X-Scope-OrgID)"),
    (401, "invalid credentials\n", "LOKI_USERNAME"),
    (422, "error at least one valid stream is required for ingestion\n", "no valid stream"),
    (413, "request entity too large\n", "--batch-bytes"),
])
def test_other_4xx_is_a_clear_error_exit_3(tmp_path, loki, capsys, status, body, hint):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "telemetry-2025-12-26.jsonl").write_text(line() + "\n")
    loki.inject(status, body)
    code = main(["import", str(logs), "--loki-url", loki.url, "--state-dir", str(tmp_path / "s"), "-q"])
    err = capsys.readouterr().err
    assert code == 3
    assert f"refused the push: {status}" in err and hint in err
    assert len([r for r in loki.requests if r.path.endswith("/push")]) == 1   # never retried


def test_bearer_token_from_a_file(tmp_path, capsys):
    from tests.loki_emulator import LokiEmulator
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "telemetry-2025-12-26.jsonl").write_text(line() + "\n")
    token = tmp_path / "token"
    token.write_text("tok-123-secret\n")
    with LokiEmulator(bearer_token="tok-123-secret", reject_old_samples=False) as emu:
        code = main(["import", str(logs), "--loki-url", emu.url, "--bearer-token-file", str(token),
                     "--state-dir", str(tmp_path / "s"), "-v"])
        captured = capsys.readouterr()
        assert code == 0 and len(emu.entries()) == 1
        assert "tok-123-secret" not in captured.out + captured.err


def test_files_are_delivered_in_receive_order_whatever_their_names(tmp_path, loki):
    """Day 1 in a file named to sort last, day 2 in one named to sort first: Loki still gets
    day 1 first (otherwise its 1 h ordering window would reject all of day 1)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    day1 = [line(timestamp=f"2025-12-20T10:{i:02d}:00.000Z",
                 _server={"receivedAt": f"2025-12-20T10:{i:02d}:01+00:00", "batchSentAt": f"2025-12-20T10:{i:02d}:00.500Z"})
            for i in range(5)]
    day2 = [line(timestamp=f"2025-12-21T10:{i:02d}:00.000Z",
                 _server={"receivedAt": f"2025-12-21T10:{i:02d}:01+00:00", "batchSentAt": f"2025-12-21T10:{i:02d}:00.500Z"})
            for i in range(5)]
    (logs / "zz-export.jsonl").write_text("\n".join(day1) + "\n")
    (logs / "aa-export.jsonl").write_text("\n".join(day2) + "\n")
    code = run_import(loki.url, logs, state=tmp_path / "s")
    assert code == 0
    assert set(stored_lines(loki)) == set(day1) | set(day2)


def test_a_day_gzipped_in_place_after_import_is_not_sent_again(tmp_path, loki):
    """Retention compresses old days (x.jsonl -> x.jsonl.gz): the archive is the same file, and
    an import after that sends only what was appended before compression."""
    import gzip
    logs = tmp_path / "logs"
    logs.mkdir()
    day = logs / "telemetry-2025-12-26.jsonl"
    first = [line(data={"name": f"view {i}"}) for i in range(5)]
    day.write_text("\n".join(first) + "\n")
    state = tmp_path / "state"
    assert run_import(loki.url, logs, state=state) == 0
    more = line(data={"name": "appended before compression"},
                _server={"receivedAt": "2025-12-26T10:20:00+00:00", "batchSentAt": "2025-12-26T10:19:59.000Z"})
    (logs / "telemetry-2025-12-26.jsonl.gz").write_bytes(gzip.compress(day.read_bytes() + more.encode() + b"\n"))
    day.unlink()
    n_requests = len(loki.requests)
    assert run_import(loki.url, logs, state=state) == 0
    pushes = [r.json for r in loki.requests[n_requests:] if r.path.endswith("/push")]
    assert [v[1] for p in pushes for s in p["streams"] for v in s["values"]] == [more]
    assert stored_lines(loki) == Counter(first + [more])
