"""Positions: per file, how far Loki has acknowledged. Written atomically (temp file + replace).

Before a chunk is pushed, its end is written as "in flight"; after Loki has answered for all of
it, the positions advance. After ``kill -9`` at any moment, the next run resumes from the last
acknowledged position and re-sends the in-flight chunk with the same timestamps and lines:
Loki stores an identical entry once, and where a stream already moved more than an hour past a
re-sent entry, its "too far behind" answer means Loki holds that entry already (the chunk is
the only thing that could have moved it): counted as already delivered, not as rejected.
A file that shrank (truncated) or whose first bytes changed (replaced) since the last run is
read again from the start.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from exporter.sources.files import file_key

HEAD_BYTES = 1024
VERSION = 1


@dataclass(slots=True)
class FilePosition:
    offset: int = 0              # bytes acknowledged (decompressed stream for .gz)
    lineno: int = 0              # lines acknowledged
    anchor_ns: int | None = None  # last server receive time seen before `offset`
    head: str = ""               # sha256 of the file's first min(offset, 1 KiB) bytes
    done: bool = False           # reached end of file in a completed import

    def to_json(self) -> dict:
        return {"offset": self.offset, "lineno": self.lineno, "anchor_ns": self.anchor_ns,
                "head": self.head, "done": self.done}


def head_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class Positions:
    path: Path | None
    target: str = ""
    files: dict[str, FilePosition] = field(default_factory=dict)
    dead_letter_bytes: int = 0   # size of the dead letter at the time of this checkpoint
    acknowledged_at: float | None = None   # unix time Loki last acknowledged a chunk
    inflight: dict[str, int] = field(default_factory=dict)  # file -> end offset of the chunk being pushed

    @classmethod
    def load(cls, path: Path | None, target: str) -> "Positions":
        """Load the positions for ``target`` (a Loki URL without credentials)."""
        pos = cls(path, target)
        if path is None or not path.exists():
            return pos
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"positions file {path} is unreadable ({exc}); move it away to start over") from None
        entry = (doc.get("targets") or {}).get(target) or {}
        pos.dead_letter_bytes = int(entry.get("dead_letter_bytes", 0))
        acknowledged = entry.get("acknowledged_at")
        pos.acknowledged_at = float(acknowledged) if acknowledged is not None else None
        pos.inflight = {k: int(v) for k, v in (entry.get("inflight") or {}).items()}
        for name, fp in (entry.get("files") or {}).items():
            pos.files[name] = FilePosition(**{k: fp[k] for k in FilePosition.__slots__ if k in fp})
        return pos

    def save(self) -> None:
        """Write atomically; other targets' positions in the same file are kept."""
        if self.path is None:
            return
        doc: dict = {"version": VERSION, "targets": {}}
        if self.path.exists():
            try:
                doc = orjson.loads(self.path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                pass
        doc["version"] = VERSION
        doc.setdefault("targets", {})[self.target] = {
            "updated": time.time(),
            "dead_letter_bytes": self.dead_letter_bytes,
            "acknowledged_at": self.acknowledged_at,
            "inflight": self.inflight,
            "files": {k: v.to_json() for k, v in self.files.items()},
        }
        atomic_write(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def start_for(self, path: Path, read_head: bytes, size: int) -> tuple[FilePosition, str | None]:
        """Where to start reading ``path``, and a warning when it changed since last time."""
        key = file_key(path)
        old = self.files.get(key)
        if old is None or old.offset == 0:
            return FilePosition(), None
        if not path.name.endswith(".gz") and size < old.offset:
            return FilePosition(), f"{path.name} is shorter than last time ({size} < {old.offset} bytes): truncated, reading it again from the start"
        if head_digest(read_head[: min(old.offset, HEAD_BYTES)]) != old.head:
            return FilePosition(), f"{path.name} was replaced since last time (its first bytes changed): reading it again from the start"
        return FilePosition(old.offset, old.lineno, old.anchor_ns, old.head, old.done), None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees the old or the new file."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        f = open(tmp, "wb")
    except FileNotFoundError:   # first write: create the directory (not on every write)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(tmp, "wb")
    with f:
        f.write(data)
        f.flush()
    for attempt in range(5):  # Windows: a reader (antivirus, editor) may briefly hold the file
        try:
            os.replace(tmp, path)
            return
        except PermissionError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
