"""A faithful emulator of Grafana Loki 3.x's HTTP API, for tests (stdlib + orjson only).

Usage::

    with LokiEmulator(now=FrozenClock(1796326140.0)) as loki:   # or LokiEmulator().start() ... .stop()
        httpx.post(loki.url + "/loki/api/v1/push", ...)
        loki.entries(type="error")        # [StoredEntry(labels, ts_ns, line, metadata, detected_level)]
        loki.inject(429, "slow down", times=3, retry_after="2")
        loki.requests[-1].status

It answers ``POST /loki/api/v1/push`` with the status codes and byte-exact bodies a single-binary
Loki 3.x gives (checked against ``shared/reference/loki-recordings.jsonl``), following Loki's own
code path:

* ``pkg/loghttp/push/push.go`` ParseLokiRequest: Content-Encoding (gzip, deflate; snappy passes
  through; others -> 400 ``Content-Encoding "br" not supported``), Content-Type (missing -> 400
  ``mime: no media type``; ``application/json`` -> JSON; anything else -> snappy-compressed
  protobuf ``logproto.PushRequest``, supported), jsoniter decoding of ``loghttp.PushRequest`` with
  its error texts (``loghttp.PushRequest.Streams: []loghttp.LogProtoStream: ...``, the
  ``error found in #N byte of ...|..|..., bigger context ...|..|...`` window over 512-byte reads),
  ``LogProtoStream.UnmarshalJSON`` (grafana/jsonparser: timestamps must be JSON strings of integer
  nanoseconds), labels parsed by Prometheus ``ParseMetric`` (``couldn't parse labels: 1:16: parse
  error: unexpected character inside braces: '-'``), empty label values dropped, ``service_name``
  added from the discover-service-name list (``unknown_service`` otherwise).
* ``pkg/distributor`` Push: 422 when there is no stream; streams without entries skipped; label
  checks (max 15 names not counting service_name, name/value length); per entry: too old, too new,
  line too long, structured metadata limits; validation errors grouped like ``util.GroupedErrors``
  (``2 errors like: ...``); structured metadata names normalised (``page.url`` -> ``page_url``);
  ``detected_level`` added like Loki's level detection; tenant ingestion rate limit (token bucket,
  429, nothing stored); then the ingester. The ingester's error wins; the distributor's validation
  error (400) is returned only when the ingester succeeded - valid entries are stored either way.
* ``pkg/ingester`` instance.Push / stream.Push: ONLY THE LAST STREAM's error is returned (a later
  successful stream resets it, so a push can answer 204 while an earlier stream lost entries); per
  stream: skip a repeat of the last accepted line, reject entries older than the stream's newest
  accepted entry minus ``max_chunk_age/2`` (updated entry by entry), optional whole-stream rate
  limit, an identical (timestamp, line) stored once; the body lists at most 10 ``entry with
  timestamp <Go time> ignored, reason: '...'`` lines then ``user 'fake', total ignored: N out of M
  for stream: {...}``; stream limit (``max_global_streams_per_user``) -> 429.

Also served: ``GET /ready`` (503 ``Ingester not ready: waiting for 15s after being ready`` for
``ready_after`` seconds, then 200 ``ready``), ``POST /flush`` (204), ``GET /metrics`` (a few
counters), ``/loki/api/v1/labels``, ``label/<name>/values``, ``series``, ``query`` and
``query_range`` with a LogQL subset (selectors, line filters, ``count_over_time``, ``rate``,
``bytes_over_time``, ``bytes_rate``, ``sum/min/max/avg/count [by|without (...)]``). Structured
metadata and ``detected_level`` appear as labels in query results, as in Loki. Like the observed
Loki, entries older than ``now - query_ingesters_within`` (3h) stay invisible to queries until
their chunk is flushed (``POST /flush``, ``flush()``, or chunk idle 30m / age 2h / ~1.5 MB on the
emulator's clock).

Not emulated: automatic stream sharding (so the per-stream rate limit is off unless
``per_stream_rate_limit`` is given), time sharding, WAL, OTLP, querying by parsed fields
(``| json`` ...), query stats (zeros), Go's random order of grouped distributor errors (first
occurrence order here), ingestion while the ring is still starting (pushes are accepted as soon as
the server listens). Clocks: validation, rate limits and query visibility use ``now``; ``/ready``
uses real elapsed time.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import math
import re
import socket
import threading
import time
import unicodedata
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

import orjson

__all__ = ["LokiEmulator", "RecordedRequest", "StoredEntry", "FrozenClock", "DISCOVER_SERVICE_NAME_DEFAULT"]

PUSH_PATH = "/loki/api/v1/push"
NOT_READY_BODY = "Ingester not ready: waiting for 15s after being ready\n"
MIB = 1048576
_NS = 1_000_000_000

# pkg/validation/limits.go defaults
DISCOVER_SERVICE_NAME_DEFAULT = (
    "service", "app", "application", "app_name", "name", "app_kubernetes_io_name", "container",
    "container_name", "k8s_container_name", "component", "workload", "job", "k8s_job_name",
)
LOG_LEVEL_FIELDS_DEFAULT = ("level", "LEVEL", "Level", "Severity", "severity", "SEVERITY", "lvl", "LVL", "Lvl")
LABEL_SERVICE_NAME = "service_name"
SERVICE_UNKNOWN = "unknown_service"
LEVEL_LABEL = "detected_level"

# pkg/validation/validate.go (Loki 3.x wording, lower-cased as in the recordings)
MSG_MISSING_STREAMS = "error at least one valid stream is required for ingestion"
MSG_MISSING_LABELS = "error at least one label pair is required per stream"
MSG_RATE_LIMITED = ("ingestion rate limit exceeded for user %s (limit: %d bytes/sec) while attempting to ingest '%d' "
                    "lines totaling '%d' bytes, reduce log volume or contact your Loki administrator to see if the "
                    "limit can be increased")
MSG_LINE_TOO_LONG = "max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes"
MSG_STREAM_LIMIT = ("maximum active stream limit exceeded when trying to create stream %s, reduce the number of active "
                    "streams (reduce labels or reduce label values), or contact your Loki administrator to see if the "
                    "limit can be increased, user: '%s'")
MSG_TOO_OLD = "entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s"
MSG_TOO_NEW = "entry for stream '%s' has timestamp too new: %s"
MSG_MAX_LABEL_NAMES = "entry for stream '%s' has %d label names; limit %d"
MSG_LABEL_NAME_TOO_LONG = "stream '%s' has label name too long: '%s'"
MSG_LABEL_VALUE_TOO_LONG = "stream '%s' has label value too long: '%s'"
MSG_DUPLICATE_LABEL = "stream '%s' has duplicate label name: '%s'"
MSG_SM_DISALLOWED = ("stream '%s' includes structured metadata, but this feature is disallowed. Please see "
                     "`limits_config.allow_structured_metadata` or contact your Loki administrator to enable it.")
MSG_SM_TOO_LARGE = ("stream '%s' has structured metadata too large: '%d' bytes, limit: '%d' bytes. Please see "
                    "`limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.")
MSG_SM_TOO_MANY = ("stream '%s' has too many structured metadata labels: '%d', limit: '%d'. Please see "
                   "`limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to "
                   "increase it.")
MSG_STREAM_RATE = ("Per stream rate limit exceeded (limit: %s/sec) while attempting to ingest for stream '%s' totaling "
                   "%s, consider splitting a stream via additional labels or contact your Loki administrator to see if "
                   "the limit can be increased")
MSG_TOO_FAR_BEHIND = "entry too far behind, entry timestamp is: %s, oldest acceptable timestamp is: %s"
MAX_RETURNED_ERRORS = 10  # ingester.max-ignored-stream-errors


# --------------------------------------------------------------------------------------------
# Go formatting helpers
# --------------------------------------------------------------------------------------------

_EPOCH = _dt.datetime(1970, 1, 1)


def _utc(ns: int) -> tuple[_dt.datetime, int]:
    sec, frac = divmod(ns, _NS)
    return _EPOCH + _dt.timedelta(seconds=sec), frac


def go_time_string(ns: int) -> str:
    """``time.Unix(0, ns).String()`` on a host whose local zone is UTC (Loki's container)."""
    d, frac = _utc(ns)
    s = f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    if frac:
        s += "." + f"{frac:09d}".rstrip("0")
    return s + " +0000 UTC"


def go_rfc3339(ns: int) -> str:
    """``t.Format(time.RFC3339)`` in UTC (seconds, fraction dropped)."""
    d, _ = _utc(ns)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"


def _go_isprint(ch: str) -> bool:
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


_GO_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str, q: str = '"') -> str:
    """``strconv.Quote`` (or ``%q`` of a rune with q="'")."""
    out = [q]
    for ch in s:
        o = ord(ch)
        if ch == q or ch == "\\":
            out.append("\\" + ch)
        elif 0xDC80 <= o <= 0xDCFF:  # a raw invalid byte kept by surrogateescape
            out.append("\\x%02x" % (o - 0xDC00))
        elif o < 0x80 and 0x20 <= o < 0x7F:
            out.append(ch)
        elif o >= 0x80 and not (0xD800 <= o <= 0xDFFF) and _go_isprint(ch):
            out.append(ch)
        elif ch in _GO_ESC:
            out.append(_GO_ESC[ch])
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append(q)
    return "".join(out)


def datasize_string(n: int) -> str:
    """``flagext.ByteSize.String()`` (c2h5oh/datasize, binary units)."""
    n = int(n)
    if n == 0:
        return "0B"
    for unit, size in (("EB", 1 << 60), ("PB", 1 << 50), ("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


def go_format_float(v: float) -> str:
    """``strconv.FormatFloat(v, 'f', -1, 64)``."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e21:
        return str(int(v)) if not (v == 0 and math.copysign(1, v) < 0) else "-0"
    return format(Decimal(repr(v)), "f")


def _ts_seconds_text(ms: int) -> str:
    """A sample timestamp as Loki writes it: float seconds with millisecond precision."""
    return go_format_float(ms / 1000.0)


def _b2s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _b2s_raw(b: bytes) -> str:
    """Bytes into a str that encodes back to the same bytes (for error messages)."""
    return b.decode("utf-8", "surrogateescape")


def _chr(c: int) -> str:
    """``string([]byte{c})``."""
    return bytes([c]).decode("utf-8", "surrogateescape")


def _utf8len(s: str) -> int:
    return len(s.encode("utf-8", "surrogateescape"))


# --------------------------------------------------------------------------------------------
# grafana/jsonparser port (what LogProtoStream.UnmarshalJSON uses)
# --------------------------------------------------------------------------------------------

E_UNKNOWN_TYPE = "Unknown value type"
E_MALFORMED_JSON = "Malformed JSON error"
E_MALFORMED_STRING = "Value is string, but can't find closing '\"' symbol"
E_MALFORMED_ARRAY = "Value is array, but can't find closing ']' symbol"
E_MALFORMED_OBJECT = "Value looks like object, but can't find closing '}' symbol"
E_MALFORMED_VALUE = "Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol"
E_OVERFLOW_INT = "Value is number, but overflowed while parsing"
E_MALFORMED_ESCAPE = "Encountered an invalid escape sequence in a string"

NOT_EXIST, STRING, NUMBER, OBJECT, ARRAY, BOOLEAN, NULL, UNKNOWN = range(8)

_NON_WS = re.compile(rb"[^ \n\r\t]")
_TOKEN_END = re.compile(rb"[ \n\r\t,}\]]")
_BLOCK_RE = {(0x5B, 0x5D): re.compile(rb'["\[\]]'), (0x7B, 0x7D): re.compile(rb'["{}]')}


def _jp_next_token(data: bytes, start: int) -> int:
    m = _NON_WS.search(data, start)
    return m.start() if m else -1


def _jp_string_end(data: bytes, start: int) -> tuple[int, bool]:
    """Absolute index just after the closing quote of a string whose content starts at ``start``."""
    pos = start
    while True:
        q = data.find(b'"', pos)
        if q < 0:
            return -1, data.find(b"\\", start) >= 0
        k, cnt = q - 1, 0
        while k >= start and data[k] == 0x5C:
            cnt += 1
            k -= 1
        if cnt % 2 == 0:
            return q + 1, data.find(b"\\", start, q) >= 0
        pos = q + 1


def _jp_block_end(data: bytes, start: int, open_c: int, close_c: int) -> int:
    rx = _BLOCK_RE[(open_c, close_c)]
    level, i = 0, start
    while True:
        m = rx.search(data, i)
        if not m:
            return -1
        i = m.start()
        c = data[i]
        if c == 0x22:
            se, _ = _jp_string_end(data, i + 1)
            if se == -1:
                return -1
            i = se
            continue
        if c == open_c:
            level += 1
        else:
            level -= 1
            if level == 0:
                return i + 1
        i += 1


def _jp_get(data: bytes, start: int) -> tuple[bytes | None, int, int, str | None]:
    """``jsonparser.Get(data[start:])``: (value, type, absolute end offset, error)."""
    off = _jp_next_token(data, start)
    if off == -1:
        return None, NOT_EXIST, -1, E_MALFORMED_JSON
    c = data[off]
    if c == 0x22:
        end, _ = _jp_string_end(data, off + 1)
        if end == -1:
            return None, STRING, off, E_MALFORMED_STRING
        return data[off + 1:end - 1], STRING, end, None
    if c == 0x5B or c == 0x7B:
        typ, err = (ARRAY, E_MALFORMED_ARRAY) if c == 0x5B else (OBJECT, E_MALFORMED_OBJECT)
        end = _jp_block_end(data, off, c, 0x5D if c == 0x5B else 0x7D)
        if end == -1:
            return None, typ, off, err
        return data[off:end], typ, end, None
    m = _TOKEN_END.search(data, off)
    end = m.start() if m else len(data)
    value = data[off:end]
    if c in b"tf":
        if value in (b"true", b"false"):
            return value, BOOLEAN, end, None
        return None, UNKNOWN, off, E_UNKNOWN_TYPE
    if c in b"un":
        if value == b"null":
            return value, NULL, end, None
        return None, UNKNOWN, off, E_UNKNOWN_TYPE
    if c in b"0123456789-":
        return value, NUMBER, end, None
    return None, UNKNOWN, off, E_UNKNOWN_TYPE


def _jp_hex(c: int) -> int:
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


def _jp_u4(b: bytes, i: int) -> int:
    """Value of the \\uXXXX escape starting at b[i] (the backslash), or -1."""
    if len(b) - i < 6:
        return -1
    h = [_jp_hex(x) for x in b[i + 2:i + 6]]
    if -1 in h:
        return -1
    return (h[0] << 12) + (h[1] << 8) + (h[2] << 4) + h[3]


_JP_SIMPLE_ESC = {0x22: b'"', 0x5C: b"\\", 0x2F: b"/", 0x62: b"\b", 0x66: b"\f", 0x6E: b"\n", 0x72: b"\r", 0x74: b"\t"}


def jp_unescape(b: bytes) -> tuple[bytes | None, str | None]:
    first = b.find(b"\\")
    if first == -1:
        return b, None
    out = bytearray(b[:first])
    i = first
    n = len(b)
    while i < n:
        if b[i] != 0x5C or i + 1 >= n:
            return None, E_MALFORMED_ESCAPE
        e = b[i + 1]
        if e in _JP_SIMPLE_ESC:
            out += _JP_SIMPLE_ESC[e]
            i += 2
        elif e == 0x75:
            r = _jp_u4(b, i)
            if r == -1:
                return None, E_MALFORMED_ESCAPE
            if r <= 0xFFFF and not (0xD800 <= r <= 0xDFFF):
                out += chr(r).encode("utf-8")
                i += 6
            else:
                r2 = _jp_u4(b, i + 6) if i + 6 < n and b[i + 6] == 0x5C else -1
                if r2 == -1 or r2 < 0xDC00:
                    return None, E_MALFORMED_ESCAPE
                cp = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)
                out += chr(cp).encode("utf-8", "surrogatepass") if cp > 0x10FFFF else chr(cp).encode("utf-8")
                i += 12
        else:
            return None, E_MALFORMED_ESCAPE
        nb = b.find(b"\\", i)
        if nb == -1:
            out += b[i:]
            break
        out += b[i:nb]
        i = nb
    return bytes(out), None


def jp_parse_string(b: bytes) -> tuple[str | None, str | None]:
    u, err = jp_unescape(b)
    if err:
        return None, E_MALFORMED_VALUE
    return _b2s(u), None


def jp_parse_int(b: bytes) -> tuple[int, str | None]:
    if not b:
        return 0, E_MALFORMED_VALUE
    neg = b[:1] == b"-"
    digits = b[1:] if neg else b
    n = 0
    for c in digits:
        if c < 48 or c > 57:
            return 0, E_MALFORMED_VALUE
        n = n * 10 + (c - 48)
        if n > 0xFFFFFFFFFFFFFFFF:
            return 0, E_OVERFLOW_INT
    if n > 0x7FFFFFFFFFFFFFFF:
        if neg and n == 0x8000000000000000:
            return -n, None
        return 0, E_OVERFLOW_INT
    return (-n if neg else n), None


def jp_object_each(data: bytes, cb: Callable[[bytes, bytes, int], str | None]) -> str | None:
    off = _jp_next_token(data, 0)
    if off == -1 or data[off] != 0x7B:
        return E_MALFORMED_OBJECT
    offset = off + 1
    off = _jp_next_token(data, offset)
    if off == -1:
        return E_MALFORMED_JSON
    offset = off
    if data[offset] == 0x7D:
        return None
    n = len(data)
    while offset < n:
        c = data[offset]
        if c == 0x22:
            offset += 1
        elif c == 0x7D:
            return None
        else:
            return E_MALFORMED_OBJECT
        end, esc = _jp_string_end(data, offset)
        if end == -1:
            return E_MALFORMED_JSON
        key = data[offset:end - 1]
        offset = end
        if esc:
            key, err = jp_unescape(key)
            if err:
                return E_MALFORMED_ESCAPE
        off = _jp_next_token(data, offset)
        if off == -1:
            return E_MALFORMED_JSON
        offset = off
        if data[offset] != 0x3A:
            return E_MALFORMED_JSON
        offset += 1
        value, vtype, end, err = _jp_get(data, offset)
        if err:
            return err
        err = cb(key, value, vtype)
        if err:
            return err
        offset = end
        off = _jp_next_token(data, offset)
        if off == -1:
            return E_MALFORMED_ARRAY
        offset = off
        c = data[offset]
        if c == 0x7D:
            return None
        if c != 0x2C:
            return E_MALFORMED_OBJECT
        offset += 1
        off = _jp_next_token(data, offset)
        if off == -1:
            return E_MALFORMED_ARRAY
        offset = off
    return E_MALFORMED_OBJECT


def jp_array_each(data: bytes, cb: Callable[[bytes, int], None]) -> str | None:
    if not data:
        return E_MALFORMED_OBJECT
    nt = _jp_next_token(data, 0)
    if nt == -1:
        return E_MALFORMED_JSON
    offset = nt + 1
    no = _jp_next_token(data, offset)
    if no == -1:
        return E_MALFORMED_JSON
    offset = no
    if data[offset] == 0x5D:
        return None
    while True:
        v, t, end, e = _jp_get(data, offset)
        if e:
            return e
        if end == offset:
            break
        if t != NOT_EXIST:
            cb(v, t)
        offset = end
        s = _jp_next_token(data, offset)
        if s == -1:
            return E_MALFORMED_ARRAY
        offset = s
        if data[offset] == 0x5D:
            break
        if data[offset] != 0x2C:
            return E_MALFORMED_ARRAY
        offset += 1
    return None


# --------------------------------------------------------------------------------------------
# loghttp.LogProtoStream.UnmarshalJSON (pkg/loghttp/query.go, labels.go)
# --------------------------------------------------------------------------------------------

Entry = tuple  # (ts_ns: int, line: str, metadata: list[tuple[str, str]] | None)


def labelset_string(ls: dict[str, str]) -> str:
    """``loghttp.LabelSet.String()`` == Prometheus ``labels.Labels.String()`` for valid names."""
    return "{" + ", ".join(f"{k}={go_quote(ls[k])}" for k in sorted(ls)) + "}"


def _unmarshal_labelset(data: bytes, ls: dict[str, str]) -> str | None:
    def cb(key: bytes, val: bytes, _t: int) -> str | None:
        v, err = jp_parse_string(val)
        if err:
            return err
        k, err = jp_parse_string(key)
        if err:
            return err
        ls[k] = v
        return None
    return jp_object_each(data, cb)


def _unmarshal_entry(data: bytes) -> tuple[Entry | None, str | None]:
    st: dict[str, Any] = {"i": 0, "err": None, "ts": 0, "line": "", "sm": None}

    def cb(value: bytes, t: int) -> None:
        i = st["i"]
        if (i == 0 or i == 1) and t != STRING:
            st["err"] = E_MALFORMED_STRING
            return
        if i == 2 and t != OBJECT:
            st["err"] = E_MALFORMED_OBJECT
            return
        if i == 0:
            ts, err = jp_parse_int(value)
            if err:
                st["err"] = err
                return
            st["ts"] = ts
        elif i == 1:
            line, err = jp_parse_string(value)
            if err:
                st["err"] = err
                return
            st["line"] = line
        elif i == 2:
            items: list[tuple[str, str]] = []

            def cb2(k: bytes, v: bytes, dt: int) -> str | None:
                if dt != STRING:
                    return E_MALFORMED_STRING
                pv, err2 = jp_parse_string(v)
                if err2:
                    return err2
                items.append((_b2s(k), pv))
                return None
            err = jp_object_each(value, cb2)
            if err:
                st["err"] = err
                return
            st["sm"] = items
        st["i"] = i + 1

    err = jp_array_each(data, cb)
    if st["err"]:
        return None, st["err"]
    if err:
        return None, err
    return (st["ts"], st["line"], st["sm"]), None


def _unmarshal_entries(data: bytes) -> tuple[list[Entry] | None, str | None]:
    entries: list[Entry] = []
    st: dict[str, Any] = {"err": None}

    def cb(value: bytes, t: int) -> None:
        if st["err"]:
            return
        if t == NULL:
            return
        e, err = _unmarshal_entry(value)
        if err:
            st["err"] = err
            return
        entries.append(e)

    err = jp_array_each(data, cb)
    if err:
        st["err"] = err
    if st["err"]:
        return None, st["err"]
    return entries, None


def _unmarshal_logproto_stream(raw: bytes) -> tuple[str, list[Entry] | None, str | None]:
    st: dict[str, Any] = {"labels": "", "entries": None}

    def cb(key: bytes, val: bytes, t: int) -> str | None:
        if key == b"stream":
            ls: dict[str, str] = {}
            err = _unmarshal_labelset(val, ls)
            if err:
                return err
            st["labels"] = labelset_string(ls)
        elif key == b"values":
            if t == NULL:
                return None
            ents, err = _unmarshal_entries(val)
            if err:
                return err
            st["entries"] = ents
        return None

    err = jp_object_each(raw, cb)
    return st["labels"], st["entries"], err


# --------------------------------------------------------------------------------------------
# json-iterator/go (v1.1.12) port: decoding of loghttp.PushRequest from a 512-byte-chunked reader
# --------------------------------------------------------------------------------------------

_EOF = object()
_WS = frozenset(b" \n\t\r")
_STR_STOP = re.compile(rb'["\\\x00-\x1f]')


class _JIter:
    CHUNK = 512

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # absolute offset of buf[0]
        self.buf = b""
        self.head = 0
        self.tail = 0
        self.error: Any = None
        self.captured: list[bytes] | None = None
        self.capture_start = -1

    # -- Iterator primitives
    def load_more(self) -> bool:
        if self.captured is not None:
            self.captured.append(self.buf[self.capture_start:self.tail])
            self.capture_start = 0
        nxt = self.pos + self.tail
        if nxt >= len(self.data):
            if self.error is None:
                self.error = _EOF
            return False
        self.pos = nxt
        self.buf = self.data[nxt:nxt + self.CHUNK]
        self.head, self.tail = 0, len(self.buf)
        return True

    def report_error(self, op: str, msg: str) -> None:
        if self.error is not None and self.error is not _EOF:
            return
        ps = max(self.head - 10, 0)
        pe = min(self.head + 10, self.tail)
        cs = max(self.head - 50, 0)
        ce = min(self.head + 50, self.tail)
        self.error = (f"{op}: {msg}, error found in #{self.head - ps} byte of ...|{_b2s_raw(self.buf[ps:pe])}|..., "
                      f"bigger context ...|{_b2s_raw(self.buf[cs:ce])}|...")

    def next_token(self) -> int:
        while True:
            m = _NON_WS.search(self.buf, self.head, self.tail)
            if m:
                self.head = m.start() + 1
                return self.buf[m.start()]
            if not self.load_more():
                return 0

    def read_byte(self) -> int:
        if self.head == self.tail:
            if self.load_more():
                c = self.buf[self.head]
                self.head += 1
                return c
            return 0
        c = self.buf[self.head]
        self.head += 1
        return c

    def unread_byte(self) -> None:
        if self.error is not None:
            return
        self.head -= 1

    def start_capture(self) -> None:
        self.captured = []
        self.capture_start = self.head

    def stop_capture(self) -> bytes:
        assert self.captured is not None
        out = b"".join(self.captured) + self.buf[self.capture_start:self.head]
        self.captured = None
        self.capture_start = -1
        return out

    def skip_n(self, op: str, expect: bytes) -> None:
        for b in expect[1:]:
            if self.read_byte() != b:
                self.report_error(op, "expect " + expect.decode())
                return

    # -- strings
    def read_string(self) -> str:
        c = self.next_token()
        if c == 0x22:
            m = _STR_STOP.search(self.buf, self.head, self.tail)
            if m:
                i = m.start()
                ch = self.buf[i]
                if ch == 0x22:
                    s = self.buf[self.head:i]
                    self.head = i + 1
                    return _b2s(s)
                if ch < 0x20:
                    self.report_error("ReadString", f"invalid control character found: {ch}")
                    return ""
            return self.read_string_slow_path()
        if c == 0x6E:
            self.skip_n("skipThreeBytes", b"null")
            return ""
        self.report_error("ReadString", 'expects " or n, but found ' + _chr(c))
        return ""

    def read_string_slow_path(self) -> str:
        out = bytearray()
        while self.error is None:
            c = self.read_byte()
            if c == 0x22:
                return _b2s(bytes(out))
            if c == 0x5C:
                c = self.read_byte()
                self.read_escaped_char(c, out)
            else:
                out.append(c)
        self.report_error("readStringSlowPath", "unexpected end of input")
        return ""

    def read_u4(self) -> int:
        r = 0
        for _ in range(4):
            c = self.read_byte()
            if self.error is not None:
                return r
            h = _jp_hex(c)
            if h < 0:
                self.report_error("readU4", "expects 0~9 or a~f, but found " + _chr(c))
                return r
            r = r * 16 + h
        return r

    def read_escaped_char(self, c: int, out: bytearray) -> None:
        if c == 0x75:
            r = self.read_u4()
            if 0xD800 <= r <= 0xDFFF:
                c = self.read_byte()
                if self.error is not None:
                    return
                if c != 0x5C:
                    self.unread_byte()
                    out += "\ufffd".encode()
                    return
                c = self.read_byte()
                if self.error is not None:
                    return
                if c != 0x75:
                    out += "\ufffd".encode()
                    self.read_escaped_char(c, out)
                    return
                r2 = self.read_u4()
                if self.error is not None:
                    return
                if 0xD800 <= r < 0xDC00 <= r2 < 0xE000:
                    out += chr(0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)).encode()
                else:
                    out += "\ufffd\ufffd".encode()
            else:
                out += chr(r).encode()
        elif c in _JP_SIMPLE_ESC:
            out += _JP_SIMPLE_ESC[c]
        else:
            self.report_error("readEscapedChar", "invalid escape char after \\")

    def try_skip_string(self) -> bool:
        m = _STR_STOP.search(self.buf, self.head, self.tail)
        if not m:
            return False
        i = m.start()
        ch = self.buf[i]
        if ch == 0x22:
            self.head = i + 1
            return True
        if ch == 0x5C:
            return False
        self.report_error("trySkipString", f"invalid control character found: {ch}")
        return True

    # -- skipping
    def skip(self) -> None:
        c = self.next_token()
        if c == 0x22:
            if not self.try_skip_string():
                self.unread_byte()
                self.read_string()
        elif c == 0x6E:
            self.skip_n("skipThreeBytes", b"null")
        elif c == 0x74:
            self.skip_n("skipThreeBytes", b"true")
        elif c == 0x66:
            self.skip_n("skipFourBytes", b"false")
        elif c == 0x30:
            self.unread_byte()
            self.read_number("readFloat32")
        elif c in b"-123456789":
            if not self.try_skip_number():
                self.unread_byte()
                if self.error is not None and self.error is not _EOF:
                    return
                self.read_number("readFloat64")
        elif c == 0x5B:
            self.unread_byte()
            self.read_array_cb(self.skip)
        elif c == 0x7B:
            self.unread_byte()
            self.read_object_cb()
        else:
            self.report_error("Skip", f"do not know how to skip: {c}")

    def try_skip_number(self) -> bool:
        dot = False
        i = self.head
        while i < self.tail:
            c = self.buf[i]
            if 48 <= c <= 57:
                pass
            elif c == 0x2E:
                if dot:
                    self.report_error("validateNumber", "more than one dot found in number")
                    return True
                if i + 1 == self.tail:
                    return False
                if not 48 <= self.buf[i + 1] <= 57:
                    self.report_error("validateNumber", "missing digit after dot")
                    return True
                dot = True
            elif c in b",]} \t\n\r":
                if self.head == i:
                    return False
                self.head = i
                return True
            else:
                return False
            i += 1
        return False

    _NUM_CHARS = frozenset(b"0123456789eE+-.")
    _JSON_NUM = re.compile(rb"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")

    def read_number(self, op: str) -> None:
        # Approximation of jsoniter ReadFloat32/64: consume the number, validate JSON syntax.
        chars = bytearray()
        while True:
            if self.head == self.tail and not self.load_more():
                break
            c = self.buf[self.head]
            if c not in self._NUM_CHARS:
                break
            chars.append(c)
            self.head += 1
        if not self._JSON_NUM.fullmatch(bytes(chars)):
            self.report_error(op, "invalid number " + _b2s_raw(bytes(chars)))

    def read_array_cb(self, callback: Callable[[], None]) -> bool:
        c = self.next_token()
        if c == 0x5B:
            c = self.next_token()
            if c != 0x5D:
                self.unread_byte()
                callback()
                c = self.next_token()
                while c == 0x2C:
                    callback()
                    c = self.next_token()
                if c != 0x5D:
                    self.report_error("ReadArrayCB", "expect ] in the end, but found " + _chr(c))
                    return False
                return True
            return True
        if c == 0x6E:
            self.skip_n("skipThreeBytes", b"null")
            return True
        self.report_error("ReadArrayCB", "expect [ or n, but found " + _chr(c))
        return False

    def read_object_cb(self) -> bool:
        c = self.next_token()
        if c == 0x7B:
            c = self.next_token()
            if c == 0x22:
                self.unread_byte()
                self.read_string()
                c = self.next_token()
                if c != 0x3A:
                    self.report_error("ReadObject", "expect : after object field, but found " + _chr(c))
                self.skip()
                c = self.next_token()
                while c == 0x2C:
                    self.read_string()
                    c = self.next_token()
                    if c != 0x3A:
                        self.report_error("ReadObject", "expect : after object field, but found " + _chr(c))
                    self.skip()
                    c = self.next_token()
                if c != 0x7D:
                    self.report_error("ReadObjectCB", "object not ended with }")
                    return False
                return True
            if c == 0x7D:
                return True
            self.report_error("ReadObjectCB", 'expect " after {, but found ' + _chr(c))
            return False
        if c == 0x6E:
            self.skip_n("skipThreeBytes", b"null")
            return True
        self.report_error("ReadObjectCB", "expect { or n, but found " + _chr(c))
        return False

    def skip_and_return_bytes(self) -> bytes:
        self.start_capture()
        self.skip()
        return self.stop_capture()

    # -- struct decoding
    def read_object_start(self) -> bool:
        c = self.next_token()
        if c == 0x7B:
            c = self.next_token()
            if c == 0x7D:
                return False
            self.unread_byte()
            return True
        if c == 0x6E:
            self.skip_n("skipThreeBytes", b"null")
            return False
        self.report_error("readObjectStart", "expect { or n, but found " + _chr(c))
        return False

    def read_field_name_lower(self) -> bytes | None:
        """``readFieldHash``: the lower-cased field name (jsoniter matches fields case-insensitively)."""
        c = self.next_token()
        if c != 0x22:
            self.report_error("readFieldHash", 'expect ", but found ' + _chr(c))
            return None
        name = bytearray()
        while True:
            i = self.head
            while i < self.tail:
                b = self.buf[i]
                if b == 0x5C:
                    self.head = i
                    name += self.read_string_slow_path().encode("utf-8", "surrogateescape")
                    c = self.next_token()
                    if c != 0x3A:
                        self.report_error("readFieldHash", "expect :, but found " + _chr(c))
                        return None
                    return bytes(name).lower()
                if b == 0x22:
                    self.head = i + 1
                    c = self.next_token()
                    if c != 0x3A:
                        self.report_error("readFieldHash", "expect :, but found " + _chr(c))
                        return None
                    return bytes(name).lower()
                name.append(b)
                i += 1
            if not self.load_more():
                self.report_error("readFieldHash", "incomplete field name")
                return None

    def is_object_end(self) -> bool:
        c = self.next_token()
        if c == 0x2C:
            return False
        if c == 0x7D:
            return True
        self.report_error("isObjectEnd", "object ended prematurely, unexpected char " + _chr(c))
        return True

    def _wrap(self, prefix: str) -> None:
        if self.error is not None and self.error is not _EOF:
            self.error = prefix + self.error


def _decode_streams_slice(it: _JIter) -> list[tuple[str, list[Entry] | None]] | None:
    def elem() -> tuple[str, list[Entry] | None]:
        it.next_token()
        it.unread_byte()
        raw = it.skip_and_return_bytes()
        labels, entries, err = _unmarshal_logproto_stream(raw)
        if err:
            it.report_error("unmarshalerDecoder", err)
        return labels, entries

    c = it.next_token()
    if c == 0x6E:
        it.skip_n("skipThreeBytes", b"null")
        return None
    if c != 0x5B:
        it.report_error("decode slice", "expect [ or n, but found " + _chr(c))
        return None
    c = it.next_token()
    if c == 0x5D:
        return []
    it.unread_byte()
    out = [elem()]
    c = it.next_token()
    while c == 0x2C:
        out.append(elem())
        c = it.next_token()
    if c != 0x5D:
        it.report_error("decode slice", "expect ], but found " + _chr(c))
    return out


def decode_push_json_slow(data: bytes) -> tuple[list[tuple[str, list[Entry] | None]], str | None]:
    """``jsoniter.NewDecoder(body).Decode(&loghttp.PushRequest{})``, error text included."""
    it = _JIter(data)
    if not it.load_more():
        return [], "EOF"
    streams: list | None = None
    if it.read_object_start():
        while True:
            name = it.read_field_name_lower()
            if name == b"streams":
                streams = _decode_streams_slice(it)
                it._wrap("[]loghttp.LogProtoStream: ")
                it._wrap("Streams: ")
            else:
                it.skip()
            if it.is_object_end():
                break
        it._wrap("loghttp.PushRequest.")
    if it.error is None or it.error is _EOF:
        return list(streams or []), None
    return [], it.error


_TS_DIGITS = re.compile(r"-?[0-9]*")


def decode_push_json(data: bytes) -> tuple[list[tuple[str, list[Entry] | None]], str | None]:
    """Fast path with orjson for well-formed bodies; any oddity goes through the faithful port."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return decode_push_json_slow(data)
    if not isinstance(doc, dict) or any(k != "streams" and k.lower() == "streams" for k in doc):
        return decode_push_json_slow(data)
    raw_streams = doc.get("streams")
    if raw_streams is None:
        return [], None
    if not isinstance(raw_streams, list):
        return decode_push_json_slow(data)
    out: list[tuple[str, list[Entry] | None]] = []
    for s in raw_streams:
        if not isinstance(s, dict):
            return decode_push_json_slow(data)
        labels = ""
        if "stream" in s:
            ls = s["stream"]
            if not isinstance(ls, dict) or any(not isinstance(v, str) or "\\" in k for k, v in ls.items()):
                return decode_push_json_slow(data)
            labels = labelset_string(ls)
        entries: list[Entry] | None = None
        values = s.get("values")
        if values is not None:
            if not isinstance(values, list):
                return decode_push_json_slow(data)
            entries = []
            for v in values:
                if v is None:
                    continue
                if not isinstance(v, list) or len(v) < 2:
                    return decode_push_json_slow(data)
                ts_s, line = v[0], v[1]
                if not isinstance(ts_s, str) or not isinstance(line, str) or not _TS_DIGITS.fullmatch(ts_s):
                    return decode_push_json_slow(data)
                if len(ts_s) < 19 and ts_s not in ("", "-"):
                    ts = int(ts_s)  # cannot overflow int64
                else:
                    ts, err = jp_parse_int(ts_s.encode())
                    if err:
                        return decode_push_json_slow(data)
                sm = None
                if len(v) >= 3:
                    md = v[2]
                    if not isinstance(md, dict) or any(not isinstance(x, str) for x in md.values()):
                        return decode_push_json_slow(data)
                    sm = list(md.items())
                entries.append((ts, line, sm))
        out.append((labels, entries))
    return out, None


# --------------------------------------------------------------------------------------------
# Prometheus ParseMetric (what Loki's syntax.ParseLabels calls)
# --------------------------------------------------------------------------------------------

class PromParseError(Exception):
    def __init__(self, inp: str, pos: int, msg: str) -> None:
        b = inp.encode("utf-8", "surrogateescape")
        if pos < 0 or pos > len(b):
            where = "invalid position:"
        else:
            head = b[:pos]
            line = 1 + head.count(b"\n")
            col = pos - head.rfind(b"\n")
            where = f"{line}:{col}:"
        super().__init__(f"{where} parse error: {msg}")


def _is_alpha(c: int) -> bool:
    return c == 0x5F or 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A


def _is_alnum(c: int) -> bool:
    return _is_alpha(c) or 0x30 <= c <= 0x39


def _rune_at(b: bytes, i: int) -> str:
    for n in (1, 2, 3, 4):
        try:
            return b[i:i + n].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return "\ufffd"


def _prom_lex_braces(inp: str, b: bytes, i: int) -> tuple[list[tuple[str, str, int]], int]:
    """Lex from just after '{' up to and including '}' (lexInsideBraces)."""
    toks: list[tuple[str, str, int]] = []
    n = len(b)
    while True:
        if i >= n:
            raise PromParseError(inp, i, "unexpected end of input inside braces")
        c = b[i]
        if c in b" \t\n\r":
            i += 1
        elif _is_alpha(c):
            j = i
            while j < n and _is_alnum(b[j]):
                j += 1
            toks.append(("IDENT", b[i:j].decode(), i))
            i = j
        elif c == 0x2C:
            toks.append((",", ",", i))
            i += 1
        elif c in b"\"'`":
            q = c
            j = i + 1
            while True:
                if j >= n:
                    raise PromParseError(inp, i, "unterminated quoted string")
                if q != 0x60 and b[j] == 0x5C:
                    j += 2
                    continue
                if q != 0x60 and b[j] == 0x0A:
                    raise PromParseError(inp, i, "unterminated quoted string")
                if b[j] == q:
                    break
                j += 1
            raw = b[i:j + 1].decode("utf-8", "surrogateescape")
            toks.append(("STRING", raw, i))
            i = j + 1
        elif c == 0x3D:
            if i + 1 < n and b[i + 1] == 0x7E:
                toks.append(("=~", "=~", i))
                i += 2
            else:
                toks.append(("=", "=", i))
                i += 1
        elif c == 0x21:
            nr = b[i + 1] if i + 1 < n else None
            if nr == 0x7E:
                toks.append(("!~", "!~", i))
            elif nr == 0x3D:
                toks.append(("!=", "!=", i))
            else:
                raise PromParseError(inp, i, "unexpected character after '!' inside braces: "
                                     + go_quote(_rune_at(b, i + 1) if nr is not None else "\x00", "'"))
            i += 2
        elif c == 0x7B:
            raise PromParseError(inp, i, "unexpected left brace '{'")
        elif c == 0x7D:
            toks.append(("}", "}", i))
            return toks, i + 1
        else:
            raise PromParseError(inp, i, "unexpected character inside braces: " + go_quote(_rune_at(b, i), "'"))


def _prom_unquote(raw: str) -> str:
    if raw[0] == "`":
        return raw[1:-1]
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif e == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif e in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise ValueError("invalid escape")
    return "".join(out)


def _prom_desc(tok: tuple[str, str, int] | None) -> str:
    if tok is None:
        return "end of input"
    typ, val, _ = tok
    if typ == "IDENT":
        return f"identifier {go_quote(val)}"
    if typ == "STRING":
        return f"string {go_quote(val[:10]) + '...' if len(val) > 10 else go_quote(val)}"
    return go_quote(val)


def parse_metric(inp: str) -> list[tuple[str, str]]:
    """Prometheus ``parser.ParseMetric`` followed by Loki's builder normalisation (sorted,
    empty values dropped). Raises PromParseError with Prometheus' message."""
    b = inp.encode("utf-8", "surrogateescape")
    n = len(b)
    i = 0
    out: list[tuple[str, str]] = []
    while i < n and b[i] in b" \t\n\r":
        i += 1
    if i < n and (_is_alpha(b[i]) or b[i] == 0x3A):
        j = i
        while j < n and (_is_alnum(b[j]) or b[j] == 0x3A):
            j += 1
        out.append(("__name__", b[i:j].decode()))
        i = j
        while i < n and b[i] in b" \t\n\r":
            i += 1
    if i >= n:
        if not out:
            raise PromParseError(inp, i, "unexpected end of input in metric")
    elif b[i] != 0x7B:
        raise PromParseError(inp, i, "unexpected character: " + go_quote(_rune_at(b, i), "'"))
    else:
        toks, i = _prom_lex_braces(inp, b, i + 1)
        k = 0
        while True:
            t = toks[k]
            if t[0] == "}":
                break
            if t[0] not in ("IDENT", "STRING"):
                raise PromParseError(inp, t[2], f"unexpected {_prom_desc(t)} in label set, expected identifier or \"}}\"")
            name = t[1] if t[0] == "IDENT" else _prom_unquote(t[1])
            t2 = toks[k + 1]
            if t2[0] != "=":
                raise PromParseError(inp, t2[2], f"unexpected {_prom_desc(t2)} in label set, expected \"=\"")
            t3 = toks[k + 2]
            if t3[0] != "STRING":
                raise PromParseError(inp, t3[2], f"unexpected {_prom_desc(t3)} in label set, expected string")
            out.append((name, _prom_unquote(t3[1])))
            t4 = toks[k + 3]
            if t4[0] == "}":
                break
            if t4[0] != ",":
                raise PromParseError(inp, t4[2], f"unexpected {_prom_desc(t4)} in label set, expected \",\" or \"}}\"")
            k += 4
        while i < n and b[i] in b" \t\n\r":
            i += 1
        if i < n:
            raise PromParseError(inp, i, "unexpected character: " + go_quote(_rune_at(b, i), "'"))
    return sorted(((k_, v_) for k_, v_ in out if v_ != ""), key=lambda kv: kv[0].encode("utf-8", "surrogateescape"))


_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def labels_string(pairs: Iterable[tuple[str, str]]) -> str:
    """Prometheus ``labels.Labels.String()`` (names that are not legacy-valid get quoted)."""
    return "{" + ", ".join(f"{k if _LEGACY_NAME.fullmatch(k) else go_quote(k)}={go_quote(v)}" for k, v in pairs) + "}"


# --------------------------------------------------------------------------------------------
# snappy (raw block format) + logproto.PushRequest protobuf decoding
# --------------------------------------------------------------------------------------------

class _DecodeError(Exception):
    pass


def _uvarint(b: bytes, i: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        if i >= len(b):
            raise _DecodeError("unexpected EOF")
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, i
        shift += 7
        if shift >= 64:
            raise _DecodeError("proto: integer overflow")


def snappy_decode(src: bytes) -> bytes:
    """golang/snappy Decode (raw block format)."""
    try:
        n, i = _uvarint(src, 0)
    except _DecodeError:
        raise _DecodeError("snappy: corrupt input") from None
    if n > 0xFFFFFFFF:
        raise _DecodeError("snappy: decoded block is too large")
    out = bytearray()
    ln = len(src)
    while i < ln:
        tag = src[i]
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            i += 1
            if length >= 60:
                extra = length - 59
                if i + extra > ln:
                    raise _DecodeError("snappy: corrupt input")
                length = int.from_bytes(src[i:i + extra], "little")
                i += extra
            length += 1
            if i + length > ln:
                raise _DecodeError("snappy: corrupt input")
            out += src[i:i + length]
            i += length
            continue
        if kind == 1:
            if i + 2 > ln:
                raise _DecodeError("snappy: corrupt input")
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag & 0xE0) << 3) | src[i + 1]
            i += 2
        elif kind == 2:
            if i + 3 > ln:
                raise _DecodeError("snappy: corrupt input")
            length = 1 + (tag >> 2)
            offset = int.from_bytes(src[i + 1:i + 3], "little")
            i += 3
        else:
            if i + 5 > ln:
                raise _DecodeError("snappy: corrupt input")
            length = 1 + (tag >> 2)
            offset = int.from_bytes(src[i + 1:i + 5], "little")
            i += 5
        if offset <= 0 or offset > len(out) or len(out) + length > n:
            raise _DecodeError("snappy: corrupt input")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:
            for k in range(length):
                out.append(out[start + k])
    if len(out) != n:
        raise _DecodeError("snappy: corrupt input")
    return bytes(out)


def snappy_encode(data: bytes) -> bytes:
    """Literal-only snappy block (valid, uncompressed) - handy for tests."""
    out = bytearray()
    n = len(data)
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            break
    i = 0
    while i < len(data):
        chunk = data[i:i + 65536]
        ln = len(chunk) - 1
        if ln < 60:
            out.append(ln << 2)
        elif ln < 256:
            out += bytes([60 << 2, ln])
        else:
            out += bytes([61 << 2]) + ln.to_bytes(2, "little")
        out += chunk
        i += 65536
    return bytes(out)


def _pb_fields(b: bytes, msg: str):
    i = 0
    n = len(b)
    while i < n:
        key, i = _uvarint(b, i)
        fno, wt = key >> 3, key & 7
        if fno == 0:
            raise _DecodeError(f"proto: {msg}: illegal tag 0 (wire type {wt})")
        if wt == 0:
            v, i = _uvarint(b, i)
            yield fno, wt, v
        elif wt == 2:
            ln, i = _uvarint(b, i)
            if i + ln > n:
                raise _DecodeError("unexpected EOF")
            yield fno, wt, b[i:i + ln]
            i += ln
        elif wt == 1:
            if i + 8 > n:
                raise _DecodeError("unexpected EOF")
            yield fno, wt, b[i:i + 8]
            i += 8
        elif wt == 5:
            if i + 4 > n:
                raise _DecodeError("unexpected EOF")
            yield fno, wt, b[i:i + 4]
            i += 4
        else:
            raise _DecodeError(f"proto: {msg}: wiretype end group for non-group" if wt == 4 else
                               f"proto: illegal wireType {wt}")


def _pb_expect(wt: int, want: int, field_name: str) -> None:
    if wt != want:
        raise _DecodeError(f"proto: wrong wireType = {wt} for field {field_name}")


def _to_int64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_push_proto(b: bytes) -> list[tuple[str, list[Entry] | None]]:
    streams: list[tuple[str, list[Entry] | None]] = []
    for fno, wt, v in _pb_fields(b, "PushRequest"):
        if fno != 1:
            continue
        _pb_expect(wt, 2, "Streams")
        labels, entries = "", []
        for f2, w2, v2 in _pb_fields(v, "StreamAdapter"):
            if f2 == 1:
                _pb_expect(w2, 2, "Labels")
                labels = _b2s(v2)
            elif f2 == 2:
                _pb_expect(w2, 2, "Entries")
                sec = nanos = 0
                line = ""
                sm: list[tuple[str, str]] = []
                for f3, w3, v3 in _pb_fields(v2, "EntryAdapter"):
                    if f3 == 1:
                        _pb_expect(w3, 2, "Timestamp")
                        for f4, w4, v4 in _pb_fields(v3, "Timestamp"):
                            if f4 == 1 and w4 == 0:
                                sec = _to_int64(v4)
                            elif f4 == 2 and w4 == 0:
                                nanos = _to_int64(v4)
                    elif f3 == 2:
                        _pb_expect(w3, 2, "Line")
                        line = _b2s(v3)
                    elif f3 == 3:
                        _pb_expect(w3, 2, "StructuredMetadata")
                        name = value = ""
                        for f5, w5, v5 in _pb_fields(v3, "LabelPairAdapter"):
                            if f5 == 1 and w5 == 2:
                                name = _b2s(v5)
                            elif f5 == 2 and w5 == 2:
                                value = _b2s(v5)
                        sm.append((name, value))
                entries.append((sec * _NS + nanos, line, sm or None))
        streams.append((labels, entries))
    return streams


def _pb_key(fno: int, wt: int) -> bytes:
    return _pb_varint_bytes((fno << 3) | wt)


def _pb_varint_bytes(v: int) -> bytes:
    v &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_len(fno: int, payload: bytes) -> bytes:
    return _pb_key(fno, 2) + _pb_varint_bytes(len(payload)) + payload


def encode_push_proto(streams: list[tuple[str, list[tuple[int, str, dict[str, str] | None]]]]) -> bytes:
    """Encode a logproto.PushRequest (labels string, [(ts_ns, line, metadata)]) - for tests/clients."""
    out = bytearray()
    for labels, entries in streams:
        s = bytearray(_pb_len(1, labels.encode()))
        for ts, line, md in entries:
            sec, nanos = divmod(ts, _NS)
            tsb = _pb_key(1, 0) + _pb_varint_bytes(sec) + _pb_key(2, 0) + _pb_varint_bytes(nanos)
            e = bytearray(_pb_len(1, tsb) + _pb_len(2, line.encode()))
            for k, v in (md or {}).items():
                e += _pb_len(3, _pb_len(1, k.encode()) + _pb_len(2, v.encode()))
            s += _pb_len(2, bytes(e))
        out += _pb_len(1, bytes(s))
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Distributor helpers: level detection (field_detection.go), metadata name normalisation
# --------------------------------------------------------------------------------------------

_LEVEL_WORDS = (
    (("trace", "trc"), "trace"), (("debug", "dbg"), "debug"), (("info", "inf"), "info"),
    (("warn", "wrn", "warning"), "warn"), (("error", "err"), "error"), (("critical",), "critical"),
    (("fatal",), "fatal"),
)


def _detect_level_from_line(line: str) -> str:
    if "info" in line or "INFO" in line:
        return "info"
    if "err" in line or "ERR" in line or "error" in line or "ERROR" in line:
        return "error"
    if "warn" in line or "WARN" in line or "warning" in line or "WARNING" in line:
        return "warn"
    if "CRITICAL" in line or "critical" in line:
        return "critical"
    if "debug" in line or "DEBUG" in line:
        return "debug"
    return "unknown"


def _is_json_line(line: str) -> bool:
    s = line.strip()
    return bool(s) and s[0] == "{" and s[-1] == "}"


class _Found(Exception):
    pass


def _json_level(line: bytes, allowed: frozenset[str], max_depth: int) -> bytes | None:
    """getLevelUsingJSONParser: the first string value of an allowed key, depth-first in document
    order, searching ``max_depth`` levels (raw, still escaped, like jsonparser gives it)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and b"\\" not in line:  # fast path (no escapes: raw == decoded)
        def fast(d: dict, depth: int) -> str | None:
            if max_depth > 0 and depth >= max_depth:
                return None
            for k, v in d.items():
                if isinstance(v, str):
                    if k in allowed:
                        return v
                elif isinstance(v, dict):
                    r = fast(v, depth + 1)
                    if r is not None:
                        return r
            return None
        r = fast(doc, 0)
        return r.encode() if r is not None else None
    found: list[bytes] = []

    def walk(data: bytes, depth: int) -> None:
        if max_depth > 0 and depth >= max_depth:
            return

        def cb(key: bytes, value: bytes, t: int) -> str | None:
            if t == STRING and _b2s(key) in allowed:
                found.append(value)
                raise _Found()
            if t == OBJECT:
                walk(value, depth + 1)
            return None
        jp_object_each(data, cb)
    try:
        walk(line, 0)
    except _Found:
        pass
    return found[0] if found else None


_LOGFMT_PAIR = re.compile(r'([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|\S*))?')


def _logfmt_value(line: str, hints: tuple[str, ...]) -> str | None:
    pos = len(hints)
    res = None
    for m in _LOGFMT_PAIR.finditer(line):
        k, v = m.group(1), m.group(2) or ""
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            try:
                v = orjson.loads(v)
            except orjson.JSONDecodeError:
                v = v[1:-1]
        for x, hint in enumerate(hints):
            if x < pos and k.lower() == hint.lower():
                res, pos = v, x
                if x == 0:
                    return res
    return res


def detect_log_level(stream_labels: dict[str, str], metadata: dict[str, str], line: str,
                     fields: tuple[str, ...] = LOG_LEVEL_FIELDS_DEFAULT, json_max_depth: int = 2) -> str | None:
    """FieldDetector.extractLogLevel: the value Loki stores as ``detected_level``."""
    if not stream_labels.keys().isdisjoint(fields):
        for name in fields:
            if name in stream_labels:
                return stream_labels[name] or None
    if metadata and not metadata.keys().isdisjoint(fields):
        for name in fields:
            if name in metadata:
                return metadata[name] or None
    sev = metadata.get("severity_number", "")
    if sev:
        try:
            n = int(sev)
        except ValueError:
            return "info"
        if n == 0:
            return "unknown"
        for top, lvl in ((4, "trace"), (8, "debug"), (12, "info"), (16, "warn"), (20, "error"), (24, "fatal")):
            if n <= top:
                return lvl
        return "unknown"
    if _is_json_line(line):
        raw = _json_level(line.encode("utf-8", "surrogateescape"), frozenset(fields), json_max_depth)
        v = _b2s(raw) if raw is not None else None
    elif line and "=" in line:
        v = _logfmt_value(line, fields)
    else:
        return _detect_level_from_line(line)
    if v is not None:
        lv = v.lower()
        for words, lvl in _LEVEL_WORDS:
            if lv in words:
                return lvl
    return _detect_level_from_line(line)


_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def normalize_label(name: str) -> str:
    """otlptranslator NormalizeLabel, applied by the distributor to structured metadata names."""
    if not name:
        return name
    name = _INVALID_LABEL_CHAR.sub("_", name)
    if name[0].isdigit():
        name = "key_" + name
    elif name.startswith("_") and not name.startswith("__"):
        name = "key" + name
    return name


def _sm_size(sm: Iterable[tuple[str, str]] | None) -> int:
    return sum(_utf8len(k) + _utf8len(v) for k, v in (sm or ()))


class TokenBucket:
    """golang.org/x/time/rate Limiter.AllowN semantics (starts full, refused events cost nothing)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = int(burst)
        self.tokens = float(burst)
        self.last: float | None = None

    def allow(self, now: float, n: int) -> bool:
        last = now if self.last is None else min(self.last, now)
        tokens = min(float(self.burst), self.tokens + (now - last) * self.rate)
        if n > self.burst or tokens < n:
            return False
        self.tokens = tokens - n
        self.last = now
        return True


# --------------------------------------------------------------------------------------------
# Public data classes
# --------------------------------------------------------------------------------------------

@dataclass
class StoredEntry:
    labels: dict[str, str]          # stream labels as Loki stores them (service_name included)
    ts_ns: int
    line: str
    metadata: dict[str, str] = field(default_factory=dict)  # structured metadata sent (names normalised)
    detected_level: str | None = None  # what Loki adds as structured metadata `detected_level`

    @property
    def ts(self) -> float:
        return self.ts_ns / _NS


_UNSET = object()


def _decode_json_body(headers: dict[str, str], body: bytes) -> Any:
    if not body:
        return None
    enc = next((v for k, v in headers.items() if k.lower() == "content-encoding"), "").strip().lower()
    try:
        if enc == "gzip":
            body = zlib.decompress(body, 31)
        elif enc == "deflate":
            body = zlib.decompress(body, -15)
        return orjson.loads(body)
    except Exception:
        return None


@dataclass
class RecordedRequest:
    method: str
    path: str                      # as requested, query string included
    headers: dict[str, str]
    body: bytes                    # raw body as received
    status: int = 0                # 0 when the connection was dropped without an answer
    response_body: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    time: float = 0.0              # emulator clock at reception
    _json: Any = field(default=_UNSET, repr=False, compare=False)

    @property
    def json(self) -> Any:
        """The JSON body after Content-Encoding decoding (None when not JSON); decoded on first use."""
        if self._json is _UNSET:
            self._json = _decode_json_body(self.headers, self.body)
        return self._json

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def raw_body(self) -> bytes:
        return self.body

    @property
    def json_body(self) -> Any:
        return self.json

    def header(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self.headers.items():
            if k.lower() == low:
                return v
        return default


class FrozenClock:
    """A settable clock for ``LokiEmulator(now=...)``: ``clock()`` returns unix seconds."""

    def __init__(self, t: float) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, t: float) -> None:
        self.t = float(t)


class _Response:
    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: str | bytes = "", headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
        self.headers = headers or {}


def _text(status: int, msg: str) -> _Response:
    """``http.Error``: text/plain, nosniff, message plus a newline."""
    return _Response(status, msg + "\n", {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"})


def _json(status: int, doc: Any) -> _Response:
    return _Response(status, orjson.dumps(doc) + b"\n", {"Content-Type": "application/json; charset=UTF-8"})


_DISCONNECT = object()


class _Stream:
    __slots__ = ("labels", "labels_str", "entries", "keys", "last_ts", "last_line", "highest_ts", "limiter",
                 "created", "chunk_open", "last_append", "unflushed_bytes", "flushed_seq")

    def __init__(self, labels: list[tuple[str, str]]) -> None:
        self.labels = dict(labels)
        self.labels_str = labels_string(labels)
        self.entries: list[tuple[int, int, StoredEntry]] = []  # (ts, seq, entry)
        self.keys: set[tuple[int, str]] = set()
        self.last_ts: int | None = None
        self.last_line: str | None = None
        self.highest_ts: int | None = None
        self.limiter: TokenBucket | None = None
        self.created = 0.0
        self.chunk_open: float | None = None
        self.last_append = 0.0
        self.unflushed_bytes = 0
        self.flushed_seq = 0  # entries with a sequence number <= this are in flushed chunks


class _HTTPError(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg


def _grouped(errors: list[str]) -> str:
    """util.GroupedErrors.Error() (Go iterates a map: order is first occurrence here)."""
    counts: dict[str, int] = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    parts = []
    for e, n in counts.items():
        parts.append((f"{n} errors like: " if len(counts) > 1 or n > 1 else "") + e)
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# LogQL subset
# --------------------------------------------------------------------------------------------

_DUR_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": _NS, "m": 60 * _NS, "h": 3600 * _NS,
              "d": 86400 * _NS, "w": 7 * 86400 * _NS, "y": 365 * 86400 * _NS}
_DUR_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h|d|w|y)")


def parse_duration_ns(text: str) -> int:
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DUR_PART.match(text, pos)
        if not m:
            raise ValueError(f"not a valid duration string: {go_quote(text)}")
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    return int(total)


_LQ_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>[0-9]+(?:\.[0-9]+)?(?![a-zA-Z0-9_]))
  | (?P<op>=~|!~|!=|\|=|\|~|=|\||\{|\}|\(|\)|,)
  | (?P<id>[a-zA-Z_][a-zA-Z0-9_]*)
""", re.X)

_RANGE_OPS = ("count_over_time", "rate", "bytes_over_time", "bytes_rate")
_VEC_OPS = ("sum", "min", "max", "avg", "count")


class LogQLError(ValueError):
    pass


@dataclass
class _Selector:
    matchers: list[tuple[str, str, Any]]
    filters: list[tuple[str, Any]]


@dataclass
class _RangeAgg:
    op: str
    selector: _Selector
    range_ns: int


@dataclass
class _VecAgg:
    op: str
    grouping: str | None  # "by" | "without" | None
    labels: list[str]
    inner: Any


class _LogQLParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _LQ_TOKEN.match(text, pos)
            if not m:
                raise LogQLError(f"parse error at line 1, col {pos + 1}: syntax error: unexpected {text[pos]}")
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group()))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, val: str | None = None, kind: str | None = None) -> tuple[str, str]:
        t = self.peek()
        if t is None or (val is not None and t[1] != val) or (kind is not None and t[0] != kind):
            raise LogQLError(f"parse error : syntax error: unexpected {t[1] if t else 'end of input'}"
                             + (f", expecting {val}" if val else ""))
        self.i += 1
        return t

    def parse(self) -> Any:
        e = self.expr()
        if self.peek() is not None:
            raise LogQLError(f"parse error : syntax error: unexpected {self.peek()[1]}")
        return e

    def expr(self) -> Any:
        t = self.peek()
        if t and t[0] == "id" and t[1] in _VEC_OPS:
            return self.vec()
        if t and t[0] == "id" and t[1] in _RANGE_OPS:
            return self.range_agg()
        if t and t[1] == "(":
            self.take("(")
            e = self.expr()
            self.take(")")
            return e
        if t and t[1] == "{":
            return self.selector()
        raise LogQLError("parse error : syntax error: unexpected " + (t[1] if t else "end of input")
                         + " (the Loki emulator supports selectors, line filters, *_over_time/rate and sum/min/max/avg/count)")

    def grouping(self) -> tuple[str, list[str]]:
        kind = self.take(kind="id")[1]
        self.take("(")
        labels: list[str] = []
        while self.peek() and self.peek()[1] != ")":
            labels.append(self.take(kind="id")[1])
            if self.peek() and self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return kind, labels

    def vec(self) -> _VecAgg:
        op = self.take(kind="id")[1]
        grouping, labels = None, []
        if self.peek() and self.peek()[1] in ("by", "without"):
            grouping, labels = self.grouping()
        self.take("(")
        inner = self.expr()
        self.take(")")
        if self.peek() and self.peek()[1] in ("by", "without"):
            grouping, labels = self.grouping()
        if isinstance(inner, _Selector):
            raise LogQLError("parse error : syntax error: unexpected ), expecting [ or |")
        return _VecAgg(op, grouping, labels, inner)

    def range_agg(self) -> _RangeAgg:
        op = self.take(kind="id")[1]
        self.take("(")
        sel = self.selector()
        rng = self.take(kind="range")[1]
        try:
            range_ns = parse_duration_ns(rng[1:-1])
        except ValueError as e:
            raise LogQLError(f"parse error : {e}") from None
        self.take(")")
        return _RangeAgg(op, sel, range_ns)

    def string(self) -> str:
        raw = self.take(kind="str")[1]
        return raw[1:-1] if raw[0] == "`" else orjson.loads(raw.encode())

    def selector(self) -> _Selector:
        self.take("{")
        matchers: list[tuple[str, str, Any]] = []
        while self.peek() and self.peek()[1] != "}":
            name = self.take(kind="id")[1]
            op = self.take(kind="op")[1]
            if op not in ("=", "!=", "=~", "!~"):
                raise LogQLError(f"parse error : syntax error: unexpected {op}")
            val = self.string()
            matchers.append((name, op, re.compile(val, re.S) if "~" in op else val))
            if self.peek() and self.peek()[1] == ",":
                self.take(",")
        self.take("}")
        if not any((op == "=" and v != "") or (op == "=~" and not v.fullmatch("")) or (op == "!=" and v == "")
                   for _, op, v in matchers):
            raise LogQLError('parse error : queries require at least one regexp or equality matcher that does not have '
                             'an empty-compatible value. For instance, app=~".*" does not meet this requirement, but '
                             'app=~".+" will')
        filters: list[tuple[str, Any]] = []
        while self.peek() and self.peek()[1] in ("|=", "!=", "|~", "!~"):
            op = self.take()[1]
            val = self.string()
            filters.append((op, re.compile(val) if "~" in op else val))
        if self.peek() and self.peek()[1] == "|":
            raise LogQLError("parse error : the Loki emulator does not support parser/format pipeline stages")
        return _Selector(matchers, filters)


def _match_labels(matchers: list[tuple[str, str, Any]], labels: dict[str, str]) -> bool:
    for name, op, v in matchers:
        have = labels.get(name, "")
        if op == "=" and have != v or op == "!=" and have == v:
            return False
        if op == "=~" and not v.fullmatch(have) or op == "!~" and v.fullmatch(have):
            return False
    return True


def _match_line(filters: list[tuple[str, Any]], line: str) -> bool:
    for op, v in filters:
        if op == "|=" and v not in line or op == "!=" and v in line:
            return False
        if op == "|~" and not v.search(line) or op == "!~" and v.search(line):
            return False
    return True


def _parse_time_ns(value: str | None, default_ns: int) -> int:
    """loghttp parseTimestamp: float seconds (ms precision), unix seconds (<=10 digits), ns, or RFC3339."""
    if value is None or value == "":
        return default_ns
    if "." in value:
        try:
            t = float(value)
            s = math.floor(t)
            frac = round((t - s) * 1000) / 1000
            return int(s) * _NS + int(round(frac * _NS))
        except ValueError:
            pass
    try:
        n = int(value)
    except ValueError:
        try:
            d = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return int(d.timestamp()) * _NS + d.microsecond * 1000
        except ValueError:
            raise _HTTPError(400, f"invalid parameter: cannot parse {go_quote(value)} to a valid timestamp") from None
    return n * _NS if len(value) <= 10 else n


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------

class LokiEmulator:
    """Loki 3.x single binary, as seen through its HTTP API. See the module docstring.

    Extra keyword arguments beyond the documented API default to Loki 3.x's defaults, except the
    per-stream rate limit (off: a real Loki splits hot streams with automatic stream sharding,
    which is not emulated; pass ``per_stream_rate_limit=3*MIB`` to emulate Loki without it).
    """

    def __init__(self, *, ready_after: float = 0.0, now: Callable[[], float] | None = None,
                 max_line_size: int = 262144, max_label_names: int = 15,
                 creation_grace_period: float = 600.0,
                 reject_old_samples: bool = True, reject_old_samples_max_age: float = 168 * 3600,
                 max_chunk_age: float = 7200.0,
                 ingestion_rate_mb: float | None = None, ingestion_burst_size_mb: float | None = None,
                 tenant: str | None = None,
                 basic_auth: tuple[str, str] | None = None, bearer_token: str | None = None,
                 user: str = "fake",
                 # --- beyond the documented API (Loki defaults) ---
                 per_stream_rate_limit: float | None = None, per_stream_rate_limit_burst: float | None = None,
                 max_global_streams_per_user: int = 5000,
                 max_line_size_truncate: bool = False,
                 max_label_name_length: int = 1024, max_label_value_length: int = 2048,
                 allow_structured_metadata: bool = True, max_structured_metadata_size: int = 65536,
                 max_structured_metadata_entries_count: int = 128,
                 discover_service_name: Iterable[str] = DISCOVER_SERVICE_NAME_DEFAULT,
                 discover_log_levels: bool = True,
                 query_ingesters_within: float = 3 * 3600.0, chunk_idle_period: float = 1800.0,
                 chunk_target_size: int = 1572864, max_entries_limit_per_query: int = 5000,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.ready_after = float(ready_after)
        self._clock = now or time.time
        self.max_line_size = int(max_line_size)
        self.max_label_names = int(max_label_names)
        self.creation_grace_period = float(creation_grace_period)
        self.reject_old_samples = bool(reject_old_samples)
        self.reject_old_samples_max_age = float(reject_old_samples_max_age)
        self.max_chunk_age = float(max_chunk_age)
        self.ingestion_rate_mb = ingestion_rate_mb
        self.ingestion_burst_size_mb = ingestion_burst_size_mb
        self.tenant = tenant
        self.basic_auth = basic_auth
        self.bearer_token = bearer_token
        self.user = tenant if tenant else user
        self.per_stream_rate_limit = per_stream_rate_limit
        self.per_stream_rate_limit_burst = per_stream_rate_limit_burst
        self.max_global_streams_per_user = int(max_global_streams_per_user)
        self.max_line_size_truncate = bool(max_line_size_truncate)
        self.max_label_name_length = int(max_label_name_length)
        self.max_label_value_length = int(max_label_value_length)
        self.allow_structured_metadata = bool(allow_structured_metadata)
        self.max_structured_metadata_size = int(max_structured_metadata_size)
        self.max_structured_metadata_entries_count = int(max_structured_metadata_entries_count)
        self.discover_service_name = tuple(discover_service_name)
        self.discover_log_levels = bool(discover_log_levels)
        self.query_ingesters_within = float(query_ingesters_within)
        self.chunk_idle_period = float(chunk_idle_period)
        self.chunk_target_size = int(chunk_target_size)
        self.max_entries_limit_per_query = int(max_entries_limit_per_query)
        self._host, self._port = host, port

        self._lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self._injections: dict[str, list[list[Any]]] = {}
        self._disconnects = 0
        self._ready_forced: bool | None = None
        self._started_at = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.url = ""
        self._reset_state()

    # ---------------------------------------------------------------- lifecycle
    def _reset_state(self) -> None:
        self._streams: dict[frozenset, _Stream] = {}
        self._seq = 0
        self._tenant_bucket: TokenBucket | None = None
        if self.ingestion_rate_mb is not None:
            burst = self.ingestion_burst_size_mb if self.ingestion_burst_size_mb is not None else 6
            self._tenant_bucket = TokenBucket(self.ingestion_rate_mb * MIB, int(burst * MIB))
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def start(self) -> "LokiEmulator":
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"loki-emulator-{port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
        with self._lock:  # close kept-alive connections too, so no client talks to a stopped emulator
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "LokiEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- test controls
    def inject(self, status: int, body: str = "", *, times: int = 1, retry_after: str | None = None,
               path: str = PUSH_PATH) -> None:
        """The next ``times`` requests to ``path`` get this answer, before any processing (nothing stored)."""
        if times <= 0:
            return
        with self._lock:
            self._injections.setdefault(path, []).append([int(status), body, int(times), retry_after])

    def inject_disconnect(self, times: int = 1) -> None:
        """Close the connection without answering the next ``times`` pushes."""
        with self._lock:
            self._disconnects += int(times)

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._ready_forced = bool(ready)

    def clear(self) -> None:
        """Forget stored entries, streams, recorded requests, injections and limiter state."""
        with self._lock:
            self.requests.clear()
            self._injections.clear()
            self._disconnects = 0
            self._reset_state()

    def flush(self) -> None:
        """Like ``POST /flush``: every stored entry becomes visible to queries."""
        with self._lock:
            for s in self._streams.values():
                self._flush_stream(s)

    def entries(self, **label_matchers: str) -> list[StoredEntry]:
        """Stored entries of the streams whose labels include ``label_matchers``, by (timestamp, arrival)."""
        with self._lock:
            out = [(ts, seq, e) for s in self._streams.values()
                   if all(s.labels.get(k) == str(v) for k, v in label_matchers.items())
                   for ts, seq, e in s.entries]
        out.sort(key=lambda x: (x[0], x[1]))
        return [e for _, _, e in out]

    def lines(self, **label_matchers: str) -> list[str]:
        return [e.line for e in self.entries(**label_matchers)]

    def streams(self) -> dict[frozenset, list[StoredEntry]]:
        with self._lock:
            return {k: [e for _, _, e in sorted(s.entries, key=lambda x: (x[0], x[1]))]
                    for k, s in self._streams.items() if s.entries}

    @property
    def push_requests(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.route == PUSH_PATH]

    # ---------------------------------------------------------------- clock helpers
    def _now(self) -> float:
        return float(self._clock())

    @staticmethod
    def _to_ns(t: float) -> int:
        return int(round(t * _NS))

    def _count(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self._counters[key] = self._counters.get(key, 0.0) + value

    # ---------------------------------------------------------------- request entry point
    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Any:
        now = self._now()
        parts = urlsplit(raw_path)
        route = parts.path
        rec = RecordedRequest(method, raw_path, dict(headers), body, time=now)
        with self._lock:
            queue = self._injections.get(route)
            inj = None
            if queue:
                inj = queue[0]
                inj[2] -= 1
                if inj[2] <= 0:
                    queue.pop(0)
            disconnect = False
            if inj is None and route == PUSH_PATH and method == "POST" and self._disconnects > 0:
                self._disconnects -= 1
                disconnect = True
        if inj is not None:
            hdrs = {"Content-Type": "text/plain; charset=utf-8"}
            if inj[3] is not None:
                hdrs["Retry-After"] = str(inj[3])
            resp = _Response(inj[0], inj[1], hdrs)
        elif disconnect:
            resp = _DISCONNECT
        else:
            try:
                resp = self._route(method, route, parts.query, headers, body)
            except _HTTPError as e:
                resp = _text(e.status, e.msg)
            except Exception as e:  # never hang a client on an emulator bug
                resp = _text(500, f"loki emulator internal error: {type(e).__name__}: {e}")
        if resp is _DISCONNECT:
            rec.status = 0
        else:
            rec.status = resp.status
            rec.response_body = resp.body.decode("utf-8", "surrogateescape")
            rec.response_headers = dict(resp.headers)
        with self._lock:
            self.requests.append(rec)
        return resp

    @staticmethod
    def _hdr(headers: dict[str, str], name: str) -> str | None:
        low = name.lower()
        for k, v in headers.items():
            if k.lower() == low:
                return v
        return None

    def _route(self, method: str, route: str, query: str, headers: dict[str, str], body: bytes) -> Any:
        if route == "/ready":
            return self._ready_response()
        if route == "/metrics":
            return self._metrics_response()
        if route in ("/flush", "/ingester/flush"):
            self.flush()
            return _Response(204)
        if route == "/loki/api/v1/status/buildinfo":
            return _json(200, {"version": "3.5.0", "revision": "emulator", "branch": "", "buildUser": "",
                               "buildDate": "", "goVersion": ""})
        if not route.startswith("/loki/api/"):
            return _text(404, "404 page not found")
        denied = self._check_auth(headers)
        if denied is not None:
            return denied
        if route == PUSH_PATH:
            if method != "POST":
                return _Response(405)
            return self._push(headers, body)
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if method == "POST" and body:
            ctype = (self._hdr(headers, "Content-Type") or "").lower()
            if ctype.startswith("application/x-www-form-urlencoded"):
                params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()})
        with self._lock:
            if route == "/loki/api/v1/query":
                return self._query_instant(params)
            if route == "/loki/api/v1/query_range":
                return self._query_range(params)
            if route in ("/loki/api/v1/labels", "/loki/api/v1/label"):
                return self._labels(params)
            m = re.fullmatch(r"/loki/api/v1/label/([^/]+)/values", route)
            if m:
                return self._label_values(m.group(1), params)
            if route == "/loki/api/v1/series":
                return self._series(query, body if method == "POST" else b"")
        return _text(404, "404 page not found")

    def _check_auth(self, headers: dict[str, str]) -> _Response | None:
        if self.basic_auth is not None or self.bearer_token is not None:
            auth = self._hdr(headers, "Authorization") or ""
            ok = False
            if self.basic_auth is not None and auth.startswith("Basic "):
                want = base64.b64encode(f"{self.basic_auth[0]}:{self.basic_auth[1]}".encode()).decode()
                ok = auth[6:].strip() == want
            if self.bearer_token is not None and auth.startswith("Bearer "):
                ok = ok or auth[7:].strip() == self.bearer_token
            if not ok:
                r = _text(401, "unauthorized")
                if self.basic_auth is not None:
                    r.headers["WWW-Authenticate"] = 'Basic realm="loki"'
                return r
        if self.tenant is not None:
            org = self._hdr(headers, "X-Scope-OrgID")
            if not org or org.strip() != self.tenant:
                return _text(401, "no org id")
        return None

    def _ready_response(self) -> _Response:
        with self._lock:
            forced = self._ready_forced
        ready = forced if forced is not None else (time.monotonic() - self._started_at) >= self.ready_after
        if ready:
            return _text(200, "ready")
        return _text(503, NOT_READY_BODY[:-1])

    def _metrics_response(self) -> _Response:
        with self._lock:
            items = sorted(self._counters.items())
            n_streams = sum(1 for s in self._streams.values())
        out = []
        seen = set()
        for (name, labels), v in items:
            if name not in seen:
                out.append(f"# TYPE {name} counter")
                seen.add(name)
            lbl = ",".join(f'{k}="{val}"' for k, val in labels)
            out.append(f"{name}{{{lbl}}} {go_format_float(v)}")
        out.append("# TYPE loki_ingester_memory_streams gauge")
        out.append(f'loki_ingester_memory_streams{{tenant="{self.user}"}} {n_streams}')
        return _Response(200, "\n".join(out) + "\n", {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    # ---------------------------------------------------------------- push: ParseLokiRequest
    def _decode_content(self, enc: str, body: bytes) -> tuple[bytes, str | None]:
        """(decoded bytes, deferred reader error). The error only surfaces if the parser needs
        bytes past the point where decompression failed, as with Go's streaming readers."""
        if enc in ("", "snappy"):
            return body, None
        if enc == "gzip":
            if not body:
                raise _HTTPError(400, "EOF")
            if len(body) < 10 or body[:2] != b"\x1f\x8b" or body[2] != 8:
                raise _HTTPError(400, "gzip: invalid header")
            out = bytearray()
            data = body
            while data:
                d = zlib.decompressobj(31)
                try:
                    out += d.decompress(data)
                except zlib.error as e:
                    msg = "gzip: invalid checksum" if "check" in str(e) else "flate: corrupt input before offset %d" % len(out)
                    return bytes(out), msg
                if not d.eof:
                    return bytes(out), "unexpected EOF"
                data = d.unused_data
                if data and (len(data) < 10 or data[:2] != b"\x1f\x8b"):
                    return bytes(out), "gzip: invalid header"
            return bytes(out), None
        if enc == "deflate":
            d = zlib.decompressobj(-15)
            try:
                out = d.decompress(body)
            except zlib.error:
                return b"", "flate: corrupt input before offset 0"
            return out, (None if d.eof else "unexpected EOF")
        raise _HTTPError(400, f"Content-Encoding {go_quote(enc)} not supported")

    def _push(self, headers: dict[str, str], body: bytes) -> _Response:
        now = self._now()
        enc = self._hdr(headers, "Content-Encoding") or ""
        data, reader_err = self._decode_content(enc, body)
        ctype = (self._hdr(headers, "Content-Type") or "").strip()
        media = ctype.split(";", 1)[0].strip().lower()
        if not media:
            return _text(400, "mime: no media type")
        if media == "application/json":
            streams, err = decode_push_json(data)
            if err and reader_err:
                err = reader_err
            if err:
                return _text(400, err)
        else:
            if reader_err:
                return _text(400, reader_err)
            try:
                streams = decode_push_proto(snappy_decode(data))
            except _DecodeError as e:
                return _text(400, str(e))
        parsed = []
        for labels_str, entries in streams:
            try:
                lbs = parse_metric(labels_str)
            except PromParseError as e:
                return _text(400, f"couldn't parse labels: {e}")
            names = {k for k, _ in lbs}
            internal = "__aggregated_metric__" in names or "__pattern__" in names
            if LABEL_SERVICE_NAME not in names and self.discover_service_name and not internal:
                svc = SERVICE_UNKNOWN
                for cand in self.discover_service_name:
                    v = next((val for k, val in lbs if k == cand), "")
                    if v:
                        svc = v
                        break
                lbs = sorted(lbs + [(LABEL_SERVICE_NAME, svc)], key=lambda kv: kv[0].encode("utf-8", "surrogateescape"))
                labels_str = labels_string(lbs)
            parsed.append((labels_str, lbs, entries or []))
        with self._lock:
            for _, _, entries in parsed:
                self._count("loki_distributor_lines_received_total", len(entries), tenant=self.user)
                self._count("loki_distributor_bytes_received_total",
                            sum(_utf8len(e[1]) + _sm_size(e[2]) for e in entries), tenant=self.user)
            return self._distribute(parsed, now)

    # ---------------------------------------------------------------- push: distributor
    def _validate_labels(self, lbs: list[tuple[str, str]], labels_str: str) -> str | None:
        if not lbs:
            return MSG_MISSING_LABELS
        names = [k for k, _ in lbs]
        if "__aggregated_metric__" in names:
            return None
        n = len(lbs) - (1 if LABEL_SERVICE_NAME in names else 0)
        if n > self.max_label_names:
            return MSG_MAX_LABEL_NAMES % (labels_str, n, self.max_label_names)
        last = ""
        for k, v in lbs:
            if _utf8len(k) > self.max_label_name_length:
                return MSG_LABEL_NAME_TOO_LONG % (labels_str, k)
            if _utf8len(v) > self.max_label_value_length:
                return MSG_LABEL_VALUE_TOO_LONG % (labels_str, v)
            if k == last:
                return MSG_DUPLICATE_LABEL % (labels_str, k)
            last = k
        return None

    def _validate_entry(self, stream: str, ts: int, line: str, sm: list[tuple[str, str]] | None,
                        oldest: int, newest: int) -> str | None:
        if self.reject_old_samples and ts < oldest:
            return MSG_TOO_OLD % (stream, go_rfc3339(ts), go_rfc3339(oldest))
        if ts > newest:
            return MSG_TOO_NEW % (stream, go_rfc3339(ts))
        n = _utf8len(line)
        if self.max_line_size and n > self.max_line_size:
            return MSG_LINE_TOO_LONG % (self.max_line_size, stream, n)
        if sm:
            if not self.allow_structured_metadata:
                return MSG_SM_DISALLOWED % stream
            size = _sm_size(sm)
            if self.max_structured_metadata_size and size > self.max_structured_metadata_size:
                return MSG_SM_TOO_LARGE % (stream, size, self.max_structured_metadata_size)
            if self.max_structured_metadata_entries_count and len(sm) > self.max_structured_metadata_entries_count:
                return MSG_SM_TOO_MANY % (stream, len(sm), self.max_structured_metadata_entries_count)
        return None

    def _discard(self, reason: str, lines: int, nbytes: int) -> None:
        self._count("loki_discarded_samples_total", lines, reason=reason, tenant=self.user)
        self._count("loki_discarded_bytes_total", nbytes, reason=reason, tenant=self.user)

    def _distribute(self, parsed: list, now: float) -> _Response:
        if not parsed:
            return _text(422, MSG_MISSING_STREAMS)
        now_ns = self._to_ns(now)
        oldest = now_ns - self._to_ns(self.reject_old_samples_max_age)
        newest = now_ns + self._to_ns(self.creation_grace_period)
        errors: list[str] = []
        valid: list[tuple[list[tuple[str, str]], list[tuple[int, str, dict[str, str], str | None]]]] = []
        total_lines = total_bytes = 0
        for labels_str, lbs, entries in parsed:
            if not entries:
                continue
            if self.max_line_size_truncate and self.max_line_size:
                entries = [(ts, line.encode()[:self.max_line_size].decode("utf-8", "ignore")
                            if _utf8len(line) > self.max_line_size else line, sm) for ts, line, sm in entries]
            err = self._validate_labels(lbs, labels_str)
            if err:
                errors.append(err)
                self._discard("invalid_labels", len(entries), sum(_utf8len(e[1]) for e in entries))
                continue
            stream_str = labels_string(lbs)
            lbs_map = dict(lbs)
            kept = []
            for ts, line, sm in entries:
                err = self._validate_entry(stream_str, ts, line, sm, oldest, newest)
                if err:
                    errors.append(err)
                    self._discard("validation", 1, _utf8len(line) + _sm_size(sm))
                    continue
                md = {normalize_label(k): v.replace("\ufffd", "") for k, v in (sm or ())}
                level = None
                if self.discover_log_levels and self.allow_structured_metadata:
                    level = detect_log_level(lbs_map, md, line)
                kept.append((ts, line, md, level))
                total_lines += 1
                total_bytes += _utf8len(line) + _sm_size(md.items())
            if kept:
                valid.append((lbs, kept))
        validation_err = _grouped(errors) if errors else None
        if not valid:
            return _text(400, validation_err) if validation_err else _Response(204)
        if self._tenant_bucket is not None and not self._tenant_bucket.allow(now, total_bytes):
            self._discard("rate_limited", total_lines, total_bytes)
            return _text(429, MSG_RATE_LIMITED % (self.user, int(self._tenant_bucket.rate), total_lines, total_bytes))
        append_err: _HTTPError | None = None
        for lbs, kept in valid:  # instance.Push: only the last stream's error is kept
            append_err = self._ingest(lbs, kept, now)
        if append_err is not None:
            return _text(append_err.status, append_err.msg)
        if validation_err:
            return _text(400, validation_err)
        return _Response(204)

    # ---------------------------------------------------------------- push: ingester
    def _ingest(self, lbs: list[tuple[str, str]], kept: list, now: float) -> _HTTPError | None:
        key = frozenset(lbs)
        s = self._streams.get(key)
        if s is None:
            if self.max_global_streams_per_user and len(self._streams) >= self.max_global_streams_per_user:
                self._discard("stream_limit", len(kept), sum(_utf8len(e[1]) for e in kept))
                return _HTTPError(429, MSG_STREAM_LIMIT % (labels_string(lbs), self.user))
            s = _Stream(lbs)
            s.created = now
            if self.per_stream_rate_limit:
                burst = self.per_stream_rate_limit_burst or 5 * self.per_stream_rate_limit
                s.limiter = TokenBucket(self.per_stream_rate_limit, int(burst))
            self._streams[key] = s
            self._count("loki_ingester_streams_created_total", tenant=self.user)
        half_age = self._to_ns(self.max_chunk_age) // 2
        last_ts, last_line, highest = s.last_ts, s.last_line, s.highest_ts
        to_store: list[tuple[tuple, int]] = []
        failed: list[tuple[int, str, bool]] = []
        valid_bytes = 0
        for ent in kept:
            ts, line, md, level = ent
            if last_ts is not None and ts == last_ts and line == last_line:
                continue
            ebytes = _utf8len(line) + _sm_size(md.items()) + (len(LEVEL_LABEL) + _utf8len(level) if level else 0)
            if highest is not None and highest - half_age > ts:
                failed.append((ts, MSG_TOO_FAR_BEHIND % (go_rfc3339(ts), go_rfc3339(highest - half_age)), False))
                self._discard("too_far_behind", 1, ebytes)
                continue
            valid_bytes += ebytes
            last_ts, last_line = ts, line
            if highest is None or highest < ts:
                highest = ts
            to_store.append((ent, ebytes))
        if s.limiter is not None and not s.limiter.allow(now, valid_bytes):
            rate = datasize_string(int(s.limiter.rate))
            failed = [(e[0], MSG_STREAM_RATE % (rate, s.labels_str, datasize_string(b)), True) for e, b in to_store]
            self._discard("per_stream_rate_limit", len(to_store), valid_bytes)
            return self._failed_error(s, failed, len(kept))
        for (ts, line, md, level), ebytes in to_store:
            if (ts, line) not in s.keys:
                s.keys.add((ts, line))
                self._seq += 1
                entry = StoredEntry(dict(s.labels), ts, line, dict(md), level)
                s.entries.append((ts, self._seq, entry))
                if s.chunk_open is None:
                    s.chunk_open = now
                s.unflushed_bytes += ebytes
            s.last_append = now
            s.last_ts, s.last_line = ts, line
            if s.highest_ts is None or s.highest_ts < ts:
                s.highest_ts = ts
        if s.unflushed_bytes >= self.chunk_target_size:
            self._flush_stream(s)
        return self._failed_error(s, failed, len(kept)) if failed else None

    def _failed_error(self, s: _Stream, failed: list[tuple[int, str, bool]], total: int) -> _HTTPError | None:
        if not failed:
            return None
        status = 429 if failed[-1][2] else 400
        buf = "".join(f"entry with timestamp {go_time_string(ts)} ignored, reason: '{msg}',\n"
                      for ts, msg, _ in failed[:MAX_RETURNED_ERRORS])
        buf += f"user '{self.user}', total ignored: {len(failed)} out of {total} for stream: {s.labels_str}"
        return _HTTPError(status, buf)

    # ---------------------------------------------------------------- flushing / visibility
    def _flush_stream(self, s: _Stream) -> None:
        s.flushed_seq = self._seq
        s.chunk_open = None
        s.unflushed_bytes = 0

    def _auto_flush(self, now: float) -> None:
        for s in self._streams.values():
            if s.chunk_open is not None and (now - s.last_append >= self.chunk_idle_period
                                             or now - s.chunk_open >= self.max_chunk_age):
                self._flush_stream(s)

    def _visible(self, s: _Stream, now_ns: int) -> Iterable[tuple[int, int, StoredEntry]]:
        horizon = now_ns - self._to_ns(self.query_ingesters_within) if self.query_ingesters_within else None
        for ts, seq, e in s.entries:
            if horizon is None or seq <= s.flushed_seq or ts >= horizon:
                yield ts, seq, e

    @staticmethod
    def _query_labels(e: StoredEntry) -> tuple[tuple[str, str], ...]:
        out = dict(e.labels)
        extra = dict(e.metadata)
        if e.detected_level is not None and LEVEL_LABEL not in extra:
            extra[LEVEL_LABEL] = e.detected_level
        for k, v in extra.items():
            out[k + "_extracted" if k in e.labels else k] = v
        return tuple(sorted(out.items()))

    def _select(self, sel: _Selector, start_ns: int, end_ns: int, start_incl: bool, end_incl: bool,
                now_ns: int) -> list[tuple[int, int, StoredEntry]]:
        out = []
        for s in self._streams.values():
            if not _match_labels(sel.matchers, s.labels):
                continue
            for ts, seq, e in self._visible(s, now_ns):
                if (ts > start_ns or (start_incl and ts == start_ns)) and (ts < end_ns or (end_incl and ts == end_ns)):
                    if _match_line(sel.filters, e.line):
                        out.append((ts, seq, e))
        return out

    # ---------------------------------------------------------------- queries
    def _parse_query(self, params: dict[str, str]) -> Any:
        q = params.get("query", "")
        try:
            return _LogQLParser(q).parse()
        except LogQLError as e:
            raise _HTTPError(400, str(e)) from None

    def _limit(self, params: dict[str, str]) -> int:
        try:
            limit = int(params.get("limit") or 100)
        except ValueError:
            raise _HTTPError(400, f"invalid parameter: cannot parse {go_quote(params.get('limit', ''))} to a valid integer") from None
        if limit <= 0:
            raise _HTTPError(400, "limit must be a positive value")
        if limit > self.max_entries_limit_per_query:
            raise _HTTPError(400, f"max entries limit per query exceeded, limit > max_entries_limit_per_query "
                                  f"({limit} > {self.max_entries_limit_per_query})")
        return limit

    @staticmethod
    def _stats(entries: int = 0, lines: int = 0, nbytes: int = 0) -> dict[str, Any]:
        return {"summary": {"bytesProcessedPerSecond": 0, "linesProcessedPerSecond": 0, "totalBytesProcessed": nbytes,
                            "totalLinesProcessed": lines, "execTime": 0, "queueTime": 0, "subqueries": 0,
                            "totalEntriesReturned": entries, "splits": 0, "shards": 0, "totalPostFilterLines": lines,
                            "totalStructuredMetadataBytesProcessed": 0}}

    def _streams_result(self, rows: list[tuple[int, int, StoredEntry]], limit: int, direction: str) -> _Response:
        forward = direction.lower() == "forward"
        rows.sort(key=lambda r: (r[0], r[1]), reverse=not forward)
        rows = rows[:limit]
        groups: dict[tuple, list] = {}
        for ts, _, e in rows:
            groups.setdefault(self._query_labels(e), []).append([str(ts), e.line])
        result = [{"stream": dict(k), "values": v} for k, v in sorted(groups.items(), key=lambda kv: labels_string(kv[0]))]
        nbytes = sum(_utf8len(r[2].line) for r in rows)
        return _json(200, {"status": "success", "data": {"resultType": "streams", "result": result,
                                                         "stats": self._stats(len(rows), len(rows), nbytes)}})

    def _eval_range_agg(self, e: _RangeAgg, t_ns: int, now_ns: int) -> dict[tuple, float]:
        rows = self._select(e.selector, t_ns - e.range_ns, t_ns, False, True, now_ns)
        out: dict[tuple, float] = {}
        secs = e.range_ns / _NS
        for _, _, ent in rows:
            k = self._query_labels(ent)
            v = 1.0 if e.op in ("count_over_time", "rate") else float(_utf8len(ent.line))
            out[k] = out.get(k, 0.0) + v
        if e.op in ("rate", "bytes_rate"):
            out = {k: v / secs for k, v in out.items()}
        return out

    def _eval(self, e: Any, t_ns: int, now_ns: int) -> dict[tuple, float]:
        if isinstance(e, _RangeAgg):
            return self._eval_range_agg(e, t_ns, now_ns)
        inner = self._eval(e.inner, t_ns, now_ns)
        groups: dict[tuple, list[float]] = {}
        for k, v in inner.items():
            d = dict(k)
            if e.grouping == "by":
                key = tuple(sorted((n, d[n]) for n in e.labels if n in d))
            elif e.grouping == "without":
                key = tuple(sorted((n, val) for n, val in d.items() if n not in e.labels))
            else:
                key = ()
            groups.setdefault(key, []).append(v)
        agg = {"sum": sum, "min": min, "max": max, "count": lambda xs: float(len(xs)),
               "avg": lambda xs: sum(xs) / len(xs)}[e.op]
        return {k: float(agg(vs)) for k, vs in groups.items()}

    def _query_instant(self, params: dict[str, str]) -> _Response:
        now = self._now()
        now_ns = self._to_ns(now)
        self._auto_flush(now)
        expr = self._parse_query(params)
        t_ns = _parse_time_ns(params.get("time"), now_ns)
        limit = self._limit(params)
        if isinstance(expr, _Selector):
            rows = self._select(expr, t_ns - 3600 * _NS, t_ns, True, True, now_ns)
            return self._streams_result(rows, limit, params.get("direction", "backward"))
        values = self._eval(expr, t_ns, now_ns)
        ts_text = _ts_seconds_text(t_ns // 1_000_000)
        result = [{"metric": dict(k), "value": [orjson.Fragment(ts_text.encode()), go_format_float(v)]}
                  for k, v in sorted(values.items(), key=lambda kv: labels_string(kv[0]))]
        return _json(200, {"status": "success", "data": {"resultType": "vector", "result": result,
                                                         "stats": self._stats()}})

    def _query_range(self, params: dict[str, str]) -> _Response:
        now = self._now()
        now_ns = self._to_ns(now)
        self._auto_flush(now)
        expr = self._parse_query(params)
        end_ns = _parse_time_ns(params.get("end"), now_ns)
        start_ns = _parse_time_ns(params.get("start"), end_ns - 3600 * _NS)
        if end_ns < start_ns:
            raise _HTTPError(400, "end timestamp must not be before or equal to start time")
        limit = self._limit(params)
        if isinstance(expr, _Selector):
            rows = self._select(expr, start_ns, end_ns, True, False, now_ns)
            return self._streams_result(rows, limit, params.get("direction", "backward"))
        step_txt = params.get("step")
        if step_txt:
            try:
                step_ns = int(float(step_txt) * _NS)
            except ValueError:
                try:
                    step_ns = parse_duration_ns(step_txt)
                except ValueError as e:
                    raise _HTTPError(400, f"invalid parameter: {e}") from None
        else:
            step_ns = max((end_ns - start_ns) // _NS // 250, 1) * _NS
        if step_ns <= 0:
            raise _HTTPError(400, "zero or negative query resolution step widths are not accepted. "
                                  "Try a positive integer")
        if (end_ns - start_ns) // step_ns > 11000:
            raise _HTTPError(400, "exceeded maximum resolution of 11,000 points per timeseries. "
                                  "Try decreasing the query resolution (?step=XX)")
        series: dict[tuple, list] = {}
        t = start_ns
        while t <= end_ns:
            for k, v in self._eval(expr, t, now_ns).items():
                series.setdefault(k, []).append([orjson.Fragment(_ts_seconds_text(t // 1_000_000).encode()),
                                                 go_format_float(v)])
            t += step_ns
        result = [{"metric": dict(k), "values": v} for k, v in sorted(series.items(), key=lambda kv: labels_string(kv[0]))]
        return _json(200, {"status": "success", "data": {"resultType": "matrix", "result": result,
                                                         "stats": self._stats()}})

    def _streams_in_range(self, params: dict[str, str]) -> list[_Stream]:
        now_ns = self._to_ns(self._now())
        end_ns = _parse_time_ns(params.get("end"), now_ns)
        start_ns = _parse_time_ns(params.get("start"), end_ns - 6 * 3600 * _NS)
        return [s for s in self._streams.values()
                if any(start_ns <= ts <= end_ns for ts, _, _ in s.entries)]

    def _labels(self, params: dict[str, str]) -> _Response:
        names = sorted({k for s in self._streams_in_range(params) for k in s.labels})
        return _json(200, {"status": "success", "data": names})

    def _label_values(self, name: str, params: dict[str, str]) -> _Response:
        vals = sorted({s.labels[name] for s in self._streams_in_range(params) if name in s.labels})
        return _json(200, {"status": "success", "data": vals})

    def _series(self, query: str, body: bytes) -> _Response:
        qs = parse_qs(query, keep_blank_values=True)
        if body:
            for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                qs.setdefault(k, []).extend(v)
        params = {k: v[-1] for k, v in qs.items()}
        selectors = []
        for m in qs.get("match[]", []) + qs.get("match", []):
            try:
                sel = _LogQLParser(m).parse()
            except LogQLError as e:
                raise _HTTPError(400, str(e)) from None
            if not isinstance(sel, _Selector):
                raise _HTTPError(400, "only stream selectors are accepted in match[]")
            selectors.append(sel)
        out = []
        for s in self._streams_in_range(params):
            if not selectors or any(_match_labels(sel.matchers, s.labels) for sel in selectors):
                out.append(dict(sorted(s.labels.items())))
        out.sort(key=lambda d: labels_string(d.items()))
        return _json(200, {"status": "success", "data": out})


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emulator: LokiEmulator

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with self.emulator._lock:
            self.emulator._conns.add(self.connection)

    def finish(self) -> None:
        with self.emulator._lock:
            self.emulator._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                out += self.rfile.read(size)
                self.rfile.readline()
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        headers = {k: v for k, v in self.headers.items()}
        resp = self.emulator._handle(self.command, self.path, headers, body)
        if resp is _DISCONNECT:
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            self.wfile = io.BytesIO()
            return
        self.send_response_only(resp.status)
        self.send_header("Date", self.date_time_string())
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.status not in (204, 304) and not (100 <= resp.status < 200):
            self.send_header("Content-Length", str(len(resp.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and resp.status not in (204, 304):
            self._headers_buffer.append(resp.body)
        self.flush_headers()  # headers and body in one write

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _dispatch
