"""The Loki emulator against real Loki 3.x recordings, and its documented behaviours."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

try:
    from tests.conftest_loki import (RECORDING_TIME, RECORDING_TIME_NS, loki_clock, loki_emulator,  # noqa: F401
                                     loki_factory, http, push_body, push_json)
    from tests.loki_emulator import (PUSH_PATH, FrozenClock, LokiEmulator, decode_push_json, decode_push_json_slow,
                                     encode_push_proto, go_time_string, snappy_decode, snappy_encode)
except ImportError:  # run from inside tests/
    from conftest_loki import (RECORDING_TIME, RECORDING_TIME_NS, loki_clock, loki_emulator,  # type: ignore  # noqa: F401
                               loki_factory, http, push_body, push_json)
    from loki_emulator import (PUSH_PATH, FrozenClock, LokiEmulator, decode_push_json,  # type: ignore
                               decode_push_json_slow, encode_push_proto, go_time_string, snappy_decode, snappy_encode)

S = 1_000_000_000
H = 3600 * S
T0 = 1796326078433541917  # first recorded push timestamp
HTTP = http()


# ---------------------------------------------------------------------------------------------
# Recordings
# ---------------------------------------------------------------------------------------------

# A copy of the recordings travels with the tests (tests/data/), so CI on a bare checkout
# replays them too; the reference beside the repository, when present, is the original.
VENDORED_RECORDINGS = Path(__file__).resolve().parent / "data" / "loki-recordings.jsonl"


def _reference_recordings() -> Path | None:
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "reference" / "loki-recordings.jsonl"]
    env = os.environ.get("TELEMETRY_SHARED_DIR")
    if env:
        candidates += [Path(env) / "reference" / "loki-recordings.jsonl", Path(env) / "loki-recordings.jsonl"]
    for c in candidates:
        if c.is_file():
            return c
    return None


REFERENCE_RECORDINGS = _reference_recordings()
RECORDINGS_FILE = REFERENCE_RECORDINGS or (VENDORED_RECORDINGS if VENDORED_RECORDINGS.is_file() else None)
RECORDINGS = ([json.loads(line) for line in RECORDINGS_FILE.read_text().splitlines() if line.strip()]
              if RECORDINGS_FILE else [])
needs_recordings = pytest.mark.skipif(
    RECORDINGS_FILE is None,
    reason="loki-recordings.jsonl not found (tests/data/, <repo>/../shared/reference/ or $TELEMETRY_SHARED_DIR)")



@pytest.mark.skipif(REFERENCE_RECORDINGS is None, reason="no reference recordings beside the repository")
def test_vendored_recordings_are_the_reference():
    assert VENDORED_RECORDINGS.read_bytes() == REFERENCE_RECORDINGS.read_bytes(), \
        "tests/data/loki-recordings.jsonl differs from the reference: copy it again"


# Bodies the recording abbreviates, rebuilt from their scenario.
MALFORMED_66 = b'{"streams":[{"stream":{"app":"rec"},"values":[["123","unterminated'
GZIP_BODY = json.dumps({"streams": [{"stream": {"app": "rec", "type": "gz"},
                                     "values": [["1796326113433541917", "gzip-compressed push"]]}]}).encode()


def _expand(o):
    """Replace "<N bytes of 'x'>" placeholders with the bytes they stand for."""
    if isinstance(o, str):
        m = re.fullmatch(r"<(\d+) bytes of '(.)'>", o)
        return m.group(2) * int(m.group(1)) if m else o
    if isinstance(o, list):
        return [_expand(x) for x in o]
    if isinstance(o, dict):
        return {k: _expand(v) for k, v in o.items()}
    return o


def _materialize(rec: dict) -> tuple[str, str, dict, bytes | None, bool]:
    """(method, path, headers, body, body_was_abbreviated). Bodies go on the wire as Python's
    json.dumps wrote them when recording (", " and ": " separators, visible in recorded errors)."""
    req = rec["request"]
    body = req["body"]
    headers = dict(req["headers"])
    if body is None:
        return req["method"], req["path"], headers, None, False
    if isinstance(body, str):
        if "66 bytes" in body:
            assert len(MALFORMED_66) == 66
            return req["method"], req["path"], headers, MALFORMED_66, True
        if headers.get("Content-Encoding") == "gzip":
            return req["method"], req["path"], headers, gzip.compress(GZIP_BODY), True
        raise AssertionError(f"no rebuild rule for abbreviated body {body!r}")
    return req["method"], req["path"], headers, json.dumps(_expand(body)).encode(), False


def _is_sequential(rec: dict) -> bool:
    return "ingestion_rate_mb" not in rec["scenario"] and rec["request"]["path"] != "/ready"


def _check(rec: dict, resp: httpx.Response) -> None:
    exp = rec["response"]
    assert resp.status_code == exp["status"], (rec["scenario"], resp.text)
    body = exp["body"]
    if rec["request"]["path"].startswith("/loki/api/v1/query"):
        # Recorded query bodies are cut short and their stats are timings: compare everything up
        # to the stats object, byte for byte.
        k = body.index(',"stats":')
        assert resp.text[:k + 9] == body[:k + 9], rec["scenario"]
    else:
        assert resp.text == body, rec["scenario"]


@pytest.fixture(scope="module")
def sequential_replay():
    """Feed every recording (except the rate-limit and /ready ones, which need another Loki) in
    order to one emulator frozen at the recordings' instant; keep each response."""
    if not RECORDINGS:
        pytest.skip("loki-recordings.jsonl not found")
    clock = FrozenClock(RECORDING_TIME)
    results: dict[int, httpx.Response] = {}
    with LokiEmulator(now=clock) as emu, httpx.Client(base_url=emu.url, timeout=10) as client:
        for i, rec in enumerate(RECORDINGS):
            if not _is_sequential(rec):
                continue
            method, path, headers, body, _ = _materialize(rec)
            results[i] = client.request(method, path, headers=headers, content=body)
        yield results, emu


SEQUENTIAL = [i for i, r in enumerate(RECORDINGS) if _is_sequential(r)]


@needs_recordings
@pytest.mark.parametrize("index", SEQUENTIAL, ids=[RECORDINGS[i]["scenario"][:60] for i in SEQUENTIAL])
def test_recording_replayed(sequential_replay, index):
    results, _ = sequential_replay
    _check(RECORDINGS[index], results[index])


@needs_recordings
def test_recorded_state_after_replay(sequential_replay):
    _, emu = sequential_replay
    event = emu.entries(app="rec", type="event")
    assert [e.line for e in event] == ['{"type":"event"}', '{"type":"event","n":2}', "ok-1", "ok-2"]
    assert all(e.labels == {"app": "rec", "service_name": "rec", "type": "event"} for e in event)
    assert "too old for this stream" not in emu.lines()
    assert emu.lines(type="other") == ["old but first in a fresh stream"]
    assert emu.entries(type="future") == [] and emu.entries(type="big") == []
    assert emu.entries(service_name="unknown_service")[0].line == "no labels"
    sm = emu.entries(type="sm")[0]
    assert sm.metadata == {"session_id": "1766744160751-qg4abun", "page": "#/quiz"}
    assert sm.detected_level == "unknown"
    assert [e.line for e in emu.entries(type="evt")] == ["same stream label set split in two stream objects A", "B"]
    assert sum(1 for k in emu.streams() if dict(k).get("type") == "evt") == 1


@needs_recordings
def test_recording_rate_limited_push(loki_factory):
    rec = next(r for r in RECORDINGS if "ingestion_rate_mb" in r["scenario"])
    emu = loki_factory(ingestion_rate_mb=1, ingestion_burst_size_mb=1, per_stream_rate_limit=512 * 1024)
    # "<3000 entries of ~1 KB in one stream>": 1000 bytes plus the entry number = 3,010,890 bytes.
    entries = [(T0 + i, "x" * 1000 + str(i)) for i in range(3000)]
    resp = push_json(emu, [({"app": "rec", "type": "bulk"}, entries)])
    assert resp.status_code == rec["response"]["status"] == 429
    assert resp.text == rec["response"]["body"]
    assert emu.entries() == []


@needs_recordings
def test_recording_ready(loki_factory):
    recs = [r for r in RECORDINGS if r["request"]["path"] == "/ready"]
    assert [r["response"]["status"] for r in recs] == [503, 200]
    emu = loki_factory(ready_after=0.1)
    first = HTTP.get(emu.url + "/ready")
    _check(recs[0], first)
    time.sleep(0.12)
    _check(recs[1], HTTP.get(emu.url + "/ready"))


# ---------------------------------------------------------------------------------------------
# Push behaviours
# ---------------------------------------------------------------------------------------------

APP = {"app": "t"}
APP_STR = '{app="t", service_name="t"}'


def test_gzip_push_is_decoded_stored_and_recorded(loki_emulator):
    resp = push_json(loki_emulator, [({"app": "t", "type": "gz"}, [(T0, "zipped", {"k": "v"})])], gzip=True)
    assert resp.status_code == 204 and resp.text == ""
    [e] = loki_emulator.entries(type="gz")
    assert (e.ts_ns, e.line, e.metadata) == (T0, "zipped", {"k": "v"})
    req = loki_emulator.requests[-1]
    assert req.header("content-encoding") == "gzip" and req.body[:2] == b"\x1f\x8b"
    assert req.json["streams"][0]["stream"] == {"app": "t", "type": "gz"}
    assert (req.status, req.response_body) == (204, "")


def test_bad_gzip_and_unsupported_encoding(loki_emulator):
    bad = HTTP.post(loki_emulator.url + PUSH_PATH, content=b"not gzip at all",
                     headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert (bad.status_code, bad.text) == (400, "gzip: invalid header\n")
    full = gzip.compress(push_body([(APP, [(T0 + i, f"line {i}") for i in range(200)])]))
    truncated = full[:len(full) // 2]
    resp = HTTP.post(loki_emulator.url + PUSH_PATH, content=truncated,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert (resp.status_code, resp.text) == (400, "unexpected EOF\n")
    br = HTTP.post(loki_emulator.url + PUSH_PATH, content=b"{}",
                    headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert (br.status_code, br.text) == (400, 'Content-Encoding "br" not supported\n')
    no_type = HTTP.post(loki_emulator.url + PUSH_PATH, content=b"{}", headers={"Content-Type": ""})
    assert (no_type.status_code, no_type.text) == (400, "mime: no media type\n")
    assert loki_emulator.entries() == []


def test_dedup_same_timestamp_and_line_stored_once(loki_emulator):
    s = {"app": "t"}
    assert push_json(loki_emulator, [(s, [(T0, "a"), (T0, "a"), (T0, "b")])]).status_code == 204
    assert push_json(loki_emulator, [(s, [(T0, "a"), (T0 + 1, "a")])]).status_code == 204
    assert push_json(loki_emulator, [(s, [(T0, "b", {"other": "metadata"})])]).status_code == 204
    got = [(e.ts_ns, e.line, e.metadata) for e in loki_emulator.entries(app="t")]
    assert got == [(T0, "a", {}), (T0, "b", {}), (T0 + 1, "a", {})]


def test_out_of_order_window_across_two_pushes(loki_emulator):
    assert push_json(loki_emulator, [(APP, [(T0, "newest")])]).status_code == 204
    old = T0 - 2 * H
    resp = push_json(loki_emulator, [(APP, [(old, "too old"), (T0 - H + S, "inside window")])])
    assert resp.status_code == 400
    cutoff = T0 - H
    assert resp.text == (
        f"entry with timestamp {go_time_string(old)} ignored, reason: 'entry too far behind, entry timestamp is: "
        f"2026-12-03T17:27:58Z, oldest acceptable timestamp is: 2026-12-03T18:27:58Z',\n"
        f"user 'fake', total ignored: 1 out of 2 for stream: {APP_STR}\n")
    assert go_time_string(old) == "2026-12-03 17:27:58.433541917 +0000 UTC"
    assert go_time_string(cutoff).startswith("2026-12-03 18:27:58")
    assert loki_emulator.lines(app="t") == ["inside window", "newest"]
    # the window is relative to the stream's newest entry, not to now, and ignores reject_old_samples
    assert push_json(loki_emulator, [({"app": "other"}, [(old, "first of a new stream")])]).status_code == 204


def test_window_moves_entry_by_entry_within_one_push(loki_emulator):
    resp = push_json(loki_emulator, [(APP, [(T0 - 2 * H, "old first"), (T0, "now"), (T0 - 2 * H + S, "old again")])])
    assert resp.status_code == 400
    assert "total ignored: 1 out of 3" in resp.text
    assert loki_emulator.lines(app="t") == ["old first", "now"]


def test_at_most_ten_rejections_listed(loki_emulator):
    push_json(loki_emulator, [(APP, [(T0, "newest")])])
    resp = push_json(loki_emulator, [(APP, [(T0 - 3 * H - i * S, f"old {i}") for i in range(12)] + [(T0, "n2")])])
    assert resp.status_code == 400
    lines = resp.text.splitlines()
    assert len(lines) == 11 and all(line.startswith("entry with timestamp ") for line in lines[:10])
    assert lines[-1] == f"user 'fake', total ignored: 12 out of 13 for stream: {APP_STR}"


def test_only_the_last_streams_ingester_error_is_returned(loki_emulator):
    a, b = {"app": "a"}, {"app": "b"}
    push_json(loki_emulator, [(a, [(T0, "a newest")])])
    # A has an entry rejected by the ingester, B (processed last) is fine: 204, A's others stored.
    resp = push_json(loki_emulator, [(a, [(T0 - 2 * H, "a rejected"), (T0 + S, "a kept")]), (b, [(T0, "b kept")])])
    assert (resp.status_code, resp.text) == (204, "")
    assert loki_emulator.lines(app="a") == ["a newest", "a kept"]
    assert loki_emulator.lines(app="b") == ["b kept"]
    # Same streams the other way round: the last stream's error is the answer.
    resp = push_json(loki_emulator, [(b, [(T0 + 2 * S, "b kept 2")]), (a, [(T0 - 3 * H, "a rejected 2"), (T0 + 3 * S, "a kept 2")])])
    assert resp.status_code == 400
    assert resp.text.endswith('total ignored: 1 out of 2 for stream: {app="a", service_name="a"}\n')
    assert loki_emulator.lines(app="b") == ["b kept", "b kept 2"]
    # Both fail: only the last one is described.
    resp = push_json(loki_emulator, [(a, [(T0 - 4 * H, "x")]), (b, [(T0 - 4 * H, "y"), (T0 + 4 * S, "b ok")])])
    assert resp.status_code == 400
    assert "stream: {app=\"a\"" not in resp.text and resp.text.endswith('1 out of 2 for stream: {app="b", service_name="b"}\n')


def test_distributor_errors_hidden_behind_an_ingester_error(loki_emulator):
    a, b = {"app": "a"}, {"app": "b"}
    push_json(loki_emulator, [(b, [(T0, "b newest")])])
    future = T0 + H
    resp = push_json(loki_emulator, [(a, [(future, "too new"), (T0, "a ok")]), (b, [(T0 - 2 * H, "b too far behind")])])
    assert resp.status_code == 400
    assert "too new" not in resp.text and resp.text.startswith("entry with timestamp ")
    assert loki_emulator.lines(app="a") == ["a ok"]
    # When the ingester succeeds, the distributor's validation error is the answer (valid entries stored).
    resp = push_json(loki_emulator, [(a, [(future, "too new 2"), (T0 + S, "a ok 2")])])
    assert (resp.status_code, resp.text) == (
        400, "entry for stream '{app=\"a\", service_name=\"a\"}' has timestamp too new: 2026-12-03T20:27:58Z\n")
    assert loki_emulator.lines(app="a") == ["a ok", "a ok 2"]


def test_distributor_errors_are_grouped(loki_emulator):
    s = '{app="t", service_name="t"}'
    resp = push_json(loki_emulator, [(APP, [(T0 + H, "a"), (T0 + H, "b")])])
    assert resp.text == f"2 errors like: entry for stream '{s}' has timestamp too new: 2026-12-03T20:27:58Z\n"
    resp = push_json(loki_emulator, [(APP, [(T0 + H, "a"), (T0, "x" * 262145)])])
    assert resp.text == (f"1 errors like: entry for stream '{s}' has timestamp too new: 2026-12-03T20:27:58Z; "
                         f"1 errors like: max entry size '262144' bytes exceeded for stream '{s}' while adding an entry "
                         f"with length '262145' bytes\n")
    assert loki_emulator.entries() == []


def test_reject_old_samples(loki_factory):
    emu = loki_factory(reject_old_samples_max_age=24 * 3600)
    old = T0 - 48 * H
    resp = push_json(emu, [(APP, [(old, "two days old"), (T0, "fresh")])])
    assert (resp.status_code, resp.text) == (
        400, f"entry for stream '{APP_STR}' has timestamp too old: 2026-12-01T19:27:58Z, "
             f"oldest acceptable timestamp is: 2026-12-02T19:29:00Z\n")
    assert emu.lines() == ["fresh"]
    lenient = loki_factory(reject_old_samples=False)
    assert push_json(lenient, [(APP, [(T0 - 30 * 24 * H, "a month old")])]).status_code == 204


def test_ingestion_rate_limit_token_bucket(loki_factory, loki_clock):
    emu = loki_factory(ingestion_rate_mb=1, ingestion_burst_size_mb=1)
    line = "y" * 200_000
    four = [(T0 + i, line) for i in range(4)]
    assert push_json(emu, [(APP, four)]).status_code == 204  # 800,000 of the 1 MiB burst
    resp = push_json(emu, [(APP, [(T0 + 10, line), (T0 + 11, line)])])
    assert (resp.status_code, resp.text) == (429, (
        "ingestion rate limit exceeded for user fake (limit: 1048576 bytes/sec) while attempting to ingest '2' lines "
        "totaling '400000' bytes, reduce log volume or contact your Loki administrator to see if the limit can be "
        "increased\n"))
    assert len(emu.entries()) == 4  # nothing of a rate-limited push is stored
    loki_clock.advance(0.5)  # +512 KiB of tokens
    assert push_json(emu, [(APP, [(T0 + 10, line), (T0 + 11, line)])]).status_code == 204
    assert len(emu.entries()) == 6


def test_per_stream_rate_limit_whole_stream(loki_factory):
    emu = loki_factory(per_stream_rate_limit=1024, per_stream_rate_limit_burst=2048)
    resp = push_json(emu, [(APP, [(T0, "a" * 1500), (T0 + 1, "b" * 1000)])])
    assert resp.status_code == 429
    reason = ("Per stream rate limit exceeded (limit: 1KB/sec) while attempting to ingest for stream "
              f"'{APP_STR}' totaling SIZE, consider splitting a stream via additional labels or contact your Loki "
              "administrator to see if the limit can be increased")
    assert resp.text == (
        f"entry with timestamp {go_time_string(T0)} ignored, reason: '{reason.replace('SIZE', '1521B')}',\n"
        f"entry with timestamp {go_time_string(T0 + 1)} ignored, reason: '{reason.replace('SIZE', '1021B')}',\n"
        f"user 'fake', total ignored: 2 out of 2 for stream: {APP_STR}\n")
    assert emu.entries() == []


def test_stream_limit(loki_factory):
    emu = loki_factory(max_global_streams_per_user=1)
    assert push_json(emu, [({"app": "one"}, [(T0, "x")])]).status_code == 204
    resp = push_json(emu, [({"app": "two"}, [(T0, "x")])])
    assert resp.status_code == 429
    assert resp.text.startswith('maximum active stream limit exceeded when trying to create stream '
                                '{app="two", service_name="two"}, reduce the number of active streams')
    assert resp.text.endswith("user: 'fake'\n")


def test_service_name_discovery_and_labels(loki_emulator):
    cases = [({"service": "svc", "app": "a"}, "svc"), ({"app": "a", "job": "j"}, "a"), ({"job": "j"}, "j"),
             ({"env": "prod"}, "unknown_service"), ({"service_name": "given", "app": "a"}, "given")]
    for i, (labels, expected) in enumerate(cases):
        assert push_json(loki_emulator, [(dict(labels, case=str(i)), [(T0, "x")])]).status_code == 204
        [e] = loki_emulator.entries(case=str(i))
        assert e.labels["service_name"] == expected
    # empty label values are dropped (Prometheus semantics), so {"app": ""} counts as no app
    assert push_json(loki_emulator, [({"app": "", "case": "e"}, [(T0, "x")])]).status_code == 204
    assert loki_emulator.entries(case="e")[0].labels == {"case": "e", "service_name": "unknown_service"}


def test_label_validation_messages(loki_emulator):
    resp = push_json(loki_emulator, [({"1st": "x"}, [(T0, "x")])])
    assert (resp.status_code, resp.text) == (400, "couldn't parse labels: 1:2: parse error: unexpected character inside braces: '1'\n")
    resp = push_json(loki_emulator, [({"log.level": "x"}, [(T0, "x")])])
    assert resp.text == "couldn't parse labels: 1:5: parse error: unexpected character inside braces: '.'\n"
    labels = {f"l{i}": "v" for i in range(15)}  # 15 + service_name is fine (service_name is not counted)
    assert push_json(loki_emulator, [(labels, [(T0, "x")])]).status_code == 204
    resp = push_json(loki_emulator, [({"app": "v" * 2049}, [(T0, "x")])])
    assert resp.status_code == 400 and resp.text.endswith("has label value too long: '" + "v" * 2049 + "'\n")


def test_malformed_bodies(loki_emulator):
    def post(body: bytes) -> httpx.Response:
        return HTTP.post(loki_emulator.url + PUSH_PATH, content=body, headers={"Content-Type": "application/json"})

    assert (post(b"").status_code, post(b"").text) == (400, "EOF\n")
    for body in (b"{}", b"null", b'{"streams": null}', b'{"streams": []}'):
        assert (post(body).status_code, post(body).text) == (422, "error at least one valid stream is required for ingestion\n")
    r = post(b"[]")
    assert r.status_code == 400 and r.text.startswith("readObjectStart: expect { or n, but found [")
    r = post(b'{"streams": [{"stream": {"app": "x"}, "values": [["1", 2]]}]}')
    assert r.status_code == 400 and r.text.startswith(
        "loghttp.PushRequest.Streams: []loghttp.LogProtoStream: unmarshalerDecoder: "
        "Value is string, but can't find closing '\"' symbol, error found in #10 byte of")
    # jsoniter matches field names case-insensitively and ignores what follows the object
    r = post(b'{"Streams": [{"stream": {"app": "x"}, "values": [["1796326078433541917", "ok"]]}]} trailing')
    assert r.status_code == 204
    # a stream without entries is skipped, so a push of only such streams is a no-op success
    assert post(b'{"streams": [{"stream": {"app": "x"}, "values": []}]}').status_code == 204
    # ... but its labels are still parsed
    r = post(b'{"streams": [{"stream": {"a-b": "x"}, "values": []}]}')
    assert r.status_code == 400 and r.text.startswith("couldn't parse labels: 1:3: parse error: unexpected character inside braces: '-'")


def test_fast_json_path_agrees_with_the_jsoniter_port():
    """Well-formed bodies take an orjson fast path; it must decode exactly like the port of
    Loki's jsoniter/jsonparser decoding (which also produces the error texts)."""
    import random
    rnd = random.Random(7)
    alphabet = ["a", "é", '"', "\\", "\n", "\u2028", "😀", "<", "\x01", " "]

    def text(n: int) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, n)))
    for _ in range(300):
        streams = []
        for _ in range(rnd.randint(0, 3)):
            values = []
            for _ in range(rnd.randint(0, 4)):
                v = [str(rnd.randint(-10**12, 10**19)), text(8)]
                if rnd.random() < 0.3:
                    v.append({rnd.choice(["k", "k.l", "_x"]): text(4)})
                values.append(None if rnd.random() < 0.05 else v)
            streams.append({"stream": {rnd.choice(["app", "job", "x_y"]): text(5) for _ in range(rnd.randint(0, 3))},
                            "values": values})
        body = json.dumps({"streams": streams}, ensure_ascii=rnd.random() < 0.5,
                          separators=rnd.choice([(",", ":"), (", ", ": ")])).encode()
        assert decode_push_json(body) == decode_push_json_slow(body), body


def test_deflate_push(loki_emulator):
    import zlib
    co = zlib.compressobj(wbits=-15)
    body = co.compress(push_body([(APP, [(T0, "deflated")])])) + co.flush()
    r = HTTP.post(loki_emulator.url + PUSH_PATH, content=body,
                  headers={"Content-Type": "application/json", "Content-Encoding": "deflate"})
    assert r.status_code == 204 and loki_emulator.lines() == ["deflated"]


def test_metric_range_query(loki_emulator):
    now = RECORDING_TIME_NS
    push_json(loki_emulator, [({"app": "m", "type": "a"}, [(now - i * S, f"l{i}") for i in range(100)]),
                              ({"app": "m", "type": "b"}, [(now - i * S, "info") for i in range(50)])])
    r = HTTP.get(loki_emulator.url + "/loki/api/v1/query_range",
                 params={"query": 'sum by (type) (count_over_time({app="m"}[1m]))',
                         "start": str(now - 120 * S), "end": str(now), "step": "60"})
    assert r.text.startswith('{"status":"success","data":{"resultType":"matrix","result":['
                             '{"metric":{"type":"a"},"values":[[1796326080.019,"40"],[1796326140.019,"60"]]},'
                             '{"metric":{"type":"b"},"values":[[1796326140.019,"50"]]}],"stats":')


def test_structured_metadata_normalised_and_level_detected(loki_emulator):
    entries = [
        (T0, "plain line", {"page.url": "/quiz", "_private": "p", "2fa": "yes"}),
        (T0 + 1, "something failed with error 42", None),
        (T0 + 2, '{"level":"WARN","msg":"careful"}', None),
        (T0 + 3, "level=debug msg=hello", None),
        (T0 + 4, "x", {"level": "Critical"}),
    ]
    assert push_json(loki_emulator, [(APP, entries)]).status_code == 204
    got = loki_emulator.entries(app="t")
    assert got[0].metadata == {"page_url": "/quiz", "key_private": "p", "key_2fa": "yes"}
    assert [e.detected_level for e in got] == ["unknown", "error", "warn", "debug", "Critical"]


def test_structured_metadata_limits(loki_factory):
    emu = loki_factory(max_structured_metadata_entries_count=2)
    resp = push_json(emu, [(APP, [(T0, "x", {"a": "1", "b": "2", "c": "3"})])])
    assert (resp.status_code, resp.text) == (400, (
        f"stream '{APP_STR}' has too many structured metadata labels: '3', limit: '2'. Please see "
        "`limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.\n"))


def test_protobuf_snappy_push(loki_emulator):
    body = snappy_encode(encode_push_proto([('{app="pb", type="proto"}', [(T0, "from proto", {"k": "v"})])]))
    assert snappy_decode(body).startswith(b"\x0a")
    resp = HTTP.post(loki_emulator.url + PUSH_PATH, content=body, headers={"Content-Type": "application/x-protobuf"})
    assert resp.status_code == 204
    [e] = loki_emulator.entries(app="pb")
    assert (e.labels, e.ts_ns, e.line, e.metadata) == (
        {"app": "pb", "service_name": "pb", "type": "proto"}, T0, "from proto", {"k": "v"})
    bad = HTTP.post(loki_emulator.url + PUSH_PATH, content=b"{\"streams\": []}",
                     headers={"Content-Type": "application/x-protobuf"})
    assert (bad.status_code, bad.text) == (400, "snappy: corrupt input\n")


def test_chunked_request_body(loki_emulator):
    body = push_body([(APP, [(T0, "chunked")])])

    def gen():
        yield body[:10]
        yield body[10:]
    resp = HTTP.post(loki_emulator.url + PUSH_PATH, content=gen(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 204
    assert loki_emulator.lines() == ["chunked"]


# ---------------------------------------------------------------------------------------------
# Test controls: injection, disconnects, readiness, auth
# ---------------------------------------------------------------------------------------------

def test_injected_429_and_503_with_retry_after(loki_emulator):
    loki_emulator.inject(429, "slow down\n", times=2, retry_after="3")
    loki_emulator.inject(503, "unavailable\n", retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    body = [(APP, [(T0, "x")])]
    for expected in (429, 429):
        r = push_json(loki_emulator, body)
        assert (r.status_code, r.text, r.headers["Retry-After"]) == (expected, "slow down\n", "3")
    r = push_json(loki_emulator, body)
    assert (r.status_code, r.headers["Retry-After"]) == (503, "Wed, 21 Oct 2026 07:28:00 GMT")
    assert loki_emulator.entries() == []
    assert push_json(loki_emulator, body).status_code == 204
    assert [q.status for q in loki_emulator.push_requests] == [429, 429, 503, 204]
    loki_emulator.inject(500, "boom", path="/loki/api/v1/labels")
    assert HTTP.get(loki_emulator.url + "/loki/api/v1/labels").status_code == 500
    assert push_json(loki_emulator, body).status_code == 204


def test_injected_disconnect(loki_emulator):
    loki_emulator.inject_disconnect()
    with pytest.raises(httpx.TransportError):
        push_json(loki_emulator, [(APP, [(T0, "lost")])])
    assert push_json(loki_emulator, [(APP, [(T0, "kept")])]).status_code == 204
    assert loki_emulator.lines() == ["kept"]
    assert [r.status for r in loki_emulator.push_requests] == [0, 204]


def test_ready_after_and_set_ready(loki_factory):
    emu = loki_factory(ready_after=60)
    r = HTTP.get(emu.url + "/ready")
    assert (r.status_code, r.text) == (503, "Ingester not ready: waiting for 15s after being ready\n")
    emu.set_ready(True)
    assert (HTTP.get(emu.url + "/ready").status_code, HTTP.get(emu.url + "/ready").text) == (200, "ready\n")
    emu.set_ready(False)
    assert HTTP.get(emu.url + "/ready").status_code == 503
    assert push_json(emu, [(APP, [(T0, "pushes are not gated by /ready")])]).status_code == 204


def test_tenant_required(loki_factory):
    emu = loki_factory(tenant="team-a")
    body = [(APP, [(T0, "x")])]
    r = push_json(emu, body)
    assert (r.status_code, r.text) == (401, "no org id\n")
    assert push_json(emu, body, headers={"X-Scope-OrgID": "team-b"}).status_code == 401
    assert push_json(emu, body, headers={"X-Scope-OrgID": "team-a"}).status_code == 204
    r = push_json(emu, [(APP, [(T0 + H, "x")])], headers={"X-Scope-OrgID": "team-a"})
    assert r.status_code == 400
    r = push_json(emu, [(APP, [(T0 - 2 * H, "x")])], headers={"X-Scope-OrgID": "team-a"})
    assert r.text.endswith(f"user 'team-a', total ignored: 1 out of 1 for stream: {APP_STR}\n")
    assert HTTP.get(emu.url + "/ready").status_code == 200  # not behind auth


def test_basic_and_bearer_auth(loki_factory):
    body = [(APP, [(T0, "x")])]
    basic = loki_factory(basic_auth=("u", "p"))
    assert push_json(basic, body).status_code == 401
    assert push_json(basic, body, headers={"Authorization": "Basic dTp3cm9uZw=="}).status_code == 401
    assert push_json(basic, body, headers={"Authorization": "Basic dTpw"}).status_code == 204
    bearer = loki_factory(bearer_token="s3cret", tenant="t1")
    assert push_json(bearer, body, headers={"Authorization": "Bearer s3cret"}).status_code == 401  # no org id
    ok = push_json(bearer, body, headers={"Authorization": "Bearer s3cret", "X-Scope-OrgID": "t1"})
    assert ok.status_code == 204
    assert push_json(bearer, body, headers={"Authorization": "Bearer nope", "X-Scope-OrgID": "t1"}).status_code == 401


# ---------------------------------------------------------------------------------------------
# Queries, flush, bookkeeping
# ---------------------------------------------------------------------------------------------

def test_old_entries_invisible_to_queries_until_flush(loki_emulator):
    now_ns = RECORDING_TIME_NS
    push_json(loki_emulator, [({"app": "q"}, [(now_ns - 5 * H, "five hours old")])])
    push_json(loki_emulator, [({"app": "q", "type": "recent"}, [(now_ns - 60 * S, "recent")])])
    q = {"query": 'sum(count_over_time({app="q"}[1d]))'}
    r = HTTP.get(loki_emulator.url + "/loki/api/v1/query", params=q).json()
    assert r["data"]["result"][0]["value"][1] == "1"
    assert HTTP.post(loki_emulator.url + "/flush").status_code == 204
    r = HTTP.get(loki_emulator.url + "/loki/api/v1/query", params=q).json()
    assert r["data"]["result"][0]["value"][1] == "2"
    r = HTTP.get(loki_emulator.url + "/loki/api/v1/query_range",
                  params={"query": '{app="q"} |= "old"', "start": str(now_ns - 6 * H), "end": str(now_ns)}).json()
    assert [s["values"] for s in r["data"]["result"]] == [[[str(now_ns - 5 * H), "five hours old"]]]


def test_query_errors(loki_emulator):
    r = HTTP.get(loki_emulator.url + "/loki/api/v1/query", params={"query": '{app=~".*"}'})
    assert r.status_code == 400 and "queries require at least one regexp or equality matcher" in r.text
    assert HTTP.get(loki_emulator.url + "/nope").text == "404 page not found\n"


def test_entries_streams_and_clear(loki_emulator):
    push_json(loki_emulator, [({"app": "t", "type": "b"}, [(T0 + 1, "2")]), ({"type": "b", "app": "t"}, [(T0, "1")])])
    key = frozenset({"app": "t", "type": "b", "service_name": "t"}.items())
    assert list(loki_emulator.streams()) == [key]
    assert [e.line for e in loki_emulator.streams()[key]] == ["1", "2"]
    assert loki_emulator.entries(type="b", app="t")[0].ts == T0 / S
    assert loki_emulator.entries(app="nope") == []
    loki_emulator.clear()
    assert loki_emulator.entries() == [] and loki_emulator.requests == [] and loki_emulator.streams() == {}
    assert push_json(loki_emulator, [({"app": "t"}, [(T0 - 2 * H, "window forgotten")])]).status_code == 204


def test_default_clock_is_wall_time():
    with LokiEmulator() as emu:
        now_ns = time.time_ns()
        assert push_json(emu, [(APP, [(now_ns, "now")])]).status_code == 204
        assert push_json(emu, [(APP, [(now_ns + H, "future")])]).status_code == 400
        assert HTTP.get(emu.url + "/metrics").text.count("loki_distributor_lines_received_total") >= 1
