"""`python -m exporter` is the same as the `telemetry-exporter` command."""

from exporter.cli import main

raise SystemExit(main())
