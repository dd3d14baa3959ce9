"""Grafana Loki sink, one job per module (after Promtail's client and Vector's Loki sink):

- ``request``    build and encode one push (one stream per request: see below)
- ``rejections`` read Loki's 400 bodies: which entries were ignored and why
- ``retry``      the one "is this retryable?" predicate and the backoff
- ``client``     a single POST with retries, readiness wait, flush

One stream per request, because a real Loki's ingester returns only the LAST stream's error of
a multi-stream push (pkg/ingester/instance.go): rejections in earlier streams would be silent.
"""
