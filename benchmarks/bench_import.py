"""Import benchmark: events/s, MB/s and peak RSS of `telemetry-exporter import`.

    python -m benchmarks.bench_import [--size 200MB] [--corpus DIR] [--sink null|emulator]
                                      [--compression gzip|none]

The sink is a separate process: ``null`` (reads and gunzips each push, answers 204: measures
the exporter alone), ``emulator`` (tests/loki_emulator.py: stores and validates like Loki), or a
real Loki when LOKI_URL is set (then --sink is ignored). Figures are printed, never asserted.
POSIX only (uses os.wait4 for the child's peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_sink(kind: str) -> tuple[subprocess.Popen | None, str]:
    if os.environ.get("LOKI_URL"):
        return None, os.environ["LOKI_URL"]
    if kind == "null":
        cmd = [sys.executable, "-m", "benchmarks.null_loki"]
    else:
        code = ("import sys,time; sys.path.insert(0, %r); from tests.loki_emulator import LokiEmulator;"
                "e=LokiEmulator(reject_old_samples=False).start(); print(e.url, flush=True); time.sleep(10**6)" % str(ROOT))
        cmd = [sys.executable, "-c", code]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    return proc, url


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="200MB", help="corpus size to generate (ignored with --corpus)")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--corpus", help="use this directory instead of generating one")
    ap.add_argument("--sink", choices=["null", "emulator"], default="null")
    ap.add_argument("--compression", choices=["auto", "gzip", "none"], default="auto")
    ap.add_argument("--batch-bytes", default=str(1 << 20))
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    if args.corpus:
        corpus = Path(args.corpus)
    else:
        from benchmarks.generate_corpus import generate, parse_size
        corpus = work / "corpus"
        print(f"generating {args.size} corpus ...", file=sys.stderr)
        generate(corpus, days=args.days, size_bytes=parse_size(args.size))
    size = sum(p.stat().st_size for p in corpus.glob("*.jsonl*"))
    sink, url = start_sink(args.sink)
    try:
        cmd = [sys.executable, "-m", "exporter", "import", str(corpus), "--loki-url", url, "-q",
               "--state-dir", str(work / "state"), "--compression", args.compression,
               "--batch-bytes", args.batch_bytes]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()
    events = next((int(line.split()[2].replace(",", "")) for line in out.splitlines()
                   if line.strip().startswith("valid events")), 0)
    peak_mb = usage.ru_maxrss / 1024
    result = {
        "corpus_mb": round(size / 1e6, 1), "events": events, "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed), "mb_per_s": round(size / 1e6 / elapsed, 1),
        "peak_rss_mb": round(peak_mb, 1), "sink": "LOKI_URL" if os.environ.get("LOKI_URL") else args.sink,
        "compression": args.compression, "exit_code": os.waitstatus_to_exitcode(status),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
