"""The serve state file: the aggregation core and how far it has read each file, saved together
atomically, so a restart neither double-counts nor loses counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from exporter.positions import FilePosition, atomic_write

VERSION = 1


@dataclass
class ServeState:
    read: dict[str, FilePosition] = field(default_factory=dict)   # aggregation cursor per file
    core: dict | None = None                                      # Aggregator.to_state()
    backfill_complete: bool = False                               # a restart is never "fresh"
    # unix s up to which the exporter had been watching the directory (the discovery clock's W,
    # see aggregation.core.discovery_clock); a state file without it: the file's own time
    watched_until: float | None = None

    @classmethod
    def load(cls, path: Path) -> "ServeState | None":
        if not path.exists():
            return None
        try:
            doc = orjson.loads(path.read_bytes())
            saved = doc.get("watched_until")
            watched_until = float(saved) if saved is not None else path.stat().st_mtime
        except (OSError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"state file {path} is unreadable ({exc}); move it away to start over") from None
        read = {k: FilePosition(**{f: v[f] for f in FilePosition.__slots__ if f in v})
                for k, v in (doc.get("read") or {}).items()}
        return cls(read, doc.get("core"), bool(doc.get("backfill_complete")), watched_until)

    def save(self, path: Path) -> None:
        doc = {"version": VERSION, "backfill_complete": self.backfill_complete,
               "watched_until": self.watched_until,
               "read": {k: v.to_json() for k, v in self.read.items()}, "core": self.core}
        atomic_write(path, orjson.dumps(doc))
