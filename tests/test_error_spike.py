"""The "Error spike" rule, beyond its structure: its queries measure what its summary says, and its
math/threshold chain decides as documented ("at least 10 errors in the last 15 minutes and more
than 3x the usual level, the same 15-minute window of the day averaged over the previous 7 days").

No Loki or Grafana runs here, so the rule cannot be evaluated end to end. What is checked, from the
rule as provisioned (nothing copied):

* the two Loki queries: "now" is the error count of the last 15 minutes; "usual" is the mean of
  exactly the same count 1, 2, ... 7 days earlier (same selector, same window, one `offset` per
  day, each term `or vector(0)` so a day without errors counts 0 instead of blanking the mean);
* the chain: SPIKE is a math expression over reduce(last) of each query, and it is the condition;
* Grafana's math expression (comparisons and && give 1 or 0; the rule fires when the condition
  is non-zero) evaluated on sample values: the boundaries (10 errors, exactly 3x) and daily
  patterns that must and must not fire.
"""

from __future__ import annotations

import re

import pytest

from tests import bundle_queries as bq

RULE = next(r for _p, _g, r in bq.alert_rules() if r["title"] == "Error spike")
DATA = {d["refId"]: d for d in RULE["data"]}


def _term(expr: str) -> tuple[str, str, str | None]:
    """`sum(count_over_time(SELECTOR[RANGE] [offset D])) or vector(0)` -> (selector, range, offset)."""
    m = re.fullmatch(r"\(?\s*sum\(count_over_time\((\{[^}]*\}[^\[]*)\[(\w+)\](?:\s+offset\s+(\w+))?\)\)\s+or\s+vector\(0\)\s*\)?",
                     expr.strip())
    assert m, f"not a `sum(count_over_time(...)) or vector(0)` term: {expr}"
    return m.group(1).strip(), m.group(2), m.group(3)


def test_now_and_usual_count_the_same_window():
    now_sel, now_range, now_offset = _term(DATA["NOW_15M"]["model"]["expr"])
    assert now_offset is None and bq.duration_s(now_range) == 15 * 60
    assert "type=\"error\"" in now_sel
    usual = DATA["USUAL_15M"]["model"]["expr"]
    m = re.fullmatch(r"\s*\((.*)\)\s*/\s*(\d+)\s*", usual, re.S)
    assert m, "usual level = (sum of the days) / number of days"
    days = int(m.group(2))
    terms = [_term(t) for t in re.split(r"\)\s*\+\s*\(", m.group(1).strip())]
    assert days == 7 and len(terms) == days
    assert [bq.duration_s(off) for _s, _r, off in terms] == [d * 86400 for d in range(1, days + 1)], \
        "one term per previous day, 1d .. 7d ago"
    assert all(sel == now_sel and rng == now_range for sel, rng, _o in terms), \
        "the usual level must count what 'now' counts, over the same window"
    for ref in ("NOW_15M", "USUAL_15M"):
        rtr = DATA[ref]["relativeTimeRange"]
        assert rtr["from"] - rtr["to"] >= 15 * 60 and DATA[ref]["model"]["queryType"] == "instant"


def test_chain_is_math_over_the_last_values():
    assert RULE["condition"] == "SPIKE" and DATA["SPIKE"]["model"]["type"] == "math"
    for ref, query in (("NOW", "NOW_15M"), ("USUAL", "USUAL_15M")):
        model = DATA[ref]["model"]
        assert model["type"] == "reduce" and model["reducer"] == "last" and model["expression"] == query
    assert set(bq._expression_refs(DATA["SPIKE"]["model"])) == {"NOW", "USUAL"}
    assert RULE["noDataState"] == "OK", "no errors at all is not an alert"


def grafana_math(expression: str, values: dict[str, float]) -> float:
    """Grafana server-side math on numbers: $REF, numbers, + - * / , comparisons and && / ||
    (comparisons and logical operators give 1 or 0)."""
    if not re.fullmatch(r"[\s$\w.()+\-*/<>=!&|]*", expression):
        raise ValueError(f"outside the evaluated subset: {expression}")
    py = re.sub(r"\$\{?(\w+)\}?", lambda m: f"V[{m.group(1)!r}]", expression)
    py = py.replace("&&", " and ").replace("||", " or ")
    return float(eval(py, {"__builtins__": {}}, {"V": values}))  # noqa: S307 - checked above


def fires(now: float, usual: float) -> bool:
    return grafana_math(DATA["SPIKE"]["model"]["expression"], {"NOW": now, "USUAL": usual}) != 0


@pytest.mark.parametrize("now, usual, expected, why", [
    (0, 0, False, "no errors"),
    (9, 0, False, "below the minimum of 10 errors, however quiet it usually is"),
    (10, 0, True, "10 errors where there are usually none"),
    (10, 3.3, True, "just over 3x"),
    (30, 10, False, "exactly 3x is not more than 3x"),
    (31, 10, True, "more than 3x"),
    (200, 80, False, "a busy window that is usually busy"),
])
def test_spike_threshold(now, usual, expected, why):
    assert fires(now, usual) is expected, why


def _usual(previous_days: list[int]) -> float:
    """What USUAL_15M evaluates to: the same window's counts 1..7 days ago, averaged (a day with
    no errors counts 0, thanks to `or vector(0)`)."""
    assert len(previous_days) == 7
    return sum(previous_days) / 7


def test_daily_patterns():
    # a peak at the same time every day is the usual level, not a spike
    assert not fires(40, _usual([38, 41, 39, 45, 37, 40, 42]))
    # a burst in a normally quiet window is
    assert fires(25, _usual([1, 0, 2, 0, 1, 3, 0]))
    # a first week of data (days without any error) still works: missing days count 0
    assert fires(12, _usual([3, 0, 0, 0, 0, 0, 0]))
    # one bad day last week raises the bar for a week, as a mean does
    assert not fires(20, _usual([0, 0, 50, 0, 0, 0, 0]))
