"""A Loki client: wait until ready, push one stream with bounded retries, flush.

``push`` returns which entries Loki ignored and why. It retries 429, 5xx and connection
errors (exponential backoff, jitter, Retry-After), never a 400, splits a push that Loki's rate
limiter keeps refusing, and raises LokiError for anything it cannot recover from (auth, 404,
413, 422, retries exhausted).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from urllib.parse import urlsplit

import httpx

from exporter import __version__
from exporter.config import LokiConfig, redact_url
from exporter.sinks.loki import request as req
from exporter.sinks.loki.rejections import attribute, reason_of
from exporter.sinks.loki.retry import backoff, is_retryable, parse_retry_after


class LokiError(Exception):
    """Loki cannot take the data: unreachable, not ready, refused (exit code 3)."""


# A push that Loki's rate limiter refuses this many times in a row is sent again in halves: a
# push larger than the limiter's burst is refused forever, however long the client waits.
SPLIT_AFTER_RATE_LIMITS = 4


@dataclass(slots=True)
class PushResult:
    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)  # value index -> (reason, Loki's message)
    retries: int = 0
    requests: int = 0


@dataclass(slots=True)
class ClientStats:
    """Counters the exporter exposes as self-metrics (read under the client's lock)."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    entries_sent: int = 0
    durations: list[float] = field(default_factory=list)
    last_success: float | None = None


class LokiClient:
    def __init__(self, cfg: LokiConfig, *, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, float], None] | None = None,
                 on_duration: Callable[[float], None] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        if not cfg.url:
            raise LokiError("no Loki URL: set LOKI_URL, --loki-url or loki.url in the config file")
        self.cfg = cfg
        self.base = cfg.url.rstrip("/")
        self.safe_url = redact_url(cfg.url)
        self._sleep = sleep
        self._on_retry = on_retry
        self._on_duration = on_duration
        self._on_warning = on_warning
        self.send_metadata = True   # off once Loki says structured metadata is disallowed
        self.fit_bytes: int | None = None   # set once Loki's rate limiter refused bigger pushes
        self.compression = effective_compression(cfg.compression, self.base)
        self.stats = ClientStats()
        self._lock = threading.Lock()
        headers = {"User-Agent": f"telemetry-exporter/{__version__}"}
        if cfg.tenant:
            headers["X-Scope-OrgID"] = cfg.tenant
        token = cfg.secret_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        password = cfg.secret_password()
        auth = httpx.BasicAuth(cfg.username, password or "") if cfg.username else None
        verify: bool | str = cfg.ca_file or True
        if cfg.insecure_skip_verify:
            verify = False
        self._http = httpx.Client(
            headers=headers, auth=auth, verify=verify,
            timeout=httpx.Timeout(cfg.timeout, connect=min(10.0, cfg.timeout)),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self._http.close()

    # -- readiness ---------------------------------------------------------------------------
    def probe_ready(self) -> tuple[bool, str]:
        """One GET /ready: (True, "") when ready; (True, note) when Loki has no /ready (behind a
        gateway: go on, the pushes will tell); (False, why) otherwise. Raises LokiError when
        Loki refuses the credentials."""
        try:
            r = self._http.get(self.base + "/ready", timeout=5.0)
        except httpx.TransportError as exc:
            return False, f"connection failed: {type(exc).__name__}"
        if r.status_code == 200:
            return True, ""
        if r.status_code == 404:
            # behind a gateway (Grafana Cloud, some proxies) /ready is not exposed: the Loki
            # answers, so go on; the pushes will tell if it cannot take data
            return True, f"Loki at {self.safe_url} has no /ready endpoint (404): going on"
        if r.status_code in (401, 403):
            raise LokiError(f"Loki at {self.safe_url} refused the credentials ({r.status_code} on /ready)")
        return False, f"{r.status_code} {r.text.strip()[:120]}"

    def wait_ready(self, timeout: float | None = None,
                   on_wait: Callable[[str], None] | None = None) -> None:
        """Poll GET /ready until 200, for at most ``timeout`` seconds (default: ready_timeout)."""
        deadline = time.monotonic() + (self.cfg.ready_timeout if timeout is None else timeout)
        delay = 0.5
        told = False
        while True:
            ready, why = self.probe_ready()
            if ready:
                if why and on_wait:
                    on_wait(why)
                return
            if time.monotonic() + delay > deadline:
                raise LokiError(f"Loki at {self.safe_url} is not ready after "
                                f"{self.cfg.ready_timeout if timeout is None else timeout:g}s ({why})")
            if on_wait and not told:
                on_wait(f"waiting for Loki at {self.safe_url} to be ready ({why}) ...")
                told = True
            self._sleep(delay)
            delay = min(delay * 1.5, 5.0)

    # -- push --------------------------------------------------------------------------------
    def _post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        started = time.monotonic()
        try:
            return self._http.post(self.base + req.PUSH_PATH, content=body, headers=headers)
        finally:
            if self._on_duration:
                self._on_duration(time.monotonic() - started)

    def _send(self, push: req.Push, result: PushResult, can_split: bool = False) -> tuple[httpx.Response, bool]:
        """One push, retried while retryable. Returns the final (non-retryable) response, and
        whether the push carried structured metadata. Raises _RateLimitedAsAWhole when
        ``can_split`` and Loki's rate limiter keeps refusing it."""
        with_metadata = self.send_metadata
        body, headers = req.compress(req.encode(push if with_metadata else push.without_metadata()),
                                     self.compression)
        attempt = 0
        rate_limited = 0
        while True:
            result.requests += 1
            status: int | None
            try:
                resp = self._post(body, headers)
                status = resp.status_code
                detail = resp.text.strip()[:200]
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except httpx.TransportError as exc:
                resp, status, detail, retry_after = None, None, type(exc).__name__, None
            if resp is not None and not is_retryable(status):
                return resp, with_metadata
            rate_limited = rate_limited + 1 if status == 429 and "rate limit" in detail.lower() else 0
            if can_split and rate_limited >= SPLIT_AFTER_RATE_LIMITS:
                raise _RateLimitedAsAWhole(len(body))
            if attempt >= self.cfg.max_retries:
                with self._lock:
                    self.stats.failures += 1
                hint = (" (Loki's rate limit: raise its ingestion_rate_mb / ingestion_burst_size_mb, or lower "
                        "--batch-bytes)" if rate_limited else "")
                raise LokiError(f"giving up on Loki at {self.safe_url} after {attempt + 1} attempts "
                                f"(last: {status or 'connection error'} {detail}){hint}")
            delay = backoff(attempt, self.cfg.min_backoff, self.cfg.max_backoff, retry_after)
            attempt += 1
            result.retries += 1
            with self._lock:
                self.stats.retries += 1
            if self._on_retry:
                self._on_retry(str(status or "connection error"), delay)
            self._sleep(delay)

    def push(self, push: req.Push) -> PushResult:
        """Deliver one stream's entries; report the ones Loki ignored (never retried)."""
        result = PushResult()
        try:
            self._deliver_all(push, result)
        except _MetadataDisallowed:
            # An older Loki (schema < v13, or structured metadata switched off): labels and lines
            # still work. Send again without metadata, and from now on.
            with self._lock:
                warn = self.send_metadata
                self.send_metadata = False
            if warn and self._on_warning:
                self._on_warning("this Loki does not accept structured metadata (session_id, page, error_type, "
                                 "event_time): sending lines and labels only; enable allow_structured_metadata "
                                 "(schema v13) to keep them")
            result = PushResult(retries=result.retries, requests=result.requests)
            self._deliver_all(push, result)
        with self._lock:
            self.stats.requests += result.requests
            self.stats.entries_sent += len(push.values) - len(result.rejected)
            self.stats.last_success = time.time()
        return result

    def _deliver_all(self, push: req.Push, result: PushResult) -> None:
        """Push every entry: in one request, or in consecutive parts that fit Loki's rate limit."""
        everything = list(range(len(push.values)))
        fit = self.fit_bytes
        if fit is None or push.line_bytes <= fit:
            self._resolve(push, everything, result, depth=0)
            return
        part: list[int] = []
        size = 0
        for i, value in enumerate(push.values):
            n = len(value[1])
            if part and size + n > fit:
                self._resolve(push, part, result, depth=1)
                part, size = [], 0
            part.append(i)
            size += n
        self._resolve(push, part, result, depth=1)

    def _resolve(self, push: req.Push, indexes: list[int], result: PushResult, depth: int) -> None:
        sub = push if depth == 0 else push.subset(indexes)
        try:
            resp, with_metadata = self._send(sub, result, can_split=len(indexes) > 1)
        except _RateLimitedAsAWhole:
            # Loki's limiter refuses this push whatever the wait (bigger than its burst): send it
            # in halves, in order, and from now on push at most half this size.
            size = sum(len(push.values[i][1]) for i in indexes)
            with self._lock:
                first = self.fit_bytes is None
                self.fit_bytes = max(1, min(self.fit_bytes or size, size // 2))
            if first and self._on_warning:
                self._on_warning(f"Loki keeps rate-limiting pushes of {size:,} bytes: sending smaller pushes "
                                 "(set --batch-bytes lower, or raise Loki's ingestion_burst_size_mb)")
            half = len(indexes) // 2
            self._resolve(push, indexes[:half], result, depth + 1)
            self._resolve(push, indexes[half:], result, depth + 1)
            return
        status = resp.status_code
        if status in (200, 204):
            return
        if status != 400:
            raise LokiError(_refusal(status, resp.text, self.safe_url))
        if with_metadata and _metadata_disallowed(resp.text):
            raise _MetadataDisallowed()
        values = sub.values
        att = attribute(resp.text, [int(v[0]) for v in values], [len(v[1].encode("utf-8")) for v in values])
        for i, why in att.rejected.items():
            result.rejected[indexes[i]] = why
        if att.complete:
            return
        rest = [indexes[i] for i in range(len(values)) if i not in att.rejected]
        if not rest:
            return
        if len(values) == 1 or depth >= 24:
            message = resp.text.strip()[:500]
            for i in rest:
                result.rejected[i] = (reason_of(message), message)
            return
        # Loki did not name every ignored entry: find them by pushing halves again (an
        # identical (timestamp, line) is stored once, so the accepted ones are not duplicated).
        half = len(rest) // 2
        for part in (rest[:half], rest[half:]):
            if part:
                self._resolve(push, part, result, depth + 1)

    # -- flush -------------------------------------------------------------------------------
    def flush(self) -> str | None:
        """POST /flush so imported history becomes queryable now. Returns a warning or None."""
        try:
            r = self._http.post(self.base + "/flush")
        except httpx.TransportError as exc:
            return f"flush failed: {type(exc).__name__}"
        if r.status_code in (200, 204):
            return None
        return f"flush answered {r.status_code} (is /flush exposed by this Loki?)"


class _MetadataDisallowed(Exception):
    pass


class _RateLimitedAsAWhole(Exception):
    pass


def _metadata_disallowed(message: str) -> bool:
    low = message.lower()
    return "structured metadata" in low and ("disallowed" in low or "disabled" in low or "not allowed" in low)


def effective_compression(setting: str, url: str) -> str:
    """``auto``: no compression to a Loki on this machine (it would only cost CPU on both sides,
    which share the same cores), gzip to anything across a network."""
    if setting != "auto":
        return setting
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host == "::1" or host.startswith("127."):
        return "none"
    return "gzip"


def _refusal(status: int, body: str, url: str) -> str:
    text = body.strip()[:300]
    hints = {
        401: "check LOKI_USERNAME/LOKI_PASSWORD or LOKI_BEARER_TOKEN",
        403: "the credentials lack write access",
        404: "is the URL Loki's base URL (without /loki/api/v1/push)?",
        413: "the request is too large for a proxy in front of Loki: lower --batch-bytes",
        422: "Loki found no valid stream in the push",
    }
    hint = hints.get(status, "")
    if status == 401 and "org id" in text.lower():
        # a multi-tenant Loki (auth_enabled: true) wants to know whose data this is
        hint = "this Loki is multi-tenant: set LOKI_TENANT (X-Scope-OrgID)"
    return f"Loki at {url} refused the push: {status} {text}" + (f" ({hint})" if hint else "")
