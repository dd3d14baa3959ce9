"""Command line: `telemetry-exporter import | report | serve`.

Settings come from flags > environment > YAML (--config) > defaults (see exporter.config).
Secrets (passwords, tokens) are read from the environment or files, never from flags, and
never printed.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from exporter import __version__
from exporter.config import ConfigError, load_config

EXIT_USAGE = 2

_LOKI_FLAGS = {
    "loki_url": "url", "tenant": "tenant", "username": "username", "password_file": "password_file",
    "bearer_token_file": "bearer_token_file", "ca_file": "ca_file",
    "insecure_skip_verify": "insecure_skip_verify", "ready_timeout": "ready_timeout",
    "timeout": "timeout", "batch_bytes": "batch_bytes", "batch_entries": "batch_entries",
    "batch_wait": "batch_wait", "compression": "compression", "max_retries": "max_retries",
    "min_backoff": "min_backoff", "max_backoff": "max_backoff", "flush_after_backfill": "flush_after_backfill",
}
_METRICS_FLAGS = {"listen": "listen", "max_sessions": "max_sessions", "max_error_types": "max_error_types",
                  "max_labels_per_type": "max_labels_per_type"}

# subcommand -> (module, help); each module has add_arguments(parser) and run(args, cfg)
COMMANDS = {
    "import": ("exporter.import_command", "deliver telemetry files into Loki (resumable, exactly once)"),
    "report": ("exporter.report.command", "print the error report straight from the files"),
    "serve": ("exporter.serve.command", "follow the files: push to Loki and serve Prometheus /metrics"),
}


def _common(p: argparse.ArgumentParser, loki: bool) -> None:
    g = p.add_argument_group("settings")
    g.add_argument("--config", metavar="FILE", help="YAML config file (flags > env > file > defaults)")
    g.add_argument("--app", help="value of the Loki `app` label (default saberloop)")
    g.add_argument("--state-dir", help="where positions, dead letter and state go (default .telemetry-exporter)")
    g.add_argument("--max-line-bytes", type=int, help="longer lines are invalid (too_long); default 262144")
    if loki:
        lg = p.add_argument_group("Loki")
        lg.add_argument("--loki-url", help="Loki base URL, e.g. http://localhost:3100 (env LOKI_URL)")
        lg.add_argument("--tenant", help="X-Scope-OrgID tenant (env LOKI_TENANT)")
        lg.add_argument("--username", help="basic-auth user (password from LOKI_PASSWORD or --password-file)")
        lg.add_argument("--password-file", help="file holding the basic-auth password")
        lg.add_argument("--bearer-token-file", help="file holding a bearer token (or env LOKI_BEARER_TOKEN)")
        lg.add_argument("--ca-file", help="CA bundle to verify Loki's TLS certificate")
        lg.add_argument("--insecure-skip-verify", action="store_true", default=None,
                        help="do not verify Loki's TLS certificate")
        lg.add_argument("--ready-timeout", type=float, help="seconds to wait for Loki /ready (default 60)")
        lg.add_argument("--timeout", type=float, help="seconds per HTTP request (default 30)")
        lg.add_argument("--batch-bytes", type=int, help="bytes of lines per push (default 1 MiB)")
        lg.add_argument("--batch-entries", type=int, help="entries per push at most (default 20000)")
        lg.add_argument("--batch-wait", type=float, help="seconds a partial batch waits in follow mode (default 1)")
        lg.add_argument("--compression", choices=["auto", "gzip", "none"],
                        help="push body compression (default auto: none to a Loki on localhost, else gzip)")
        lg.add_argument("--max-retries", type=int, help="retries of a push on 429/5xx/connection errors (default 10)")
        lg.add_argument("--min-backoff", type=float, help="first retry delay in seconds (default 0.5, doubling)")
        lg.add_argument("--max-backoff", type=float, help="longest retry delay in seconds (default 30)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemetry-exporter", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, loki=name != "report")
        import_module(module).add_arguments(p)
    return parser


def config_from_args(args: argparse.Namespace):
    flags = {"app": args.app, "state_dir": args.state_dir, "max_line_bytes": args.max_line_bytes}
    loki = {dst: getattr(args, src, None) for src, dst in _LOKI_FLAGS.items()}
    metrics = {dst: getattr(args, src, None) for src, dst in _METRICS_FLAGS.items()}
    return load_config(args.config, flags=flags, loki_flags=loki, metrics_flags=metrics)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"telemetry-exporter {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    module = import_module(COMMANDS[args.command][0])
    return module.run(args, cfg)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
