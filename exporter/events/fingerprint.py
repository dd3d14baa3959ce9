r"""Error fingerprinting: group error messages the way Sentry groups them.

Approach
--------
Like Sentry's message parameterisation, an error's *template* is its message with the variable
parts replaced by placeholders, so "invalid JSON at position 123" and "... position 4567" are one
error type. The error type id is a short, stable hash of (kind, template), see
:func:`error_type_id`. Steps of :func:`normalise`:

1. Stringify. A non-string message is written deterministically: ``None``, blank strings and
   empty containers are ``"<no message>"``; dicts/lists are JSON with sorted keys; numbers are
   ``str``/``repr``; booleans ``true``/``false``.
2. First line only. Leading blank lines are skipped and the message is cut at the first line break
   (stack traces are not part of the message); at most :data:`MAX_LINE_CHARS` of that line are read.
   Whitespace runs become one space, the ends are trimmed.
3. User rules (from the config, see below): ``group`` rules first (the first that matches decides
   the template), then ``replace`` rules in config order.
4. Built-in placeholders, most specific first (the order matters):

   - ``<url>``: scheme URLs (``https://``, ``wss://``, ``chrome-extension://``, any
     ``scheme://``), ``blob:`` URLs and ``data:`` URLs (``data:[type/sub][;param],...``).
     Printable ASCII only (browsers percent-encode); a trailing ``.,;:!?`` is not part of it.
   - ``<email>``: ``local@domain.tld`` (ASCII).
   - ``<str>``: a quoted value right after ``=``: ``user='ana'``, ``id="42"`` (Sentry's
     ``quoted_str``); other quoted text is kept (see Decisions).
   - ``<uuid>``: 8-4-4-4-12 hex UUIDs, any version, either case.
   - ``<ip>``: IPv4 (octets <= 255) and IPv6 (validated with :mod:`ipaddress`; it must contain
     a digit, so C++/Rust paths such as ``a::b`` are kept), with its port and brackets if any:
     ``10.0.0.12:443``, ``[2001:db8::1]:443``, ``2001:db8::1`` and Node's unbracketed
     ``::1:3000`` are all one ``<ip>``, so the same failure with an IPv4 or an IPv6 address,
     with or without a port, is one error type.
   - ``<date>``: ISO dates and datetimes (``2025-12-26``, ``2025-12-26T10:16:03.046Z``,
     ``2025-12-26 10:16:03+01:00``) and English month-name dates (``Dec 26 2025``,
     ``26 Dec 2025``, JS ``Fri Dec 26 2025 10:16:03 GMT+0000``, HTTP
     ``Fri, 26 Dec 2025 10:16:03 GMT``).
   - ``<size>``: a number with a byte unit, optionally one space between: ``1.5GB``, ``2GB``,
     ``3.5 MB``, ``512 KiB``, ``10mb``, ``100 bytes`` (units: k/K M G T P, optional ``i``,
     then ``B`` or ``b``; ``byte``, ``bytes``). A bare ``B`` is not a unit (``Step 2B``).
   - ``<hash>``: hex runs of 16+ characters with at least one digit (sha1/sha256/md5, git ids,
     32-hex ids); 7 to 15 hex characters of one case with at least one digit AND one letter
     (git short SHAs ``9e83a65``, asset hashes ``f9b03a2d``; as in Sentry's ``git_sha``
     pattern); and, inside a file name, 8+ hex characters glued with ``-`` or ``.`` to the
     name before an extension, digits only included (``index-12345678.js``,
     ``main.abc123de.css``: bundlers' content hashes). Numbers of 16+ digits are ``<hash>``
     too: past 2**53 they are identifiers (snowflake ids, ns timestamps), not quantities.
     Words are kept: ``deadbeef`` and ``cafebabe`` have no digit, ``Faded2024`` mixes cases.
   - ``<hex>``: ``0x``-prefixed hex (``0xdeadbeef``).
   - ``<duration>``: a number with a time unit, optionally one space between: ``10000ms``,
     ``30 s``, ``1.5s``, ``2 min``, ``5 h``. Units (lowercase): ns us µs ms s sec secs second
     seconds m min mins minute minutes h hr hrs hour hours.
   - ``<percent>``: a number with ``%``, optionally one space between: ``12%``, ``12.5 %``.
   - ``<num>``: decimal and dotted numbers (``1.5``, ``-0.25``, ``1.2.3``).
   - ``<int>``: integers (``-5``, ``503``), in any script's decimal digits.

   The URL, e-mail, ``=``-quote and IPv6 passes run first (each skipped when the text cannot contain one);
   the rest is one regex alternation tried in the order above at every token start, so at a
   given position the most specific placeholder wins. A leading ``-`` is absorbed only by a
   plain number (``-5`` -> ``<int>``, ``-2025-12-26`` -> ``-<date>``).

   Every placeholder replaces a whole token: it only matches where the text around it is not
   a letter, digit or underscore. So digits inside words are kept (``utf8``, ``h2``,
   ``base64``, ``ES2020``, ``mp4``, ``2nd``, ``user_42``) while ``order-42`` gives
   ``order-<int>``. Scripts written without spaces (Chinese, Japanese, Korean, Thai, Lao,
   Khmer, Myanmar) count as separators, so ``30秒`` gives ``<int>秒``. Regexes are
   Unicode-aware and non-ASCII text is never removed.

5. The template is capped at :data:`MAX_TEMPLATE_CHARS`, cut at a token boundary.

Decisions
---------
* Quoted values are kept: ``Cannot read properties of undefined (reading 'map')`` stays as is,
  because the property name tells two different bugs apart ('map' vs 'filter'). Only a quoted
  value assigned with ``=`` (``field='ana'``) is a variable part, as in Sentry.
* HTTP status codes become ``<int>`` (``status code 503`` -> ``status code <int>``), as in
  Sentry: 502/503/504 of the same call are one error type. Split them with a rule if needed.
* Numbers glued to letters are words (``10px``, ``404NotFound``): fewer false merges, at the
  price of an occasional split; add a ``replace`` rule for such ids.
* A quantity with a unit is one placeholder whether it is whole or decimal (``1.5GB`` and
  ``2GB``, ``12%`` and ``12.5%``, ``2s`` and ``1.5s``); a plain ``1.5`` (``<num>``) and ``2``
  (``<int>``) stay apart, as in Sentry (float and int).
* An all-digit short hash cannot be told from a number: ``version 1234567`` is
  ``version <int>`` while ``version 9e83a65`` is ``version <hash>`` (about 4% of 7-hex git
  SHAs are all digits; Sentry makes the same trade-off). Only inside a file name, before an
  extension, is an all-digit run of 8+ a hash. Add a ``replace`` rule if a message needs it.
* Host names are kept (``api.example.com``): in an app's messages they name the service
  called, which tells failures apart; replace them with a rule if they vary.
* Side effects worth knowing: a bare time of day is ``<int>:<int>:<int>``, ``v1.2.3`` is
  ``v1.<num>`` (the major version glued to ``v`` stays), ``1,234`` is ``<int>,<int>``.
* :func:`normalise` is idempotent without user rules: ``normalise(normalise(m)) ==
  normalise(m)`` (property-tested). Placeholders are never split by the length cap.

Speed
-----
:class:`Fingerprinter` caches ErrorGroups per (kind, raw message) -- the message itself, or its
first line when longer than :data:`MAX_LINE_CHARS` -- in a dict of at most :data:`CACHE_MAX`
entries, cleared when full. Measured on a slow shared 2-core VM (CPython 3.11, best of 5):
a hit costs 0.5-1 us per event (1 us for a 3 KB message with a stack trace), a miss (normalise
+ sha256) 3-15 us, about 10 us for a typical mix; events that are not errors cost 0.2 us.

Rule format (YAML config, ``fingerprint.rules``)
------------------------------------------------
::

    fingerprint:
      rules:
        - match: 'Loading (CSS )?chunk \S+ failed'   # Python regex, re.search()
          group: 'Chunk load failures'                # the template IS this name
        - match: '\bsess_[A-Za-z0-9]+'
          replace: '<session>'                        # literal text, applied before built-ins

Each item has ``match`` and exactly one of ``replace`` / ``group``. Rules see the first line of
the message with whitespace collapsed, before any built-in placeholder. A ``group`` name is used
as is. A ``replace`` text is literal (no backreferences) and built-ins still run after it. Use
inline flags for options, e.g. ``(?i)``. Patterns matching the empty string are refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from exporter.events.model import Event

__all__ = [
    "ErrorGroup", "Fingerprinter", "Rule", "error_type_id", "normalise", "rules_from_config",
    "ERROR", "WARNING", "FAILED_OPERATION", "NO_MESSAGE", "UNNAMED",
    "MAX_TEMPLATE_CHARS", "MAX_LINE_CHARS", "CACHE_MAX",
]

ERROR = "error"
WARNING = "warning"
FAILED_OPERATION = "failed_operation"

NO_MESSAGE = "<no message>"
UNNAMED = "<unnamed>"

MAX_TEMPLATE_CHARS = 300    # templates are cut (at a token boundary) to this length
MAX_LINE_CHARS = 1000       # at most this much of the first line is read
CACHE_MAX = 50_000          # Fingerprinter cache entries; cleared when full

# ---------------------------------------------------------------------------------------------
# Building blocks

# Scripts written without spaces between words: their characters separate tokens (so "30秒"
# has a standalone number) although Python's \w counts them as word characters.
_SPACELESS = (
    "\u0e00-\u0e4f\u0e5a-\u0ecf\u0eda-\u0eff"     # Thai, Lao (not their digits)
    "\u1000-\u103f\u104a-\u108f\u109a-\u109f"     # Myanmar (not its digits)
    "\u1100-\u11ff"                               # Hangul Jamo
    "\u1780-\u17df\u17ea-\u17ff"                  # Khmer (not its digits)
    "\u2e80-\u2fdf"                               # CJK radicals, Kangxi
    "\u3000-\u312f"                               # CJK symbols, Hiragana, Katakana, Bopomofo
    "\u3130-\u318f"                               # Hangul compatibility Jamo
    "\u31a0-\u31ff"                               # Bopomofo ext, Katakana ext
    "\u3400-\u4dbf"                               # CJK ext A
    "\u4e00-\u9fff"                               # CJK unified ideographs
    "\ua960-\ua97f"                               # Hangul Jamo ext A
    "\uac00-\ud7ff"                               # Hangul syllables, Jamo ext B
    "\uf900-\ufaff"                               # CJK compatibility ideographs
    "\uff66-\uff9f"                               # halfwidth Katakana
    "\U00020000-\U0003134f"                       # CJK ext B..G
)
# Digits are always token characters (every placeholder relies on it), so the ranges above
# leave out the Thai, Lao, Myanmar and Khmer digits.
_W = f"[^\\W{_SPACELESS}]"     # a token character: \w minus the spaceless scripts
_B = f"(?<!{_W})"               # token start
_E = f"(?!{_W})"                # token end

_W_RE = re.compile(_W)

_URL_CHAR = r"[A-Za-z0-9\-._~:/?#@!$&*+,;=%]"
_URL_LAST = r"[A-Za-z0-9\-_~/#@$&*+=%]"      # a URL does not end with . , ; : ! ?
_URL_TAIL = f"{_URL_CHAR}*{_URL_LAST}"
_URL_END = f"(?!<|{_W})"                      # not before '<' either: see _cut()
_MIME = r"[A-Za-z0-9.+\-]+"

_URL = re.compile(
    f"(?=[A-Za-z]){_B}(?:"
    f"(?:blob:)?[A-Za-z][A-Za-z0-9+.\\-]*://{_URL_TAIL}"
    f"|blob:null/{_URL_TAIL}"
    f"|data:(?:{_MIME}/{_MIME})?(?:;{_MIME}(?:={_MIME})?)*,{_URL_TAIL}"
    f"){_URL_END}"
)
_EMAIL = re.compile(
    f"(?=[A-Za-z0-9]){_B}[A-Za-z0-9][A-Za-z0-9._%+\\-]*@[A-Za-z0-9][A-Za-z0-9.\\-]*\\.[A-Za-z]{{2,}}{_E}")
# A quoted value right after '=' (key='value', attr="value"): the value of a setting or a
# field, as in Sentry's quoted_str. Other quoted text is kept ("reading 'map'").
_ASSIGNED_QUOTE = re.compile(r"""(?<==)(?:'[^']+'|"[^"]+")""")
_HEX_RUN = "[0-9a-fA-F]"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PORT = r"(?::[0-9]{1,5}(?![0-9]))?"    # an optional ":port", part of the <ip> placeholder
# IPv6 candidates (validated by ipaddress): hex, ':' and '.' (IPv4-mapped), at least two ':',
# ending with a hex digit; either in brackets ("[2001:db8::1]:443", brackets and port included)
# or bare, not after a token character, ':', '.' or '>' (see _cut()).
_IPV6 = re.compile(
    f"\\[(?P<bracketed>[0-9a-fA-F:.]+)\\]{_PORT}{_E}"
    f"|(?=[0-9a-fA-F:])(?<![:.>]){_B}"
    f"(?P<bare>[0-9a-fA-F:.]*:[0-9a-fA-F:.]*:[0-9a-fA-F:.]*[0-9a-fA-F])(?![:.<]){_E}")
_TRAILING_PORT = re.compile(r":[0-9]{1,5}\Z")
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
          r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? "
_CLOCK = r"[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
_QUANTITY = r"\d+(?:\.\d+)?"      # the number in front of a unit: 2, 1.5
# A hash: 16+ hex characters with a digit (sha1/sha256/md5, 32-hex ids, 16+ digit numbers), or
# 7-15 hex characters of one case with a digit AND a letter (git short SHAs "9e83a65", asset
# hashes "f9b03a2d"). Words ("deadbeef", "Faded") have no digit or mix cases; numbers no letter.
_HASH = (f"(?=[a-fA-F]*[0-9])(?:{_HEX_RUN}{{16,}}"
         "|(?=[0-9]*[a-f])[0-9a-f]{7,15}|(?=[0-9]*[A-F])[0-9A-F]{7,15})")

# The digit family, one alternation tried in this order at every token start (one regex pass
# instead of eight). Each branch is a named group; the group name is the placeholder.
_FAMILY_BRANCHES = (
    ("uuid", f"{_HEX_RUN}{{8}}-{_HEX_RUN}{{4}}-{_HEX_RUN}{{4}}-{_HEX_RUN}{{4}}-{_HEX_RUN}{{12}}"),
    ("ip", f"(?<![0-9]\\.){_OCTET}(?:\\.{_OCTET}){{3}}(?!\\.[0-9]){_PORT}"),
    ("date", f"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}"
             f"(?:[T ]{_CLOCK}(?:Z|[+-][0-9]{{2}}(?::?[0-9]{{2}})?)?)?"
             f"|(?:{_WEEKDAY})?(?:{_MONTH}\\.? [0-9]{{1,2}},? |[0-9]{{1,2}} {_MONTH}\\.?,? )"
             f"[0-9]{{4}}(?: {_CLOCK})?(?: (?:GMT|UTC)(?:[+-][0-9]{{4}})?)?"),
    ("size", f"{_QUANTITY} ?(?:[kKmMgGtTpP]i?[bB]|bytes?)"),
    # A hash (see _HASH); or a content hash in a file name: 8+ hex characters, digits only
    # included, glued with '-' or '.' to a name and followed by an extension ("index-12345678.js")
    ("hash", f"{_HASH}|(?<=[0-9A-Za-z][-.])(?=[a-fA-F]*[0-9]){_HEX_RUN}{{8,}}"
             f"(?=\\.[A-Za-z][A-Za-z0-9]{{0,7}}{_E})"),
    ("hex", "0[xX][0-9a-fA-F]+"),
    ("duration", f"{_QUANTITY} ?(?:ns|us|µs|μs|ms|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)"),
    ("percent", f"{_QUANTITY} ?%"),
)
# A leading '-' belongs to a plain number only: "-5" -> <int>, but "-2025-12-26" -> -<date>.
_NOT_SPECIFIC = "(?!(?:" + "|".join(f"(?:{body})" for _, body in _FAMILY_BRANCHES) + f"){_E})"
_FAMILY = re.compile(
    "(?=[-\\dA-FJMNOSTWa-f])"  # possible first characters: a cheap filter, for speed only
    f"{_B}(?:"
    + "|".join(f"(?P<{name}>{body})" for name, body in _FAMILY_BRANCHES)
    + f"|(?P<num>(?:-{_NOT_SPECIFIC})?\\d+(?:\\.\\d+)+)"
    + f"|(?P<int>(?:-{_NOT_SPECIFIC})?\\d+)"
    + f"){_E}"
)
_PLACEHOLDER = {name: f"<{name}>" for name in ("uuid", "ip", "date", "size", "hash", "hex",
                                               "duration", "percent", "num", "int")}

# An id glued to a prefix with "_" (Stripe's pi_3f9c..., Sentry-style prefixed ids): the hex
# part of a token like "pi_bc653d52bd291df2e8b06f9c" is a hash although "_" joins the token.
_PREFIXED_HASH = re.compile(f"(?<=_)(?:{_HASH}){_E}")

_DIGIT = re.compile(r"\d")
_LEADING_WS = re.compile(r"\s*")
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ipv6(m: re.Match) -> str:
    """``<ip>`` for an IPv6 address, with its brackets and port if any; else the text as is.

    A bare address followed by a port (Node.js writes ``::1:3000``) is an address as a whole,
    or, when that is not valid, an address plus ``:port``: either way one ``<ip>``.
    """
    text = m.group("bracketed") or m.group("bare")
    if not _DIGIT.search(text):
        return m.group()
    if _is_ipv6(text):
        return "<ip>"
    if m.group("bare"):
        port = _TRAILING_PORT.search(text)
        if port and _is_ipv6(text[:port.start()]):
            return "<ip>"
    return m.group()


def _family(m: re.Match) -> str:
    return _PLACEHOLDER[m.lastgroup]


def _substitute(text: str) -> str:
    """Apply the built-in placeholders, most specific first. Cheap pre-checks skip passes."""
    if "://" in text or "data:" in text or "blob:" in text:
        text = _URL.sub("<url>", text)
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    if "='" in text or '="' in text:
        text = _ASSIGNED_QUOTE.sub("<str>", text)
    if not _DIGIT.search(text):
        return text  # every later placeholder needs a digit
    if "::" in text or text.count(":") >= 7:  # compressed or full form; not "10:16:03"
        text = _IPV6.sub(_ipv6, text)
    if "_" in text:
        text = _PREFIXED_HASH.sub("<hash>", text)
    return _FAMILY.sub(_family, text)


def _cut(text: str, limit: int = MAX_TEMPLATE_CHARS) -> str:
    """Cut ``text`` to at most ``limit`` chars without changing how the rest normalises.

    A cut at position p is safe (keeps normalise idempotent) when no placeholder could match
    differently once text[p:] is gone: text[p] is a separator that no pattern looks at (not a
    token char, not one of ``< > . :``), or text[p-1] is a non-ASCII non-digit character that
    no placeholder can end with. Placeholders are never split.
    """
    for p in range(limit, 0, -1):
        c = text[p]
        if c not in "<>.:" and not _W_RE.match(c):
            return text[:p].rstrip(" ")
        prev = text[p - 1]
        if not prev.isascii() and not prev.isdecimal():
            return text[:p].rstrip(" ")
    # One giant token: hard cut, then settle whatever the cut exposed at the end.
    out = text[:limit]
    for _ in range(4):
        again = _substitute(out)[:limit]
        if again == out:
            break
        out = again
    return out


# ---------------------------------------------------------------------------------------------
# Stringify and first line


def _present(value: object) -> bool:
    """A usable message value: not None, not a blank string, not an empty container."""
    if value is None:
        return False
    if isinstance(value, str):
        return not value.isspace() and value != ""
    if isinstance(value, (dict, list, tuple)):
        return len(value) > 0
    return True


def _to_text(message: object) -> str:
    """Deterministic text of a message of any JSON type ("" for None/empty)."""
    if isinstance(message, str):
        return message
    if message is None:
        return ""
    if isinstance(message, bool):
        return "true" if message else "false"
    if isinstance(message, int):
        try:
            return str(message)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            return "<int>"
    if isinstance(message, float):
        return repr(message)
    if isinstance(message, (dict, list, tuple)):
        if not message:
            return ""
        try:
            return orjson.dumps(message, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, ValueError):  # ints beyond 64 bits, odd keys
            try:
                return json.dumps(message, sort_keys=True, ensure_ascii=False, default=str,
                                  separators=(",", ":"))
            except (TypeError, ValueError):
                try:
                    return repr(message)
                except ValueError:
                    return f"<{type(message).__name__}>"
    return str(message)


def _first_line(text: str) -> str:
    """The first non-blank line (at most MAX_LINE_CHARS of it), not yet whitespace-collapsed."""
    start = _LEADING_WS.match(text).end()
    end = start + MAX_LINE_CHARS
    m = _LINE_BREAK.search(text, start, end)
    return text[start:m.start()] if m else text[start:end]


def _cache_key(message: object) -> str:
    """A string that normalises exactly like ``message`` (short messages: the message itself)."""
    text = message if isinstance(message, str) else _to_text(message)
    return text if len(text) <= MAX_LINE_CHARS else _first_line(text)


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True, slots=True)
class Rule:
    """A user rule: ``pattern`` -> ``replacement`` text, or -> fixed ``group`` name (one of them)."""

    pattern: re.Pattern
    replacement: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, re.Pattern) or not isinstance(self.pattern.pattern, str):
            raise ValueError(f"Rule.pattern must be a compiled str regex, not {self.pattern!r}")
        if (self.replacement is None) == (self.group is None):
            raise ValueError("a Rule needs exactly one of replacement= or group=")


_RULE_KEYS = frozenset({"match", "replace", "group"})


def rules_from_config(items: Sequence[Mapping] | None) -> list[Rule]:
    """Rules from the config's ``fingerprint.rules`` list; ValueError names the bad item's index."""
    if items is None:
        return []
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise ValueError(f"fingerprint rules must be a list of mappings, not {type(items).__name__}")
    rules: list[Rule] = []
    for i, item in enumerate(items):
        where = f"fingerprint rule #{i}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected a mapping with 'match' and 'replace' or 'group', "
                             f"got {type(item).__name__} {item!r}")
        unknown = sorted(str(k) for k in item if k not in _RULE_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                             f"(allowed: 'match', 'replace', 'group')")
        match = item.get("match")
        if not isinstance(match, str) or not match:
            raise ValueError(f"{where}: 'match' must be a non-empty regex string, got {match!r}")
        try:
            pattern = re.compile(match)
        except re.error as exc:
            raise ValueError(f"{where}: invalid regex {match!r}: {exc}") from None
        if pattern.fullmatch("") is not None:
            raise ValueError(f"{where}: regex {match!r} matches the empty string")
        replace, group = item.get("replace"), item.get("group")
        if (replace is None) == (group is None):
            raise ValueError(f"{where}: needs exactly one of 'replace' or 'group'")
        if replace is not None and not isinstance(replace, str):
            raise ValueError(f"{where}: 'replace' must be a string, got {replace!r}")
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise ValueError(f"{where}: 'group' must be a non-empty string, got {group!r}")
        rules.append(Rule(pattern, replacement=replace, group=group))
    return rules


def _split_rules(rules: Sequence[Rule]) -> tuple[tuple[tuple[re.Pattern, str], ...],
                                                 tuple[tuple[re.Pattern, str], ...]]:
    groups = tuple((r.pattern, r.group) for r in rules if r.group is not None)
    # Literal replacement: escape backslashes so re.sub does not read them as group references.
    replaces = tuple((r.pattern, r.replacement.replace("\\", "\\\\")) for r in rules
                     if r.group is None and r.replacement is not None)
    return groups, replaces


# ---------------------------------------------------------------------------------------------
# Public functions


def _normalise(message: object, groups, replaces) -> str:
    line = _first_line(_to_text(message))
    if not line or line.isspace():
        return NO_MESSAGE
    text = " ".join(line.split())
    for pattern, name in groups:
        if pattern.search(text):
            return name
    if replaces:
        for pattern, repl in replaces:
            text = pattern.sub(repl, text)
        text = " ".join(text.split())
        if not text:
            return NO_MESSAGE
    text = _substitute(text)
    if len(text) > MAX_TEMPLATE_CHARS:
        text = _cut(text)
    return text


def normalise(message: object, rules: Sequence[Rule] = ()) -> str:
    """The template of an error message: variable parts replaced by placeholders.

    ``message`` may be any JSON value (None/empty -> ``"<no message>"``). See the module
    docstring for the steps and the placeholder list. Uncached; :class:`Fingerprinter` caches.
    """
    groups, replaces = _split_rules(rules) if rules else ((), ())
    return _normalise(message, groups, replaces)


def error_type_id(kind: str, template: str) -> str:
    """Short stable id of (kind, template): the first 12 hex chars of sha256("kind\\0template")."""
    data = f"{kind}\x00{template}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """What an error-like event is an instance of."""

    kind: str            # "error" | "warning" | "failed_operation"
    error_type: str      # error_type_id(kind, template)
    template: str
    reason: str | None   # failed operations only: normalised data.error


class Fingerprinter:
    """Classifies events into ErrorGroups, with a bounded cache (raw messages repeat a lot)."""

    __slots__ = ("rules", "_groups", "_replaces", "_cache", "_cache_max")

    def __init__(self, rules: Sequence[Rule] = (), cache_max: int = CACHE_MAX) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._groups, self._replaces = _split_rules(self.rules)
        self._cache: dict[tuple, ErrorGroup] = {}
        self._cache_max = cache_max

    def normalise(self, message: object) -> str:
        """:func:`normalise` with this fingerprinter's rules (uncached)."""
        return _normalise(message, self._groups, self._replaces)

    def group(self, event: Event) -> ErrorGroup | None:
        """The event's ErrorGroup: errors, warnings and failed operations; None for anything else."""
        etype = event.type
        data = event.data if isinstance(event.data, dict) else {}
        if etype == "error":
            message = data.get("message")
            if not _present(message):
                for key in ("error", "reason", "name"):
                    value = data.get(key)
                    if _present(value):
                        message = value
                        break
            return self._group_message(ERROR, message)
        if etype == "log":
            level = data.get("level")
            if isinstance(level, str) and level.lower() in ("warn", "warning"):
                return self._group_message(WARNING, data.get("message"))
            return None
        if etype == "metric" and data.get("status") == "error":
            return self._group_failed(data.get("name"), data.get("error"))
        return None

    def _group_message(self, kind: str, message: object) -> ErrorGroup:
        key = (kind, _cache_key(message) if _present(message) else "")
        cache = self._cache
        group = cache.get(key)
        if group is None:
            template = _normalise(key[1], self._groups, self._replaces)
            group = ErrorGroup(kind, error_type_id(kind, template), template, None)
            if len(cache) >= self._cache_max:
                cache.clear()
            cache[key] = group
        return group

    def _group_failed(self, name: object, error: object) -> ErrorGroup:
        name_text = _to_text(name) if _present(name) else UNNAMED
        reason_key = _cache_key(error) if _present(error) else None
        key = (FAILED_OPERATION, name_text, reason_key)
        cache = self._cache
        group = cache.get(key)
        if group is None:
            reason = (_normalise(reason_key, self._groups, self._replaces)
                      if reason_key is not None else None)
            group = ErrorGroup(FAILED_OPERATION, error_type_id(FAILED_OPERATION, name_text),
                               name_text, reason)
            if len(cache) >= self._cache_max:
                cache.clear()
            cache[key] = group
        return group
