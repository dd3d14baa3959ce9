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
    Limits,
    SessionStats,
    Window,
)

__all__ = [
    "ERROR", "FAILED_OPERATION", "KINDS", "NO_PAGE", "OVERFLOW", "WARNING",
    "Aggregator", "ErrorTypeStats", "Limits", "SessionStats", "Window",
]
