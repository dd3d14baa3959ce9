"""Error fingerprinting: templates (placeholders), user rules, stable ids, event classification."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from exporter.events.fingerprint import (
    MAX_TEMPLATE_CHARS, NO_MESSAGE, UNNAMED, ErrorGroup, Fingerprinter, Rule, error_type_id,
    normalise, rules_from_config,
)
from exporter.events.model import Event


def ev(etype: str, **data) -> Event:
    return Event(type=etype, time_ns=0, received_ns=None, session_id="s1", url=None, data=data)


# --- same group: the variable parts differ, the template is the same --------------------------

SAME = [
    ("Quiz generation failed: model returned invalid JSON at position 123",
     "Quiz generation failed: model returned invalid JSON at position 4567",
     "Quiz generation failed: model returned invalid JSON at position <int>"),
    ("Request timed out after 10000ms", "Request timed out after 30000ms",
     "Request timed out after <duration>"),
    ("retry in 30 s", "retry in 1.5s", "retry in <duration>"),
    ("waited 2 min", "waited 45 minutes", "waited <duration>"),
    ("session idle for 3h", "session idle for 12 hours", "session idle for <duration>"),
    ("Failed to fetch https://api.example.com/users/12345/quiz?id=9",
     "Failed to fetch https://api.example.com/users/777/quiz?id=31", "Failed to fetch <url>"),
    ("WebSocket wss://rt.example.com/socket?token=abc closed",
     "WebSocket wss://rt.example.com/socket?token=xyz closed", "WebSocket <url> closed"),
    ("Cannot load https://x.com/a.js.", "Cannot load https://y.org/b/c.js.", "Cannot load <url>."),
    ("img data:image/png;base64,iVBORw0KGgo= failed", "img data:image/gif;base64,R0lGOD== failed",
     "img <url> failed"),
    ("Not allowed to load blob:https://app.example.com/0b1c2d3e",
     "Not allowed to load blob:https://app.example.com/9f8e7d6c", "Not allowed to load <url>"),
    ("quiz 550e8400-e29b-41d4-a716-446655440000 not found",
     "quiz 6BA7B810-9DAD-11D1-80B4-00C04FD430C8 not found", "quiz <uuid> not found"),
    ("bundle 3f786850e387550fdab836ed7e6dc881de23001b mismatch",
     "bundle 0123456789abcdef0123456789abcdef mismatch", "bundle <hash> mismatch"),
    ("segfault at 0xdeadbeef", "segfault at 0x7FFF0010", "segfault at <hex>"),
    ("Asset integrity check failed for /app/assets/index-f9b03a2d.js",
     "Asset integrity check failed for /app/assets/index-16ec4b8a.js",
     "Asset integrity check failed for /app/assets/index-<hash>.js"),
    ("Payment pi_bc653d52bd291df2e8b06f9c failed: card_declined",
     "Payment pi_8e26729d881e374385d59db2 failed: card_declined", "Payment pi_<hash> failed: card_declined"),
    ("no account for ana.silva+quiz@example.com.br", "no account for bob@test.io",
     "no account for <email>"),
    ("connect ECONNREFUSED 10.0.0.12:443", "connect ECONNREFUSED 192.168.1.254:8080",
     "connect ECONNREFUSED <ip>"),
    ("bind [2001:db8::1] failed", "bind [fe80::1ff:fe23:4567:890a] failed", "bind <ip> failed"),
    # an IP, v4 or v6, with or without a port (bracketed, or unbracketed as Node.js writes it)
    ("Connection refused by 2001:db8:b641::ae1:3000", "Connection refused by 203.0.113.7:443",
     "Connection refused by <ip>"),
    ("connect ECONNREFUSED ::1:3000", "connect ECONNREFUSED 127.0.0.1", "connect ECONNREFUSED <ip>"),
    ("upstream [2001:db8::1]:8443 reset", "upstream 10.1.2.3:8443 reset", "upstream <ip> reset"),
    ("no route to 2001:db8:0:0:0:0:0:1:443", "no route to 2001:db8::2", "no route to <ip>"),
    # git short SHAs (7 hex with a digit and a letter) and longer ones, either case
    ("Service worker update failed, using cached version 9e83a65",
     "Service worker update failed, using cached version c3e6282",
     "Service worker update failed, using cached version <hash>"),
    ("deploy 1A2B3C4D rejected", "deploy 0FF1CE99AB rejected", "deploy <hash> rejected"),
    # bundlers' content hashes in file names, all-digit ones included
    ("Asset integrity check failed for /app/assets/index-12345678.js",
     "Asset integrity check failed for /app/assets/index-f9b03a2d.js",
     "Asset integrity check failed for /app/assets/index-<hash>.js"),
    ("stylesheet /assets/main.abc123de.css blocked", "stylesheet /assets/main.20251226.css blocked",
     "stylesheet /assets/main.<hash>.css blocked"),
    ("chunk vendors.0123abcd.chunk.js missing", "chunk vendors.99887766.chunk.js missing",
     "chunk vendors.<hash>.chunk.js missing"),
    # sizes and percentages: whole or decimal, with or without a space
    ("Upload too large: 1.5GB", "Upload too large: 2GB", "Upload too large: <size>"),
    ("cache 3.5 MB over quota", "cache 512 KiB over quota", "cache <size> over quota"),
    ("payload of 10mb refused", "payload of 1024 bytes refused", "payload of <size> refused"),
    ("battery at 12.5%", "battery at 7 %", "battery at <percent>"),
    # a quoted value assigned with '=' (Sentry's quoted_str)
    ("Invalid selector [data-id=\"q-17\"]", "Invalid selector [data-id=\"intro\"]",
     "Invalid selector [data-id=<str>]"),
    ("Unknown option mode='strict' ignored", "Unknown option mode='sandbox 2' ignored",
     "Unknown option mode=<str> ignored"),
    ("token expired at 2025-12-26T10:16:03.046Z", "token expired at 2024-01-02T00:00:00+01:00",
     "token expired at <date>"),
    ("quota reset Fri Dec 26 2025 10:16:03 GMT+0000", "quota reset Mon Jan 05 2026 08:00:00 GMT-0300",
     "quota reset <date>"),
    ("cookie expires Fri, 26 Dec 2025 10:16:03 GMT", "cookie expires Sat, 3 Jan 2026 00:00:00 GMT",
     "cookie expires <date>"),
    ("offset -5 out of range", "offset 12 out of range", "offset <int> out of range"),
    ("score 0.75 below threshold", "score -12.5 below threshold", "score <num> below threshold"),
    ("Server responded with status code 503", "Server responded with status code 502",
     "Server responded with status code <int>"),
    ("order-42 rejected", "order-1337 rejected", "order-<int> rejected"),
    ("Loading chunk 847 failed.", "Loading chunk 12 failed.", "Loading chunk <int> failed."),
    ("Falha ao gerar o questionário: posição 123 inválida após 3 tentativas",
     "Falha ao gerar o questionário: posição 99 inválida após 10 tentativas",
     "Falha ao gerar o questionário: posição <int> inválida após <int> tentativas"),
    ("タイムアウト: 30秒後に再試行します", "タイムアウト: 5秒後に再試行します",
     "タイムアウト: <int>秒後に再試行します"),
    ("🔥 Falhou 3 vezes 😱", "🔥 Falhou 17 vezes 😱", "🔥 Falhou <int> vezes 😱"),
    ("id 1766744160751123456 unknown", "id 1766744160751999999 unknown", "id <hash> unknown"),
]


@pytest.mark.parametrize("a, b, template", SAME, ids=[t for _, _, t in SAME])
def test_same_group(a, b, template):
    assert a != b  # each case is two different messages
    assert normalise(a) == template
    assert normalise(b) == template


# --- different groups: meaningful text is kept --------------------------------------------------

DIFFERENT = [
    ("Cannot read properties of undefined (reading 'map')",
     "Cannot read properties of undefined (reading 'filter')"),
    ("Failed to fetch", "Load failed"),
    ("TypeError: x is not a function", "TypeError: y is not a function"),
    ("Invalid encoding utf8", "Invalid encoding utf16"),
    ("HTTP/2 stream reset (h2)", "HTTP/3 stream reset (h3)"),
    ("Erro ao salvar", "Erro ao carregar"),
    ("ネットワークエラー", "タイムアウト"),
]


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_groups(a, b):
    assert normalise(a) != normalise(b)


# --- text that must survive untouched -----------------------------------------------------------

KEPT = [
    "Cannot read properties of undefined (reading 'map')",
    "Unsupported encoding utf8 in base64 decoder",
    "ALPN negotiated h2 but server sent mp4",
    "Target ES2020 required",
    "user_42 is read-only",                       # digits glued to a word (underscore) are kept
    "Falha na conexão: tempo esgotado ⏱️",
    "ネットワークエラーが発生しました",
    "std::vector and Foo::bar are not addresses",
    "Invalid data: expected object",              # 'data:' alone is not a data URL
    "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON",
    "deadbeef cafebabe facade",                   # hex letters without a digit are words
    "Theme Faded2024 not found",                  # mixed case: a name, not a hash
    "Step 2B of the wizard failed",               # a bare B is not a byte unit
    "h264 and vp9 unsupported, 1080p only",
    "Failed to reach api.saberloop.com",          # host names are kept
    "Failed to read the 'localStorage' property from 'Window'",   # quoted, not assigned
    "x == '' and y = 'spaced'",                   # an empty value, a spaced '=': kept
]


@pytest.mark.parametrize("message", KEPT)
def test_meaningful_text_is_kept(message):
    assert normalise(message) == message


# --- shape: first line, whitespace, length cap, non-strings -------------------------------------

@pytest.mark.parametrize("message, template", [
    ("TypeError: boom\n    at foo (https://app.example.com/main.js:10:5)\n    at bar", "TypeError: boom"),
    ("\n\n   Error: late first line   \r\nsecond", "Error: late first line"),
    ("Error:\tspaced   \u00a0 out  ", "Error: spaced out"),
    ("first\u2028second", "first"),
    (None, NO_MESSAGE),
    ("", NO_MESSAGE),
    ("   \n  ", NO_MESSAGE),
    ({}, NO_MESSAGE),
    ([], NO_MESSAGE),
    ({"code": 42, "b": "x", "a": [1, 2]}, '{"a":[<int>,<int>],"b":"x","code":<int>}'),
    (404, "<int>"),
    (1.5, "<num>"),
    (True, "true"),
])
def test_shape_and_non_strings(message, template):
    assert normalise(message) == template


# Documented decisions (see the module docstring): what a user sees in these cases.
@pytest.mark.parametrize("message, template", [
    # an all-digit short SHA cannot be told from a number (as in Sentry)
    ("using cached version 1234567", "using cached version <int>"),
    # outside a file name, 8-15 digits are a number
    ("quiz 12345678 not found", "quiz <int> not found"),
    ("score 0.75", "score <num>"),                  # plain decimals and integers stay apart
    ("score 1", "score <int>"),
    ("-5% drift", "-<percent> drift"),             # only a plain number absorbs a '-'
])
def test_documented_decisions(message, template):
    assert normalise(message) == template


def test_dict_stringification_is_key_order_independent():
    assert normalise({"a": 1, "b": "x"}) == normalise({"b": "x", "a": 1})


def test_length_cap_cuts_at_token_boundary():
    message = "Validation failed for field " + " ".join(f"name{i}" for i in range(200))
    template = normalise(message)
    assert len(template) <= MAX_TEMPLATE_CHARS
    assert template.startswith("Validation failed for field name0 name1")
    assert message.startswith(template) and message[len(template)] == " "  # no half word
    assert normalise(template) == template


def test_length_cap_on_one_giant_token():
    template = normalise("x" * 5000)
    assert template == "x" * MAX_TEMPLATE_CHARS


def test_long_first_line_is_read_only_partly_but_consistently():
    message = "Error " + "word " * 10_000 + "\nstack"
    assert normalise(message) == normalise(message + " more")


# --- user rules ---------------------------------------------------------------------------------

RULE_ITEMS = [
    {"match": r"Loading (CSS )?chunk \S+ failed", "group": "Chunk load failures"},
    {"match": r"\bsess_[A-Za-z0-9]+", "replace": "<session>"},
    {"match": r"HTTP 5\d\d", "replace": "HTTP 5xx"},
]


@pytest.mark.parametrize("message, template", [
    ("Loading chunk 847 failed.", "Chunk load failures"),
    ("Loading CSS chunk vendors-main failed. (https://x/y.css)", "Chunk load failures"),
    ("session sess_8fK2a9 expired after 30s", "session <session> expired after <duration>"),
    ("upstream HTTP 503 from https://api.example.com", "upstream HTTP 5xx from <url>"),
    ("upstream HTTP 404", "upstream HTTP <int>"),           # rules are regexes, not magic
])
def test_user_rules(message, template):
    rules = rules_from_config(RULE_ITEMS)
    assert normalise(message, rules) == template
    assert Fingerprinter(rules).group(ev("error", message=message)).template == template


def test_group_rule_wins_over_replace_rules_and_builtins():
    rules = rules_from_config([
        {"match": "chunk", "replace": "<x>"},
        {"match": r"chunk \d+", "group": "Chunks"},
    ])
    assert normalise("Loading chunk 12 failed", rules) == "Chunks"


def test_replace_rules_run_before_builtins_and_in_order():
    # Without the rule the built-ins would make it <int>; the rule sees the raw digits first.
    rules = rules_from_config([{"match": r"code (\d)\d\d", "replace": r"code \1xx"},
                               {"match": "xx", "replace": "XX"}])
    # replacement text is literal: "\1" is not a backreference
    assert normalise("failed with code 503", rules) == r"failed with code \1XX"


def test_rules_match_the_first_line_only():
    rules = rules_from_config([{"match": "at foo", "group": "Foo"}])
    assert normalise("Boom\n    at foo (x.js:1:1)", rules) == "Boom"


@pytest.mark.parametrize("items, fragment", [
    ([{"match": "(", "group": "x"}], "fingerprint rule #0: invalid regex '('"),
    ([{"match": "ok", "group": "x"}, {"match": "[a-", "replace": "y"}], "rule #1: invalid regex"),
    ([{"match": "ok"}], "rule #0: needs exactly one of 'replace' or 'group'"),
    ([{"match": "ok", "replace": "a", "group": "b"}], "rule #0: needs exactly one"),
    ([{"match": "", "group": "x"}], "rule #0: 'match' must be a non-empty regex"),
    ([{"match": 5, "group": "x"}], "rule #0: 'match' must be"),
    ([{"match": "a*", "group": "x"}], "rule #0: regex 'a*' matches the empty string"),
    ([{"match": "ok", "group": "  "}], "rule #0: 'group' must be a non-empty string"),
    ([{"match": "ok", "replace": 3}], "rule #0: 'replace' must be a string"),
    ([{"match": "ok", "replacement": "x"}], "rule #0: unknown key(s) 'replacement'"),
    (["ok"], "rule #0: expected a mapping"),
    ({"match": "ok"}, "must be a list"),
])
def test_invalid_rules_raise_value_error_naming_the_item(items, fragment):
    with pytest.raises(ValueError) as exc:
        rules_from_config(items)
    assert fragment in str(exc.value)


def test_rules_from_config_builds_rules():
    assert rules_from_config(None) == []
    (r1, r2) = rules_from_config([{"match": "a+", "replace": "<a>"}, {"match": "b", "group": "B"}])
    assert r1 == Rule(re.compile("a+"), replacement="<a>")
    assert r2.group == "B" and r2.replacement is None
    with pytest.raises(ValueError):
        Rule(re.compile("x"))


# --- error_type_id --------------------------------------------------------------------------

def test_error_type_id_is_stable_across_runs_and_versions():
    # Literal values: any change to the id scheme (or to hash() creeping in) fails here.
    assert error_type_id("error", "Request timed out after <duration>") == "8cf6549649a7"
    assert error_type_id("warning", "Request timed out after <duration>") == "40e4c1847eec"
    assert error_type_id("failed_operation", "quiz.generate") == "0c1bf7e03c1b"
    assert error_type_id("error", "タイムアウト: <int>秒後") == "68e66a935c6d"


def test_error_type_id_shape_and_separation():
    i = error_type_id("error", "x")
    assert re.fullmatch(r"[0-9a-f]{12}", i)
    assert error_type_id("error", "x") == i
    assert error_type_id("errorx", "") != error_type_id("error", "x")  # the \0 separator


# --- Fingerprinter.group ------------------------------------------------------------------------

@pytest.mark.parametrize("event, expected", [
    (ev("error", message="Request timed out after 10000ms"),
     ("error", "Request timed out after <duration>", None)),
    (ev("error", error="Network down for 3s"), ("error", "Network down for <duration>", None)),
    (ev("error", message="", reason="Quota 5 exceeded"), ("error", "Quota <int> exceeded", None)),
    (ev("error", name="AbortError"), ("error", "AbortError", None)),
    (ev("error", message={"code": 7}), ("error", '{"code":<int>}', None)),
    (ev("error"), ("error", NO_MESSAGE, None)),
    (ev("log", level="warn", message="Slow render: 1200ms"), ("warning", "Slow render: <duration>", None)),
    (ev("log", level="WARNING", message="Retry 2 of 5"), ("warning", "Retry <int> of <int>", None)),
    (ev("log", level="Warn"), ("warning", NO_MESSAGE, None)),
    (ev("metric", name="quiz.generate", status="error", error="HTTP 503 after 30000ms"),
     ("failed_operation", "quiz.generate", "HTTP <int> after <duration>")),
    (ev("metric", name="quiz.generate 2", status="error"), ("failed_operation", "quiz.generate 2", None)),
    (ev("metric", status="error", error=""), ("failed_operation", UNNAMED, None)),
])
def test_group_kinds(event, expected):
    kind, template, reason = expected
    group = Fingerprinter().group(event)
    assert group == ErrorGroup(kind, error_type_id(kind, template), template, reason)


@pytest.mark.parametrize("event", [
    ev("log", level="info", message="hello 1"),
    ev("log", level="error", message="not a warning"),
    ev("log", level=3, message="x"),
    ev("log", message="no level"),
    ev("metric", name="quiz.generate", status="ok"),
    ev("metric", name="quiz.generate"),
    ev("vital", name="LCP", value=1200),
    ev("event", name="click"),
    ev("something-else", message="boom"),
    ev("Error", message="type is case-sensitive"),
])
def test_other_events_are_not_grouped(event):
    assert Fingerprinter().group(event) is None


def test_same_error_type_for_variants_and_per_kind():
    fp = Fingerprinter()
    a = fp.group(ev("error", message="timed out after 10000ms"))
    b = fp.group(ev("error", message="timed out after 30000ms"))
    w = fp.group(ev("log", level="warn", message="timed out after 10000ms"))
    assert a.error_type == b.error_type
    assert w.error_type != a.error_type and w.template == a.template


def test_cache_is_bounded_and_results_do_not_change():
    fp = Fingerprinter(cache_max=10)
    events = [ev("error", message=f"boom {i} at https://x.com/{i}") for i in range(35)]
    first = [fp.group(e) for e in events]
    assert len(fp._cache) <= 10
    assert [fp.group(e) for e in events] == first
    assert {g.template for g in first} == {"boom <int> at <url>"}


def test_cached_long_message_groups_like_its_first_line():
    fp = Fingerprinter()
    stack = "".join(f"\n    at f{i} (https://app/x.js:{i}:1)" for i in range(200))
    long_msg = "TypeError: boom 5" + stack
    assert len(long_msg) > 1000
    assert fp.group(ev("error", message=long_msg)) == fp.group(ev("error", message="TypeError: boom 7"))


def test_error_group_is_frozen():
    g = Fingerprinter().group(ev("error", message="x"))
    with pytest.raises(AttributeError):
        g.template = "y"  # type: ignore[misc]


# --- properties ------------------------------------------------------------------------------

_TOKENS = st.sampled_from([
    "https://", "http://x.com/", "data:text/plain,", "blob:", "@", "a@b.co", ".", ":", "::", "-",
    "/", "<", ">", "<int>", "0x", "0", "5", "255", "1.2.3.4", "fe80", "::1", "a", "f", "Z", "_", " ",
    "\n", "ms", "s", " s", "Dec 26 2025", "2025-12-26", "T10:00", "0123456789abcdef", "é", "٣", "๑",
    "秒", "😱", ",", "=", "'", "(", "v1.", "550e8400-e29b-41d4-a716-446655440000",
    "%", " %", "GB", " MB", "KiB", "b", "bytes", ".js", ".css", "[", "]", ":443", "9e83a65",
    "12345678", "ABCDEF1", "::1:3000", "2001:db8::1", "1.5", "index-", "='", '="', "<str>",
])
_ARBITRARY = st.one_of(
    st.text(),
    st.lists(_TOKENS, max_size=40).map("".join),
    st.lists(_TOKENS, min_size=80, max_size=200).map("".join),  # exercises the length cap
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ARBITRARY)
def test_normalise_never_raises_and_is_idempotent(text):
    template = normalise(text)
    assert isinstance(template, str) and template
    assert len(template) <= MAX_TEMPLATE_CHARS
    assert "\n" not in template
    assert normalise(template) == template


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=8))
def test_normalise_accepts_any_json_value(value):
    template = normalise(value)
    assert template == normalise(value)
    assert normalise(template) == template
