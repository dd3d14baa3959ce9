"""promtool checks of the bundle: Prometheus config, alert rule unit tests, PromQL syntax.

The Prometheus rule file that `promtool test rules` runs is generated at test time from the
Grafana alert rules (grafana/provisioning/alerting), so the unit-tested PromQL is the very text
Grafana evaluates. Every PromQL expression of the dashboards is syntax-checked by promtool too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import bundle_queries as bq

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package `prometheus`: apt-get install -y prometheus)")

TEST_FILES = sorted(bq.PROMTOOL_TESTS_DIR.glob("*.yml"))


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def stage_unit_tests(tmp_path: Path, mutate=None) -> list[str]:
    """Write the generated rule file (each expr optionally mutated) and copy the unit tests beside it."""
    rules = bq.write_promtool_rules(tmp_path)
    if mutate is not None:
        groups = yaml.safe_load(rules.read_text())
        for group in groups["groups"]:
            for rule in group["rules"]:
                rule["expr"] = mutate(rule["expr"])
        rules.write_text(yaml.safe_dump(groups, sort_keys=False, width=1000))
    for test_file in TEST_FILES:
        shutil.copy(test_file, tmp_path / test_file.name)
    return [t.name for t in TEST_FILES]


def test_prometheus_config_is_valid():
    result = promtool("check", "config", str(bq.PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_exporter_job():
    config = bq.load_yaml(bq.PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "telemetry-exporter" in jobs
    targets = [t for sc in jobs["telemetry-exporter"]["static_configs"] for t in sc["targets"]]
    assert targets == ["exporter:9464"]


def test_generated_rule_file_has_every_prometheus_alert(tmp_path):
    path = bq.write_promtool_rules(tmp_path)
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    generated = yaml.safe_load(path.read_text())
    alerts = {r["alert"]: r for g in generated["groups"] for r in g["rules"] if "alert" in r}
    # the Grafana rules on Prometheus, read straight from the provisioning YAML
    expected = {}
    for _path, _group, rule in bq.alert_rules():
        queries = bq.condition_queries(rule)
        if len(queries) == 1 and bq.datasources()[queries[0]["datasourceUid"]]["type"] == "prometheus":
            expected[rule["title"]] = queries[0]["model"]["expr"]
    assert set(alerts) == set(expected) == {"New error type", "Error type regression",
                                            "Telemetry exporter unhealthy"}
    for title, expr in expected.items():
        assert alerts[title]["expr"] == expr  # the same text, character for character


def test_every_prometheus_alert_has_unit_tests():
    tested = set()
    for test_file in TEST_FILES:
        doc = bq.load_yaml(test_file)
        assert doc["rule_files"] == [bq.GENERATED_RULES_NAME], test_file
        for case in doc["tests"]:
            for alert_test in case.get("alert_rule_test") or []:
                if alert_test.get("exp_alerts"):
                    tested.add(alert_test["alertname"])
    generated = bq.promtool_rule_groups()
    alerts = {r["alert"] for g in generated["groups"] for r in g["rules"] if "alert" in r}
    assert alerts <= tested, f"alerts without a firing unit test: {alerts - tested}"


def test_alert_rules_unit_tests(tmp_path):
    names = stage_unit_tests(tmp_path)
    result = promtool("test", "rules", *names, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(names), result.stdout


@pytest.mark.parametrize("mutation, why", [
    # firing for any discovered type, whatever its discovery time
    (lambda text: text.replace("> time() - 600", "> 0"), "the backfill and restart tests must catch it"),
    # the plain gauge instead of max_over_time: a restart's missed scrape resolves the alert
    (lambda text: text.replace(
        'max_over_time(telemetry_error_type_discovered_timestamp_seconds{job="telemetry-exporter", '
        'kind="error"}[10m])',
        'telemetry_error_type_discovered_timestamp_seconds{job="telemetry-exporter", kind="error"}'),
     "the restart-inside-the-window test must catch it"),
    # rejections counted with increase() only
    (lambda text: text.replace("unless", "and"), "the first-rejection test must catch it"),
    # no alert for error types past the cap
    (lambda text: text.replace("telemetry_error_types_overflow_total", "telemetry_no_such_counter_total"),
     "the overflow tests must catch it"),
])
def test_unit_tests_catch_a_broken_rule(tmp_path, mutation, why):
    changed = []

    def mutate(text: str) -> str:
        new = mutation(text)
        changed.append(new != text)
        return new

    names = stage_unit_tests(tmp_path, mutate)
    assert any(changed), "the mutation no longer applies to the generated rules: update this test"
    result = promtool("test", "rules", *names, cwd=tmp_path)
    assert result.returncode != 0, why


def _recording_rules(exprs: list[tuple[str, str]]) -> dict:
    return {"groups": [{"name": "bundle-syntax-check",
                        "rules": [{"record": f"bundle:check_{i}", "expr": expr}
                                  for i, (_where, expr) in enumerate(exprs)]}]}


def test_every_dashboard_and_alert_promql_parses(tmp_path):
    exprs = [(q.where, bq.substitute(q.expr)) for q in bq.promql_queries()]
    for var in bq.variable_queries():
        if var.language == "promql" and bq.variable_promql(var):
            exprs.append((var.where, bq.variable_promql(var)))
    assert len(exprs) >= 40  # the bundle has dozens; an extraction bug would show here
    path = tmp_path / "syntax.yml"
    path.write_text(yaml.safe_dump(_recording_rules(exprs), sort_keys=False, width=1000))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promql_syntax_check_can_fail(tmp_path):
    path = tmp_path / "syntax.yml"
    path.write_text(yaml.safe_dump(_recording_rules([("broken", "sum(rate(telemetry_events_total[5m])")])))
    assert promtool("check", "rules", str(path)).returncode != 0


# ----------------------------------------------------------------------------------------------
# Dashboard links in the alert annotations, rendered by a real Go template engine
# ----------------------------------------------------------------------------------------------
# Grafana's annotation templates are Prometheus' template engine (same reReplaceAll, $labels), and
# Grafana's externalURL is its root_url with a trailing slash always added (pkg/setting
# parseAppURLAndSubURL: `if appURL[len(appURL)-1] != '/' { appURL += "/" }`; ngalert passes
# url.Parse(cfg.AppURL), whose String() keeps it). promtool 2.42 cannot set an external URL in a
# unit test, so the call is replaced by such a root URL, as a string, and the rest of each
# `dashboard` annotation is rendered by promtool: the link must have one slash before /d/.
ROOT_URLS = ["http://127.0.0.1:3000/", "https://grafana.example.com/grafana/"]
LINK_ERROR_TYPE = "0123456789ab"


def _dashboard_link_files(tmp_path: Path, mutate=lambda text: text) -> list[str]:
    rules, cases = [], []
    for _path, _group, rule in bq.alert_rules():
        template = mutate(rule["annotations"]["dashboard"])
        rest = template.split("/d/", 1)[1].replace("{{ $labels.error_type }}", LINK_ERROR_TYPE)
        for i, root in enumerate(ROOT_URLS):
            name = f"{rule['uid']}-{i}"
            rules.append({"alert": name,
                          "expr": f'label_replace(vector(1), "error_type", "{LINK_ERROR_TYPE}", "", "")',
                          "annotations": {"dashboard": re.sub(r"\bexternalURL\b", json.dumps(root), template)}})
            cases.append((name, root.rstrip("/") + "/d/" + rest))
    (tmp_path / "links.generated.yml").write_text(yaml.safe_dump({"groups": [{"name": "links", "rules": rules}]},
                                                                 sort_keys=False, width=1000))
    tests = [{"name": "dashboard links under Grafana root URLs", "interval": "1m",
              "input_series": [{"series": "unused", "values": "1"}],
              "alert_rule_test": [{"eval_time": "1m", "alertname": name,
                                   "exp_alerts": [{"exp_labels": {"error_type": LINK_ERROR_TYPE},
                                                   "exp_annotations": {"dashboard": link}}]}
                                  for name, link in cases]}]
    (tmp_path / "links_test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["links.generated.yml"], "evaluation_interval": "1m", "tests": tests},
        sort_keys=False, width=1000))
    return ["links_test.yml"]


def test_dashboard_links_have_one_slash_under_grafanas_root_url(tmp_path):
    for _path, _group, rule in bq.alert_rules():
        assert "externalURL" in rule["annotations"]["dashboard"], rule["uid"]
    names = _dashboard_link_files(tmp_path)
    result = promtool("test", "rules", *names, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_link_check_catches_a_double_slash(tmp_path):
    form = '{{ reReplaceAll "/$" "" (externalURL) }}'
    assert all(form in r["annotations"]["dashboard"] for _p, _g, r in bq.alert_rules()), \
        "the links no longer use this form: update this test"
    names = _dashboard_link_files(tmp_path, lambda text: text.replace(form, "{{ externalURL }}"))
    assert promtool("test", "rules", *names, cwd=tmp_path).returncode != 0
