"""Parse one raw line (bytes, without its line ending) into an Event or an Invalid with a reason.

This is the only parser of telemetry lines in the project: the importer, `report` and `serve`
all call :func:`parse_line`.
"""

from __future__ import annotations

import json

import orjson

from exporter.events import model
from exporter.events.model import Event, Invalid
from exporter.events.timing import event_time_ns, parse_time_ns

_time_cache: dict[object, int | None] = {}
_TIME_CACHE_MAX = 4096


def _cached_time(value: object) -> int | None:
    """parse_time_ns with a small cache: a batch's receivedAt/batchSentAt repeat on many lines."""
    try:
        return _time_cache[value]
    except KeyError:
        pass
    except TypeError:  # unhashable (a list or dict where a time should be)
        return None
    ns = parse_time_ns(value)
    if len(_time_cache) >= _TIME_CACHE_MAX:
        _time_cache.clear()
    _time_cache[value] = ns
    return ns


def _loads(raw: bytes) -> object | Invalid:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        first_error = exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Invalid(model.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}")
    try:  # orjson refuses a few things that are valid JSON (integers beyond 64 bits)
        return json.loads(text)
    except (ValueError, RecursionError):
        return Invalid(model.NOT_JSON, str(first_error)[:200])


def parse_line(raw: bytes) -> Event | Invalid:
    """Parse and validate one line. ``raw`` must not contain the line ending."""
    obj = _loads(raw)
    if isinstance(obj, Invalid):
        return obj
    if not isinstance(obj, dict):
        return Invalid(model.NOT_OBJECT, f"JSON {type(obj).__name__}, not an object")
    etype = obj.get("type")
    if not isinstance(etype, str) or not etype:
        return Invalid(model.BAD_TYPE, "missing or empty 'type'" if etype in (None, "") else
                       f"'type' is a {type(etype).__name__}, not a string")
    server = obj.get("_server")
    received = sent = None
    if isinstance(server, dict):
        received = _cached_time(server.get("receivedAt"))
        sent = _cached_time(server.get("batchSentAt"))
    when = event_time_ns(parse_time_ns(obj.get("timestamp")), received, sent)
    if when is None:
        return Invalid(model.NO_TIMESTAMP, "no usable 'timestamp' or '_server.receivedAt'")
    session = obj.get("sessionId")
    if not isinstance(session, str):
        session = str(session) if isinstance(session, (int, float)) and not isinstance(session, bool) else None
    url = obj.get("url")
    data = obj.get("data")
    return Event(
        type=etype,
        time_ns=when,
        received_ns=received,
        session_id=session or None,
        url=url if isinstance(url, str) else None,
        data=data if isinstance(data, dict) else {},
        line=raw.decode("utf-8"),
    )
