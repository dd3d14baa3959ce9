"""Configuration precedence: flags > environment > YAML > defaults; secrets never printed."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, load_config, redact_url


def test_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("app: fromfile\nloki:\n  url: http://file:3100\n  tenant: t-file\n  batch_bytes: 100\n")
    cfg = load_config(f, env={})
    assert (cfg.app, cfg.loki.url, cfg.loki.tenant, cfg.loki.batch_bytes) == ("fromfile", "http://file:3100", "t-file", 100)
    cfg = load_config(f, env={"LOKI_URL": "http://env:3100", "TELEMETRY_APP": "fromenv"})
    assert (cfg.app, cfg.loki.url, cfg.loki.tenant) == ("fromenv", "http://env:3100", "t-file")
    cfg = load_config(f, env={"LOKI_URL": "http://env:3100"}, flags={"app": "fromflag"},
                      loki_flags={"url": "http://flag:3100", "tenant": None})
    assert (cfg.app, cfg.loki.url, cfg.loki.tenant) == ("fromflag", "http://flag:3100", "t-file")
    assert load_config(None, env={}).app == "saberloop"


def test_credentials_in_url_become_basic_auth_and_are_redacted():
    cfg = load_config(None, env={"LOKI_URL": "https://alice:s3cret@logs.example.com/loki?x=1"})
    assert cfg.loki.url == "https://logs.example.com/loki?x=1"
    assert (cfg.loki.username, cfg.loki.password) == ("alice", "s3cret")
    assert "s3cret" not in repr(cfg)
    assert redact_url("https://alice:s3cret@logs.example.com/loki?token=abc") == "https://logs.example.com/loki"


def test_secret_files(tmp_path):
    tok = tmp_path / "token"
    tok.write_text("abc123\n")
    cfg = load_config(None, env={"LOKI_BEARER_TOKEN_FILE": str(tok)})
    assert cfg.loki.secret_token() == "abc123"
    cfg = load_config(None, env={"LOKI_PASSWORD_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="cannot read password file"):
        cfg.loki.secret_password()


@pytest.mark.parametrize("text, message", [
    ("loki: [1]", "must be mappings"),
    ("nonsense_key: 1", "unknown setting 'nonsense_key'"),
    ("loki:\n  batch_bytes: lots", "invalid value 'lots' for batch_bytes"),
    ("loki:\n  compression: brotli", "compression must be auto, gzip or none"),
    ("a: [", "not valid YAML"),
])
def test_bad_config_files_give_clear_errors(tmp_path, text, message):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", "\\[")):
        load_config(f, env={})


def test_bad_env_value():
    with pytest.raises(ConfigError, match="environment: invalid value"):
        load_config(None, env={"LOKI_READY_TIMEOUT": "soon"})


def test_max_labels_per_type_from_each_layer(tmp_path):
    assert load_config(None, env={}).metrics.max_labels_per_type == 50
    f = tmp_path / "c.yaml"
    f.write_text("metrics:\n  max_labels_per_type: 20\n")
    assert load_config(f, env={}).metrics.max_labels_per_type == 20
    assert load_config(f, env={"TELEMETRY_MAX_LABELS_PER_TYPE": "7"}).metrics.max_labels_per_type == 7
    assert load_config(f, env={"TELEMETRY_MAX_LABELS_PER_TYPE": "7"},
                       metrics_flags={"max_labels_per_type": 3}).metrics.max_labels_per_type == 3


@pytest.mark.parametrize("env, message", [
    ({"TELEMETRY_MAX_SESSIONS": "-1"}, "metrics.max_sessions must be >= 0, not -1"),
    ({"TELEMETRY_MAX_ERROR_TYPES": "-5"}, "metrics.max_error_types must be >= 0"),
    ({"TELEMETRY_MAX_LABELS_PER_TYPE": "-1"}, "metrics.max_labels_per_type must be >= 0"),
    ({"TELEMETRY_SESSION_IDLE_SECONDS": "0"}, "metrics.session_idle_seconds must be > 0"),
    ({"TELEMETRY_SESSION_IDLE_SECONDS": "nan"}, "metrics.session_idle_seconds must be > 0"),
    ({"TELEMETRY_MAX_LINE_BYTES": "0"}, "max_line_bytes must be >= 1"),
    ({"LOKI_BATCH_BYTES": "0"}, "loki.batch_bytes must be >= 1"),
    ({"LOKI_MAX_RETRIES": "-1"}, "loki.max_retries must be >= 0"),
    ({"LOKI_TIMEOUT": "0"}, "loki.timeout must be > 0"),
    ({"LOKI_MAX_BACKOFF": "-1"}, "loki.max_backoff must be >= 0"),
])
def test_negative_or_zero_limits_are_config_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, env=env)


def test_zero_caps_are_allowed():
    cfg = load_config(None, env={"TELEMETRY_MAX_SESSIONS": "0", "TELEMETRY_MAX_ERROR_TYPES": "0"})
    assert (cfg.metrics.max_sessions, cfg.metrics.max_error_types) == (0, 0)


@pytest.mark.parametrize("flag", [["--max-sessions", "-1"], ["--max-error-types", "-1"],
                                  ["--max-labels-per-type", "-2"], ["--batch-bytes", "0"]])
def test_serve_refuses_a_negative_cap_with_exit_2(tmp_path, capsys, flag):
    from exporter.cli import main
    logs = tmp_path / "logs"
    logs.mkdir()
    assert main(["serve", str(logs), "--no-loki", "--state-dir", str(tmp_path / "s"), *flag]) == 2
    assert "must be >=" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()          # refused before anything started
