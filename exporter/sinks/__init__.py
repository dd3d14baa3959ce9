"""Sinks: where events go (Grafana Loki)."""
