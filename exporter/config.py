"""Configuration: command-line flags > environment variables > YAML file (--config) > defaults.

Every setting has one name in each layer:

    YAML key              environment variable            flag
    app                   TELEMETRY_APP                   --app
    logs                  TELEMETRY_LOGS                  PATH arguments
    state_dir             TELEMETRY_STATE_DIR             --state-dir
    max_line_bytes        TELEMETRY_MAX_LINE_BYTES        --max-line-bytes
    loki.url              LOKI_URL                        --loki-url
    loki.tenant           LOKI_TENANT                     --tenant          (X-Scope-OrgID)
    loki.username         LOKI_USERNAME                   --username
    loki.password         LOKI_PASSWORD                   (env or file only: never on a command line)
    loki.password_file    LOKI_PASSWORD_FILE              --password-file
    loki.bearer_token     LOKI_BEARER_TOKEN               (env or file only)
    loki.bearer_token_file LOKI_BEARER_TOKEN_FILE         --bearer-token-file
    loki.ca_file          LOKI_CA_FILE                    --ca-file
    loki.insecure_skip_verify LOKI_INSECURE_SKIP_VERIFY   --insecure-skip-verify
    loki.ready_timeout    LOKI_READY_TIMEOUT              --ready-timeout   (seconds)
    loki.timeout          LOKI_TIMEOUT                    --timeout         (seconds, per request)
    loki.batch_bytes      LOKI_BATCH_BYTES                --batch-bytes
    loki.batch_entries    LOKI_BATCH_ENTRIES              --batch-entries
    loki.batch_wait       LOKI_BATCH_WAIT                 --batch-wait      (seconds)
    loki.compression      LOKI_COMPRESSION                --compression     (auto|gzip|none)
    loki.max_retries      LOKI_MAX_RETRIES                --max-retries
    loki.min_backoff      LOKI_MIN_BACKOFF                --min-backoff     (seconds)
    loki.max_backoff      LOKI_MAX_BACKOFF                --max-backoff     (seconds)
    loki.flush_after_backfill LOKI_FLUSH_AFTER_BACKFILL   --flush-after-backfill (serve)
    fingerprint.rules     -                               -                 (list of {match, replace|group})
    metrics.listen        TELEMETRY_LISTEN                --listen
    metrics.max_sessions  TELEMETRY_MAX_SESSIONS          --max-sessions
    metrics.session_idle_seconds TELEMETRY_SESSION_IDLE_SECONDS -
    metrics.max_error_types TELEMETRY_MAX_ERROR_TYPES     --max-error-types (per kind)
    metrics.max_labels_per_type TELEMETRY_MAX_LABELS_PER_TYPE --max-labels-per-type

Numbers are checked: a count or a limit below its smallest meaningful value (a negative cap, a
zero batch size) is a ConfigError, not a crash later.

A URL with credentials (http://user:pass@host) is accepted: the credentials become basic auth
and are never printed (see :func:`redact_url`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import yaml


class ConfigError(Exception):
    """Bad configuration: a usage error (exit code 2)."""


# The smallest value a numeric setting may take (dataclass field metadata, checked by _check_ranges).
_AT_LEAST_0 = {"min": 0}
_AT_LEAST_1 = {"min": 1}
_ABOVE_0 = {"min": 0, "exclusive": True}


@dataclass(frozen=True)
class LokiConfig:
    url: str | None = None
    tenant: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    bearer_token: str | None = field(default=None, repr=False)
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    ready_timeout: float = field(default=60.0, metadata=_AT_LEAST_0)
    timeout: float = field(default=30.0, metadata=_ABOVE_0)
    batch_bytes: int = field(default=1024 * 1024, metadata=_AT_LEAST_1)
    batch_entries: int = field(default=20_000, metadata=_AT_LEAST_1)
    batch_wait: float = field(default=1.0, metadata=_AT_LEAST_0)
    compression: str = "auto"   # gzip, none, or auto: none on loopback, gzip elsewhere
    max_retries: int = field(default=10, metadata=_AT_LEAST_0)
    min_backoff: float = field(default=0.5, metadata=_AT_LEAST_0)
    max_backoff: float = field(default=30.0, metadata=_AT_LEAST_0)
    # serve: POST /flush once the backfill is delivered, so imported history is queryable at once
    # (Loki hides history sitting in its ingester; see loki/loki-config.yaml). Your own Loki only.
    flush_after_backfill: bool = False

    def secret_password(self) -> str | None:
        return _secret(self.password, self.password_file, "password")

    def secret_token(self) -> str | None:
        return _secret(self.bearer_token, self.bearer_token_file, "bearer token")

    def split_url(self) -> "LokiConfig":
        """Move user:pass@ out of the URL into username/password (explicit settings win)."""
        if not self.url:
            return self
        parts = urlsplit(self.url)
        if parts.username is None and parts.password is None:
            return self
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return replace(
            self,
            url=clean,
            username=self.username or parts.username,
            password=self.password or parts.password,
        )


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9464"
    max_sessions: int = field(default=1000, metadata=_AT_LEAST_0)          # 0: no per-session series
    session_idle_seconds: float = field(default=24 * 3600.0, metadata=_ABOVE_0)
    max_error_types: int = field(default=500, metadata=_AT_LEAST_0)         # per kind
    max_labels_per_type: int = field(default=50, metadata=_AT_LEAST_0)      # pages, failure reasons


@dataclass(frozen=True)
class Config:
    app: str = "saberloop"
    logs: str = "telemetry-logs"
    state_dir: str = ".telemetry-exporter"
    max_line_bytes: int = field(default=256 * 1024, metadata=_AT_LEAST_1)
    loki: LokiConfig = field(default_factory=LokiConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    fingerprint_rules: tuple[dict, ...] = ()


_ENV_TOP = {"app": "TELEMETRY_APP", "logs": "TELEMETRY_LOGS", "state_dir": "TELEMETRY_STATE_DIR",
            "max_line_bytes": "TELEMETRY_MAX_LINE_BYTES"}
_ENV_LOKI = {f.name: "LOKI_" + f.name.upper() for f in fields(LokiConfig)}
_ENV_METRICS = {"listen": "TELEMETRY_LISTEN", "max_sessions": "TELEMETRY_MAX_SESSIONS",
                "session_idle_seconds": "TELEMETRY_SESSION_IDLE_SECONDS",
                "max_error_types": "TELEMETRY_MAX_ERROR_TYPES",
                "max_labels_per_type": "TELEMETRY_MAX_LABELS_PER_TYPE"}


def _secret(value: str | None, path: str | None, what: str) -> str | None:
    if value:
        return value
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    return None


def _coerce(cls: type, name: str, value: Any, where: str) -> Any:
    ftype = {f.name: f.type for f in fields(cls)}[name]
    try:
        if "bool" in str(ftype):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if "int" in str(ftype) and "float" not in str(ftype):
            return int(value)
        if "float" in str(ftype):
            return float(value)
        return None if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: invalid value {value!r} for {name}") from None


def _layer(cls: type, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}")
        if value is not None:
            out[key] = _coerce(cls, key, value, where)
    return out


def _env_layer(cls: type, names: Mapping[str, str], env: Mapping[str, str]) -> dict[str, Any]:
    return _layer(cls, {k: env[v] for k, v in names.items() if env.get(v, "") != ""}, "environment")


def load_config(
    path: str | os.PathLike | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    loki_flags: Mapping[str, Any] | None = None,
    metrics_flags: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective Config. ``flags`` hold only what the user gave (None = not given)."""
    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    if path is not None:
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping")
    where = f"config file {path}"
    doc = dict(doc)
    loki_doc = doc.pop("loki", None) or {}
    metrics_doc = doc.pop("metrics", None) or {}
    fp_doc = doc.pop("fingerprint", None) or {}
    if not isinstance(loki_doc, dict) or not isinstance(metrics_doc, dict) or not isinstance(fp_doc, dict):
        raise ConfigError(f"{where}: 'loki', 'metrics' and 'fingerprint' must be mappings")
    rules = fp_doc.get("rules") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(f"{where}: fingerprint.rules must be a list of mappings")

    top_fields = {f.name for f in fields(Config)} - {"loki", "metrics", "fingerprint_rules"}
    top = {**_layer(Config, {k: v for k, v in doc.items() if k in top_fields}, where)}
    unknown = set(doc) - top_fields
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
    top.update(_env_layer(Config, _ENV_TOP, env))
    top.update(_layer(Config, dict(flags or {}), "command line"))

    loki = _layer(LokiConfig, loki_doc, where + " (loki)")
    loki.update(_env_layer(LokiConfig, _ENV_LOKI, env))
    loki.update(_layer(LokiConfig, dict(loki_flags or {}), "command line"))

    metrics = _layer(MetricsConfig, metrics_doc, where + " (metrics)")
    metrics.update(_env_layer(MetricsConfig, _ENV_METRICS, env))
    metrics.update(_layer(MetricsConfig, dict(metrics_flags or {}), "command line"))

    lc = LokiConfig(**loki).split_url()
    if lc.url:
        # the base URL; the push URL itself (as Promtail configs have it) is accepted too, and
        # both name the same target in the positions file
        lc = replace(lc, url=lc.url.rstrip("/").removesuffix("/loki/api/v1/push"))
    if lc.compression not in ("auto", "gzip", "none"):
        raise ConfigError(f"compression must be auto, gzip or none, not {lc.compression!r}")
    cfg = Config(**top, loki=lc, metrics=MetricsConfig(**metrics), fingerprint_rules=tuple(rules))
    for prefix, section in (("", cfg), ("loki.", cfg.loki), ("metrics.", cfg.metrics)):
        _check_ranges(section, prefix)
    return cfg


def _check_ranges(section: Any, prefix: str) -> None:
    """Refuse a number below the smallest its setting allows (see the fields' metadata)."""
    for f in fields(section):
        low = f.metadata.get("min")
        if low is None:
            continue
        value = getattr(section, f.name)
        exclusive = f.metadata.get("exclusive", False)
        if not (value > low if exclusive else value >= low):   # also refuses NaN
            raise ConfigError(f"{prefix}{f.name} must be {'>' if exclusive else '>='} {low}, not {value!r}")


def redact_url(url: str | None) -> str:
    """A URL safe to print: credentials and query string removed."""
    if not url:
        return "<none>"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
