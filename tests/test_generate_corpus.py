"""The corpus generator: deterministic, and its manifest is exactly what the files hold.

The recount below is deliberately independent of the generator and of the exporter: it reads
the files with the stdlib only (gzip, json, datetime) and applies the reading rules stated in
benchmarks/generate_corpus.py.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from benchmarks.generate_corpus import generate, main, parse_size
from tests.recount import classify, file_lines, read_raw

REASONS = ("not_json", "invalid_utf8", "not_object", "bad_type", "no_timestamp", "too_long")


# ---- an independent, straightforward recount ---------------------------------------------------

def _ms(value: str) -> float:
    return datetime.fromisoformat(value).timestamp() * 1000


def recount(out: Path) -> dict:
    c: dict = {
        "files": {}, "by_type": Counter(), "invalid": Counter(), "blank": 0, "warnings": 0,
        "failed_by_name": Counter(), "failed_by_reason": Counter(), "sessions": set(),
        "sessions_with_errors": set(), "error_messages": Counter(), "late": 0, "skewed": 0,
        "no_server": 0, "no_batch_sent": 0, "events": [],
    }
    paths = sorted(p for p in out.iterdir() if p.name.startswith("telemetry-"))
    for path in paths:
        raw = read_raw(path)
        lines = file_lines(raw)
        c["files"][path.name] = {"lines": len(lines), "raw_bytes": len(raw), "bytes": path.stat().st_size,
                                 "bom": raw.startswith(b"\xef\xbb\xbf"), "crlf": b"\r\n" in raw,
                                 "trailing_newline": raw.endswith(b"\n")}
        for line in lines:
            kind, obj = classify(line)
            if kind == "blank":
                c["blank"] += 1
                continue
            if kind == "invalid":
                c["invalid"][obj] += 1
                continue
            etype = obj["type"]
            server = obj.get("_server") if isinstance(obj.get("_server"), dict) else {}
            c["by_type"][etype] += 1
            data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
            sid = obj.get("sessionId")
            sid = sid if isinstance(sid, str) and sid else None
            if sid:
                c["sessions"].add(sid)
            if etype == "error":
                c["error_messages"][data.get("message")] += 1
                if sid:
                    c["sessions_with_errors"].add(sid)
            elif etype == "log" and data.get("level") == "warn":
                c["warnings"] += 1
            elif etype == "metric" and data.get("status") == "error":
                c["failed_by_name"][data.get("name")] += 1
                c["failed_by_reason"][data.get("error")] += 1
            if not server:
                c["no_server"] += 1
                continue
            if "batchSentAt" not in server:
                c["no_batch_sent"] += 1
                continue
            ts, sent, recv = _ms(obj["timestamp"]), _ms(server["batchSentAt"]), _ms(server["receivedAt"])
            if sent - ts > 3_000_000:          # sent > 50 min after the event: a late batch
                c["late"] += 1
            if abs(recv - sent) > 60_000:      # client clock off by more than a minute
                c["skewed"] += 1
            c["events"].append((path.name, recv))
    return c


# ---- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus")
    manifest = generate(out, days=5, events=6000, seed=7, junk_rate=0.01, gzip_days=2, long_lines=True)
    return out, manifest


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


# ---- tests -----------------------------------------------------------------------------------------

def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    kw = dict(days=3, events=1500, seed=11, junk_rate=0.01, gzip_days=1)
    generate(tmp_path / "a", **kw)
    generate(tmp_path / "b", **kw)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and "manifest.json" in a
    for name in a:
        assert a[name] == b[name], name
    generate(tmp_path / "c", **{**kw, "seed": 12})
    assert _files(tmp_path / "c") != a


def test_manifest_totals_equal_an_independent_recount(corpus: tuple[Path, dict]) -> None:
    out, m = corpus
    c = recount(out)
    assert m["events_total"] == sum(c["by_type"].values()) == 6000
    assert m["events_by_type"] == {t: c["by_type"][t] for t in ("event", "metric", "vital", "log", "error")}
    assert m["invalid_by_reason"] == {r: c["invalid"][r] for r in REASONS}
    assert m["invalid_total"] == sum(c["invalid"].values())
    assert m["blank_lines"] == c["blank"]
    assert m["errors"] == c["by_type"]["error"]
    assert m["warnings"] == c["warnings"]
    assert m["failed_operations"]["by_name"] == dict(c["failed_by_name"])
    assert m["failed_operations"]["by_reason"] == dict(c["failed_by_reason"])
    assert m["failed_operations"]["total"] == sum(c["failed_by_name"].values())
    assert m["sessions"] == len(c["sessions"])
    assert m["sessions_with_errors"] == len(c["sessions_with_errors"])
    assert m["error_messages"] == dict(c["error_messages"])
    assert sum(m["error_templates"].values()) == m["errors"]
    assert m["timing"]["events_without_server"] == c["no_server"]
    assert m["timing"]["events_without_batch_sent_at"] == c["no_batch_sent"]
    files = {f["name"]: f for f in m["files"]}
    assert files.keys() == c["files"].keys()
    for name, f in files.items():
        for key in ("lines", "raw_bytes", "bytes", "bom", "crlf", "trailing_newline"):
            assert f[key] == c["files"][name][key], (name, key)
        assert f["lines"] == f["events"] + f["invalid"] + f["blank"]
    assert m["total_lines"] == m["events_total"] + m["invalid_total"] + m["blank_lines"]


def test_the_mix_looks_real(corpus: tuple[Path, dict]) -> None:
    _, m = corpus
    share = {t: n / m["events_total"] for t, n in m["events_by_type"].items()}
    for t, expected in {"event": 0.45, "metric": 0.25, "vital": 0.15, "log": 0.10, "error": 0.05}.items():
        assert abs(share[t] - expected) < expected * 0.3, (t, share[t])
    assert 0 < m["sessions_with_errors"] < m["sessions"]
    assert m["warnings"] > 0 and m["failed_operations"]["total"] > 0
    assert len(m["error_templates"]) >= 25          # variable messages, many templates
    assert len(m["error_messages"]) > len(m["error_templates"])
    messages = " ".join(m["error_messages"])
    for needle in ("Failed to fetch", "timed out after", "invalid JSON at position", "status code"):
        assert needle in messages
    assert any(not msg.isascii() for msg in m["error_messages"])


def test_file_level_features(corpus: tuple[Path, dict]) -> None:
    out, m = corpus
    names = [f["name"] for f in m["files"]]
    assert names == [f"telemetry-2025-12-{d}.jsonl.gz" for d in (27, 28)] + \
                    [f"telemetry-2025-12-{d}.jsonl" for d in (29, 30, 31)]
    raw = {n: read_raw(out / n) for n in names}
    assert sum(r.startswith(b"\xef\xbb\xbf") for r in raw.values()) == 1
    crlf = [n for n, r in raw.items() if b"\r\n" in r]
    assert len(crlf) == 1 and raw[crlf[0]].count(b"\n") == raw[crlf[0]].count(b"\r\n")
    assert all(r.endswith(b"\n") for r in list(raw.values())[:-1])
    last = raw[names[-1]]
    assert not last.endswith(b"\n")
    obj = json.loads(last.rsplit(b"\n", 1)[-1])
    assert obj["type"] and obj["timestamp"]            # the unterminated last line is an event
    assert all(m["invalid_by_reason"][r] > 0 for r in REASONS)
    assert m["blank_lines"] > 0


def test_files_are_in_receive_order_and_clock_problems_exist(corpus: tuple[Path, dict]) -> None:
    out, m = corpus
    c = recount(out)
    for name in c["files"]:
        recv = [t for n, t in c["events"] if n == name]
        assert recv == sorted(recv), name
        day = name[len("telemetry-"):len("telemetry-") + 10]
        assert all(datetime.fromtimestamp(t / 1000, timezone.utc).date().isoformat() == day for t in recv)
    assert c["late"] > 0 and m["timing"]["late_events"] > 0
    assert c["skewed"] > 0 and m["timing"]["skewed_sessions"] > 0
    assert c["no_server"] > 0 and c["no_batch_sent"] > 0


def test_defaults_and_size_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_size("200MB") == 200_000_000 and parse_size("1GiB") == 1 << 30 and parse_size("5000") == 5000
    m = generate(tmp_path / "s", days=2, size_bytes=400_000, junk_rate=0)
    assert abs(m["total_raw_bytes"] - 400_000) < 40_000
    assert m["invalid_total"] == 0 and m["blank_lines"] == 0
    assert main(["--out", str(tmp_path / "cli"), "--days", "2", "--events", "300",
                 "--end-date", "2025-01-10", "--gzip-days", "2"]) == 0
    assert "MB/s" in capsys.readouterr().err
    m = json.loads((tmp_path / "cli" / "manifest.json").read_text(encoding="utf-8"))
    assert m["events_total"] == 300 and m["generator"]["args"]["end_date"] == "2025-01-10"
    assert [f["name"] for f in m["files"]] == ["telemetry-2025-01-09.jsonl.gz", "telemetry-2025-01-10.jsonl.gz"]
    assert m["events_total"] == sum(recount(tmp_path / "cli")["by_type"].values())


def test_the_bundled_sample_is_what_the_generator_makes(tmp_path: Path) -> None:
    """examples/telemetry-logs is the generator's output for the arguments in its manifest, so
    the sample, its manifest and the tests that count on it never drift apart."""
    sample = Path(__file__).resolve().parents[1] / "examples" / "telemetry-logs"
    args = json.loads((sample / "manifest.json").read_text())["generator"]["args"]
    size = args.pop("size_bytes")
    args["end_date"] = datetime.strptime(args["end_date"], "%Y-%m-%d").date()
    generate(tmp_path, **args, **({"size_bytes": size} if size else {}))
    names = sorted(p.name for p in sample.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    for name in names:
        assert (sample / name).read_bytes() == (tmp_path / name).read_bytes(), name
