"""Prometheus metrics: a collector over the aggregation core, self-metrics, and the HTTP endpoint."""
