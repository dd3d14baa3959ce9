"""Benchmark `report`: MB/s and peak memory for corpora of growing size.

    python -m benchmarks.bench_report [--sizes 10MB,100MB,1GB] [--dir DIR] [--workers N]

For each size, a corpus is generated with benchmarks.generate_corpus (30 daily files, reused
when DIR/SIZE already holds one made with the same arguments), then scanned by a fresh child
process that runs what `report --format json` runs (scan -> merge -> build_report -> render).
Printed per size: input MB, seconds, MB/s (wall clock), MB per CPU-second (all processes:
what one core does, whatever else runs on the machine), the peak RSS of the main process and of the largest
worker (resource.getrusage), the plain read speed of the same files (the "disk speed" on this
machine, page cache warm), and whether the counts equal the generator's manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.generate_corpus import parse_size

_ROOT = Path(__file__).resolve().parent.parent


def _rss_mb(who: int) -> float:
    kb = resource.getrusage(who).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024   # macOS: bytes


def child(corpus: str, workers: int | None) -> dict:
    """Run in a fresh process: the report pipeline on one corpus; returns measurements."""
    from exporter.aggregation.core import Limits, Window
    from exporter.aggregation.scan import ScanOptions, scan
    from exporter.report.model import Inputs, build_report
    from exporter.report.render_json import report_dict
    from exporter.sources.files import discover

    started = time.perf_counter()
    files = discover([corpus])
    result = scan(files, ScanOptions(limits=Limits(), window=Window()), workers=workers)
    report = report_dict(build_report(result.core, inputs=Inputs(result.files, result.bytes)))
    json.dumps(report)
    seconds = time.perf_counter() - started
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    raw = sum(os.path.getsize(f) for f in files)
    return {"seconds": seconds, "cpu_seconds": cpu, "bytes": raw, "workers": result.workers, "tasks": result.tasks,
            "rss_main_mb": _rss_mb(resource.RUSAGE_SELF),
            "rss_worker_mb": _rss_mb(resource.RUSAGE_CHILDREN),
            "summary": report["summary"], "events_by_type": report["events_by_type"],
            "invalid_lines_by_reason": report["invalid_lines_by_reason"],
            "blank_lines": report["inputs"]["blank_lines"]}


def read_speed(corpus: Path) -> float:
    """MB/s of reading the files with 1 MiB reads (no parsing)."""
    started = time.perf_counter()
    total = 0
    for f in sorted(corpus.glob("telemetry-*.jsonl")):
        with open(f, "rb", buffering=0) as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
    return total / 1e6 / max(time.perf_counter() - started, 1e-9)


def ensure_corpus(base: Path, size: int, days: int) -> tuple[Path, dict]:
    out = base / f"{size // 1_000_000}MB"
    manifest = out / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        if m["generator"]["args"].get("size_bytes") == size and m["generator"]["args"]["days"] == days:
            return out, m
    print(f"generating {size / 1e6:.0f} MB corpus in {out} ...", file=sys.stderr, flush=True)
    # In a separate process: a child's ru_maxrss starts from its parent's at fork (Linux), so
    # the generator's memory must not be in the process that starts the measured child.
    subprocess.run([sys.executable, "-m", "benchmarks.generate_corpus", "--out", str(out),
                    "--days", str(days), "--size", str(size)], check=True, cwd=_ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, json.loads(manifest.read_text(encoding="utf-8"))


def exact(result: dict, m: dict) -> bool:
    s = result["summary"]
    return (s["events"] == m["events_total"] and result["events_by_type"] == {
                k: v for k, v in m["events_by_type"].items() if v}
            and s["errors"] == m["errors"] and s["warnings"] == m["warnings"]
            and s["failed_operations"] == m["failed_operations"]["total"]
            and s["sessions"] == m["sessions"] and s["sessions_with_errors"] == m["sessions_with_errors"]
            and result["invalid_lines_by_reason"] == {k: v for k, v in m["invalid_by_reason"].items() if v}
            and result["blank_lines"] == m["blank_lines"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10MB", help="comma-separated corpus sizes (default 10MB), e.g. 10MB,100MB,1GB")
    p.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "telemetry-bench",
                   help="where corpora are generated and kept")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--workers", type=int, default=None, help="report worker processes (default: one per CPU)")
    p.add_argument("--child", metavar="CORPUS", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.workers)))
        return 0
    sizes = [parse_size(s) for s in a.sizes.split(",") if s.strip()]
    print(f"{'size':>8} {'MB':>8} {'sec':>7} {'MB/s':>7} {'MB/cpu-s':>8} {'read MB/s':>9} {'RSS main':>9} "
          f"{'RSS worker':>10} {'workers':>7} {'events':>9} {'sessions':>8} {'exact':>5}")
    failures = 0
    for size in sizes:
        corpus, m = ensure_corpus(a.dir, size, a.days)
        cmd = [sys.executable, "-m", "benchmarks.bench_report", "--child", str(corpus)]
        if a.workers is not None:
            cmd += ["--workers", str(a.workers)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             cwd=_ROOT).stdout
        r = json.loads(out.strip().splitlines()[-1])
        mb = r["bytes"] / 1e6
        ok = exact(r, m)
        failures += not ok
        print(f"{size / 1e6:>6.0f}MB {mb:>8.1f} {r['seconds']:>7.2f} {mb / r['seconds']:>7.1f} "
              f"{mb / r['cpu_seconds']:>8.1f} {read_speed(corpus):>9.0f} {r['rss_main_mb']:>7.0f}MB {r['rss_worker_mb']:>8.0f}MB "
              f"{r['workers']:>7} {r['summary']['events']:>9} {r['summary']['sessions']:>8} "
              f"{'yes' if ok else 'NO':>5}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
