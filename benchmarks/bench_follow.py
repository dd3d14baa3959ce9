"""Follow-mode latency: time from appending a line to seeing it in /metrics (and in Loki).

    python -m benchmarks.bench_follow [--samples 20] [--loki]

Starts `serve` on a copy of the sample corpus (--no-loki, or a Loki emulator with --loki),
appends one new error line at a time and polls /metrics (and the emulator) until it shows up.
Prints min/median/max latency and the idle CPU of the serve process. Figures, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def errors_total(url: str) -> float:
    text = httpx.get(url).text
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("telemetry_errors_total{"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--loki", action="store_true", help="also push to a Loki emulator and time the push")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    logs = work / "logs"
    shutil.copytree(ROOT / "examples" / "telemetry-logs", logs, ignore=shutil.ignore_patterns("manifest.json"))
    today = sorted(logs.glob("*.jsonl"))[-1]
    with open(today, "a") as f:
        f.write("\n")
    emu = None
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "exporter", "serve", str(logs), "--listen", "127.0.0.1:0", "--state-dir", str(work / "s")]
    if args.loki:
        sys.path.insert(0, str(ROOT))
        from tests.loki_emulator import LokiEmulator
        emu = LokiEmulator(reject_old_samples=False).start()
        cmd += ["--loki-url", emu.url]
    else:
        cmd += ["--no-loki"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    url = None
    while url is None:
        line = proc.stderr.readline()
        if "serving http://" in line:
            url = line.split("serving ", 1)[1].split(";")[0]
    while httpx.get(url.replace("/metrics", "/ready")).status_code != 200:
        time.sleep(0.05)
    metric_lat, loki_lat = [], []
    try:
        for i in range(args.samples):
            before = errors_total(url)
            before_loki = len(emu.entries()) if emu else 0
            event = {"type": "error", "data": {"message": f"bench failure {i}"}, "timestamp": "2025-12-31T23:59:00.000Z",
                     "sessionId": "1766744160751-benchss", "url": "https://saberloop.com/app/#/quiz",
                     "_server": {"receivedAt": "2025-12-31T23:59:01+00:00", "batchSentAt": "2025-12-31T23:59:00.500Z"}}
            t0 = time.perf_counter()
            with open(today, "a") as f:
                f.write(json.dumps(event) + "\n")
            seen_m = seen_l = None
            while seen_m is None or (emu and seen_l is None):
                now = time.perf_counter()
                if seen_m is None and errors_total(url) > before:
                    seen_m = now - t0
                if emu and seen_l is None and len(emu.entries()) > before_loki:
                    seen_l = now - t0
                if now - t0 > 10:
                    break
                time.sleep(0.01)
            metric_lat.append(seen_m or float("inf"))
            if emu:
                loki_lat.append(seen_l or float("inf"))
            time.sleep(0.3)
        stat0 = Path(f"/proc/{proc.pid}/stat").read_text().split() if Path(f"/proc/{proc.pid}/stat").exists() else None
        time.sleep(5)
        stat1 = Path(f"/proc/{proc.pid}/stat").read_text().split() if stat0 else None
        idle_cpu = ((int(stat1[13]) + int(stat1[14])) - (int(stat0[13]) + int(stat0[14]))) / os.sysconf("SC_CLK_TCK") / 5 if stat0 else None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if emu:
            emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = {"samples": len(metric_lat),
           "metrics_latency_s": {"min": round(min(metric_lat), 3), "median": round(statistics.median(metric_lat), 3),
                                 "max": round(max(metric_lat), 3)}}
    if loki_lat:
        out["loki_latency_s"] = {"min": round(min(loki_lat), 3), "median": round(statistics.median(loki_lat), 3),
                                 "max": round(max(loki_lat), 3)}
    if idle_cpu is not None:
        out["idle_cpu_percent"] = round(idle_cpu * 100, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
