"""`serve`: follow the telemetry directory, push to Loki, keep the metrics core up to date."""
