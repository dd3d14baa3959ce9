"""A custom Collector: ``collect()`` builds metric families from the aggregation core's data.

Nothing is counted here: every number comes from ``exporter.aggregation.core.Aggregator``, the
same core `report` prints. Counters stay monotonic across restarts because the core's state is
persisted and restored by `serve`.

Cardinality is bounded (Prometheus: "do not use labels to store dimensions with high
cardinality ... such as user IDs"): error types are capped per kind in the core (overflow
bucket ``error_type="overflow"``), pages and failure reasons per type too, and the per-session
series are limited to the most recently active sessions (cap + idle expiry, evictions counted
in ``telemetry_sessions_evicted_total``).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.aggregation.core import ERROR, FAILED_OPERATION, KINDS, OVERFLOW, WARNING, Aggregator

NS = 1_000_000_000


class CoreCollector(Collector):
    def __init__(self, core: Callable[[], Aggregator], lock: threading.Lock | threading.RLock,
                 unread_bytes: Callable[[], int] | None = None) -> None:
        self._core = core
        self._lock = lock
        self._unread = unread_bytes

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families = list(self._families(self._core()))
        yield from families

    def _families(self, c: Aggregator) -> Iterator[Metric]:
        events = CounterMetricFamily("telemetry_events", "Valid telemetry events read, by type (Loki stream).",
                                     labels=["type"])
        for t, n in sorted(c.events_by_type.items()):
            events.add_metric([t], n)
        yield events

        invalid = CounterMetricFamily("telemetry_invalid_lines", "Lines that are not events, by reason.",
                                      labels=["reason"])
        for r, n in sorted(c.invalid_by_reason.items()):
            invalid.add_metric([r], n)
        yield invalid

        errors = CounterMetricFamily("telemetry_errors", "Error events by error type (fingerprint).",
                                     labels=["error_type", "template"])
        warnings = CounterMetricFamily("telemetry_warnings", "Warning logs by error type (fingerprint).",
                                       labels=["error_type", "template"])
        failed = CounterMetricFamily("telemetry_failed_operations",
                                     "Failed operations (metric events with status error) by reason.",
                                     labels=["operation", "reason"])
        sessions = GaugeMetricFamily("telemetry_error_sessions", "Distinct sessions hit by each error type.",
                                     labels=["error_type"])
        first = GaugeMetricFamily("telemetry_error_first_seen_timestamp_seconds",
                                  "Drift-corrected event time of the first event of each error type.",
                                  labels=["error_type"])
        last = GaugeMetricFamily("telemetry_error_last_seen_timestamp_seconds",
                                 "Drift-corrected event time of the last event of each error type.",
                                 labels=["error_type"])
        discovered = GaugeMetricFamily(
            "telemetry_error_type_discovered_timestamp_seconds",
            "When the exporter learnt about this error type: when it counted its first line, or, "
            "for a line received before the exporter watched the directory (a backfill, copied "
            "history), that line's receive time. Alert on new types with "
            "`telemetry_error_type_discovered_timestamp_seconds > time() - 600`.",
            labels=["error_type", "template", "kind"])
        regressed = GaugeMetricFamily(
            "telemetry_error_type_regressed_timestamp_seconds",
            "When an error type was last seen again after at least 7 days of silence.",
            labels=["error_type", "template"])
        overflow = 0
        types = {k: 0 for k in KINDS}
        for st in c.error_types():
            if st.error_type == OVERFLOW:
                overflow += st.count
            else:
                types[st.kind] += 1
            if st.kind == ERROR:
                errors.add_metric([st.error_type, st.template], st.count)
                sessions.add_metric([st.error_type], len(st.sessions))
                first.add_metric([st.error_type], st.first_seen_ns / NS)
                last.add_metric([st.error_type], st.last_seen_ns / NS)
            elif st.kind == WARNING:
                warnings.add_metric([st.error_type, st.template], st.count)
            elif st.kind == FAILED_OPERATION:
                for reason, n in sorted(st.reasons.items()):
                    failed.add_metric([st.template, reason], n)
            if st.error_type != OVERFLOW:
                discovered.add_metric([st.error_type, st.template, st.kind], st.discovered_ts)
                if st.regressed_ts is not None and st.kind == ERROR:
                    regressed.add_metric([st.error_type, st.template], st.regressed_ts)
        yield from (errors, warnings, failed, sessions, first, last, discovered, regressed)

        distinct = GaugeMetricFamily("telemetry_error_types", "Distinct error types, by kind.", labels=["kind"])
        for k in KINDS:
            distinct.add_metric([k], types[k])
        yield distinct
        yield CounterMetricFamily("telemetry_error_types_overflow",
                                  "Events of error types past the per-kind cap, counted under error_type=\"overflow\" "
                                  "(such types get no discovery time: watch this counter).",
                                  value=overflow)

        per_session = CounterMetricFamily(
            "telemetry_session_errors",
            "Errors per session, for the most recently active sessions only (bounded: cap + idle expiry).",
            labels=["session_id"])
        for s in c.recent_sessions():
            per_session.add_metric([s.session_id], s.errors)
        yield per_session
        yield CounterMetricFamily("telemetry_sessions_evicted",
                                  "Sessions dropped from telemetry_session_errors_total (cap or idle).",
                                  value=c.evicted_sessions)
        yield GaugeMetricFamily("telemetry_sessions", "Distinct sessions (non-empty sessionId).", value=c.sessions)
        yield GaugeMetricFamily("telemetry_sessions_with_errors", "Distinct sessions with at least one error.",
                                value=c.sessions_with_errors)
        if self._unread is not None:
            yield GaugeMetricFamily("telemetry_exporter_unread_bytes",
                                    "Bytes behind the end of the followed files (lag).", value=self._unread())
