"""Structural checks of the Grafana / Prometheus / Loki bundle (no Docker, Grafana or Loki needed).

Grafana has no offline validator for provisioning files, so these tests check what Grafana
would refuse at startup or silently get wrong: dangling datasource uids, duplicate panel ids or
rule uids, bad grid positions, targets without refId / expr, alert conditions pointing nowhere,
unparsable durations, contact points and policies that do not resolve; and the compose file's
promises (pinned images, working healthchecks, start order, ports on 127.0.0.1 only, no default
admin password).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests import bundle_queries as bq

BUILTIN_DS = {bq.MIXED_DATASOURCE, bq.GRAFANA_DATASOURCE, bq.EXPR_DATASOURCE}
duration_s = bq.duration_s


def test_duration_parser():
    assert duration_s("2h") == 7200 and duration_s("1h30m") == 5400 and duration_s("0s") == 0
    for bad in ("", "2", "5x", "h", "1.5h", "-1m"):
        with pytest.raises(ValueError):
            duration_s(bad)


# ----------------------------------------------------------------------------------------------
# Datasources
# ----------------------------------------------------------------------------------------------
DATASOURCES = bq.datasources()


def test_datasources_have_fixed_uids_and_known_types():
    files = bq.datasource_files()
    assert files, "no datasource provisioning file"
    all_ds = [ds for f in files for ds in bq.load_yaml(f)["datasources"]]
    for f in files:
        assert bq.load_yaml(f)["apiVersion"] == 1
    uids = [ds.get("uid") for ds in all_ds]
    assert all(uids) and len(uids) == len(set(uids)), "every datasource needs a unique, fixed uid"
    assert {ds["type"] for ds in all_ds} == {"loki", "prometheus"}
    assert sum(1 for ds in all_ds if ds.get("isDefault")) == 1, "exactly one default datasource"
    for ds in all_ds:
        assert ds["name"] and ds["url"].startswith("http") and ds.get("access") == "proxy", ds


# ----------------------------------------------------------------------------------------------
# Dashboards
# ----------------------------------------------------------------------------------------------
DASHBOARDS = bq.load_dashboards()
DASHBOARD_UIDS = {d["uid"] for _p, d in DASHBOARDS}
KNOWN_TRANSFORMS = {"labelsToFields", "organize", "merge", "filterByValue", "sortBy", "reduce",
                    "joinByField", "seriesToRows", "groupBy", "calculateField", "filterFieldsByName"}
UNIT_PANELS = {"stat", "timeseries", "bargauge", "barchart", "gauge"}


def _ds_ref_ok(ref) -> bool:
    return isinstance(ref, dict) and (ref.get("uid") in DATASOURCES or ref.get("uid") in BUILTIN_DS)


def test_dashboard_provider_points_at_the_dashboards():
    providers = [p for f in bq.dashboard_provider_files() for p in bq.load_yaml(f)["providers"]]
    assert providers
    for provider in providers:
        assert provider["type"] == "file" and provider["name"] and provider.get("folder")
        path = provider["options"]["path"]
        assert path.startswith("/etc/grafana/provisioning/"), path
        local = bq.PROVISIONING / path.removeprefix("/etc/grafana/provisioning/")
        assert local.is_dir() and list(local.glob("*.json")), f"{path} holds no dashboard in the repo"


def test_two_dashboards_with_unique_uids_and_titles():
    titles = {d["title"] for _p, d in DASHBOARDS}
    assert titles == {"Telemetry errors", "Telemetry exporter health"}
    assert len(DASHBOARD_UIDS) == len(DASHBOARDS) == len(titles)
    for _path, dash in DASHBOARDS:
        assert dash["uid"] and len(dash["uid"]) <= 40 and dash["title"]
        assert dash.get("schemaVersion", 0) >= 36
        assert "id" not in dash or dash["id"] is None, "provisioned dashboards must not carry a numeric id"


@pytest.mark.parametrize("path, dash", DASHBOARDS, ids=[d["uid"] for _p, d in DASHBOARDS])
def test_panels(path, dash):
    panels = list(bq.iter_panels(dash))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, p["title"]
        assert g["w"] <= 24 and g["x"] + g["w"] <= 24, f"{p['title']}: gridPos beyond 24 columns"
        for other, og in boxes:
            overlap = (g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"]
                       and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"])
            assert not overlap, f"panels {p['title']!r} and {other!r} overlap"
        boxes.append((p["title"], g))
        if p["type"] == "row":
            continue
        assert p.get("title") and p.get("description"), f"panel {p.get('id')} needs a title and a description"
        assert _ds_ref_ok(p.get("datasource")), f"{p['title']}: datasource {p.get('datasource')}"
        targets = p.get("targets") or []
        assert targets, f"{p['title']}: no targets"
        refs = [t.get("refId") for t in targets]
        assert all(refs) and len(refs) == len(set(refs)), f"{p['title']}: refIds missing or repeated"
        mixed = p["datasource"]["uid"] == bq.MIXED_DATASOURCE
        for t in targets:
            assert t.get("expr", "").strip(), f"{p['title']}/{t.get('refId')}: empty expr"
            ds = t.get("datasource") or p["datasource"]
            assert not (mixed and not t.get("datasource")), f"{p['title']}: mixed panel target without datasource"
            assert ds.get("uid") in DATASOURCES, f"{p['title']}/{t['refId']}: unknown datasource {ds}"
            assert ds.get("type") == DATASOURCES[ds["uid"]]["type"], f"{p['title']}: datasource type mismatch"
        if p["type"] in UNIT_PANELS:
            assert (p.get("fieldConfig") or {}).get("defaults", {}).get("unit"), f"{p['title']}: no unit"
        for tr in p.get("transformations") or []:
            assert tr["id"] in KNOWN_TRANSFORMS, f"{p['title']}: unexpected transformation {tr['id']}"
            if tr["id"] == "labelsToFields" and tr["options"].get("valueLabel"):
                label = tr["options"]["valueLabel"]
                for t in targets:  # every query must name its column, or the merge mixes values
                    assert f'"{label}"' in t["expr"], f"{p['title']}/{t['refId']}: no {label} label"


@pytest.mark.parametrize("path, dash", DASHBOARDS, ids=[d["uid"] for _p, d in DASHBOARDS])
def test_variables_and_links(path, dash):
    variables = dash["templating"]["list"]
    names = {v["name"] for v in variables}
    for v in variables:
        assert _ds_ref_ok(v.get("datasource")) and v["datasource"]["uid"] in DATASOURCES, v["name"]
    for q in bq.panel_queries():
        if q.dashboard_uid == dash["uid"]:
            unknown = set(bq.grafana_variables(q.expr)) - names - set(bq.BUILTIN_SAMPLES)
            assert not unknown, f"{q}: undefined variables {unknown}"
    text = path.read_text()
    for uid in re.findall(r"/d/([\w-]+)", text):
        assert uid in DASHBOARD_UIDS, f"link to a dashboard that does not exist: {uid}"
    assert not re.search(r'"datasource":\s*"', text), "datasource given by name, not {type, uid}"
    assert not re.search(r'"datasource":\s*\{[^}]*"id"', text), "numeric datasource id"


TRICKY_TEMPLATES = ["Failed to fetch", 'Unexpected token "<" in JSON at position <int>',
                    'He said "hi", template="x"', 'closing "} <int> <int>', "two\nlines", "back\\slash", ""]


def test_error_type_variable_keeps_the_whole_template():
    """query_result() text is not escaped: a template with a quote must not be cut at it."""
    dash = next(d for _p, d in DASHBOARDS if d["uid"] == "telemetry-errors")
    var = next(v for v in dash["templating"]["list"] if v["name"] == "error_type")
    regex = bq.variable_regex(var)
    for template in TRICKY_TEMPLATES:
        series = {"metric": {"error_type": "0123456789ab", "template": template},
                  "value": [1796326140.019, "1796326000"]}
        m = regex.search(bq.grafana_query_result_text(series))
        assert m and m.group("value") == "0123456789ab" and m.group("text") == template, template
    assert "template" in bq.variable_promql(next(q for q in bq.variable_queries() if q.ref_id == "error_type"))


def test_errors_dashboard_mirrors_every_report_section():
    dash = next(d for _p, d in DASHBOARDS if d["uid"] == "telemetry-errors")
    titles = {p["title"] for p in bq.iter_panels(dash)}
    for wanted in ["Events", "Errors", "Errors %", "Warnings", "Warnings %", "Failed operations",
                   "Sessions", "Sessions with errors", "Sessions with errors %", "Error types",
                   "Invalid lines (all files)", "Top errors", "Errors over time by error type",
                   "Errors by page", "Errors by hour of day (UTC)", "Top warnings",
                   "Failure reasons", "Recent error log lines", "Re-timed events (late/skewed)"]:
        assert wanted in titles, wanted
    # Loki places a re-timed event at its receive time: no panel may say "event time" decides
    for p in bq.iter_panels(dash):
        text = p.get("description") or ""
        assert "event time lies in" not in text and "(Loki, event time)" not in text, p["title"]
        if any("$__range" in t.get("expr", "") and (t.get("datasource") or p["datasource"])["type"] == "loki"
               for t in p.get("targets") or []):
            assert "re-timed" in text.lower(), f"{p['title']}: say how re-timed events are placed"
    assert {v["name"] for v in dash["templating"]["list"]} == {"app", "error_type"}
    # time-range panels must read Loki (event time), not Prometheus counters (import time)
    for q in bq.panel_queries():
        if q.dashboard_uid == dash["uid"] and ("$__range" in q.expr or "$__auto" in q.expr):
            assert q.language == "logql", f"{q}: a time-range panel on Prometheus shows import time"
    by_title = {p["title"]: p for p in bq.iter_panels(dash)}

    def column_queries(title: str) -> dict[str, bq.Query]:
        out = {}
        for q in bq.panel_queries():
            if q.dashboard_uid == dash["uid"] and q.panel_title == title:
                out[re.search(r'"column", "(\w+)"', q.expr).group(1)] = q
        return out

    # the report's per-type columns are reproduced for the time range (Loki), all-time kept beside
    for title, all_time in (("Top errors", {"all_time_count", "all_time_first_seen", "all_time_last_seen"}),
                            ("Top warnings", {"all_time_count"})):
        cols = column_queries(title)
        assert set(cols) == {"count", "sessions", "first_seen", "last_seen"} | all_time, title
        for col in ("count", "sessions", "first_seen", "last_seen"):
            assert cols[col].language == "logql" and "$__range" in cols[col].expr, f"{title}/{col}"
        for col, func in (("first_seen", "min_over_time"), ("last_seen", "max_over_time")):
            expr = cols[col].expr
            assert expr.startswith(f"label_replace({func}(") and "by (error_type)" in expr, f"{title}/{col}"
            # event time: event_time metadata when re-timed, else the Loki timestamp, in ms
            assert "{{ if .event_time }}" in expr and "__timestamp__ | unixEpochMillis" in expr, f"{title}/{col}"
        for col in all_time:
            assert cols[col].language == "promql", f"{title}/{col}"
    hours = next(q for q in bq.panel_queries() if q.panel_title == "Errors by hour of day (UTC)")
    assert [f"{h:02d}" for h in range(24)] == re.findall(r'label_replace\(vector\(0\), "hour", "(\d\d)"', hours.expr), \
        "every hour of the day shows, 0 when it has no errors"
    pages = column_queries("Errors by page")
    assert set(pages) == {"count", "percent"} and "group_left" in pages["percent"].expr
    top = by_title["Top errors"]
    links = [link for o in top["fieldConfig"]["overrides"] for prop in o["properties"]
             if prop["id"] == "links" for link in prop["value"]]
    assert links and "var-error_type=${__value.raw}" in links[0]["url"], "Top errors must link to its logs"


def test_health_dashboard_covers_the_exporter():
    dash = next(d for _p, d in DASHBOARDS if d["uid"] == "telemetry-exporter-health")
    exprs = " ".join(t["expr"] for p in bq.iter_panels(dash) for t in p.get("targets") or [])
    for metric in ["telemetry_exporter_lines_read_total", "telemetry_exporter_loki_entries_sent_total",
                   "telemetry_exporter_loki_entries_rejected_total", "telemetry_exporter_loki_push_retries_total",
                   "telemetry_exporter_loki_push_duration_seconds_bucket", "telemetry_exporter_unread_bytes",
                   "up{"]:
        assert metric in exprs, metric
    assert "sum by (reason)" in exprs, "rejections must be shown by reason"


# ----------------------------------------------------------------------------------------------
# Alerting
# ----------------------------------------------------------------------------------------------
RULES = bq.alert_rules()
ALERTING = bq.load_alerting()


def test_alerting_files_and_groups():
    assert ALERTING
    for path, doc in ALERTING:
        assert doc.get("apiVersion") == 1, path
        for group in doc.get("groups") or []:
            assert group["orgId"] == 1 and group["name"] and group["folder"]
            assert 10 <= duration_s(group["interval"]) <= 300, group["interval"]
    titles = [r["title"] for _p, _g, r in RULES]
    uids = [r["uid"] for _p, _g, r in RULES]
    assert len(uids) == len(set(uids)) and len(titles) == len(set(titles))
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", u) for u in uids)
    assert set(titles) == {"New error type", "Error type regression", "Error spike",
                           "Telemetry exporter unhealthy"}


@pytest.mark.parametrize("path, group, rule", RULES, ids=[r["uid"] for _p, _g, r in RULES])
def test_rule(path, group, rule):
    data = rule["data"]
    refs = [d["refId"] for d in data]
    assert len(refs) == len(set(refs))
    assert rule["condition"] in refs, "condition points to a refId that does not exist"
    for d in data:
        model = d["model"]
        assert model.get("refId", d["refId"]) == d["refId"]
        uid = d["datasourceUid"]
        if uid == bq.EXPR_DATASOURCE:
            kind = model["type"]
            assert kind in ("reduce", "threshold", "math"), kind
            for ref in bq._expression_refs(model):
                assert ref in refs, f"{d['refId']} reads {ref}, which does not exist"
            if kind == "threshold":
                assert len(model["conditions"]) == 1 and model["conditions"][0]["evaluator"]["type"] in (
                    "gt", "lt", "within_range", "outside_range")
            if kind == "reduce":
                assert model["reducer"] in ("last", "mean", "max", "min", "sum", "count")
        else:
            assert uid in DATASOURCES, f"{d['refId']}: unknown datasource uid {uid}"
            assert model.get("expr", "").strip()
            rtr = d["relativeTimeRange"]
            assert 0 <= rtr["to"] < rtr["from"] <= 7 * 86400, f"{d['refId']}: relativeTimeRange {rtr}"
            assert model.get("instant") or model.get("queryType") == "instant", "alert queries are instant"
    # every datasource query is used: by the condition, or as a $values capture of a reduce
    used = {d["refId"] for d in bq.condition_chain(rule)}
    for d in data:
        if d["datasourceUid"] != bq.EXPR_DATASOURCE and d["refId"] not in used:
            readers = [x for x in data if x["datasourceUid"] == bq.EXPR_DATASOURCE
                       and d["refId"] in bq._expression_refs(x["model"])]
            assert readers, f"{d['refId']} is never read"
    duration_s(rule["for"])
    assert rule["noDataState"] in ("NoData", "Alerting", "OK", "KeepLast")
    assert rule["execErrState"] in ("Alerting", "Error", "OK", "KeepLast")
    ann = rule["annotations"]
    for key in ("summary", "description", "runbook"):
        assert ann.get(key, "").strip(), f"annotation {key} missing"
    for value in rule["labels"].values():
        assert "$" not in value and "{{" not in value, "labels are env-expanded by Grafana: no $ or templates"
    for value in ann.values():
        assert "${" not in value, "Grafana expands ${...} in annotations"
        assert value.count("{{") == value.count("}}")
        assert not re.search(r"externalURL\s*\}\}/", value), \
            "Grafana's externalURL ends with / (its root_url, slash added): {{ externalURL }}/d/... has two"
        for uid in re.findall(r"/d/([\w-]+)", value):
            assert uid in DASHBOARD_UIDS
        for ref in re.findall(r"\$values\.(\w+)", value):
            assert ref in refs and next(x for x in data if x["refId"] == ref)["datasourceUid"] == bq.EXPR_DATASOURCE, \
                f"$values.{ref} must name a reduce/math expression"
    # Prometheus rules keep Prometheus semantics (query -> reduce(last) -> threshold > 0)
    bq.prometheus_alert_expression(rule)


def test_alert_rules_fit_their_purpose():
    by_title = {r["title"]: r for _p, _g, r in RULES}
    new = bq.condition_queries(by_title["New error type"])
    assert len(new) == 1 and new[0]["datasourceUid"] == "telemetry-prometheus"
    assert "telemetry_error_type_discovered_timestamp_seconds" in new[0]["model"]["expr"]
    assert 'kind="error"' in new[0]["model"]["expr"] and "time()" in new[0]["model"]["expr"]
    assert duration_s(by_title["New error type"]["for"]) == 0
    ann = by_title["New error type"]["annotations"]
    assert "$labels.template" in ann["summary"] and "SESSIONS" in ann["sessions_affected"]
    assert "/d/telemetry-errors/" in ann["dashboard"]
    reg = bq.condition_queries(by_title["Error type regression"])
    assert "telemetry_error_type_regressed_timestamp_seconds" in reg[0]["model"]["expr"]
    spike = bq.condition_queries(by_title["Error spike"])
    assert {d["datasourceUid"] for d in spike} == {"telemetry-loki"}, "spikes are judged by event time (Loki)"
    assert any("offset" in d["model"]["expr"] for d in spike), "the usual level comes from earlier windows"
    unhealthy = bq.condition_queries(by_title["Telemetry exporter unhealthy"])[0]["model"]["expr"]
    for problem in ("up{", "telemetry_exporter_loki_push_failures_total",
                    "telemetry_exporter_loki_entries_rejected_total", "telemetry_error_types_overflow_total"):
        assert problem in unhealthy
    # new types must reach you within 2 minutes: group interval + scrape interval + group_wait
    group = next(g for _p, g, r in RULES if r["title"] == "New error type")
    scrape = duration_s(bq.load_yaml(bq.PROMETHEUS_CONFIG)["global"]["scrape_interval"])
    policy = next(p for _path, doc in ALERTING for p in doc.get("policies") or [])
    assert duration_s(group["interval"]) + scrape + duration_s(policy["group_wait"]) <= 120


def test_contact_points_and_policies_resolve():
    contact_points = [cp for _p, doc in ALERTING for cp in doc.get("contactPoints") or []]
    policies = [p for _p, doc in ALERTING for p in doc.get("policies") or []]
    assert contact_points and len(policies) == 1
    names = {cp["name"] for cp in contact_points}
    assert len(names) == len(contact_points)
    receiver_uids = [r["uid"] for cp in contact_points for r in cp["receivers"]]
    assert len(receiver_uids) == len(set(receiver_uids))
    for cp in contact_points:
        for r in cp["receivers"]:
            assert r["type"] == "webhook"
            assert r["settings"]["url"] == "${ALERT_WEBHOOK_URL}", "the webhook URL comes from the environment"

    def walk(route):
        assert route["receiver"] in names, f"policy receiver {route['receiver']} is not a contact point"
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                duration_s(route[key])
        for child in route.get("routes") or []:
            walk(child)

    for policy in policies:
        walk(policy)
        assert "error_type" in policy["group_by"], "notifications are grouped by error type"
    # the env var Grafana expands must be passed to the Grafana container
    compose = bq.load_yaml(bq.COMPOSE_FILE)
    assert "ALERT_WEBHOOK_URL" in compose["services"]["grafana"]["environment"]


# ----------------------------------------------------------------------------------------------
# Loki and Prometheus configs
# ----------------------------------------------------------------------------------------------
def test_loki_config_fits_a_30_day_backfill():
    cfg = bq.load_yaml(bq.LOKI_CONFIG)
    schema = cfg["schema_config"]["configs"][-1]
    assert schema["store"] == "tsdb" and schema["schema"] == "v13" and schema["object_store"] == "filesystem"
    limits = cfg["limits_config"]
    assert limits["allow_structured_metadata"] is True
    assert limits["reject_old_samples"] is False or duration_s(limits["reject_old_samples_max_age"]) >= 35 * 86400
    assert duration_s(limits["retention_period"]) >= duration_s(limits.get("reject_old_samples_max_age", "0"))
    assert limits["ingestion_rate_mb"] >= 16 and limits["ingestion_burst_size_mb"] >= limits["ingestion_rate_mb"]
    assert "per_stream_rate_limit" in limits and "per_stream_rate_limit_burst" in limits
    assert limits["max_query_series"] >= 500  # top-errors tables: up to 500 error types
    ingester = cfg["ingester"]
    assert duration_s(ingester["max_chunk_age"]) == 7200, "max_chunk_age/2 is the exporter's 1 h ordering window"
    assert duration_s(ingester["chunk_idle_period"]) <= 600, "imported history must become visible soon"
    # long queries must end with Loki's query timeout, not with the HTTP server cutting them off
    query_timeout = duration_s(limits["query_timeout"])
    for key in ("http_server_read_timeout", "http_server_write_timeout"):
        assert duration_s(cfg["server"][key]) > query_timeout, f"server.{key} must exceed query_timeout"
    grafana_timeout = bq.datasources()["telemetry-loki"]["jsonData"]["timeout"]
    assert grafana_timeout <= query_timeout, "Grafana would give up on Loki before Loki's own timeout"
    compactor = cfg["compactor"]
    assert compactor["retention_enabled"] is True and compactor["delete_request_store"]
    assert cfg["auth_enabled"] is False


def test_docs_explain_flush_and_startup():
    doc = (bq.ROOT / "README.md").read_text()
    for needle in ("import --flush", "/flush", "GRAFANA_ADMIN_PASSWORD", "ALERT_WEBHOOK_URL",
                   "docker compose -f docker-compose.telemetry.yml up -d",
                   "telemetry_error_type_discovered_timestamp_seconds"):
        assert needle in doc, needle


# ----------------------------------------------------------------------------------------------
# Compose file and Dockerfile
# ----------------------------------------------------------------------------------------------
COMPOSE = bq.load_yaml(bq.COMPOSE_FILE)
SERVICES = COMPOSE["services"]


def test_compose_services_and_pinned_images():
    assert set(SERVICES) == {"loki", "exporter", "prometheus", "grafana"}
    for name, svc in SERVICES.items():
        image = svc.get("image", "")
        assert image, f"{name}: no image (built services need a tagged image name too)"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: image {image!r} is not pinned"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} is not a version"
    assert SERVICES["exporter"]["build"]["dockerfile"] == "Dockerfile"


def test_compose_healthchecks_and_start_order():
    for name, svc in SERVICES.items():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        for key in ("interval", "timeout", "start_period"):
            duration_s(svc["healthcheck"][key])
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES and cond["condition"] in ("service_healthy", "service_started"), \
                f"{name} -> {dep}"
    # Loki >= 3.6 images have no shell, wget or curl
    assert SERVICES["loki"]["healthcheck"]["test"] == ["CMD", "/usr/bin/loki", "-health"]
    major, minor = map(int, SERVICES["loki"]["image"].rsplit(":", 1)[1].split(".")[:2])
    assert (major, minor) >= (3, 6), "loki -health needs Loki >= 3.6"
    exporter_check = " ".join(SERVICES["exporter"]["healthcheck"]["test"])
    assert "python" in exporter_check and "urllib" in exporter_check and "/healthz" in exporter_check
    assert SERVICES["exporter"]["depends_on"] == {"loki": {"condition": "service_healthy"}}
    # the alerts must work whatever state Loki and the exporter are in: Prometheus depends on
    # nothing, and Grafana (which evaluates the rules) does not wait for a healthy Loki
    assert not SERVICES["prometheus"].get("depends_on"), \
        "Prometheus must run even when Loki or the exporter is down (to alert on them)"
    assert SERVICES["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"},
                                                 "loki": {"condition": "service_started"}}
    # serve's graceful stop (deliver what was read, save state) takes up to 30 s
    assert duration_s(SERVICES["exporter"]["stop_grace_period"]) >= 35


def test_compose_ports_volumes_and_secrets():
    named = set(COMPOSE.get("volumes") or {})
    for name, svc in SERVICES.items():
        for port in svc.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is not bound to 127.0.0.1"
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0]
            if src.startswith("."):
                if src != "./telemetry-logs":  # the user's data; may not exist in the repo
                    assert (bq.ROOT / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in named, f"{name}: volume {src} is not a declared named volume"
    exporter = SERVICES["exporter"]
    assert exporter["environment"]["LOKI_URL"] == "http://loki:3100"
    # every variable the compose file gives the exporter is a setting it reads, with a valid value
    from exporter.config import _ENV_LOKI, _ENV_METRICS, _ENV_TOP, load_config
    known = {*_ENV_LOKI.values(), *_ENV_METRICS.values(), *_ENV_TOP.values()}
    assert set(exporter["environment"]) <= known, set(exporter["environment"]) - known
    cfg = load_config(None, env={k: str(v) for k, v in exporter["environment"].items()})
    assert cfg.loki.flush_after_backfill is True, "the bundle's Loki must show the backfilled history at once"
    assert exporter["command"][:2] == ["serve", "/data/telemetry-logs"]
    assert "0.0.0.0:9464" in exporter["command"]
    assert any(v.startswith("./telemetry-logs:/data/telemetry-logs") for v in exporter["volumes"])
    state_dir = exporter["command"][exporter["command"].index("--state-dir") + 1]
    assert any(v.split(":")[0] in named and v.split(":")[1] == state_dir for v in exporter["volumes"])
    grafana_env = SERVICES["grafana"]["environment"]
    password = grafana_env["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), \
        "the admin password must be a required variable, with no default value"
    assert any(v.startswith("./grafana/provisioning:/etc/grafana/provisioning") for v in SERVICES["grafana"]["volumes"])
    # service names / ports used elsewhere in the bundle
    urls = {ds["type"]: ds["url"] for ds in DATASOURCES.values()}
    assert urls == {"loki": "http://loki:3100", "prometheus": "http://prometheus:9090"}


def test_dockerfile():
    text = (bq.ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install ." in text and ":latest" not in text
    assert re.search(r"^USER (?!root)\w+", text, re.M), "run as a non-root user"
    assert '"serve", "/data/telemetry-logs", "--listen", "0.0.0.0:9464"' in text
    ignore = [line.strip() for line in (bq.ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    for needed in ("README.md", "pyproject.toml", "exporter"):
        assert needed not in ignore


def _docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0
        return ok and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                     timeout=15).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_docker_compose_config():
    if not _docker_engine():
        pytest.skip("no Docker engine with the compose plugin answers here")
    env = {"GRAFANA_ADMIN_PASSWORD": "test-only-password", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    result = subprocess.run(["docker", "compose", "-f", str(bq.COMPOSE_FILE), "config", "-q"],
                            capture_output=True, text=True, env=env, cwd=bq.ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    # and without the password it must refuse
    env.pop("GRAFANA_ADMIN_PASSWORD")
    result = subprocess.run(["docker", "compose", "-f", str(bq.COMPOSE_FILE), "config", "-q"],
                            capture_output=True, text=True, env=env, cwd=bq.ROOT, timeout=60)
    assert result.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in result.stderr
