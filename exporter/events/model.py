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


_NUMERIC_OR_HEX_ID = re.compile(r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|[0-9a-fA-F]{16,}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_LETTER_DIGIT_SWITCH = re.compile(r"(?=[A-Za-z][0-9]|[0-9][A-Za-z])")
# How words are written: lower or capitalised parts (camelCase, PascalCase), a number at one end.
_WORD_SHAPED = re.compile(r"[0-9]*[A-Z]?[a-z]+(?:[A-Z][a-z]+)*[0-9]*")


def is_id_segment(segment: str) -> bool:
    """Whether a path segment names a record rather than a screen.

    Ids: digits only (``123``), UUIDs, 16+ hex characters, and tokens of letters, digits, ``-``
    and ``_`` (6+ characters) that look generated rather than written:

    - letters and digits switch at least twice: ``abc123XYZ``, ``qg4abun``,
      ``1766744160751-qg4abun``;
    - 16+ characters with a digit: ``AbCdEfGhIjKlMnOp1``;
    - 8+ characters mixing cases in a way words do not: ``kTRzpQxbMw`` (but ``myQuizHistory``,
      ``QuizView`` are words).

    Route words stay, with a number at one end too: ``quiz``, ``settings``, ``level2``,
    ``step10``, ``es2020``, ``how-to-play``. A random token in one case with no digit inside
    cannot be told from a word (it stays); a word with a number inside (``mp3player``) reads as
    an id.
    """
    if _NUMERIC_OR_HEX_ID.fullmatch(segment):
        return True
    if len(segment) < 6 or not _TOKEN.fullmatch(segment):
        return False
    joined = segment.replace("-", "").replace("_", "")
    if len(_LETTER_DIGIT_SWITCH.findall(joined)) >= 2:
        return True
    has_digit = not joined.isalpha()
    if len(joined) >= 16 and has_digit and not joined.isdigit():
        return True
    return (len(joined) >= 8 and not joined.islower() and not joined.isupper()
            and _WORD_SHAPED.fullmatch(joined) is None)


@lru_cache(maxsize=65536)  # the same few URLs repeat on most lines
def page_of(url: str | None) -> str | None:
    """The app page of a URL: its fragment route (``#/quiz``), else its path; None when unknown.

    Query strings are dropped and id segments (:func:`is_id_segment`) become ``:id``
    (``#/results/123`` -> ``#/results/:id``, ``#/quiz/abc123XYZ`` -> ``#/quiz/:id``) so pages
    stay few: they group errors by screen, not by record.
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
    if "/" not in page:
        return page
    head, *segments = page.split("/")
    return "/".join([head] + [":id" if is_id_segment(s) else s for s in segments])
