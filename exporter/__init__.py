"""telemetry-exporter: telemetry JSONL files -> Grafana Loki, Prometheus metrics and reports.

The package reads as the data flow:

    sources (files, follow) -> events (parse, time, fingerprint)
        -> sinks (Loki)  and  aggregation (one core read by /metrics and `report`)
"""

__version__ = "0.1.0"
