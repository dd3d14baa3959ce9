"""Records that flow through the pipeline."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

KNOWN_TYPES = frozenset({"error", "log", "metric", "vital", "event"})
OTHER_TYPE = "other"

# Reasons a line is not an event. Every rejected line is counted under exactly one of them.
NOT_JSON = "not_json"
INVALID_UTF8 = "invalid_utf8"
NOT_OBJECT = "not_object"
BAD_TYPE = "bad_type"
NO_TIMESTAMP = "no_timestamp"
TOO_LONG = "too_long"
INVALID_REASONS = (NOT_JSON, INVALID_UTF8, NOT_OBJECT, BAD_TYPE, NO_TIMESTAMP, TOO_LONG)


@dataclass(slots=True)
class Event:
    """One valid telemetry event, as read from one line."""

    type: str                 # the event's own "type" string
    time_ns: int              # drift-corrected event time (events.timing.event_time_ns)
    received_ns: int | None   # _server.receivedAt, the server's clock
    session_id: str | None    # parse.session_of: None when missing/empty/blank (not a session)
    url: str | None
    data: dict = field(default_factory=dict)  # "data" object ({} when absent or not an object)
    line: str = ""            # the line exactly as read (without its line ending)

    @property
    def stream(self) -> str:
        """The Loki `type` label: a known type, else "other" (labels stay bounded)."""
        return self.type if self.type in KNOWN_TYPES else OTHER_TYPE


@dataclass(slots=True)
class Invalid:
    """A line that is not an event, with the reason and a human-readable detail."""

    reason: str
    detail: str = ""


_ID_SEGMENT = re.compile(r"(?<=/)(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|[0-9a-fA-F]{16,})(?=/|$)")


@lru_cache(maxsize=65536)  # the same few URLs repeat on most lines
def page_of(url: str | None) -> str | None:
    """The app page of a URL: its fragment route (``#/quiz``), else its path; None when unknown.

    Query strings are dropped and id segments become ``:id`` (``#/results/123`` ->
    ``#/results/:id``) so pages stay few: they group errors by screen, not by record.
    """
    if not url:
        return None
    hash_at = url.find("#")
    if hash_at >= 0:
        page = url[hash_at:]
    else:
        rest = url.split("://", 1)[-1]
        slash = rest.find("/")
        page = rest[slash:] if slash >= 0 else "/"
    q = page.find("?")
    if q >= 0:
        page = page[:q]
    return _ID_SEGMENT.sub(":id", page) if "/" in page else page
