"""`telemetry-exporter import [PATH ...]`: deliver telemetry files into Loki, exactly once.

Exit codes: 0 every valid event delivered and no invalid line; 1 some lines invalid or
rejected by Loki (all in the dead letter); 2 usage error; 3 Loki unreachable, not ready or
refusing the push.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exporter.config import Config, ConfigError, redact_url
from exporter.deadletter import DeadLetter
from exporter.events.fingerprint import Fingerprinter, rules_from_config
from exporter.importer import Importer, ImportStats
from exporter.positions import Positions
from exporter.progress import ImportProgress
from exporter.reader import ChunkReader, ReaderSettings, delivery_order
from exporter.sinks.loki.client import LokiClient, LokiError
from exporter.sinks.loki.rejections import LINE_TOO_LONG, TOO_FAR_BEHIND, TOO_NEW, TOO_OLD
from exporter.sources.files import SourceError, discover

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_LOKI = 0, 1, 2, 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="file, directory (its *.jsonl and *.jsonl.gz) or glob; default ./telemetry-logs")
    p.add_argument("--dry-run", action="store_true", help="parse everything, print what would be pushed, no Loki")
    p.add_argument("--flush", action="store_true",
                   help="POST /flush to Loki at the end so imported history is queryable at once "
                        "(needs access to Loki's /flush endpoint: your own Loki)")
    p.add_argument("--positions", metavar="FILE", help="positions file (default STATE_DIR/positions.json)")
    p.add_argument("--dead-letter", metavar="FILE", help="dead-letter JSONL (default STATE_DIR/dead-letter.jsonl)")
    p.add_argument("--restart", action="store_true",
                   help="ignore saved positions: send every file again (Loki keeps one copy of each line)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress messages even when not on a terminal")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _fingerprinter(cfg: Config):
    try:
        return Fingerprinter(rules_from_config(list(cfg.fingerprint_rules))).group
    except ValueError as exc:
        raise ConfigError(f"fingerprint rules: {exc}") from None


def run(args: argparse.Namespace, cfg: Config) -> int:
    err = sys.stderr
    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=err)

    try:
        files = delivery_order(discover(args.paths or None, default=cfg.logs, on_warning=warn))
        fingerprint = _fingerprinter(cfg)
    except (SourceError, ConfigError) as exc:
        print(f"telemetry-exporter import: {exc}", file=err)
        return EXIT_USAGE
    state = Path(cfg.state_dir)
    target = redact_url(cfg.loki.url) + (f"#{cfg.loki.tenant}" if cfg.loki.tenant else "")
    positions_path = None if args.dry_run else Path(args.positions) if args.positions else state / "positions.json"
    try:
        positions = Positions.load(None if args.restart else positions_path, target)
    except ValueError as exc:
        print(f"telemetry-exporter import: {exc}", file=err)
        return EXIT_USAGE
    positions.path = positions_path
    dead_letter = DeadLetter(None if args.dry_run else Path(args.dead_letter) if args.dead_letter
                             else state / "dead-letter.jsonl")
    if args.restart and dead_letter.path and dead_letter.path.exists():
        dead_letter.path.unlink()
    verbose = args.verbose

    client = None
    if not args.dry_run:
        try:
            client = LokiClient(cfg.loki, on_retry=(lambda why, d: print(
                f"Loki answered {why}; retrying in {d:.1f}s", file=err)) if verbose else None, on_warning=warn)
            client.wait_ready(on_wait=lambda m: print(m, file=err))
        except LokiError as exc:
            print(f"telemetry-exporter import: {exc}", file=err)
            if client:
                client.close()
            return EXIT_LOKI
    reader = ChunkReader(ReaderSettings(cfg.app, cfg.max_line_bytes, cfg.loki.batch_bytes, cfg.loki.batch_entries),
                         positions, fingerprint, on_warning=warn)
    reader.proc.replay_all = args.restart
    total = sum(p.stat().st_size for p in files)
    progress = ImportProgress(total, len(files), enabled=None if not args.quiet else False)
    dry: dict[str, list] = {}

    def on_chunk(stats: ImportStats, chunk) -> None:
        progress.update(stats.progress_bytes, stats.files_done, stats.events, stats.elapsed_now())
        if args.dry_run:
            for stream, push in chunk.pushes.items():
                d = dry.setdefault(stream, [push.labels, 0, 0, push.values[0]])
                d[1] += len(push.values)
                d[2] += push.line_bytes
        if verbose and not progress.enabled:
            print(f"{stats.files_done}/{stats.files} files, {stats.lines:,} lines, {stats.events:,} events",
                  file=err)

    importer = Importer(reader, client, positions, dead_letter, on_chunk=on_chunk)
    code = EXIT_OK
    stats = ImportStats()
    try:
        with progress:
            stats = importer.run(files, stats)
    except LokiError as exc:
        print(f"telemetry-exporter import: {exc}", file=err)
        print("positions are saved: run the same command again to resume", file=err)
        code = EXIT_LOKI
    except KeyboardInterrupt:
        print("interrupted: positions are saved; run the same command again to resume", file=err)
        code = 130
    finally:
        if client and code == EXIT_OK and args.flush:
            warning = client.flush()
            if warning:
                warn(warning)
        if client:
            client.close()
    if args.dry_run:
        print_dry_run(dry)
    print_summary(stats, dry_run=args.dry_run, dead_letter=dead_letter.path if dead_letter.records else None)
    if code:
        return code
    if stats.invalid or stats.rejected:
        return EXIT_INVALID
    return EXIT_OK


def print_dry_run(dry: dict[str, list], out=None) -> None:
    out = out or sys.stdout
    print("Dry run: nothing was sent. Would push, one request per stream and chunk:", file=out)
    for stream in sorted(dry):
        labels, n, nbytes, first = dry[stream]
        lab = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        print(f"  {{{lab}}}: {n:,} entries, {nbytes / 1e6:.2f} MB of lines", file=out)
        example = {"ts": first[0], "line": first[1][:160] + ("…" if len(first[1]) > 160 else "")}
        if len(first) > 2:
            example["metadata"] = first[2]
        print(f"    first entry: {example}", file=out)


def print_summary(stats: ImportStats, *, dry_run: bool = False, dead_letter: Path | None = None, out=None) -> None:
    out = out or sys.stdout
    w = lambda s="": print(s, file=out)  # noqa: E731
    w("Import summary" + (" (dry run)" if dry_run else ""))
    w(f"  files              {stats.files_done}/{stats.files}")
    if stats.skipped_bytes:
        w(f"  resumed            {stats.skipped_bytes:,} bytes already delivered earlier were skipped")
    w(f"  lines read         {stats.lines:,} ({stats.bytes / 1e6:.1f} MB)")
    w(f"  blank lines        {stats.blank:,}")
    w(f"  valid events       {stats.events:,}" + (
        "  (" + ", ".join(f"{k} {v:,}" for k, v in sorted(stats.events_by_type.items())) + ")" if stats.events else ""))
    if not dry_run:
        w(f"  delivered to Loki  {stats.delivered:,}" + (
            f"  ({stats.already_delivered:,} were already there: resumed after an interruption)"
            if stats.already_delivered else ""))
    w(f"  invalid lines      {sum(stats.invalid.values()):,}" + _by_reason(stats.invalid))
    if not dry_run:
        w(f"  rejected by Loki   {sum(stats.rejected.values()):,}" + _by_reason(stats.rejected))
        for reason in sorted(stats.rejected):
            if reason in REJECTION_HINTS:
                w(f"    {reason}: {REJECTION_HINTS[reason]}")
        w(f"  requests           {stats.requests:,} ({stats.retries:,} retries)")
    if stats.retimed:
        w(f"  late/skewed events {stats.retimed:,} stamped at their receive time (real time in metadata event_time)")
    w(f"  elapsed            {stats.elapsed:.1f}s, {stats.events_per_s:,.0f} events/s")
    if dead_letter:
        w(f"  dead letter        {dead_letter}")


# What to do about each kind of entry Loki refused (its reasons, see sinks/loki/rejections.py).
REJECTION_HINTS = {
    TOO_OLD: "older than Loki's reject_old_samples_max_age (default 1 week); raise it (the "
             "bundle's loki/loki-config.yaml allows 90 days), then run import --restart",
    TOO_FAR_BEHIND: "older than its stream's newest entry minus 1 h: older files were imported after "
                    "newer ones (import all the days in one run, into fresh streams, e.g. another --app)",
    TOO_NEW: "more than 10 min ahead of Loki's clock: check the server clocks",
    LINE_TOO_LONG: "longer than Loki's max_line_size; raise limits_config.max_line_size",
}


def _by_reason(c) -> str:
    return "  (" + ", ".join(f"{k} {v:,}" for k, v in sorted(c.items())) + ")" if c else ""
