"""Every LogQL expression of the dashboards and alert rules is checked by a small LogQL parser.

The parser accepts the subset of LogQL the bundle uses (stream selectors, line filters, label
filters, `json` / `logfmt` / `label_format` / `line_format` / `keep` / `drop` stages, range
aggregations, vector aggregations with by/without, arithmetic / comparison / set binary
operators without on/ignoring, `vector()`, `label_replace()`, `offset`) and checks what a real
Loki would reject or silently get wrong:

* balanced (), {}, [] and terminated strings (it is a real tokenizer, not a regex);
* stream selectors use only the labels the exporter sets (`app`, `type`) or Loki adds
  (`service_name`), `type` values are the six the exporter writes, and a selector has a
  matcher that cannot match the empty string (Loki refuses queries without one);
* every label a filter, a `by (...)`, a template or `label_replace` reads exists at that point:
  stream labels, the structured metadata the exporter writes (session_id, page, error_type,
  event_time), fields of the event JSON extracted by `json`, or labels made by `label_format`;
* durations, function names and argument shapes are valid; Grafana variables are all known and
  were substituted (a `$` left over means a typo in a variable name);
* range aggregations follow Loki's rules (pkg/logql/syntax RangeAggregationExpr.validate):
  `unwrap` only with the functions that read a value, grouping only for avg/min/max/stddev/
  stdvar/quantile/first/last_over_time, and only label filters after `unwrap`;
* in a metric query every `json`, `logfmt`, `label_format` or `unwrap` stage is followed by a
  `__error__=""` filter: Loki fails the whole metric query on the first sample that carries an
  `__error__` label ("pipeline error: ... Use a label filter to intentionally skip this error"),
  so one unparsable line would blank the panel.

Running them on a real Loki, and comparing their values with the report, is
tests/test_bundle_loki.py (when LOKI_URL is set).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests import bundle_queries as bq

STREAM_LABELS = {"app", "type", "service_name"}
STREAM_TYPES = {"error", "log", "metric", "vital", "event", "other"}
METADATA = {"session_id", "page", "error_type", "event_time"}
LOKI_INTERNAL = {"__error__", "__error_details__"}
# Top-level fields of a telemetry event line, as `| json` flattens them (nested keys joined by _;
# a field named like a stream label gets the suffix _extracted).
EVENT_FIELDS = {"type_extracted", "timestamp", "sessionId", "url", "data", "_server"}
EVENT_JSON_ROOTS = {"type", "timestamp", "sessionId", "url", "data", "_server"}
# Loki's range aggregations: those counting lines (no unwrap), those reading an unwrapped value,
# and those that may be grouped (by/without after the parenthesis).
COUNTING_RANGE_FUNCS = {"count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time"}
UNWRAP_RANGE_FUNCS = {"sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "stddev_over_time",
                      "stdvar_over_time", "quantile_over_time", "first_over_time", "last_over_time",
                      "rate_counter", "rate", "absent_over_time"}
GROUPED_RANGE_FUNCS = {"avg_over_time", "min_over_time", "max_over_time", "stddev_over_time",
                       "stdvar_over_time", "quantile_over_time", "first_over_time", "last_over_time"}
RANGE_FUNCS = COUNTING_RANGE_FUNCS | UNWRAP_RANGE_FUNCS
UNWRAP_CONVERSIONS = {"duration", "duration_seconds", "bytes"}
# Stages that can fail on a line and then mark it with __error__ (which fails a metric query).
FALLIBLE_STAGES = {"json", "logfmt", "label_format", "unwrap"}
PIPELINE_STAGES = FALLIBLE_STAGES | {"line_format", "keep", "drop"}
AGG_FUNCS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "sort",
             "sort_desc"}
PARAM_AGGS = {"topk", "bottomk"}
# Functions of Loki's template engine (pkg/logql/log/fmt.go) plus Go template builtins.
TEMPLATE_FUNCS = {
    "ToLower", "ToUpper", "Replace", "Trim", "TrimLeft", "TrimRight", "TrimPrefix", "TrimSuffix",
    "TrimSpace", "regexReplaceAll", "regexReplaceAllLiteral", "count", "urldecode", "urlencode",
    "bytes", "duration", "duration_seconds", "unixEpochMillis", "unixEpochNanos", "toDateInZone",
    "b64enc", "b64dec", "lower", "upper", "title", "trunc", "substr", "contains", "hasPrefix",
    "hasSuffix", "indent", "nindent", "replace", "repeat", "trim", "trimAll", "trimSuffix",
    "trimPrefix", "int", "float64", "add", "sub", "mul", "div", "mod", "addf", "subf", "mulf",
    "divf", "max", "min", "maxf", "minf", "ceil", "floor", "round", "fromJson", "date", "toDate",
    "now", "unixEpoch", "default", "__line__", "__timestamp__",
    "printf", "print", "println", "len", "index", "not", "and", "or", "eq", "ne", "lt", "le", "gt",
    "ge", "if", "else", "end", "with", "range",
}
DURATION_RE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")


class LogQLError(ValueError):
    pass


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------
@dataclass
class Tok:
    kind: str   # str | raw | num | dur | ident | op | end
    text: str
    pos: int


_OPS = ["|=", "|~", "!=", "!~", "=~", "==", ">=", "<=", "=", ">", "<", "|", "+", "-", "*", "/", "%",
        "^", "(", ")", "{", "}", "[", "]", ","]


def tokenize(src: str) -> list[Tok]:
    toks, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            if j >= n:
                raise LogQLError(f"unterminated string at {i}")
            toks.append(Tok("str", src[i + 1:j].encode().decode("unicode_escape"), i))
            i = j + 1
        elif c == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise LogQLError(f"unterminated backtick string at {i}")
            toks.append(Tok("raw", src[i + 1:j], i))
            i = j + 1
        elif c.isdigit():
            m = DURATION_RE.match(src, i)
            if m and not (m.end() < n and (src[m.end()].isalnum() or src[m.end()] == "_")):
                toks.append(Tok("dur", m.group(), i))
                i = m.end()
                continue
            m = re.compile(r"\d+(?:\.\d+)?").match(src, i)
            if m.end() < n and (src[m.end()].isalpha() or src[m.end()] == "_"):
                raise LogQLError(f"bad number or duration at {i}: {src[i:i + 12]!r}")
            toks.append(Tok("num", m.group(), i))
            i = m.end()
        elif c.isalpha() or c == "_":
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(src, i)
            toks.append(Tok("ident", m.group(), i))
            i = m.end()
        else:
            for op in _OPS:
                if src.startswith(op, i):
                    toks.append(Tok("op", op, i))
                    i += len(op)
                    break
            else:
                raise LogQLError(f"unexpected character {c!r} at {i}")
    toks.append(Tok("end", "", n))
    return toks


# ----------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------
class Parser:
    """Recursive descent over the token list; every parse method returns the set of labels the
    (sub)expression's result carries, so grouping and label references can be checked."""

    def __init__(self, src: str):
        self.src = src
        self.toks = tokenize(src)
        self.i = 0
        self.unguarded: list[str] = []   # fallible stages of the current pipeline not yet guarded
        self.unwrapped = False           # the current pipeline has had its | unwrap

    # -- helpers
    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def at(self, kind: str, text: str | None = None, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind == kind and (text is None or t.text == text)

    def take(self, kind: str, text: str | None = None) -> Tok:
        t = self.peek()
        if not self.at(kind, text):
            want = text or kind
            raise LogQLError(f"expected {want!r} at {t.pos}, got {t.text or t.kind!r} in: {self.src}")
        self.i += 1
        return t

    def fail(self, msg: str):
        raise LogQLError(f"{msg} (at {self.peek().pos}) in: {self.src}")

    # -- entry points
    def parse(self) -> tuple[str, set[str]]:
        """('log', labels) for a log query, ('metric', labels) for a metric query."""
        if self.at("op", "{"):
            labels = self.log_expr()
            kind = "log"
        else:
            labels = self.expr()
            kind = "metric"
        if not self.at("end"):
            self.fail(f"unexpected {self.peek().text!r}")
        return kind, labels

    # -- log queries
    def selector(self) -> set[str]:
        self.take("op", "{")
        strong = False
        while True:
            name = self.take("ident").text
            if name not in STREAM_LABELS:
                self.fail(f"stream label {name!r} is not one the exporter sets ({sorted(STREAM_LABELS)})")
            op = self.take("op").text
            if op not in ("=", "!=", "=~", "!~"):
                self.fail(f"bad matcher operator {op!r}")
            value = self.take("str").text
            if op in ("=~", "!~"):
                try:
                    pattern = re.compile(value)
                except re.error as exc:
                    self.fail(f"bad regex {value!r}: {exc}")
            if name == "type" and op == "=" and value not in STREAM_TYPES:
                self.fail(f"type={value!r} is not a stream the exporter writes")
            if (op == "=" and value) or (op == "=~" and not pattern.fullmatch("")):
                strong = True
            if self.at("op", ","):
                self.take("op", ",")
                continue
            break
        self.take("op", "}")
        if not strong:
            self.fail("the selector needs a matcher that does not match the empty string")
        return set(STREAM_LABELS) | set(METADATA) | set(LOKI_INTERNAL)

    def log_expr(self) -> set[str]:
        self.unguarded, self.unwrapped = [], False
        labels = self.selector()
        return self.pipeline(labels)

    def pipeline(self, labels: set[str]) -> set[str]:
        while True:
            if self.unwrapped and (self.at("op", "|=") or self.at("op", "|~")
                                   or (self.at("op", "|") and self.peek(1).text in PIPELINE_STAGES)):
                self.fail("only label filters may follow | unwrap")
            if self.at("op", "|=") or self.at("op", "|~") or self.at("op", "!~") or self.at("op", "!="):
                op = self.take("op").text
                value = self.take("str").text
                if op.endswith("~"):
                    re.compile(value)
                while self.at("ident", "or"):
                    self.take("ident")
                    self.take("str")
            elif self.at("op", "|"):
                self.take("op", "|")
                labels = self.stage(labels)
            else:
                return labels

    def stage(self, labels: set[str]) -> set[str]:
        t = self.peek()
        if t.kind != "ident":
            self.fail("expected a pipeline stage after |")
        word = t.text
        if word in FALLIBLE_STAGES:
            self.unguarded.append(word)
        if word == "unwrap":
            self.take("ident")
            if self.peek().text in UNWRAP_CONVERSIONS and self.at("op", "(", 1):
                self.take("ident")
                self.take("op", "(")
                self.require(self.take("ident").text, labels)
                self.take("op", ")")
            else:
                self.require(self.take("ident").text, labels)
            self.unwrapped = True
            return labels
        if word == "json" or word == "logfmt":
            self.take("ident")
            params = []
            while self.at("ident") and self.at("op", "=", 1):
                name = self.take("ident").text
                self.take("op", "=")
                path = self.take("str").text
                if word == "json":
                    root = re.split(r"[.\[]", path, maxsplit=1)[0]
                    if root not in EVENT_JSON_ROOTS:
                        self.fail(f"json path {path!r} is not a field of a telemetry event")
                params.append(name)
                if not self.at("op", ","):
                    break
                self.take("op", ",")
            if params:
                return labels | set(params)
            if word == "json":
                return labels | EVENT_FIELDS | {"*json*"}  # flattened fields: data_*, _server_*
            self.fail("logfmt on JSON lines extracts nothing useful")
        if word == "label_format":
            self.take("ident")
            new = set()
            while True:
                name = self.take("ident").text
                self.take("op", "=")
                if self.at("raw") or self.at("str"):
                    self.check_template(self.take(self.peek().kind).text, labels)
                else:
                    self.require(self.take("ident").text, labels)
                new.add(name)
                if not self.at("op", ","):
                    break
                self.take("op", ",")
            return labels | new
        if word == "line_format":
            self.take("ident")
            self.check_template(self.take(self.peek().kind).text, labels)
            return labels
        if word in ("keep", "drop"):
            self.take("ident")
            names = {self.take("ident").text}
            while self.at("op", ","):
                self.take("op", ",")
                names.add(self.take("ident").text)
            return names & labels if word == "keep" else labels - names
        # label filter expression: name op value, joined by and / or / ,
        while True:
            name = self.take("ident").text
            self.require(name, labels)
            op = self.take("op").text
            if op not in ("=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="):
                self.fail(f"bad label filter operator {op!r}")
            value = self.peek()
            if value.kind not in ("str", "num", "dur"):
                self.fail("a label filter compares with a string, number or duration")
            self.i += 1
            if op in ("=~", "!~"):
                re.compile(value.text)
            if name == "__error__" and op == "=" and value.kind == "str" and value.text == "":
                self.unguarded = []
            if self.at("ident", "and") or self.at("ident", "or") or self.at("op", ","):
                self.i += 1
                continue
            return labels

    def require(self, name: str, labels: set[str]) -> None:
        if name in labels:
            return
        if "*json*" in labels and (name.startswith("data_") or name.startswith("_server_")):
            return
        self.fail(f"label {name!r} does not exist here: not a stream label, not structured metadata "
                  f"the exporter writes, not extracted by the pipeline")

    def check_template(self, tmpl: str, labels: set[str]) -> None:
        if tmpl.count("{{") != tmpl.count("}}"):
            self.fail(f"unbalanced {{{{ }}}} in template {tmpl!r}")
        for action in re.findall(r"\{\{(.*?)\}\}", tmpl, re.S):
            if action.count("(") != action.count(")"):
                self.fail(f"unbalanced parentheses in template action {action!r}")
            code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', action)
            for ref in re.findall(r"(?<![\w.])\.(\w+)", code):
                self.require(ref, labels)
            for word in re.findall(r"(?<![\w.$])([A-Za-z_]\w*)", code):
                if word not in TEMPLATE_FUNCS:
                    self.fail(f"unknown template function {word!r}")

    def log_range(self, func: str) -> set[str]:
        labels = self.log_expr()
        if self.unguarded:
            self.fail(f"metric query with | {' | '.join(self.unguarded)} and no | __error__=\"\" after it: "
                      "Loki fails the whole query on one line that does not parse")
        if self.unwrapped and func not in UNWRAP_RANGE_FUNCS:
            self.fail(f"invalid aggregation {func} with unwrap")
        if not self.unwrapped and func not in COUNTING_RANGE_FUNCS:
            self.fail(f"invalid aggregation {func} without unwrap")
        self.take("op", "[")
        self.take("dur")
        self.take("op", "]")
        if self.at("ident", "offset"):
            self.take("ident")
            self.take("dur")
        return labels

    # -- metric queries
    def expr(self) -> set[str]:
        return self.binary(0)

    LEVELS = [("or",), ("and", "unless"), ("==", "!=", ">", ">=", "<", "<="), ("+", "-"), ("*", "/", "%")]

    def binary(self, level: int) -> set[str]:
        if level == len(self.LEVELS):
            return self.power()
        left = self.binary(level + 1)
        while self.peek().text in self.LEVELS[level] and self.peek().kind in ("op", "ident"):
            self.i += 1
            if self.at("ident", "bool"):
                self.take("ident")
            group_side = None
            if self.at("ident", "on") or self.at("ident", "ignoring"):
                self.take("ident")
                self.label_list()
                if self.at("ident", "group_left") or self.at("ident", "group_right"):
                    group_side = self.take("ident").text
                    if self.at("op", "("):
                        self.label_list()
            right = self.binary(level + 1)
            if group_side == "group_left":
                continue                 # the "many" side (left) keeps its labels
            if group_side == "group_right":
                left = right
                continue
            left = left if level == 0 else (left | right if left and right else left or right)
        return left

    def label_list(self) -> list[str]:
        self.take("op", "(")
        names = []
        while not self.at("op", ")"):
            names.append(self.take("ident").text)
            if not self.at("op", ")"):
                self.take("op", ",")
        self.take("op", ")")
        return names

    def power(self) -> set[str]:
        base = self.unary()
        if self.at("op", "^"):
            self.take("op", "^")
            return base | self.power()
        return base

    def unary(self) -> set[str]:
        if self.at("op", "-") or self.at("op", "+"):
            self.i += 1
        return self.primary()

    def grouping(self) -> tuple[str, list[str]] | None:
        if self.at("ident", "by") or self.at("ident", "without"):
            how = self.take("ident").text
            return how, self.label_list()
        return None

    def apply_grouping(self, group, inner: set[str]) -> set[str]:
        if group is None:
            return set()
        how, names = group
        for name in names:
            self.require(name, inner)
        return set(names) if how == "by" else inner - set(names)

    def primary(self) -> set[str]:
        t = self.peek()
        if t.kind == "num":
            self.i += 1
            return set()
        if self.at("op", "("):
            self.take("op", "(")
            labels = self.expr()
            self.take("op", ")")
            return labels
        if t.kind != "ident":
            self.fail(f"unexpected {t.text!r}")
        name = t.text
        if name == "vector":
            self.take("ident")
            self.take("op", "(")
            self.take("num")
            self.take("op", ")")
            return set()
        if name == "label_replace":
            self.take("ident")
            self.take("op", "(")
            inner = self.expr()
            args = []
            for _ in range(4):
                self.take("op", ",")
                args.append(self.take("str").text)
            self.take("op", ")")
            dst, _repl, src, regex = args
            if not re.fullmatch(r"[A-Za-z_]\w*", dst):
                self.fail(f"label_replace: bad destination label {dst!r}")
            if src:
                self.require(src, inner)
            re.compile(regex)
            return inner | {dst}
        if name in RANGE_FUNCS:
            self.take("ident")
            self.take("op", "(")
            if name == "quantile_over_time":
                self.take("num")
                self.take("op", ",")
            inner = self.log_range(name)
            self.take("op", ")")
            group = self.grouping()
            if group is not None and name not in GROUPED_RANGE_FUNCS:
                self.fail(f"grouping not allowed for {name} aggregation")
            return inner if group is None else self.apply_grouping(group, inner)
        if name in AGG_FUNCS:
            self.take("ident")
            group = self.grouping()
            self.take("op", "(")
            if name in PARAM_AGGS:
                self.take("num")
                self.take("op", ",")
            inner = self.expr()
            self.take("op", ")")
            after = self.grouping()
            if group and after:
                self.fail("grouping given twice")
            group = group or after
            if name in ("topk", "bottomk", "sort", "sort_desc") and group is None:
                return inner
            return self.apply_grouping(group, inner)
        self.fail(f"unknown function or keyword {name!r}")


def check_logql(expr: str) -> str:
    """Raise LogQLError unless ``expr`` (variables already substituted) is plausible LogQL;
    return "log" or "metric"."""
    if "$" in expr:
        raise LogQLError(f"unsubstituted Grafana variable in: {expr}")
    kind, _labels = Parser(expr).parse()
    return kind


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------
QUERIES = bq.logql_queries()
ERROR_TYPE_SAMPLES = [".*", "0123456789ab", "(0123456789ab|ba9876543210)"]


def test_the_bundle_has_logql_to_check():
    where = {q.origin for q in QUERIES}
    assert where == {"panel", "alert"}
    assert len(QUERIES) >= 20


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_logql_is_plausible(query):
    for sample in ERROR_TYPE_SAMPLES:
        kind = check_logql(bq.substitute(query.expr, {"error_type": sample}))
    panel_type = None
    if query.origin == "panel":
        dash = next(d for p, d in bq.load_dashboards() if d["uid"] == query.dashboard_uid)
        panel_type = next(p["type"] for p in bq.iter_panels(dash) if p["id"] == query.panel_id)
    if panel_type == "logs":
        assert kind == "log", "a logs panel needs a log query"
    else:
        assert kind == "metric", "only logs panels may run log queries"
        assert query.instant or panel_type == "timeseries", "range metric queries belong in time series panels"


def test_variables_in_logql_are_defined_on_the_dashboard():
    for query in QUERIES:
        if query.origin != "panel":
            assert not bq.grafana_variables(query.expr), f"{query}: alert rules cannot use dashboard variables"
            continue
        dash = next(d for p, d in bq.load_dashboards() if d["uid"] == query.dashboard_uid)
        defined = {v["name"] for v in dash["templating"]["list"]} | set(bq.BUILTIN_SAMPLES)
        assert set(bq.grafana_variables(query.expr)) <= defined, query


GOOD = [
    '{app="saberloop"}',
    '{type="error"} |= "timeout" | error_type="0123456789ab"',
    'sum by (page) (count_over_time({app="a", type="error"} | page != "" [5m] offset 1d))',
    'sum by (operation) (count_over_time({type="metric"} | json operation="data.name" | __error__="" [1h]))',
    'sum by (data_level) (count_over_time({type="log"} | json | __error__="" [1h]))',
    '(sum(rate({type="error"}[5m])) or vector(0)) / 7',
    'topk(5, sum by (error_type) (count_over_time({type="error"}[1h])))',
    'sum by (h) (count_over_time({type="error"} | label_format h=`{{ printf "%02d" (mod (div (unixEpoch __timestamp__) 3600) 24) }}` | __error__="" [1h]))',
    'sum by (op) (count_over_time({type="metric"} | json op="data.name" | __error__="" [1h]))',
    'min_over_time({type="error"} | label_format t=`{{ __timestamp__ | unixEpochMillis }}` | unwrap t | __error__="" [1h]) by (error_type)',
    'quantile_over_time(0.9, {type="vital"} | json v="data.value" | unwrap v | __error__="" [1h]) by (type)',
    'sum by (page) (count_over_time({type="error"}[1h])) / ignoring(page) group_left sum(count_over_time({type="error"}[1h]))',
    'label_replace(vector(0), "hour", "00", "", "") or sum by (type) (count_over_time({type="error"}[1h]))',
    '{type="metric"} | json',  # a log query: an unparsable line only shows its __error__
]

BAD = [
    ('sum(count_over_time({app="saberloop"}[1h])', "unbalanced parenthesis"),
    ('sum(count_over_time({app="saberloop"[1h]))', "unbalanced brace"),
    ('{app="saberloop}', "unterminated string"),
    ('{job="saberloop"}', "label the exporter does not set"),
    ('{app=~".*"}', "no matcher that rejects the empty string"),
    ('{type="errors"}', "not a stream type"),
    ('{type="error"} | user_id="x"', "metadata the exporter does not write"),
    ('{type="error"} | data_message="x"', "parsed field without a parser"),
    ('{type="metric"} | json op="payload.name"', "json path outside the event"),
    ('sum by (operation) (count_over_time({type="metric"}[1h]))', "grouping by a label that does not exist"),
    ('count_over_time({type="error"}[5x])', "bad duration"),
    ('count_over_time({type="error"})', "range missing"),
    ('sum_over_time({type="error"}[1h])', "unwrap-only function without unwrap"),
    ('topk(sum(count_over_time({type="error"}[1h])))', "topk without k"),
    ('sum(count_over_time({app="$app"}[1h]))', "variable left"),
    ('sum by (h) (count_over_time({type="error"} | label_format h=`{{ hour __timestamp__ }}` [1h]))',
     "unknown template function"),
    ('sum by (h) (count_over_time({type="error"} | label_format h=`{{ .user }}` [1h]))',
     "template reads a missing label"),
    ('sum(count_over_time({type="error"}[1h])) on (app) sum(count_over_time({type="log"}[1h]))',
     "vector matching without an operator"),
    ('sum by (op) (count_over_time({type="metric"} | json op="data.name" [1h]))', "json without an __error__ guard"),
    ('sum by (h) (count_over_time({type="error"} | label_format h=`{{ .page }}` [1h]))',
     "label_format without an __error__ guard"),
    ('sum by (op) (count_over_time({type="metric"} | __error__="" | json op="data.name" [1h]))',
     "the guard comes before the parser"),
    ('min_over_time({type="error"} | label_format t=`{{ __timestamp__ | unixEpochMillis }}` | unwrap t [1h])',
     "unwrap without an __error__ guard"),
    ('count_over_time({type="error"} | label_format t=`{{ .page }}` | unwrap t | __error__="" [1h])',
     "count_over_time with unwrap"),
    ('count_over_time({type="error"}[1h]) by (error_type)', "grouping a count_over_time"),
    ('max_over_time({type="error"} | unwrap nothing_here | __error__="" [1h])', "unwrap of a missing label"),
    ('max_over_time({type="metric"} | json v="data.v" | unwrap v | json | __error__="" [1h])',
     "a parser after unwrap"),
]


@pytest.mark.parametrize("expr", GOOD)
def test_checker_accepts_valid_logql(expr):
    check_logql(expr)


@pytest.mark.parametrize("expr, why", BAD, ids=[w for _e, w in BAD])
def test_checker_rejects_broken_logql(expr, why):
    with pytest.raises(LogQLError):
        check_logql(expr)
