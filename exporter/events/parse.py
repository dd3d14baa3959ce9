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

_server_cache: dict[tuple, tuple[int | None, int | None]] = {}
_SERVER_CACHE_MAX = 8192
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def _server_times(received: object, sent: object) -> tuple[int | None, int | None]:
    """(receivedAt, batchSentAt) in ns, cached: all the events of a batch share both values."""
    key = (received, sent)
    try:
        return _server_cache[key]
    except KeyError:
        pass
    except TypeError:  # unhashable (a list or dict where a time should be)
        return (parse_time_ns(received) if isinstance(received, (str, int, float)) else None,
                parse_time_ns(sent) if isinstance(sent, (str, int, float)) else None)
    times = (parse_time_ns(received), parse_time_ns(sent))
    if len(_server_cache) >= _SERVER_CACHE_MAX:
        _server_cache.clear()
    _server_cache[key] = times
    return times


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _slow_loads(raw: bytes, error: Exception) -> object | Invalid:
    """orjson refused the line: tell invalid UTF-8 from bad JSON, and accept the few things
    that are valid JSON but that orjson refuses (integers beyond 64 bits in orjson < 3.10,
    numbers beyond the double range such as ``1e400``). Python's extensions to JSON (``NaN``,
    ``Infinity``, ``-Infinity``) are refused, as a strict reader would."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Invalid(model.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return Invalid(model.NOT_JSON, str(error)[:200])


def session_of(value: object) -> str | None:
    """The session id of a ``sessionId`` value: a string that is not empty or whitespace only,
    or a number as ``str(number)`` (``42`` -> ``"42"``); anything else is no session."""
    if type(value) is str:
        return None if not value or value.isspace() else value
    if type(value) in (int, float):
        return str(value)
    return None


def parse_line(raw: bytes) -> Event | Invalid:
    """Parse and validate one line. ``raw`` must not contain the line ending."""
    try:
        obj = _loads(raw)
    except _JSONDecodeError as exc:
        obj = _slow_loads(raw, exc)
        if type(obj) is Invalid:
            return obj  # type: ignore[return-value]
    if type(obj) is not dict:
        return Invalid(model.NOT_OBJECT, f"JSON {type(obj).__name__}, not an object")
    get = obj.get
    etype = get("type")
    if type(etype) is not str or not etype:
        return Invalid(model.BAD_TYPE, "missing or empty 'type'" if etype in (None, "") else
                       f"'type' is a {type(etype).__name__}, not a string")
    server = get("_server")
    if type(server) is dict:
        received, sent = _server_times(server.get("receivedAt"), server.get("batchSentAt"))
    else:
        received = sent = None
    ts = get("timestamp")
    when = event_time_ns(parse_time_ns(ts) if ts is not None else None, received, sent)
    if when is None:
        return Invalid(model.NO_TIMESTAMP, "no usable 'timestamp' or '_server.receivedAt'")
    url = get("url")
    data = get("data")
    return Event(etype, when, received, session_of(get("sessionId")), url if type(url) is str else None,
                 data if type(data) is dict else {}, raw.decode("utf-8"))
