"""A careful reader of telemetry files, independent of the project's code (json.loads only).

Tests count with it to check the exporter, the report and the generator's manifest: it follows
the documented rules, not the implementation.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

MAX_LINE = 256 * 1024
BOM = b"\xef\xbb\xbf"


def usable_time(value: object) -> bool:
    """An ISO time or an epoch (s or ms) between 2000 and 2100."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return 946_684_800 <= value < 4_102_444_800 or 946_684_800_000 <= value < 4_102_444_800_000
    if isinstance(value, str) and value and len(value) <= 64:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return False
        dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        return 2000 <= dt.year < 2100
    return False


def session_id(value: object) -> str | None:
    """The documented rule: a sessionId is a session when it is a string with a non-blank
    character, or a number (counted as its decimal text: 42 and "42" are one session)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")  # NaN, Infinity: Python's extensions to JSON


def read_raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


def file_lines(raw: bytes) -> list[bytes]:
    """Split on \\n; a BOM at the start and a \\r at the end of a line are not part of it."""
    if raw.startswith(BOM):
        raw = raw[3:]
    parts = raw.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()                      # the file ends with a newline
    return [p[:-1] if p.endswith(b"\r") else p for p in parts]


def classify(line: bytes) -> tuple[str, object]:
    """("blank", None), ("invalid", reason) or ("event", the JSON object)."""
    if len(line) > MAX_LINE:
        return "invalid", "too_long"
    if not line.strip():
        return "blank", None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid", "invalid_utf8"
    try:
        obj = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return "invalid", "not_json"
    if not isinstance(obj, dict):
        return "invalid", "not_object"
    etype = obj.get("type")
    if not isinstance(etype, str) or not etype:
        return "invalid", "bad_type"
    server = obj.get("_server") if isinstance(obj.get("_server"), dict) else {}
    if not (usable_time(obj.get("timestamp")) or usable_time(server.get("receivedAt"))):
        return "invalid", "no_timestamp"
    return "event", obj


def telemetry_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("telemetry-") and ".jsonl" in p.name)


def walk(directory: Path) -> Iterator[tuple[Path, bytes, str, object]]:
    """(file, line, kind, detail) for every line of every telemetry file in the directory."""
    for path in telemetry_files(directory):
        for line in file_lines(read_raw(path)):
            kind, detail = classify(line)
            yield path, line, kind, detail
