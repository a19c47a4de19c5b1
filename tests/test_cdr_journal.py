"""The journal alone: append, read back, torn lines, rotation, ownership."""

from __future__ import annotations

import json
import os

import pytest
from structlog.testing import capture_logs

from agi_server.cdr.journal import Journal, encode, read_entries
from agi_server.errors import StoreError


@pytest.fixture
def journal(spool_path):
    j = Journal(spool_path)
    assert j.open() == []
    yield j
    j.close()


def test_append_creates_parent_and_writes_json_lines(journal, spool_path):
    journal.append({"kind": "attempt", "n": 1})
    journal.append({"kind": "outcome", "n": 2, "text": "é\nx"})
    journal.sync()
    raw = spool_path.read_bytes()
    assert raw.count(b"\n") == 2 and raw.isascii()
    assert [json.loads(line) for line in raw.splitlines()] == read_entries(spool_path)
    assert read_entries(spool_path)[1] == {"kind": "outcome", "n": 2, "text": "é\nx"}


def test_entries_need_a_kind_and_json(journal):
    with pytest.raises(StoreError):
        journal.append({"n": 1})
    with pytest.raises(StoreError):
        journal.append({"kind": "attempt", "x": object()})
    with pytest.raises(StoreError):
        journal.append({"kind": "attempt", "x": float("nan")})


def test_torn_and_garbage_lines_are_skipped_and_logged(tmp_path):
    path = tmp_path / "seg"
    good = encode({"kind": "attempt", "n": 1})
    path.write_bytes(good + b"not json\n" + b'["no kind"]\n' + b"\xff\xfe\n"
                     + encode({"kind": "future", "n": 2}) + b'{"kind": "attempt", "n"')
    with capture_logs() as logs:
        entries = read_entries(path)
    assert entries == [{"kind": "attempt", "n": 1}, {"kind": "future", "n": 2}]
    skipped = [e for e in logs if e["event"] == "journal_line_skipped"]
    assert [(e["line"], e["torn"]) for e in skipped] == [
        (2, False), (3, False), (4, False), (6, True)]


def test_missing_segment_reads_empty(tmp_path):
    assert read_entries(tmp_path / "nothing") == []


def test_rotation_by_size_and_on_request(spool_path):
    j = Journal(spool_path, max_segment_bytes=100)
    j.open()
    seqs = [j.append({"kind": "attempt", "pad": "x" * 40}) for _ in range(5)]
    # 55-byte lines: every second append crosses 100 bytes and seals the segment.
    assert seqs == [1, 1, 2, 2, 3]
    assert j.sealed() == [1, 2]
    assert j.rotate() == 3
    assert j.rotate() is None  # the new live segment is empty
    j.sync()
    assert [len(read_entries(j.segment_path(s))) for s in j.sealed()] == [2, 2, 1]
    j.delete(1)
    assert j.sealed() == [2, 3]
    with pytest.raises(StoreError):
        j.delete(j.live_seq)
    j.close()


def test_reopen_seals_the_previous_live_segment(spool_path):
    first = Journal(spool_path)
    first.open()
    first.append({"kind": "attempt", "n": 1})
    first.close()
    # A crash mid-write leaves a torn tail; the next owner never appends after it.
    with open(spool_path, "ab") as f:
        f.write(b'{"kind":"att')
    second = Journal(spool_path)
    assert second.open() == [1]
    assert second.append({"kind": "attempt", "n": 2}) == 2
    second.sync()
    assert read_entries(second.segment_path(1)) == [{"kind": "attempt", "n": 1}]
    assert read_entries(spool_path) == [{"kind": "attempt", "n": 2}]
    second.close()


def test_one_owner_at_a_time(journal, spool_path):
    with pytest.raises(StoreError, match="in use"):
        Journal(spool_path).open()


def test_append_after_close_raises_store_error(spool_path):
    j = Journal(spool_path)
    j.open()
    j.close()
    with pytest.raises(StoreError, match="not open"):
        j.append({"kind": "attempt"})


def test_failed_write_does_not_glue_the_next_line(journal, spool_path, monkeypatch):
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, data[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(StoreError, match="No space"):
        journal.append({"kind": "attempt", "n": 1})
    monkeypatch.setattr(os, "write", real_write)
    journal.append({"kind": "attempt", "n": 2})
    assert read_entries(spool_path) == [{"kind": "attempt", "n": 2}]


def test_rejected_entries_are_kept_aside(journal, spool_path):
    journal.append_rejected({"kind": "attempt", "attempt": "x"}, "bad attempt")
    line = json.loads((spool_path.parent / "cdr.spool.rejected").read_text())
    assert line == {"error": "bad attempt", "entry": {"kind": "attempt", "attempt": "x"}}
