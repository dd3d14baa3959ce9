"""The exporter's own health: what it read, what Loki took, retries, latency."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SelfMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lines = Counter("telemetry_exporter_lines_read", "Lines read from the telemetry files.",
                             registry=registry)
        self.bytes = Counter("telemetry_exporter_bytes_read", "Bytes read from the telemetry files.",
                             registry=registry)
        self.sent = Counter("telemetry_exporter_loki_entries_sent", "Entries Loki accepted.", registry=registry)
        self.rejected = Counter("telemetry_exporter_loki_entries_rejected", "Entries Loki ignored, by reason.",
                                ["reason"], registry=registry)
        self.retries = Counter("telemetry_exporter_loki_push_retries", "Push retries (429, 5xx, connection).",
                               registry=registry)
        self.failures = Counter("telemetry_exporter_loki_push_failures",
                                "Pushes given up after all retries, or refused.", registry=registry)
        self.duration = Histogram("telemetry_exporter_loki_push_duration_seconds", "Duration of one push request.",
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                  registry=registry)
        self.last_success = Gauge("telemetry_exporter_loki_last_success_timestamp_seconds",
                                  "Unix time of the last push Loki acknowledged.", registry=registry)
        self.loki_enabled = Gauge("telemetry_exporter_loki_enabled", "1 when pushing to Loki, 0 with --no-loki.",
                                  registry=registry)
        self.backfill_done = Gauge("telemetry_exporter_backfill_complete",
                                   "1 once the files present at start have been read.", registry=registry)
