"""The delivery tests, against a real Loki. Skipped unless LOKI_URL is set.

    docker compose -f docker-compose.telemetry.yml up -d loki
    LOKI_URL=http://127.0.0.1:3100 python -m pytest -q tests/test_real_loki.py

Each test writes under its own `app` label (fresh streams), imports a generated corpus dated
the last three days (inside Loki's default 7-day reject_old_samples window), asks Loki to
flush (imported history is not queryable until the ingester flushes), then counts with LogQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from exporter.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.real_loki


@pytest.fixture(scope="module")
def recent_corpus(tmp_path_factory):
    from benchmarks.generate_corpus import generate
    out = tmp_path_factory.mktemp("recent")
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).date()
    return out, generate(out, days=3, events=3000, end_date=yesterday, seed=11)


def loki_count(url: str, app: str, want: dict[str, int] | None = None, timeout: float = 120) -> dict[str, int]:
    """Entries per type stored for `app`. Imported history is invisible until the ingester
    flushes: flush, then poll until the counts equal ``want`` (or stop changing), flushing again
    every 10 s."""
    headers = {"X-Scope-OrgID": os.environ["LOKI_TENANT"]} if os.environ.get("LOKI_TENANT") else {}
    query = f'sum by (type) (count_over_time({{app="{app}"}}[5d]))'
    deadline, last_flush, seen = time.monotonic() + timeout, 0.0, []
    while True:
        if time.monotonic() - last_flush > 10:
            httpx.post(url.rstrip("/") + "/flush", headers=headers, timeout=30)
            last_flush = time.monotonic()
        r = httpx.get(url.rstrip("/") + "/loki/api/v1/query", params={"query": query, "time": str(time.time())},
                      headers=headers, timeout=60)
        r.raise_for_status()
        seen.append({s["metric"]["type"]: int(float(s["value"][1])) for s in r.json()["data"]["result"]})
        done = seen[-1] == want if want is not None else len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]
        if done or time.monotonic() > deadline:
            return seen[-1]
        time.sleep(2)


def expected(manifest) -> dict[str, int]:
    return {k: v for k, v in manifest["events_by_type"].items() if v}


def test_real_loki_stores_every_valid_event_once(real_loki_url, recent_corpus, tmp_path, capsys):
    directory, manifest = recent_corpus
    app = "t" + uuid.uuid4().hex[:10]
    code = main(["import", str(directory), "--loki-url", real_loki_url, "--app", app, "--state-dir", str(tmp_path),
                 "-q", "--flush"])
    out = capsys.readouterr().out
    assert code == 1, out                                   # junk lines only
    assert "rejected by Loki   0" in out
    assert f"delivered to Loki  {manifest['events_total']:,}" in out
    assert loki_count(real_loki_url, app, expected(manifest)) == expected(manifest)
    # a re-run sends nothing; --restart sends everything again and Loki still holds each once
    assert main(["import", str(directory), "--loki-url", real_loki_url, "--app", app, "--state-dir", str(tmp_path), "-q"]) == 0
    assert main(["import", str(directory), "--loki-url", real_loki_url, "--app", app, "--state-dir", str(tmp_path),
                 "-q", "--restart"]) == 1
    assert "rejected by Loki   0" in capsys.readouterr().out
    assert loki_count(real_loki_url, app, expected(manifest)) == expected(manifest)


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")
def test_real_loki_kill_9_then_resume_exactly_once(real_loki_url, recent_corpus, tmp_path):
    directory, manifest = recent_corpus
    app = "t" + uuid.uuid4().hex[:10]
    cmd = [sys.executable, "-m", "exporter", "import", str(directory), "--app", app, "--state-dir", str(tmp_path),
           "--batch-bytes", "20000", "-q"]
    env = {**os.environ, "LOKI_URL": real_loki_url, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    positions = tmp_path / "positions.json"
    deadline = time.monotonic() + 60
    while not positions.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)                   # written before the first push: pushes have begun
    time.sleep(0.2)
    assert proc.poll() is None, "the import ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    assert "rejected by Loki   0" in done.stdout
    assert loki_count(real_loki_url, app, expected(manifest)) == expected(manifest)
