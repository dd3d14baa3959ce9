"""Aggregation: the one core that `report` and `/metrics` both read (see core.py)."""

from exporter.aggregation.core import (
    ERROR,
    FAILED_OPERATION,
    KINDS,
    NO_PAGE,
    OVERFLOW,
    WARNING,
    Aggregator,
    ErrorTypeStats,
    LiveClock,
    Limits,
    SessionStats,
    Window,
    discovery_clock,
)

__all__ = [
    "ERROR", "FAILED_OPERATION", "KINDS", "NO_PAGE", "OVERFLOW", "WARNING",
    "Aggregator", "ErrorTypeStats", "Limits", "LiveClock", "SessionStats", "Window",
    "discovery_clock",
]
