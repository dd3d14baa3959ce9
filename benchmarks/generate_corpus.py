"""Deterministic generator of realistic telemetry JSONL corpora (for benchmarks and tests).

    python -m benchmarks.generate_corpus --out DIR [--days 30] [--events N | --size 1GB]
        [--end-date 2025-12-31] [--seed 42] [--junk-rate 0.002] [--gzip-days K] [--long-lines]

Writes one ``telemetry-YYYY-MM-DD.jsonl`` file per day (the oldest ``K`` as ``.jsonl.gz``) in
the format the PHP endpoint appends, in server-receive order, plus ``manifest.json``: the ground
truth (counts by type, invalid lines by reason, sessions, error messages, ...) computed while
generating, never by re-reading the files.

How the corpus is made
----------------------
* Every day gets a share of the events (weekday/weekend rhythm); the share is split into
  sessions of varying length that start over the day (diurnal curve). A simulation driven by
  a heap keyed by server receive time interleaves the sessions' batches, so files come out in
  receive order while only the active sessions' pending batch is held in memory (constant
  memory, whatever the size).
* Clocks: every client clock is a few seconds off; ~10% of sessions are off by minutes to days
  (both directions): ``timestamp`` and ``batchSentAt`` carry the same client clock, the server's
  ``receivedAt`` is right. ~2% of batches are "late": the offline queue delivers them hours to
  3 days after the events, in the file of the delivery day. ~0.5% of events lack ``_server``
  (older format), ~0.6% of batches lack ``batchSentAt``. ~3% of sessions have no, an empty or a
  null ``sessionId``.
* Junk lines (at ``--junk-rate`` per event, between batches), each counted under the reason the
  importer gives it: not_json, invalid_utf8, not_object, bad_type, no_timestamp, too_long (only
  with ``--long-lines``). Blank lines (half the junk rate) are counted as ``blank``. When the
  junk rate is > 0, every reason (and a blank line) appears at least once, so small corpora get
  a little more junk than the rate says. One file starts with
  a UTF-8 BOM, one has CRLF line endings, and the last line of the last file has no newline
  (it is always a valid event).

Reading rules the manifest assumes (those of exporter.sources.files / exporter.events.parse):
lines are split on ``\\n``; a trailing ``\\r`` and a BOM at the start of a file are not part of
the line; an empty line is blank; a line longer than 256 KiB is ``too_long``; a valid event is a
JSON object with a non-empty string ``type`` and a usable time (an ISO ``timestamp`` or
``_server.receivedAt``).

Deterministic: the same arguments give byte-identical files (one ``random.Random`` per stream,
no wall clock, gzip written with mtime 0 and no file name).
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import math
import os
import random
import re
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson

__all__ = ["generate", "main", "parse_size"]

FORMAT_VERSION = 1
MAX_LINE_BYTES = 256 * 1024          # lines longer than this are "too_long" (Loki's max_line_size)
BOM = "\ufeff"
TYPES = ("event", "metric", "vital", "log", "error")
T_EVENT, T_METRIC, T_VITAL, T_LOG, T_ERROR = range(5)
INVALID_REASONS = ("not_json", "invalid_utf8", "not_object", "bad_type", "no_timestamp", "too_long")

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
APP = "https://saberloop.com/app/"
ASSETS = "https://saberloop.com/app/assets/"
API = "https://saberloop.com/api/"

_FLUSH_LINES = 16_384                # lines buffered per file before a write
BATCH_WINDOW_MS = 30_000             # the client flushes its queue at least every 30 s

# Fractions (per session / per batch / per event).
SKEWED_SESSION_RATE = 0.10
LATE_BATCH_RATE = 0.02
NO_SERVER_EVENT_RATE = 0.005
NO_BATCH_SENT_RATE = 0.006
NO_SESSION_RATES = (("missing", 0.015), ("empty", 0.010), ("null", 0.004))


# --------------------------------------------------------------------------------------------
# Pools: user agents, pages, texts. Everything variable is drawn from the seeded generator.
# --------------------------------------------------------------------------------------------

USER_AGENTS = (  # (family, user agent, weight)
    ("chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 22),
    ("chrome", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 8),
    ("chrome", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", 20),
    ("chrome", "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.107 Mobile Safari/537.36", 6),
    ("chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 6),
    ("chrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36", 2),
    ("safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Mobile/15E148 Safari/604.1", 14),
    ("safari", "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 3),
    ("safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", 4),
    ("firefox", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 7),
    ("firefox", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", 2),
    ("firefox", "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", 1),
    ("chrome", "Mozilla/5.0 (Linux; Android 9; SM-J600G) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", 3),
    ("chrome", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", 2),
)

TOPICS = (
    "World History", "Photosynthesis", "JavaScript Basics", "Fotossíntese", "Revolução Francesa",
    "Sistema Solar", "Equações do 2º grau", "日本の歴史", "光合成", "Organic Chemistry",
    "The Roman Empire", "Machine Learning 101", "Geografia de Portugal", "Anatomia humana",
    "Python for beginners", "Música clássica", "Astronomy", "Cell Biology", "Inglês: phrasal verbs",
    "Café ☕ e cultura", "Dinosaurs 🦖", "Portuguese grammar", "Linear Algebra", "Harry Potter",
)
DIFFICULTIES = ("easy", "medium", "hard")
LANGS = ("en", "en", "pt", "pt", "pt-BR", "ja", "es", "fr")
MODELS = ("gpt-4o-mini", "gemini-1.5-flash", "claude-3-haiku", "llama-3.1-8b")

ERROR_REASONS = ("timeout", "network_error", "rate_limited", "invalid_response", "server_error", "aborted")
METRICS = (  # name, weight, log-median duration ms, log-sigma, failure rate, failure reasons
    ("api_call", 45, 320, 0.8, 0.05, ("network_error", "server_error", "timeout", "rate_limited", "aborted")),
    ("quiz_generation", 20, 7_500, 0.6, 0.10, ("timeout", "invalid_response", "rate_limited", "server_error")),
    ("page_load", 15, 1_400, 0.6, 0.01, ("network_error", "timeout")),
    ("tts_request", 8, 900, 0.7, 0.06, ("network_error", "server_error", "timeout")),
    ("image_load", 7, 450, 0.9, 0.04, ("network_error", "aborted")),
    ("sync_progress", 5, 250, 0.7, 0.08, ("network_error", "server_error", "aborted")),
)
ENDPOINTS = ("/api/generate", "/api/quizzes", "/api/results", "/api/progress", "/api/tts", "/api/topics")

VITALS = (  # name, weight, log-median, log-sigma, good threshold, poor threshold, decimals
    ("LCP", 25, 1_900, 0.55, 2_500, 4_000, 0),
    ("FCP", 25, 1_300, 0.5, 1_800, 3_000, 0),
    ("TTFB", 20, 420, 0.7, 800, 1_800, 0),
    ("INP", 15, 140, 0.8, 200, 500, 0),
    ("CLS", 15, 0.05, 1.0, 0.1, 0.25, 4),
)

EVENT_NAMES = (  # name, weight
    ("page_view", 28), ("question_viewed", 16), ("question_answered", 18), ("quiz_started", 9),
    ("quiz_completed", 7), ("topic_selected", 8), ("audio_played", 4), ("explanation_opened", 4),
    ("share_clicked", 2), ("settings_changed", 2), ("install_prompt_shown", 1), ("login", 1),
)
PAGES = (("#/home", 20), ("#/topics", 14), ("#/quiz", 26), ("#/quiz?topic=", 8),
         ("#/results/", 14), ("#/settings", 5), ("#/history", 8), ("#/about", 2), ("#/quiz/", 3))

LOG_MESSAGES = {  # level -> templates ({n} number, {t} topic, {ms} duration, {h} hex)
    "warn": (
        "Slow network detected ({ms}ms), falling back to cached quiz",
        "localStorage quota nearly full ({n} KB used)",
        "Retrying request to /api/generate (attempt {n})",
        "Quiz generation took {ms}ms, above the 5000ms budget",
        "Service worker update failed, using cached version {h}",
        "Audio autoplay blocked by the browser",
        "Deprecated setting 'legacyMode' ignored",
        "Model response truncated, {n} questions instead of 10",
        "Aviso: conexão lenta detectada",
        "Clock skew of {n}s detected against server time",
    ),
    "info": (
        "Service worker registered",
        "Quiz cached for offline use: {t}",
        "User preferences loaded",
        "Offline queue flushed ({n} events)",
        "App version 2.{n}.0 started",
        "Voice selected: pt-BR-FranciscaNeural",
    ),
    "error": (
        "Failed to sync progress: server responded {n}",
        "Could not restore session state",
        "IndexedDB transaction aborted",
        "Speech synthesis error: interrupted",
    ),
}

FIRST_NAMES = ("maria", "joao", "ana", "pedro", "yuki", "haruto", "alex", "sam", "lucia", "tiago", "ines", "kenji")
LAST_NAMES = ("silva", "santos", "costa", "tanaka", "sato", "smith", "jones", "ferreira", "oliveira", "ito")
MAIL_DOMAINS = ("gmail.com", "outlook.com", "hotmail.com.br", "yahoo.co.jp", "escola.edu.pt", "icloud.com")
PROPS = ("map", "length", "questions", "score", "id", "options", "0", "text", "answers", "forEach")
NULL_PROPS = ("addEventListener", "style", "value", "focus", "classList", "getContext")
NOT_FUNCS = ("t.map", "e.questions.forEach", "navigator.share", "r.json", "n.then", "window.speechSynthesis.getVoices")
COMPONENTS = ("QuizView", "ResultsView", "HomeView", "TopicPicker", "SettingsView", "HistoryView", "AudioPlayer", "QuizGenerator")
FUNCS = ("render", "mount", "update", "onClick", "handleSubmit", "loadQuiz", "generateQuiz", "fetchJson",
         "parseQuestions", "renderQuestion", "nextQuestion", "saveProgress", "playAudio", "computeScore",
         "dispatch", "notify", "flush", "request", "withRetry", "h", "o", "e", "Object.apply")
ASSET_FILES = ("index-3f9a2b1c.js", "vendor-8d41e0aa.js", "QuizView-5c7e2f19.js", "ResultsView-a02b9c44.js", "sw.js")


def _wtable(items: list[tuple[object, float]], size: int = 1000) -> tuple:
    """A lookup table for weighted picks with one random(): table[int(random() * len)]."""
    total = sum(w for _, w in items)
    table: list[object] = []
    acc = 0.0
    for value, w in items:
        acc += w
        while len(table) < round(acc / total * size):
            table.append(value)
    return tuple(table)


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _short_sha(rng: random.Random) -> str:
    """A git short SHA (7 hex) with a letter: about 4% of real ones are all digits, and those
    read as a number to any grouping (exporter/events/fingerprint.py, as Sentry's ``git_sha``);
    the corpus keeps to the ones its ground truth (one warning type) holds for."""
    while True:
        h = _hex(rng, 7)
        if not h.isdigit():
            return h


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _email(rng: random.Random) -> str:
    return (f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{rng.randrange(100) if rng.random() < 0.5 else ''}"
            f"@{rng.choice(MAIL_DOMAINS)}")


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"2001:db8:{_hex(rng, 4)}::{_hex(rng, 3)}"


def _iso_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _net_message(rng: random.Random, family: str, now: int) -> str:
    return {"chrome": "Failed to fetch", "firefox": "NetworkError when attempting to fetch resource.",
            "safari": "Load failed"}[family]


# Error message templates: (template key, weight, builder(rng, browser family, now_ms) -> message).
# The key is the message with its variable parts as <placeholders> (None: the message is
# constant for a browser family and is its own key). Placeholders named in MEANINGFUL stand for
# text that tells bugs apart ('map' vs 'filter'): the error type (what grouping should find, see
# error_type()) is the key with those filled in from the message.
ERROR_TEMPLATES: tuple = (
    (None, 100, _net_message),   # the browser's own words for a failed fetch: the key is the message
    ("Request failed with status code <n>", 30,
     lambda r, f, n: f"Request failed with status code {r.choice((503, 503, 502, 500, 429, 404, 401, 403, 504))}"),
    ("timed out after <n>ms", 28, lambda r, f, n: f"timed out after {r.choice((10000, 10000, 30000, 30000, 60000, 5000))}ms"),
    ("Quiz generation failed: model returned invalid JSON at position <n>", 22,
     lambda r, f, n: f"Quiz generation failed: model returned invalid JSON at position {r.randrange(1, 4000)}"),
    ("Cannot read properties of undefined (reading '<prop>')", 26,
     lambda r, f, n: f"Cannot read properties of undefined (reading '{r.choice(PROPS)}')"),
    ("Cannot read properties of null (reading '<prop>')", 10,
     lambda r, f, n: f"Cannot read properties of null (reading '{r.choice(NULL_PROPS)}')"),
    ("undefined is not an object (evaluating '<expr>')", 8,
     lambda r, f, n: f"undefined is not an object (evaluating '{r.choice(('e.questions.length', 't.data.map', 'n.options[0]'))}')"),
    ("<expr> is not a function", 7, lambda r, f, n: f"{r.choice(NOT_FUNCS)} is not a function"),
    ("Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON", 9,
     lambda r, f, n: "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON"),
    ("Unexpected end of JSON input", 6, lambda r, f, n: "Unexpected end of JSON input"),
    ("JSON.parse: unexpected character at line <n> column <n> of the JSON data", 4,
     lambda r, f, n: f"JSON.parse: unexpected character at line {r.randrange(1, 40)} column {r.randrange(1, 120)} of the JSON data"),
    ("Failed to load quiz <url>", 8, lambda r, f, n: f"Failed to load quiz {API}quizzes/{r.randrange(1, 250000)}"),
    ("GET <url> 404 (Not Found)", 5, lambda r, f, n: f"GET {API}quizzes/{_uuid(r)} 404 (Not Found)"),
    ("Session <uuid> expired", 5, lambda r, f, n: f"Session {_uuid(r)} expired"),
    ("Asset integrity check failed for <path>", 3,
     lambda r, f, n: f"Asset integrity check failed for /app/assets/index-{_hex(r, 8)}.js"),
    ("ChunkLoadError: Loading chunk <n> failed. (missing: <url>)", 6,
     lambda r, f, n: f"ChunkLoadError: Loading chunk {r.randrange(10, 999)} failed. (missing: {ASSETS}chunk-{_hex(r, 8)}.js)"),
    ("Failed to fetch dynamically imported module: <url>", 7,
     lambda r, f, n: f"Failed to fetch dynamically imported module: {ASSETS}{r.choice(COMPONENTS)}-{_hex(r, 8)}.js"),
    ("Invalid email address: <email>", 3, lambda r, f, n: f"Invalid email address: {_email(r)}"),
    ("User <email> is not allowed to share quizzes", 2, lambda r, f, n: f"User {_email(r)} is not allowed to share quizzes"),
    ("Connection refused by <ip>:<port>", 3, lambda r, f, n: f"Connection refused by {_ip(r)}:{r.choice((443, 8080, 3000))}"),
    ("WebSocket connection to '<url>' failed", 4,
     lambda r, f, n: f"WebSocket connection to 'wss://saberloop.com/ws?token={_hex(r, 32)}' failed"),
    ("Quota exceeded: <n> requests since <date>", 3,
     lambda r, f, n: f"Quota exceeded: {r.randrange(50, 5000)} requests since {_iso_ms(n - r.randrange(DAY_MS))}"),
    ("Cached quiz from <date> is stale", 3, lambda r, f, n: f"Cached quiz from {_iso_ms(n - r.randrange(7 * DAY_MS))[:10]} is stale"),
    ("QuotaExceededError: The quota has been exceeded.", 3, lambda r, f, n: "QuotaExceededError: The quota has been exceeded."),
    ("ResizeObserver loop completed with undelivered notifications.", 8,
     lambda r, f, n: "ResizeObserver loop completed with undelivered notifications."),
    ("Script error.", 6, lambda r, f, n: "Script error."),
    ("AbortError: The user aborted a request.", 5, lambda r, f, n: "AbortError: The user aborted a request."),
    ("Maximum call stack size exceeded", 2, lambda r, f, n: "Maximum call stack size exceeded"),
    ("Rate limit exceeded, retry after <n>s", 6, lambda r, f, n: f"Rate limit exceeded, retry after {r.randrange(1, 120)}s"),
    ("Falha ao carregar o questionário <n>", 6, lambda r, f, n: f"Falha ao carregar o questionário {r.randrange(1, 5000)}"),
    ("Não foi possível gerar o quiz: tempo esgotado após <n> segundos", 3,
     lambda r, f, n: f"Não foi possível gerar o quiz: tempo esgotado após {r.choice((10, 30, 60))} segundos"),
    ("クイズの読み込みに失敗しました (ID: <n>)", 3, lambda r, f, n: f"クイズの読み込みに失敗しました (ID: {r.randrange(1, 90000)})"),
    ("ネットワークエラーが発生しました", 2, lambda r, f, n: "ネットワークエラーが発生しました"),
    ("Failed to render emoji 😅 in question <n>", 4, lambda r, f, n: f"Failed to render emoji 😅 in question {r.randrange(1, 11)}"),
    ("Answer <n> of question <n> out of range", 2,
     lambda r, f, n: f"Answer {r.randrange(4, 9)} of question {r.randrange(1, 11)} out of range"),
    ("VersionError: The requested version (<n>) is less than the existing version (<n>).", 2,
     lambda r, f, n: (lambda v: f"VersionError: The requested version ({v}) is less than the existing version ({v + 1}).")(r.randrange(2, 9))),
    ("SecurityError: Failed to read the 'localStorage' property from 'Window': Access is denied for this document.", 3,
     lambda r, f, n: "SecurityError: Failed to read the 'localStorage' property from 'Window': Access is denied for this document."),
    ("Payment <id> failed: card_declined", 1, lambda r, f, n: f"Payment pi_{_hex(r, 24)} failed: card_declined"),
    ("Speech synthesis failed for voice <voice> (error code <n>)", 2,
     lambda r, f, n: f"Speech synthesis failed for voice {r.choice(('pt-BR', 'pt-PT', 'en-US', 'ja-JP'))} (error code {r.randrange(1, 20)})"),
)

MEANINGFUL = frozenset({"prop", "expr", "voice"})
_PLACEHOLDER_RE = re.compile(r"<([a-z]+)>")
_TYPE_PATTERNS: dict[str, re.Pattern | None] = {}


def error_type(key: str | None, message: str) -> str:
    """The ground-truth error type of ``message`` made from template ``key``: the key with its
    MEANINGFUL placeholders replaced by the text the message has there."""
    if key is None:
        return message
    try:
        pattern = _TYPE_PATTERNS[key]
    except KeyError:
        parts = _PLACEHOLDER_RE.split(key)   # literal, name, literal, name, ..., literal
        if not MEANINGFUL.intersection(parts[1::2]):
            pattern = None
        else:
            pattern = re.compile("".join(
                re.escape(part) if i % 2 == 0 else ("(.+?)" if part in MEANINGFUL else "(?:.+?)")
                for i, part in enumerate(parts)))
        _TYPE_PATTERNS[key] = pattern
    if pattern is None:
        return key
    m = pattern.fullmatch(message)
    if m is None:
        raise ValueError(f"message {message!r} does not fit its template {key!r}")
    values = iter(m.groups())
    return _PLACEHOLDER_RE.sub(lambda p: next(values) if p.group(1) in MEANINGFUL else p.group(), key)


ERROR_NAMES = ("TypeError", "TypeError", "TypeError", "Error", "Error", "SyntaxError", "RangeError", "NetworkError")


def _frames(rng: random.Random, family: str, count: int) -> str:
    out = []
    for _ in range(count):
        fn = rng.choice(FUNCS)
        comp = rng.choice(COMPONENTS)
        url = ASSETS + rng.choice(ASSET_FILES)
        pos = f"{url}:{rng.randrange(1, 3)}:{rng.randrange(100, 99999)}"
        if family == "chrome":
            out.append(f"    at {comp}.{fn} ({pos})" if rng.random() < 0.8 else f"    at {pos}")
        else:
            out.append(f"{fn}@{pos}")
    return "\n".join(out)


_CLOCK_TABLES: tuple = ()


def _clock_tables() -> tuple:
    """("HH:MM:SS" for every second of a day, ".mmmZ" for every millisecond), built once."""
    global _CLOCK_TABLES
    if not _CLOCK_TABLES:
        _CLOCK_TABLES = (tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)),
                         tuple(f".{m:03d}Z" for m in range(1000)))
    return _CLOCK_TABLES


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------

class _Session:
    __slots__ = ("sid", "sid_part", "ua_part", "family", "url_part", "page", "offset", "skewed",
                 "remaining", "t", "gap", "table", "errored", "tail_limit")


class _File:
    """One day file being written: buffers lines (str), counts lines and bytes as it writes."""

    def __init__(self, path: Path, *, gz: bool, bom: bool, crlf: bool) -> None:
        self.path = path
        self.gz = gz
        self.bom = bom
        self.crlf = crlf
        self.nl = "\r\n" if crlf else "\n"
        raw = open(path, "wb")
        self._raw = raw
        # mtime=0 and no file name in the header: byte-identical output on every run.
        self.f = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) if gz else raw
        self.buf: list[str] = []
        self.lines = 0
        self.raw_bytes = 0
        self.events = 0
        self.invalid = 0
        self.blank = 0
        self.started = False
        self.trailing_newline = True

    def flush(self, *, final: bool = False) -> None:
        if not self.buf:
            return
        text = self.nl.join(self.buf)
        if not final:
            text += self.nl
        if self.bom and not self.started:
            text = BOM + text
        data = text.encode("utf-8", "surrogateescape")  # junk lines carry raw bytes as surrogates
        self.f.write(data)
        self.started = True
        self.raw_bytes += len(data)
        self.lines += len(self.buf)
        self.buf.clear()

    def close(self, *, last: bool = False) -> dict:
        self.flush(final=last)
        if last:
            self.trailing_newline = False
        if self.gz:
            self.f.close()
        self._raw.close()
        return {
            "name": self.path.name,
            "bytes": os.path.getsize(self.path),
            "raw_bytes": self.raw_bytes,
            "lines": self.lines,
            "events": self.events,
            "invalid": self.invalid,
            "blank": self.blank,
            "gzip": self.gz,
            "bom": self.bom and self.started,
            "crlf": self.crlf and (self.lines > 1 or (self.lines == 1 and self.trailing_newline)),
            "trailing_newline": self.trailing_newline and self.lines > 0,
        }


class _Generator:
    def __init__(self, *, days: int, events: int, end_date: date, seed: int, junk_rate: float,
                 gzip_days: int, long_lines: bool) -> None:
        self.days = days
        self.n_events = events
        self.end_date = end_date
        self.first_date = end_date - timedelta(days=days - 1)
        self.seed = seed
        self.junk_rate = junk_rate
        self.gzip_days = gzip_days
        self.long_lines = long_lines
        self.rng = random.Random(f"corpus:{seed}")          # sessions and events
        self.jrng = random.Random(f"junk:{seed}")           # junk lines (independent of events)
        self.period_start = int(datetime(self.first_date.year, self.first_date.month, self.first_date.day,
                                         tzinfo=timezone.utc).timestamp()) * 1000
        self.period_end = self.period_start + days * DAY_MS
        self._build_tables()
        # Ground truth.
        self.by_type = [0] * len(TYPES)
        self.warnings = 0
        self.failed_by_name: dict[str, int] = {}
        self.failed_by_reason: dict[str, int] = {}
        self.sessions: set[str] = set()
        self.sessions_with_errors: set[str] = set()
        self.error_messages: dict[str, int] = {}
        self.error_templates: dict[str, int] = {}
        self.error_types: dict[str, list] = {}              # type -> [count, sessions]
        self.error_type_of_message: dict[str, str] = {}
        self.warning_types: dict[str, list] = {}
        self.warning_type_of_message: dict[str, str] = {}
        self.invalid = dict.fromkeys(INVALID_REASONS, 0)
        self.blank = 0
        self.late_batches = self.late_events = 0
        self.skewed_sessions = self.skewed_events = 0
        self.no_server = self.no_batch_sent = self.no_session_events = 0
        self.seq = 0

    # ---- tables built once (speed: one random() per pick, preformatted strings) -------------

    def _build_tables(self) -> None:
        rng = random.Random(f"tables:{self.seed}")
        first_day = self.period_start // DAY_MS - 8      # clocks are off by at most 3 days
        self.day0 = first_day
        self.day_str = tuple((date(1970, 1, 1) + timedelta(days=first_day + i)).isoformat() + "T"
                             for i in range(self.days + 16))
        self.sod_str, self.ms_str = _clock_tables()
        self.ua_table = _wtable([((fam, ',"userAgent":' + orjson.dumps(ua).decode()), w)
                                 for fam, ua, w in USER_AGENTS])
        self.page_table = _wtable(list(PAGES))
        self.event_table = _wtable(list(EVENT_NAMES))
        self.metric_table = _wtable([(m, m[1]) for m in METRICS])
        self.vital_table = _wtable([(v, v[1]) for v in VITALS])
        self.level_table = _wtable([("warn", 50), ("info", 35), ("error", 15)])
        self.error_table = _wtable([(t, t[1]) for t in ERROR_TEMPLATES], 2000)
        # Type mixes per session profile; overall about event 45 / metric 25 / vital 15 / log 10 / error 5.
        self.profiles = _wtable([
            (_wtable([(T_EVENT, 47.5), (T_METRIC, 25.5), (T_VITAL, 15.5), (T_LOG, 10), (T_ERROR, 1.2)], 400), 65),
            (_wtable([(T_EVENT, 40), (T_METRIC, 24), (T_VITAL, 14), (T_LOG, 10), (T_ERROR, 10)], 400), 30),
            (_wtable([(T_EVENT, 30), (T_METRIC, 22), (T_VITAL, 10), (T_LOG, 12), (T_ERROR, 24)], 400), 5),
        ])
        # Pre-serialized "data" objects of events (other than page_view) and logs.
        pools: dict[str, tuple[str, ...]] = {}
        for name, _ in EVENT_NAMES:
            if name == "page_view":
                continue
            pool = []
            for _ in range(48):
                if name == "quiz_started":
                    props = {"topic": rng.choice(TOPICS), "difficulty": rng.choice(DIFFICULTIES),
                             "questionCount": rng.choice((5, 10, 10, 15, 20)), "language": rng.choice(LANGS)}
                elif name == "quiz_completed":
                    total = rng.choice((5, 10, 10, 15, 20))
                    props = {"score": rng.randrange(total + 1), "total": total,
                             "durationMs": rng.randrange(30_000, 900_000), "topic": rng.choice(TOPICS)}
                elif name in ("question_viewed", "question_answered"):
                    props = {"questionIndex": rng.randrange(10), "quizId": rng.randrange(1, 250_000)}
                    if name == "question_answered":
                        props["correct"] = rng.random() < 0.62
                        props["timeMs"] = rng.randrange(1_500, 60_000)
                elif name == "topic_selected":
                    props = {"topic": rng.choice(TOPICS), "source": rng.choice(("suggested", "search", "history"))}
                elif name == "settings_changed":
                    props = {"key": rng.choice(("theme", "language", "voice", "difficulty")),
                             "value": rng.choice(("dark", "light", "pt-BR", "en", "hard"))}
                elif name == "audio_played":
                    props = {"questionIndex": rng.randrange(10), "voice": rng.choice(("pt-BR", "en-US", "ja-JP"))}
                else:
                    props = {"source": rng.choice(("button", "menu", "banner"))}
                pool.append(orjson.dumps({"name": name, "properties": props}).decode())
            pools[name] = tuple(pool)
        self.event_pools = pools
        log_pools = {}
        log_messages: dict[str, list[tuple[str, str]]] = {}   # level -> [(template, message)]
        for level, templates in LOG_MESSAGES.items():
            pool = []
            made = log_messages[level] = []
            for i in range(160):
                template = templates[i % len(templates)]
                msg = template.format(
                    n=rng.randrange(1, 600), ms=rng.randrange(2_000, 20_000), t=rng.choice(TOPICS), h=_short_sha(rng))
                pool.append(orjson.dumps({"level": level, "message": msg}).decode())
                made.append((template, msg))
            log_pools[level] = tuple(pool)
        self.log_pools = log_pools
        # Warnings' ground truth: the template a pool entry was made from is its warning type.
        self.warn_pool_types = tuple(t for t, _ in log_messages["warn"])
        self.warn_messages = tuple(m for _, m in log_messages["warn"])
        self.frames = {fam: tuple(_frames(rng, fam, int(rng.lognormvariate(math.log(14), 0.6)) + 3)
                                  for _ in range(96)) for fam in ("chrome", "firefox", "safari")}
        self.contexts = tuple(
            [{"source": "window.onerror", "filename": ASSETS + rng.choice(ASSET_FILES),
              "lineno": 1, "colno": rng.randrange(100, 99_999)} for _ in range(16)]
            + [{"source": "unhandledrejection"}] * 8
            + [{"component": rng.choice(COMPONENTS), "action": rng.choice(FUNCS[:14])} for _ in range(24)]
            + [{"component": "QuizGenerator", "model": rng.choice(MODELS), "attempt": rng.randrange(1, 4),
                "topic": rng.choice(TOPICS)} for _ in range(12)]
            + [{}] * 4
        )

    # ---- time formatting ----------------------------------------------------------------------

    def ts(self, ms: int) -> str:
        d, rem = divmod(ms, DAY_MS)
        s, m = divmod(rem, 1000)
        return self.day_str[d - self.day0] + self.sod_str[s] + self.ms_str[m]

    def received(self, ms: int) -> str:
        d, rem = divmod(ms, DAY_MS)
        return self.day_str[d - self.day0] + self.sod_str[rem // 1000] + "+00:00"

    # ---- sessions --------------------------------------------------------------------------------

    def _day_quotas(self) -> list[int]:
        rng = random.Random(f"days:{self.seed}")
        weights = []
        for i in range(self.days):
            d = self.first_date + timedelta(days=i)
            w = (0.72 if d.weekday() >= 5 else 1.0) * (0.85 + 0.3 * rng.random())
            weights.append(w)
        total = sum(weights)
        exact = [self.n_events * w / total for w in weights]
        quotas = [int(x) for x in exact]
        order = sorted(range(self.days), key=lambda i: (quotas[i] - exact[i], i))
        for i in order[: self.n_events - sum(quotas)]:
            quotas[i] += 1
        return quotas

    _HOURS = (1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.6, 2.6, 3.2, 3.4, 3.5, 3.3, 3.4, 3.6, 3.8, 3.7, 3.5,
              3.4, 3.6, 3.9, 3.5, 2.6, 1.7)

    def _activate_day(self, i: int, quota: int, heap: list) -> None:
        """Create day i's sessions (start times, lengths) and schedule their first batch."""
        rng = self.rng
        r = rng.random
        hour_table = getattr(self, "_hour_table", None)
        if hour_table is None:
            hour_table = self._hour_table = _wtable(list(enumerate(self._HOURS)))
        mean_len = min(60.0, max(4.0, quota / 300))
        mu = math.log(mean_len) - 0.5
        cap = int(mean_len * 20)
        lengths = []
        left = quota
        while left > 0:
            n = min(left, cap, max(1, int(rng.lognormvariate(mu, 1.0)) + 1))
            lengths.append(n)
            left -= n
        day_start = self.period_start + i * DAY_MS
        starts = sorted(day_start + hour_table[int(r() * len(hour_table))] * HOUR_MS + int(r() * HOUR_MS)
                        for _ in lengths)
        for start, n in zip(starts, lengths):
            s = _Session()
            if r() < SKEWED_SESSION_RATE:
                s.skewed = True
                magnitude = math.exp(math.log(120_000) + r() * (math.log(3 * DAY_MS) - math.log(120_000)))
                s.offset = int(magnitude) * (1 if r() < 0.5 else -1)
                self.skewed_sessions += 1
                self.skewed_events += n
            else:
                s.skewed = False
                s.offset = int((r() - 0.4) * 12_000)
            x = r()
            sid = f"{start + s.offset - int(r() * 3000)}-{''.join(rng.choices('abcdefghijklmnopqrstuvwxyz0123456789', k=7))}"
            for kind, rate in NO_SESSION_RATES:
                if x < rate:
                    s.sid = None
                    s.sid_part = {"missing": "", "empty": ',"sessionId":""', "null": ',"sessionId":null'}[kind]
                    self.no_session_events += n
                    break
                x -= rate
            else:
                s.sid = sid
                s.sid_part = f',"sessionId":"{sid}"'
                self.sessions.add(sid)
            s.family, s.ua_part = self.ua_table[int(r() * len(self.ua_table))]
            s.page = "#/home" if r() < 0.7 else self._new_page()
            s.url_part = f',"url":"{APP}{s.page}"'
            s.remaining = n
            s.t = start
            s.gap = math.exp(math.log(2_000) + r() * (math.log(25_000) - math.log(2_000)))
            # Sessions never run past the end of the period (no file after --end-date).
            s.tail_limit = self.period_end - 120_000
            if start + n * s.gap * 1.5 > s.tail_limit:
                s.gap = max(20.0, (s.tail_limit - start) / (n * 1.5))
            s.table = self.profiles[int(r() * len(self.profiles))]
            s.errored = False
            self.seq += 1
            heapq.heappush(heap, (start, self.seq, None, s))

    def _new_page(self) -> str:
        r = self.rng.random
        page = self.page_table[int(r() * len(self.page_table))]
        if page == "#/results/" or page == "#/quiz/":
            return page + str(int(r() * 250_000) + 1)
        if page == "#/quiz?topic=":
            return page + self.rng.choice(("history", "biology", "math", "fotossintese", "javascript", "astronomy"))
        return page

    def _batch(self, s: _Session, floor: int) -> tuple[int, list[str], bool]:
        """Generate the session's next batch: (receive time ms, lines, late?).

        The hot loop of the generator: names are bound to locals, times are formatted from
        precomputed tables, lines are assembled with one f-string each.
        """
        rng = self.rng
        r = rng.random
        log = math.log
        exp = math.exp
        day_str, sod_str, ms_str, day0 = self.day_str, self.sod_str, self.ms_str, self.day0
        # Event times (true clock): up to k events within the client's 30 s flush window;
        # the client sends the batch a bit after the last one.
        k = min(s.remaining, 1 + int(r() * r() * 14))
        t = s.t
        gap = s.gap
        limit = s.tail_limit
        times = []
        for _ in range(k):
            # Events come in bursts (a page load brings a page_view, vitals, api calls...).
            x = r()
            nxt = t + (int(x * 2500) + 1 if x < 0.55 else int(-gap * log(1.0 - r())) + 1)
            if nxt > limit:
                nxt = limit
            if times and nxt - times[0] > BATCH_WINDOW_MS:
                break
            t = nxt
            times.append(t)
        k = len(times)
        s.remaining -= k
        s.t = t
        send = min(t + int(r() * 3000), limit)
        latency = 40 + int(r() * 900) if r() < 0.97 else 1000 + int(r() * 14_000)
        late = False
        if r() < LATE_BATCH_RATE:
            room = self.period_end - 1000 - send - latency
            if room > HOUR_MS:
                delay = int(exp(log(HOUR_MS) + r() * (log(min(room, 3 * DAY_MS)) - log(HOUR_MS))))
                send += delay
                late = True
        recv = send + latency
        if not late and recv < floor:
            recv = floor
        recv = min(recv, self.period_end - 1)
        off = s.offset
        no_sent = r() < NO_BATCH_SENT_RATE
        if no_sent:
            server = f',"_server":{{"receivedAt":"{self.received(recv)}"}}}}'
        else:
            server = f',"_server":{{"receivedAt":"{self.received(recv)}","batchSentAt":"{self.ts(send + off)}"}}}}'
        tail = s.sid_part + s.url_part + s.ua_part
        table = s.table
        ntable = len(table)
        by_type = self.by_type
        event_table, event_pools = self.event_table, self.event_pools
        metric_table, vital_table = self.metric_table, self.vital_table
        level_table, log_pools = self.level_table, self.log_pools
        lines = []
        append = lines.append
        nos = 0                                  # events of this batch without _server
        for et in times:
            typ = table[int(r() * ntable)]
            by_type[typ] += 1
            if typ == T_EVENT:
                name = event_table[int(r() * 1000)]
                if name == "page_view":
                    prev = s.page
                    s.page = page = self._new_page()
                    s.url_part = f',"url":"{APP}{page}"'
                    tail = s.sid_part + s.url_part + s.ua_part
                    data = f'{{"name":"page_view","properties":{{"page":"{page}","from":"{prev}"}}}}'
                else:
                    pool = event_pools[name]
                    data = pool[int(r() * len(pool))]
                tname = "event"
            elif typ == T_METRIC:
                name, _, median, sigma, fail_rate, reasons = metric_table[int(r() * 1000)]
                if r() < fail_rate:
                    reason = reasons[int(r() * len(reasons))]
                    dur = 30_000 if reason == "timeout" and name == "quiz_generation" else \
                        int(median * exp(sigma * 1.5 * (r() - 0.2)))
                    data = f'{{"name":"{name}","duration":{dur},"status":"error","error":"{reason}"}}'
                    self.failed_by_name[name] = self.failed_by_name.get(name, 0) + 1
                    self.failed_by_reason[reason] = self.failed_by_reason.get(reason, 0) + 1
                else:
                    dur = int(median * exp(sigma * (r() + r() + r() - 1.5) * 1.4)) + 1
                    if name == "api_call":
                        data = (f'{{"name":"api_call","duration":{dur},"status":"ok",'
                                f'"endpoint":"{ENDPOINTS[int(r() * 6)]}"}}')
                    else:
                        data = f'{{"name":"{name}","duration":{dur},"status":"ok"}}'
                tname = "metric"
            elif typ == T_VITAL:
                name, _, median, sigma, good, poor, decimals = vital_table[int(r() * 1000)]
                value = median * exp(sigma * (r() + r() + r() - 1.5) * 1.4)
                rating = "good" if value <= good else ("needs-improvement" if value <= poor else "poor")
                value = round(value, 4) if decimals else int(value)
                data = f'{{"name":"{name}","value":{value},"rating":"{rating}"}}'
                tname = "vital"
            elif typ == T_LOG:
                level = level_table[int(r() * 1000)]
                pool = log_pools[level]
                i = int(r() * len(pool))
                data = pool[i]
                if level == "warn":
                    self.warnings += 1
                    self._count_type(self.warning_types, self.warn_pool_types[i], s.sid)
                    self.warning_type_of_message[self.warn_messages[i]] = self.warn_pool_types[i]
                tname = "log"
            else:
                data = self._error_data(s, et)
                tname = "error"
            d, rem = divmod(et + off, DAY_MS)
            sec, ms = divmod(rem, 1000)
            if r() < NO_SERVER_EVENT_RATE:
                nos += 1
                append(f'{{"type":"{tname}","data":{data},"timestamp":"'
                       f'{day_str[d - day0]}{sod_str[sec]}{ms_str[ms]}"{tail}}}')
            else:
                append(f'{{"type":"{tname}","data":{data},"timestamp":"'
                       f'{day_str[d - day0]}{sod_str[sec]}{ms_str[ms]}"{tail}{server}')
        if no_sent:
            self.no_batch_sent += k - nos
        self.no_server += nos
        if late:
            self.late_batches += 1
            self.late_events += k
        return recv, lines, late

    def _error_data(self, s: _Session, now: int) -> str:
        """The "data" of an error event (counted into the ground truth)."""
        r = self.rng.random
        key, _, build = self.error_table[int(r() * 2000)]
        msg = build(self.rng, s.family, now)
        err = {"message": msg, "context": self.contexts[int(r() * len(self.contexts))]}
        if r() < 0.6:
            frames = self.frames[s.family]
            head = f"{ERROR_NAMES[int(r() * len(ERROR_NAMES))]}: {msg}\n" if s.family == "chrome" else ""
            err["stack"] = head + frames[int(r() * len(frames))]
        self.error_messages[msg] = self.error_messages.get(msg, 0) + 1
        etype = error_type(key, msg)
        self._count_type(self.error_types, etype, s.sid)
        self.error_type_of_message[msg] = etype
        key = key or msg
        self.error_templates[key] = self.error_templates.get(key, 0) + 1
        if s.sid is not None and not s.errored:
            s.errored = True
            self.sessions_with_errors.add(s.sid)
        return orjson.dumps(err).decode()

    @staticmethod
    def _count_type(types: dict[str, list], key: str, sid: str | None) -> None:
        """One more event of error/warning type ``key`` ([count, set of sessions])."""
        entry = types.get(key)
        if entry is None:
            entry = types[key] = [0, set()]
        entry[0] += 1
        if sid is not None:
            entry[1].add(sid)

    def _advance(self, s: _Session, floor: int, heap: list) -> None:
        """Schedule the session's next on-time batch (late ones are scheduled on their own)."""
        while s.remaining > 0:
            recv, lines, late = self._batch(s, floor)
            self.seq += 1
            heapq.heappush(heap, (recv, self.seq, lines, None if late else s))
            if not late:
                return

    # ---- junk --------------------------------------------------------------------------------

    def _junk(self, kind: str, victim: str, now: int) -> list[str]:
        """Lines of one junk item of this kind (usually one line; an HTML page is several)."""
        jr = self.jrng
        stamp = self.received(now)
        good_ts = self.ts(now - 1500)
        if kind == "not_json":
            v = jr.randrange(6)
            if v == 0:    # truncated line (cut on a character boundary, so still valid UTF-8)
                return [victim[: jr.randrange(10, max(11, len(victim) - 2))]]
            if v == 1:    # an HTML error page appended instead of JSON
                return ["<html>", "<head><title>502 Bad Gateway</title></head>",
                        "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.24.0</center></body>",
                        "</html>"]
            if v == 2:
                return ["PHP Warning:  file_put_contents(): Only 0 of 2113 bytes written, possibly out of free "
                        "disk space in /var/www/saberloop/api/telemetry.php on line 57"]
            if v == 3:    # two concurrent appends on one line
                return [victim + victim[: jr.randrange(20, 80)]]
            if v == 4:
                return ["{'type': 'error', 'data': {'message': 'Failed to fetch'}}"]
            return [jr.choice(("undefined", "[object Object]", "ok", "telemetry endpoint alive",
                               "--- log rotated ---", "<!DOCTYPE html>"))]
        if kind == "invalid_utf8":
            v = jr.randrange(3)
            if v == 0:    # Latin-1 text inside JSON
                raw = ('{"type":"error","data":{"message":"Falha ao carregar o question\udce1rio 7"},'
                       f'"timestamp":"{good_ts}","_server":{{"receivedAt":"{stamp}"}}}}')
                return [raw]
            if v == 1:    # a UTF-16 BOM / stray bytes
                return [f'{{"type":"log","data":{{"level":"warn","message":"\udcff\udcfe stray bytes"}},'
                        f'"timestamp":"{good_ts}"}}']
            # a line cut inside a multi-byte character (the rest of the request was lost)
            raw = ('{"type":"error","data":{"message":"クイズの読み込みに失敗しました"},"timestamp":"'
                   + good_ts + '"}').encode("utf-8")
            return [raw[: raw.index("に".encode("utf-8")) + 1].decode("utf-8", "surrogateescape")]
        if kind == "not_object":
            return [jr.choice(("[" + victim + "]", '"Failed to fetch"', "42", "null", "true", "[]",
                               f'[{{"type":"log","timestamp":"{good_ts}"}}]'))]
        if kind == "bad_type":
            v = jr.randrange(6)
            body = f'"data":{{"message":"Failed to fetch"}},"timestamp":"{good_ts}","_server":{{"receivedAt":"{stamp}"}}}}'
            return ['{' + body,
                    '{"type":"",' + body,
                    '{"type":null,' + body,
                    '{"type":42,' + body,
                    '{"type":["error"],' + body,
                    '{"type":{"name":"error"},' + body][v:v + 1]
        if kind == "no_timestamp":
            v = jr.randrange(5)
            data = '"data":{"level":"warn","message":"Audio autoplay blocked by the browser"}'
            return [
                f'{{"type":"log",{data},"sessionId":"1766744160751-qg4abun"}}',
                f'{{"type":"error","data":{{"message":"Failed to fetch"}},"timestamp":null}}',
                f'{{"type":"log",{data},"timestamp":"Invalid Date","_server":{{"receivedAt":"n/a","batchSentAt":"{good_ts}"}}}}',
                f'{{"type":"metric","data":{{"name":"api_call","duration":12}},"timestamp":"","_server":{{"batchSentAt":"{good_ts}"}}}}',
                f'{{"type":"event","data":{{"name":"page_view"}},"timestamp":"26/12/2025 10:16","_server":{{"receivedAt":""}}}}',
            ][v:v + 1]
        if kind == "too_long":
            # A recursion error with a huge stack: a valid event, but beyond Loki's line limit.
            frames = "\n".join(f"    at renderQuestion ({ASSETS}index-3f9a2b1c.js:1:{10_000 + i % 7})"
                               for i in range(jr.randrange(5_000, 7_000)))
            err = {"message": "Maximum call stack size exceeded", "stack": "RangeError: Maximum call stack size exceeded\n" + frames}
            line = (f'{{"type":"error","data":{orjson.dumps(err).decode()},"timestamp":"{good_ts}",'
                    f'"_server":{{"receivedAt":"{stamp}"}}}}')
            assert len(line.encode()) > MAX_LINE_BYTES
            return [line]
        raise ValueError(kind)

    _JUNK_KINDS = ("not_json", "invalid_utf8", "not_object", "bad_type", "no_timestamp")
    _JUNK_WEIGHTS = (40, 12, 14, 14, 20)

    # ---- main loop ---------------------------------------------------------------------------

    def run(self, out_dir: Path | None) -> tuple[list[dict], int]:
        """Write the files (or only count them when out_dir is None). Returns (files, raw bytes)."""
        quotas = self._day_quotas()
        days = self.days
        bom_day = min(1, days - 1)
        crlf_day = days // 2 if days >= 3 else days - 1
        heap: list = []
        files: list[dict] = []
        jr = self.jrng
        # Small corpora get at least every kind of junk (and blank lines), spread over the files.
        kinds = len(self._JUNK_KINDS)
        junk_gap = min(1.0 / self.junk_rate, self.n_events / (kinds + 1)) if self.junk_rate > 0 else 0.0
        blank_gap = min(2.0 / self.junk_rate, self.n_events / 3) if self.junk_rate > 0 else 0.0
        unseen = list(self._JUNK_KINDS)
        jr.shuffle(unseen)
        next_junk = junk_gap * (0.5 + jr.random()) if junk_gap else math.inf
        next_blank = blank_gap * (0.5 + jr.random()) if blank_gap else math.inf
        next_long = math.inf
        if self.long_lines:   # rare: one somewhere in the middle, then about one per 100 junk lines
            next_long = self.n_events / 2
        long_gap = junk_gap * 100 if junk_gap else max(self.n_events, 1)
        junk_seen = dict.fromkeys(self._JUNK_KINDS, 0)
        written = 0
        total_raw = 0
        cur: _File | None = None
        cur_day = -1
        next_day = 0
        dry = out_dir is None

        def open_day(i: int) -> _File | None:
            name = f"telemetry-{(self.first_date + timedelta(days=i)).isoformat()}.jsonl"
            gz = i < self.gzip_days
            if dry:
                return None
            return _File(out_dir / (name + ".gz" if gz else name), gz=gz, bom=i == bom_day, crlf=i == crlf_day)

        def add_junk(lines: list[str], kind: str, victim: str, now: int) -> None:
            junk = self._junk(kind, victim, now)
            self.invalid[kind] += len(junk)
            if kind in junk_seen:
                junk_seen[kind] += 1
            lines.extend(junk)
            if cur is not None:
                cur.invalid += len(junk)

        while True:
            while next_day < days and (not heap or heap[0][0] >= self.period_start + next_day * DAY_MS):
                self._activate_day(next_day, quotas[next_day], heap)
                next_day += 1
            if not heap:
                break
            key, _, lines, s = heapq.heappop(heap)
            if lines is None:          # a session starts: make its first batch
                self._advance(s, key, heap)
                continue
            day = (key - self.period_start) // DAY_MS
            if day != cur_day:
                while cur_day < day:
                    if cur is not None:
                        files.append(cur.close())
                        total_raw += files[-1]["raw_bytes"]
                    cur_day += 1
                    cur = open_day(cur_day)
            out = cur.buf if cur is not None else []
            n = len(lines)
            written += n
            # Junk and blank lines go between batches (they are separate requests).
            while written >= next_junk:
                kind = unseen.pop() if unseen else self._JUNK_KINDS[jr.choices(range(kinds), self._JUNK_WEIGHTS)[0]]
                add_junk(out, kind, lines[0], key)
                next_junk += junk_gap * (0.5 + jr.random())
            while written >= next_long:
                add_junk(out, "too_long", lines[0], key)
                next_long += long_gap * (0.5 + jr.random())
            while written >= next_blank:
                out.append("")
                self.blank += 1
                if cur is not None:
                    cur.blank += 1
                next_blank += blank_gap * (0.5 + jr.random())
            out.extend(lines)
            if cur is not None:
                cur.events += n
                if len(out) >= _FLUSH_LINES and not _nothing_left(heap, next_day, days):
                    cur.flush()
            else:
                total_raw += len("\n".join(out).encode("utf-8", "surrogateescape")) + 1
            if s is not None:
                self._advance(s, key, heap)

        # Every kind of junk at least once (when junk is asked for), before the last event line.
        if cur is not None:
            last = cur.buf.pop() if cur.buf else None
            extra: list[str] = []
            now = self.period_end - 60_000
            if self.junk_rate > 0:
                for kind in self._JUNK_KINDS:
                    if junk_seen[kind] == 0:
                        add_junk(extra, kind, last or "", now)
                if self.blank == 0:
                    extra.append("")
                    self.blank += 1
                    cur.blank += 1
            if self.long_lines and self.invalid["too_long"] == 0:
                add_junk(extra, "too_long", last or "", now)
            cur.buf.extend(extra)
            if last is not None:
                cur.buf.append(last)
            files.append(cur.close(last=True))
            total_raw += files[-1]["raw_bytes"]
            cur_day += 1
            while cur_day < days:    # (only when the last days got no line at all)
                empty = open_day(cur_day)
                files.append(empty.close())
                cur_day += 1
        return files, total_raw

    def manifest(self, files: list[dict], args: dict) -> dict:
        by_type = {t: self.by_type[i] for i, t in enumerate(TYPES)}
        return {
            "format_version": FORMAT_VERSION,
            "generator": {"module": "benchmarks.generate_corpus", "args": args},
            "period": {"first_date": self.first_date.isoformat(), "last_date": self.end_date.isoformat()},
            "files": files,
            "total_bytes": sum(f["bytes"] for f in files),
            "total_raw_bytes": sum(f["raw_bytes"] for f in files),
            "total_lines": sum(f["lines"] for f in files),
            "events_total": sum(self.by_type),
            "events_by_type": by_type,
            "invalid_total": sum(self.invalid.values()),
            "invalid_by_reason": dict(self.invalid),
            "blank_lines": self.blank,
            "errors": by_type["error"],
            "warnings": self.warnings,
            "failed_operations": {
                "total": sum(self.failed_by_name.values()),
                "by_name": dict(sorted(self.failed_by_name.items())),
                "by_reason": dict(sorted(self.failed_by_reason.items())),
            },
            "sessions": len(self.sessions),
            "sessions_with_errors": len(self.sessions_with_errors),
            "error_messages": dict(sorted(self.error_messages.items(), key=lambda kv: (-kv[1], kv[0]))),
            "error_templates": dict(sorted(self.error_templates.items(), key=lambda kv: (-kv[1], kv[0]))),
            "error_types": _types(self.error_types),
            "error_type_of_message": dict(sorted(self.error_type_of_message.items())),
            "warning_types": _types(self.warning_types),
            "warning_type_of_message": dict(sorted(self.warning_type_of_message.items())),
            "timing": {
                "skewed_sessions": self.skewed_sessions,
                "skewed_events": self.skewed_events,
                "late_batches": self.late_batches,
                "late_events": self.late_events,
                "events_without_server": self.no_server,
                "events_without_batch_sent_at": self.no_batch_sent,
            },
            "events_without_session": self.no_session_events,
            "definitions": {
                "line": "split on \\n; a trailing \\r and a UTF-8 BOM at the start of a file are not part of the line",
                "blank": "an empty line: neither an event nor invalid",
                "valid event": "a JSON object with a non-empty string 'type' and a usable time "
                               "(ISO 'timestamp' or '_server.receivedAt'), at most 256 KiB",
                "warnings": "events of type log with data.level 'warn'",
                "failed_operations": "events of type metric with data.status 'error' (by data.name, by data.error)",
                "sessions": "distinct non-empty string sessionId among valid events",
                "sessions_with_errors": "sessions with at least one valid event of type error",
                "error_messages": "data.message of type error events -> count",
                "error_templates": "the generator's message template (variable parts as <placeholders>) -> count",
                "error_types": "what grouping should find: the template with its meaningful parts "
                               "(a property name, an expression, a voice) filled in -> count and "
                               "distinct sessions",
                "error_type_of_message": "data.message of type error events -> its error type",
                "warning_types": "warnings by message template -> count and distinct sessions",
                "warning_type_of_message": "data.message of warnings -> its template",
            },
        }


def _types(types: dict[str, list]) -> dict[str, dict[str, int]]:
    """{type: {"count", "sessions"}}, most frequent first."""
    ordered = sorted(types.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {k: {"count": n, "sessions": len(sids)} for k, (n, sids) in ordered}


def _nothing_left(heap: list, next_day: int, days: int) -> bool:
    """True when nothing is left to write: keep the last line buffered (it loses its newline)."""
    return not heap and next_day >= days


def parse_size(text: str) -> int:
    """'200MB' -> 200_000_000, '1GiB' -> 1_073_741_824, '5000' -> 5000 (KB/MB/GB are decimal)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(I?)B?\s*", text.upper())
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 200MB, 1GB, 1.5GiB)")
    num, unit, binary = m.groups()
    base = 1024 if binary else 1000
    return int(float(num) * base ** "_KMGT".index(unit or "_"))


def generate(out_dir: Path, *, days: int = 30, events: int | None = None, size_bytes: int | None = None,
             end_date: date = date(2025, 12, 31), seed: int = 42, junk_rate: float = 0.002,
             gzip_days: int = 0, long_lines: bool = False) -> dict:
    """Generate a corpus in ``out_dir`` (created if needed) and return its manifest.

    ``events`` is the exact number of valid events; ``size_bytes`` asks for about that many
    (uncompressed) bytes instead. Without either: 3000 events per day. Existing telemetry files
    and manifest.json in ``out_dir`` are replaced; nothing else there is touched.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if events is not None and size_bytes is not None:
        raise ValueError("give events or size_bytes, not both")
    if not 0 <= junk_rate < 0.5:
        raise ValueError("junk_rate must be in [0, 0.5)")
    gzip_days = max(0, min(gzip_days, days))
    args = {"days": days, "events": events, "size_bytes": size_bytes, "end_date": end_date.isoformat(),
            "seed": seed, "junk_rate": junk_rate, "gzip_days": gzip_days, "long_lines": long_lines}
    common = dict(days=days, end_date=end_date, seed=seed, junk_rate=junk_rate, gzip_days=gzip_days,
                  long_lines=long_lines)
    if events is None:
        if size_bytes is None:
            events = 3000 * days
        else:  # calibrate bytes per event on a small dry run with the same settings
            probe = min(25_000, max(2_000, size_bytes // 500))
            _, raw = _Generator(events=probe, **{**common, "long_lines": False}).run(None)
            events = max(days, round(size_bytes * probe / raw))
    if events < 1:
        raise ValueError("events must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("telemetry-*.jsonl*"):
        old.unlink()
    gen = _Generator(events=events, **common)
    files, _ = gen.run(out_dir)
    manifest = gen.manifest(files, args)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.generate_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--days", type=int, default=30, help="number of daily files (default 30)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--events", type=int, help="exact number of valid events (default 3000 per day)")
    g.add_argument("--size", type=parse_size, help="about this many uncompressed bytes, e.g. 200MB, 1GB")
    p.add_argument("--end-date", type=date.fromisoformat, default=date(2025, 12, 31), help="last day (default 2025-12-31)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--junk-rate", type=float, default=0.002, help="junk lines per event (default 0.002)")
    p.add_argument("--gzip-days", type=int, default=0, help="write the oldest K days as .jsonl.gz")
    p.add_argument("--long-lines", action="store_true", help="also write rare lines > 256 KiB (too_long)")
    a = p.parse_args(argv)
    started = time.perf_counter()
    m = generate(a.out, days=a.days, events=a.events, size_bytes=a.size, end_date=a.end_date, seed=a.seed,
                 junk_rate=a.junk_rate, gzip_days=a.gzip_days, long_lines=a.long_lines)
    elapsed = time.perf_counter() - started
    mb = m["total_raw_bytes"] / 1e6
    print(f"{a.out}: {len(m['files'])} files, {m['total_lines']} lines, {m['events_total']} events, "
          f"{m['invalid_total']} invalid, {m['blank_lines']} blank, {m['total_bytes'] / 1e6:.1f} MB on disk; "
          f"{mb:.1f} MB in {elapsed:.2f}s = {mb / elapsed:.1f} MB/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
