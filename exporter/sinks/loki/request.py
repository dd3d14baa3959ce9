"""Build the body of one Loki push: one stream, its entries, optional structured metadata."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

import orjson

PUSH_PATH = "/loki/api/v1/push"

# [timestamp ns as a string, line, structured metadata (only when not empty)]
Value = list


@dataclass(slots=True)
class Push:
    """One request: the entries of one stream, in the order they were read."""

    labels: dict[str, str]
    values: list[Value] = field(default_factory=list)
    line_bytes: int = 0

    def add(self, ts_ns: int, line: str, metadata: dict[str, str] | None, size: int) -> None:
        self.values.append([str(ts_ns), line, metadata] if metadata else [str(ts_ns), line])
        self.line_bytes += size

    def subset(self, indexes: list[int]) -> "Push":
        return Push(self.labels, [self.values[i] for i in indexes])

    def without_metadata(self) -> "Push":
        return Push(self.labels, [v[:2] for v in self.values], self.line_bytes)


def encode(push: Push) -> bytes:
    """The JSON body Loki's push API takes."""
    return orjson.dumps({"streams": [{"stream": push.labels, "values": push.values}]})


def compress(body: bytes, compression: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers for the chosen compression ("gzip" or "none")."""
    headers = {"Content-Type": "application/json"}
    if compression == "gzip":
        headers["Content-Encoding"] = "gzip"
        return gzip.compress(body, compresslevel=1, mtime=0), headers
    return body, headers


def labels_text(labels: dict[str, str]) -> str:
    """Prometheus-style label text, for messages: {app="saberloop", type="error"}."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"
