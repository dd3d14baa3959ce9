"""Every PromQL and LogQL expression of the Grafana bundle, EXTRACTED from the provisioning files.

The bundle tests (structure, LogQL, promtool, Prometheus end-to-end) get their expressions from
here and never keep a copy of one: editing a dashboard or an alert rule changes what is tested.

Sources:
  * grafana/provisioning/dashboards/**/*.json  - panel targets (rows' nested panels included) and
    query variables;
  * grafana/provisioning/alerting/*.yaml       - the data queries of every alert rule;
  * grafana/provisioning/datasources/*.yaml    - datasource uid -> type (prometheus / loki).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROVISIONING = ROOT / "grafana" / "provisioning"
DATASOURCES_DIR = PROVISIONING / "datasources"
DASHBOARDS_DIR = PROVISIONING / "dashboards"
ALERTING_DIR = PROVISIONING / "alerting"
COMPOSE_FILE = ROOT / "docker-compose.telemetry.yml"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
PROMTOOL_TESTS_DIR = ROOT / "prometheus" / "tests"
LOKI_CONFIG = ROOT / "loki" / "loki-config.yaml"

#: Name of the rule file that tests/test_promtool.py generates from the Grafana alert rules;
#: prometheus/tests/*.yml list it under rule_files.
GENERATED_RULES_NAME = "grafana_alert_rules.generated.yml"

EXPR_DATASOURCE = "__expr__"          # Grafana server-side expressions in alert rules
MIXED_DATASOURCE = "-- Mixed --"      # a panel whose targets each name their datasource
GRAFANA_DATASOURCE = "-- Grafana --"  # built-in annotations
LANGUAGE_OF_TYPE = {"prometheus": "promql", "loki": "logql"}

#: Sample values for Grafana's built-in variables (durations as Grafana would render them).
BUILTIN_SAMPLES = {
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
    "__auto": "1m", "__interval": "1m", "__interval_ms": "60000", "__rate_interval": "1m",
}
#: Sample values for the dashboards' own variables (".*" is their "All" value).
VARIABLE_SAMPLES = {"app": "saberloop", "error_type": ".*", "instance": ".*"}

_VAR_RE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class Query:
    """One query of the bundle, with where it comes from."""

    origin: str                 # "panel" | "variable" | "alert"
    file: Path
    where: str                  # human-readable location, for failure messages
    ref_id: str
    datasource_uid: str
    language: str               # "promql" | "logql" | "" (unknown datasource type)
    expr: str
    instant: bool = False
    legend: str | None = None
    dashboard_uid: str | None = None
    panel_id: int | None = None
    panel_title: str | None = None
    rule_uid: str | None = None
    rule_title: str | None = None
    raw: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __str__(self) -> str:  # shown by pytest ids / messages
        return self.where


_DUR_RE = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DUR_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def duration_s(text: str | int) -> float:
    """Prometheus/Grafana/Loki duration ("90s", "2h", "1h30m", "0") -> seconds; ValueError otherwise."""
    text = str(text).strip()
    if text == "0":
        return 0.0
    m = _DUR_RE.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(g) * u for g, u in zip(m.groups(), _DUR_UNITS) if g)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*") if p.suffix in (".yaml", ".yml"))


def load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def datasource_files() -> list[Path]:
    return _yaml_files(DATASOURCES_DIR)


def datasources() -> dict[str, dict]:
    """Provisioned datasources by uid."""
    out: dict[str, dict] = {}
    for path in datasource_files():
        for ds in load_yaml(path).get("datasources") or []:
            out[ds["uid"]] = ds
    return out


def dashboard_provider_files() -> list[Path]:
    return _yaml_files(DASHBOARDS_DIR)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.rglob("*.json"))


def load_dashboards() -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in dashboard_files()]


def alerting_files() -> list[Path]:
    return _yaml_files(ALERTING_DIR)


def load_alerting() -> list[tuple[Path, dict]]:
    return [(p, load_yaml(p)) for p in alerting_files()]


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels") or []:
        yield panel
        for inner in panel.get("panels") or []:
            yield inner


def alert_rules() -> list[tuple[Path, dict, dict]]:
    """(file, group, rule) for every provisioned alert rule."""
    out = []
    for path, doc in load_alerting():
        for group in doc.get("groups") or []:
            for rule in group.get("rules") or []:
                out.append((path, group, rule))
    return out


# ----------------------------------------------------------------------------------------------
# Queries
# ----------------------------------------------------------------------------------------------
def _language(uid: str, ds_type: str | None = None) -> str:
    if not ds_type:
        ds_type = (datasources().get(uid) or {}).get("type", "")
    return LANGUAGE_OF_TYPE.get(ds_type, "")


def _target_datasource(panel: dict, target: dict) -> dict:
    ds = target.get("datasource") or panel.get("datasource") or {}
    if isinstance(ds, str):  # legacy: datasource name or uid as a plain string
        ds = {"uid": ds}
    if ds.get("uid") == MIXED_DATASOURCE and target.get("datasource"):
        ds = target["datasource"]
    return ds


def panel_queries() -> list[Query]:
    out = []
    for path, dash in load_dashboards():
        for panel in iter_panels(dash):
            for target in panel.get("targets") or []:
                ds = _target_datasource(panel, target)
                uid = ds.get("uid", "")
                instant = bool(target.get("instant")) or target.get("queryType") == "instant"
                out.append(Query(
                    origin="panel", file=path,
                    where=f"{dash.get('uid')} / panel {panel.get('id')} '{panel.get('title')}' / {target.get('refId')}",
                    ref_id=target.get("refId", ""), datasource_uid=uid,
                    language=_language(uid, ds.get("type")), expr=target.get("expr", ""),
                    instant=instant, legend=target.get("legendFormat"),
                    dashboard_uid=dash.get("uid"), panel_id=panel.get("id"),
                    panel_title=panel.get("title"), raw=target))
    return out


def variable_queries() -> list[Query]:
    """Query variables of the dashboards (Grafana functions such as label_values / query_result)."""
    out = []
    for path, dash in load_dashboards():
        for var in (dash.get("templating") or {}).get("list") or []:
            if var.get("type") != "query":
                continue
            ds = var.get("datasource") or {}
            query = var.get("query")
            if isinstance(query, dict):
                if query.get("query"):
                    query = query["query"]
                elif query.get("label"):  # Loki variable editor object: label values
                    stream = query.get("stream") or ""
                    query = f"label_values({stream + ', ' if stream else ''}{query['label']})"
                else:
                    query = var.get("definition", "")
            out.append(Query(
                origin="variable", file=path, where=f"{dash.get('uid')} / variable ${var.get('name')}",
                ref_id=var.get("name", ""), datasource_uid=ds.get("uid", ""),
                language=_language(ds.get("uid", ""), ds.get("type")), expr=query or "",
                dashboard_uid=dash.get("uid"), raw=var))
    return out


def alert_queries() -> list[Query]:
    out = []
    for path, group, rule in alert_rules():
        for data in rule.get("data") or []:
            uid = data.get("datasourceUid", "")
            if uid == EXPR_DATASOURCE:
                continue
            model = data.get("model") or {}
            out.append(Query(
                origin="alert", file=path,
                where=f"alert '{rule.get('title')}' ({rule.get('uid')}) / {data.get('refId')}",
                ref_id=data.get("refId", ""), datasource_uid=uid, language=_language(uid),
                expr=model.get("expr", ""),
                instant=bool(model.get("instant")) or model.get("queryType") == "instant",
                legend=model.get("legendFormat"), rule_uid=rule.get("uid"), rule_title=rule.get("title"),
                raw=data))
    return out


def all_queries() -> list[Query]:
    """Panel targets and alert queries (the expressions sent to Prometheus / Loki as written)."""
    return panel_queries() + alert_queries()


def promql_queries() -> list[Query]:
    return [q for q in all_queries() if q.language == "promql"]


def logql_queries() -> list[Query]:
    return [q for q in all_queries() if q.language == "logql"]


def variable_promql(query: Query) -> str | None:
    """The PromQL inside a Prometheus variable query: label_values(X, label) -> X,
    query_result(X) -> X, label_values(label) -> None (no expression)."""
    expr = query.expr.strip()
    m = re.fullmatch(r"query_result\((.*)\)", expr, re.S)
    if m:
        return m.group(1).strip()
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\s*\)", expr, re.S)
    if m:
        return m.group(1).strip()
    if re.fullmatch(r"label_values\(\s*\w+\s*\)", expr) or re.fullmatch(r"metrics\(.*\)", expr):
        return None
    return expr  # a plain PromQL query variable


def grafana_query_result_text(series: dict) -> str:
    """The text Grafana's Prometheus ``query_result()`` variable makes of one series of an instant
    vector (packages/grafana-prometheus/src/metric_find_query.ts, queryResultQuery): the metric
    name, then ``{k="v",...}`` in the response's label order with the values NOT escaped, then the
    value and the timestamp in milliseconds; the variable's regex is applied to this text."""
    metric = dict(series["metric"])
    name = metric.pop("__name__", "")
    ts_ms = float(series["value"][0]) * 1000
    ts_text = str(int(ts_ms)) if ts_ms.is_integer() else repr(ts_ms)
    return (name + "{" + ",".join(f'{k}="{v}"' for k, v in metric.items()) + "}"
            + f" {series['value'][1]} {ts_text}")


def variable_regex(var: dict) -> re.Pattern:
    """A variable's Grafana ``/regex/flags`` as a Python pattern (JavaScript named groups
    ``(?<name>...)`` become ``(?P<name>...)``). Grafana applies it with RegExp.exec (a search)."""
    m = re.fullmatch(r"/(.*)/([gimsuy]*)", var["regex"], re.S)
    if not m:
        raise ValueError(f"not a /regex/: {var['regex']!r}")
    pattern = re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", m.group(1))
    flags = (re.I if "i" in m.group(2) else 0) | (re.M if "m" in m.group(2) else 0) | (re.S if "s" in m.group(2) else 0)
    return re.compile(pattern, flags)


# ----------------------------------------------------------------------------------------------
# Grafana variables
# ----------------------------------------------------------------------------------------------
def grafana_variables(expr: str) -> list[str]:
    return [a or b or c for a, b, c in _VAR_RE.findall(expr)]


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) by sample values.

    Raises KeyError for a variable that is neither built in nor given: an unknown variable in a
    query is a bug (Grafana would leave it in and the datasource would reject the query)."""
    samples = {**BUILTIN_SAMPLES, **VARIABLE_SAMPLES, **(values or {})}

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in samples:
            raise KeyError(f"unknown Grafana variable ${name} in: {expr}")
        return samples[name]

    return _VAR_RE.sub(repl, expr)


# ----------------------------------------------------------------------------------------------
# Alert rules -> Prometheus rule file (for promtool)
# ----------------------------------------------------------------------------------------------
def _expression_refs(model: dict) -> list[str]:
    kind = model.get("type")
    if kind in ("reduce", "threshold", "resample"):
        return [model["expression"]]
    if kind == "math":
        return re.findall(r"\$\{?(\w+)\}?", model.get("expression", ""))
    if kind == "classic_conditions":
        return [c["query"]["params"][0] for c in model.get("conditions") or []]
    raise ValueError(f"unknown expression type {kind!r}")


def condition_chain(rule: dict) -> list[dict]:
    """The data items the rule's condition depends on (transitively), condition first."""
    by_ref = {d["refId"]: d for d in rule.get("data") or []}
    order: list[dict] = []
    seen: set[str] = set()
    stack = [rule["condition"]]
    while stack:
        ref = stack.pop(0)
        if ref in seen:
            continue
        seen.add(ref)
        data = by_ref[ref]  # KeyError: the condition points to a refId that does not exist
        order.append(data)
        if data.get("datasourceUid") == EXPR_DATASOURCE:
            stack.extend(_expression_refs(data.get("model") or {}))
    return order


def condition_queries(rule: dict) -> list[dict]:
    """The datasource queries (not expressions) the condition depends on."""
    return [d for d in condition_chain(rule) if d.get("datasourceUid") != EXPR_DATASOURCE]


class NotPrometheusStyle(ValueError):
    """The rule's condition chain is not `query -> reduce(last) -> threshold(gt 0)`."""


def prometheus_alert_expression(rule: dict) -> str | None:
    """The PromQL whose non-empty result fires the rule, or None when the rule is not on Prometheus.

    Only rules shaped `PromQL query -> reduce(last) -> threshold(> 0)` qualify: for those (and the
    expressions' values all being > 0, which the promtool tests check), Grafana fires exactly for
    the series Prometheus' own alerting would fire for, so promtool can test the same text."""
    queries = condition_queries(rule)
    if len(queries) != 1 or _language(queries[0]["datasourceUid"]) != "promql":
        return None
    chain = condition_chain(rule)
    if len(chain) != 3:
        raise NotPrometheusStyle(f"{rule['uid']}: condition chain has {len(chain)} steps, want 3")
    threshold, reduce, query = (d.get("model") or {} for d in chain)
    evaluators = [c.get("evaluator") or {} for c in threshold.get("conditions") or []]
    if (threshold.get("type") != "threshold" or len(evaluators) != 1
            or evaluators[0].get("type") != "gt" or list(evaluators[0].get("params") or []) != [0]):
        raise NotPrometheusStyle(f"{rule['uid']}: condition is not a threshold `> 0`")
    if reduce.get("type") != "reduce" or reduce.get("reducer") != "last":
        raise NotPrometheusStyle(f"{rule['uid']}: the threshold does not read reduce(last)")
    if not query.get("instant"):
        raise NotPrometheusStyle(f"{rule['uid']}: the PromQL query is not instant")
    return query["expr"]


def promtool_rule_groups() -> dict:
    """A Prometheus rule file (as data) with one alerting rule per Prometheus-based Grafana rule:
    alert = Grafana title, expr = the exact PromQL text, for = the Grafana `for`, labels = the
    Grafana labels. Annotations are left out: they use Grafana-only template data ($values)."""
    groups: dict[str, list] = {}
    values = []
    for _path, group, rule in alert_rules():
        expr = prometheus_alert_expression(rule)
        if expr is None:
            continue
        entry = {"alert": rule["title"], "expr": expr, "for": rule.get("for") or "0s"}
        if rule.get("labels"):
            entry["labels"] = dict(rule["labels"])
        groups.setdefault(group["name"], []).append(entry)
        # The same expression recorded, so the unit tests can check the values Grafana's
        # threshold (> 0) sees: recorded as grafana_alert_value:<rule uid with _>.
        values.append({"record": alert_value_metric(rule["uid"]), "expr": expr})
    out = [{"name": name, "rules": rules} for name, rules in groups.items()]
    out.append({"name": "grafana-alert-values", "rules": values})
    return {"groups": out}


def alert_value_metric(rule_uid: str) -> str:
    return "grafana_alert_value:" + re.sub(r"[^a-zA-Z0-9_]", "_", rule_uid)


def write_promtool_rules(directory: Path) -> Path:
    path = Path(directory) / GENERATED_RULES_NAME
    path.write_text("# Generated from grafana/provisioning/alerting by tests/bundle_queries.py\n"
                    + yaml.safe_dump(promtool_rule_groups(), sort_keys=False, width=1000),
                    encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# The bundle's Loki limits, for the Loki emulator (tests/loki_emulator.py)
# ----------------------------------------------------------------------------------------------
_SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "KIB": 1024, "MB": 1024 ** 2, "MIB": 1024 ** 2, "GB": 1024 ** 3,
               "GIB": 1024 ** 3}


def loki_size(value: str | int) -> int:
    """A Loki size ("256KB", "32MB", 1024) in bytes (Loki's KB/MB are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).upper() not in _SIZE_UNITS:
        raise ValueError(f"not a Loki size: {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


def loki_emulator_kwargs() -> dict:
    """LokiEmulator keyword arguments for the limits loki/loki-config.yaml sets, so tests push
    into a Loki that accepts and rejects what the bundle's Loki would."""
    cfg = load_yaml(LOKI_CONFIG)
    limits, ingester = cfg.get("limits_config") or {}, cfg.get("ingester") or {}
    out: dict = {}
    for key, arg, conv in [
            ("reject_old_samples", "reject_old_samples", bool),
            ("reject_old_samples_max_age", "reject_old_samples_max_age", duration_s),
            ("creation_grace_period", "creation_grace_period", duration_s),
            ("max_line_size", "max_line_size", loki_size),
            ("max_label_names_per_series", "max_label_names", int),
            ("ingestion_rate_mb", "ingestion_rate_mb", float),
            ("ingestion_burst_size_mb", "ingestion_burst_size_mb", float),
            ("per_stream_rate_limit", "per_stream_rate_limit", loki_size),
            ("per_stream_rate_limit_burst", "per_stream_rate_limit_burst", loki_size),
            ("allow_structured_metadata", "allow_structured_metadata", bool)]:
        if key in limits:
            out[arg] = conv(limits[key])
    for key, arg in [("max_chunk_age", "max_chunk_age"), ("chunk_idle_period", "chunk_idle_period")]:
        if key in ingester:
            out[arg] = duration_s(ingester[key])
    within = (cfg.get("querier") or {}).get("query_ingesters_within")
    if within:
        out["query_ingesters_within"] = duration_s(within)
    return out
