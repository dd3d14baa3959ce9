"""Streaming line reader and file discovery."""

from __future__ import annotations

import gzip
import io

import pytest

from exporter.sources.files import SourceError, discover, open_binary, read_lines, skip_to


def lines_of(data: bytes, **kw):
    return list(read_lines(io.BufferedReader(io.BytesIO(data)), **kw))


def test_offsets_crlf_bom_blank_and_unterminated_last_line():
    data = b'\xef\xbb\xbf{"a":1}\r\n\r\n{"b":2}\n{"c":3}'
    got = lines_of(data)
    assert [g.data for g in got] == [b'{"a":1}', b"", b'{"b":2}', b'{"c":3}']
    assert [g.offset for g in got] == [0, 12, 14, 22]
    assert [g.end for g in got] == [12, 14, 22, 29]
    assert [g.lineno for g in got] == [1, 2, 3, 4]
    assert [g.terminated for g in got] == [True, True, True, False]


def test_follow_mode_leaves_partial_last_line():
    got = lines_of(b'{"a":1}\n{"b":', partial_last_line=False)
    assert [g.data for g in got] == [b'{"a":1}']


def test_too_long_line_is_not_held_whole(tmp_path):
    big = b"x" * 5_000_000
    got = lines_of(b'{"a":1}\n' + big + b"\n" + b'{"b":2}\n', max_line_bytes=1000)
    assert got[1].length == 5_000_000 and len(got[1].data) <= 4096
    assert got[2].data == b'{"b":2}' and got[2].offset == 8 + 5_000_001


def test_resume_from_offset_and_gzip(tmp_path):
    plain = tmp_path / "telemetry-2025-12-01.jsonl"
    gz = tmp_path / "telemetry-2025-12-02.jsonl.gz"
    content = b"".join(b'{"n":%d}\n' % i for i in range(100))
    plain.write_bytes(content)
    gz.write_bytes(gzip.compress(content))
    for path in (plain, gz):
        with open_binary(path) as f:
            first = list(read_lines(f))
        mid = first[40]
        with open_binary(path) as f:
            skip_to(f, mid.offset)
            rest = list(read_lines(f, offset=mid.offset, lineno=40))
        assert [r.data for r in rest] == [r.data for r in first[40:]]
        assert rest[0].lineno == 41 and rest[-1].end == len(content)


def test_discover_sorts_by_day_and_accepts_files_dirs_globs(tmp_path):
    for name in ["telemetry-2025-12-10.jsonl", "telemetry-2025-12-02.jsonl.gz", "telemetry-2025-12-09.jsonl",
                 "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    names = [p.name for p in discover([str(tmp_path)])]
    assert names == ["telemetry-2025-12-02.jsonl.gz", "telemetry-2025-12-09.jsonl", "telemetry-2025-12-10.jsonl"]
    names = [p.name for p in discover([str(tmp_path / "telemetry-2025-12-1*.jsonl"),
                                       str(tmp_path / "telemetry-2025-12-09.jsonl")])]
    assert names == ["telemetry-2025-12-09.jsonl", "telemetry-2025-12-10.jsonl"]
    with pytest.raises(SourceError, match="no such file"):
        discover([str(tmp_path / "missing")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no \\*.jsonl"):
        discover([str(empty)])


def test_a_day_both_plain_and_gzipped_is_read_once(tmp_path):
    for name in ["telemetry-2025-12-01.jsonl", "telemetry-2025-12-01.jsonl.gz", "telemetry-2025-12-02.jsonl.gz"]:
        (tmp_path / name).write_bytes(b"")
    warnings = []
    names = [p.name for p in discover([str(tmp_path)], on_warning=warnings.append)]
    assert names == ["telemetry-2025-12-01.jsonl", "telemetry-2025-12-02.jsonl.gz"]
    assert warnings == ["telemetry-2025-12-01.jsonl.gz skipped: telemetry-2025-12-01.jsonl holds the same day"]
