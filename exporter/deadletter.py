"""Dead letter: every line that was not delivered, with why, where, and the line itself.

One JSON object per line: file, line (number), offset (byte), reason, detail, raw (the line as
text; invalid UTF-8 shown with backslash escapes, and then raw_base64 holds the exact bytes;
a too-long line keeps only its first bytes, with its full length).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(slots=True)
class DeadLetterRecord:
    file: str
    line: int
    offset: int
    reason: str
    detail: str
    raw: bytes | str
    length: int | None = None

    def to_json(self) -> bytes:
        doc: dict = {"file": self.file, "line": self.line, "offset": self.offset,
                     "reason": self.reason, "detail": self.detail}
        if isinstance(self.raw, bytes):
            try:
                doc["raw"] = self.raw.decode("utf-8")
            except UnicodeDecodeError:
                doc["raw"] = self.raw.decode("utf-8", "backslashreplace")
                doc["raw_base64"] = base64.b64encode(self.raw).decode("ascii")
        else:
            doc["raw"] = self.raw
        if self.length is not None:
            doc["length"] = self.length
            doc["raw_truncated"] = True
        return orjson.dumps(doc) + b"\n"


class DeadLetter:
    """Append-only JSONL file, opened lazily; truncated back to a checkpoint on resume."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._f = None
        self.records = 0

    def resume_at(self, size: int) -> None:
        """Drop records written after the last checkpoint (they will be written again)."""
        if self.path is not None and self.path.exists() and self.path.stat().st_size > size:
            with open(self.path, "r+b") as f:
                f.truncate(size)

    def write(self, record: DeadLetterRecord) -> None:
        if self.path is None:
            return
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "ab")
        self._f.write(record.to_json())
        self.records += 1

    def flush(self) -> int:
        """Flush to the OS and return the file's size (the checkpoint for positions)."""
        if self._f is not None:
            self._f.flush()
            return self._f.tell()
        if self.path is not None and self.path.exists():
            return self.path.stat().st_size
        return 0

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
