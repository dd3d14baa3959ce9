"""DirectoryFollower: positions are never forgotten, a directory that cannot be listed skips the
poll, gzip in place, read budget and `pending`, partial last lines."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

from exporter.sources.follow import DirectoryFollower


def lines(poll) -> list[bytes]:
    return [rl.data for _, rl in poll]


def day(d: Path, date: str, body: bytes, gz: bool = False) -> Path:
    p = d / f"telemetry-{date}.jsonl{'.gz' if gz else ''}"
    p.write_bytes(gzip.compress(body) if gz else body)
    return p


def test_a_deleted_file_that_comes_back_is_read_on_where_it_stopped(tmp_path):
    f = day(tmp_path, "2025-12-30", b"a\nb\n")
    fol = DirectoryFollower(tmp_path)
    assert lines(fol.poll()) == [b"a", b"b"]
    kept = tmp_path.parent / "kept.jsonl"
    shutil.move(f, kept)
    assert lines(fol.poll()) == []
    assert fol.positions()[str(f.resolve())].offset == 4      # vanished, not forgotten
    with open(kept, "ab") as h:
        h.write(b"c\n")                                        # it grew while away
    shutil.move(kept, f)
    assert lines(fol.poll()) == [b"c"]


def test_a_different_file_under_a_known_name_is_read_from_the_start(tmp_path):
    warnings: list[str] = []
    f = day(tmp_path, "2025-12-30", b"first\n")
    fol = DirectoryFollower(tmp_path, on_warning=warnings.append)
    assert lines(fol.poll()) == [b"first"]
    f.unlink()
    assert lines(fol.poll()) == []
    f.write_bytes(b"other\nlines\n")
    assert lines(fol.poll()) == [b"other", b"lines"]
    assert any("replaced" in w for w in warnings)


def test_a_directory_that_cannot_be_listed_skips_the_poll_and_forgets_nothing(tmp_path):
    warnings: list[str] = []
    d = tmp_path / "logs"
    d.mkdir()
    day(d, "2025-12-30", b"a\n")
    fol = DirectoryFollower(d, on_warning=warnings.append)
    assert lines(fol.poll()) == [b"a"]
    d.rename(tmp_path / "away")                                # mv dir away ...
    for _ in range(3):
        assert lines(fol.poll()) == []
        assert fol.pending                                     # not caught up while it is away
    assert len(warnings) == 1 and "cannot list" in warnings[0]  # one warning, not one per poll
    (tmp_path / "away").rename(d)                              # ... and back
    assert lines(fol.poll()) == []                             # nothing read twice
    assert not fol.pending
    with open(d / "telemetry-2025-12-30.jsonl", "ab") as h:
        h.write(b"b\n")
    assert lines(fol.poll()) == [b"b"]
    assert len(warnings) == 2 and "listed again" in warnings[1]


def test_a_day_gzipped_in_place_is_not_read_again(tmp_path):
    plain = day(tmp_path, "2025-12-30", b"a\nb\n")
    day(tmp_path, "2025-12-31", b"today\n")
    fol = DirectoryFollower(tmp_path)
    assert lines(fol.poll()) == [b"a", b"b", b"today"]
    gz = plain.with_name(plain.name + ".gz")
    gz.write_bytes(gzip.compress(plain.read_bytes()))         # retention: compress, then delete
    assert lines(fol.poll()) == []                            # both there: the plain one is read
    plain.unlink()
    assert lines(fol.poll()) == []
    assert fol.files[str(plain.resolve())].path == gz.resolve()
    assert not fol.pending


def test_a_gzip_archive_is_read_to_its_end_in_one_poll(tmp_path):
    body = b"".join(b"line %06d\n" % i for i in range(20_000))   # 240 KB, budget 16 KB
    day(tmp_path, "2025-12-01", body, gz=True)
    day(tmp_path, "2025-12-31", b"x\n")
    fol = DirectoryFollower(tmp_path, read_budget=16 << 10)
    got = lines(fol.poll())
    assert len(got) == 20_001 and got[-1] == b"x"
    assert not fol.pending and fol.unread == 0


def test_a_plain_file_stopped_by_the_budget_is_pending_until_read_to_its_end(tmp_path):
    day(tmp_path, "2025-12-31", b"".join(b"line %06d\n" % i for i in range(10_000)))   # 120 KB
    fol = DirectoryFollower(tmp_path, read_budget=16 << 10)
    total, polls = 0, 0
    while True:
        total += len(lines(fol.poll()))
        polls += 1
        if not fol.pending:
            break
        assert fol.unread > 0
    assert total == 10_000 and polls >= 8 and fol.unread == 0


def test_partial_last_line_waits_however_long_until_a_newer_day_exists(tmp_path, monkeypatch):
    day(tmp_path, "2025-12-30", b'{"a":1}\n{"b":')
    fol = DirectoryFollower(tmp_path)
    assert lines(fol.poll()) == [b'{"a":1}']
    assert not fol.pending                                    # waiting for a newline is caught up
    later = time.monotonic() + 3600
    monkeypatch.setattr(time, "monotonic", lambda: later)     # an hour without a change
    assert lines(fol.poll()) == []
    monkeypatch.undo()
    day(tmp_path, "2025-12-31", b"")
    assert lines(fol.poll()) == [b'{"b":']                    # the writer moved on: consumed
    assert lines(fol.poll()) == []


def test_cursors_restored_from_positions_are_checked_like_a_file_coming_back(tmp_path):
    warnings: list[str] = []
    f = day(tmp_path, "2025-12-30", b"a\nb\n")
    first = DirectoryFollower(tmp_path)
    assert lines(first.poll()) == [b"a", b"b"]
    saved = first.positions()
    assert lines(DirectoryFollower(tmp_path, saved).poll()) == []
    f.write_bytes(b"x\ny\nz\n")                               # replaced while nobody watched
    assert lines(DirectoryFollower(tmp_path, saved, on_warning=warnings.append).poll()) == [b"x", b"y", b"z"]
    assert any("replaced" in w for w in warnings)


def test_a_cursor_saved_without_its_head_gets_one_and_is_checked_from_then_on(tmp_path):
    from exporter.positions import FilePosition
    warnings: list[str] = []
    first = b"a" * 2000 + b"\n"                               # the cursor is past the 1 KiB head
    f = day(tmp_path, "2025-12-30", first + b"b\n")
    fol = DirectoryFollower(tmp_path, {str(f.resolve()): FilePosition(len(first), 1)}, on_warning=warnings.append)
    assert lines(fol.poll()) == [b"b"]                        # trusted, as before
    f.write_bytes(b"x\ny\nz\n" * 1000)
    assert len(lines(fol.poll())) == 3000                     # but a replacement is now seen
    assert any("replaced" in w for w in warnings)
