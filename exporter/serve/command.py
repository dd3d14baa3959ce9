"""`telemetry-exporter serve [DIR]`: backfill, then follow; push to Loki; serve /metrics.

SIGTERM or SIGINT (Ctrl-C): stop reading, deliver what was read, save state, exit 0.
A worker thread that dies (a state file that cannot be written, a bug) stops the service with a
message and exit code 1. Loki down or not ready is no reason to exit: /metrics is served and
the lines wait to be pushed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from exporter.config import Config, ConfigError
from exporter.sinks.loki.client import LokiError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", metavar="DIR", help="directory of telemetry files (default ./telemetry-logs)")
    p.add_argument("--listen", help="HOST:PORT for /metrics, /healthz, /ready (default 127.0.0.1:9464)")
    p.add_argument("--no-loki", action="store_true", help="do not push to Loki: metrics only")
    p.add_argument("--flush-after-backfill", action="store_true", default=None,
                   help="POST /flush to Loki once the existing files are delivered, so their history is "
                        "queryable at once (your own Loki; env LOKI_FLUSH_AFTER_BACKFILL)")
    p.add_argument("--max-sessions", type=int, help="per-session series kept in /metrics (default 1000)")
    p.add_argument("--max-error-types", type=int,
                   help="error types of each kind (errors, warnings, failed operations) with their own series "
                        "(default 500); further types are counted in telemetry_error_types_overflow_total")
    p.add_argument("--max-labels-per-type", type=int,
                   help="pages and failure reasons kept per error type (default 50); further ones are "
                        "counted under \"(other)\"")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, cfg: Config) -> int:
    from exporter.serve.service import Service
    directory = Path(args.directory or cfg.logs)
    if not directory.is_dir():
        _log(f"telemetry-exporter serve: {directory}: not a directory")
        return EXIT_USAGE
    try:
        from exporter.events.fingerprint import Fingerprinter, rules_from_config
        fp = Fingerprinter(rules_from_config(list(cfg.fingerprint_rules)))
    except ValueError as exc:
        _log(f"telemetry-exporter serve: fingerprint rules: {exc}")
        return EXIT_USAGE
    loki = not args.no_loki
    if loki and not cfg.loki.url:
        _log("telemetry-exporter serve: no Loki URL: set LOKI_URL or --loki-url, or use --no-loki")
        return EXIT_USAGE
    try:
        service = Service(cfg, directory, loki=loki, fingerprinter=fp, log=_log)
    except (ValueError, OSError, ConfigError, LokiError) as exc:
        _log(f"telemetry-exporter serve: {exc}")
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    for name in ("SIGTERM", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    service.start()
    _log(f"serving http://{service.server.address}/metrics; following {directory}"
         + ("" if loki else " (no Loki)"))
    try:
        while not stop.wait(0.5):
            if not service._healthy():
                break
    except KeyboardInterrupt:
        pass
    if service.failure is None:
        _log("stopping: delivering what was read and saving state ...")
    service.stop()
    if service.failure is not None:
        _log(f"telemetry-exporter serve: {service.failure}; stopped (exit code {EXIT_FAILED})")
        return EXIT_FAILED
    _log("stopped")
    return EXIT_OK
