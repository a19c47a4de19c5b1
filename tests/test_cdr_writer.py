"""CdrWriter against a real PostgreSQL: rows land once, outages and kills lose nothing."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from agi_server.cdr.journal import read_entries
from agi_server.cdr.writer import CdrWriter
from agi_server.errors import StoreError

REPO = Path(__file__).resolve().parent.parent


async def fetch_rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetch("SELECT * FROM cdr_attempt ORDER BY uniqueid, attempt",
                                timeout=10)
    finally:
        await conn.close(timeout=10)


async def row_count(dsn: str) -> int:
    return len(await fetch_rows(dsn))


def segment_files(spool: Path) -> list[Path]:
    return sorted(p for p in spool.parent.glob(spool.name + ".*") if p.suffix[1:].isdigit())


def spooled_entries(spool: Path) -> list[dict]:
    return [e for seg in [*segment_files(spool), spool] for e in read_entries(seg)]


def writer(spool, dsn, **kw) -> CdrWriter:
    kw.setdefault("flush_interval", 0.01)
    kw.setdefault("retry_cap", 0.05)
    return CdrWriter(str(spool), dsn, fsync_interval=0.05, **kw)


async def test_rows_land_with_every_column(clean_db, spool_path, make_attempt, wait_until):
    recs = [make_attempt(),
            make_attempt(attempt=2, did=None, trunk=None, role=None, status="NO_DID",
                         reason="all DIDs tried", channel="", peer="", decided_at=1_700_000_123)]
    w = writer(spool_path, clean_db)
    await w.start()
    for rec in recs:
        w.record(rec)
    await wait_until(lambda: w.stats()["written"] == 2)
    await w.stop()
    rows = await fetch_rows(clean_db)
    assert len(rows) == 2
    for rec, row in zip(recs, rows):
        for field in ("server", "uniqueid", "attempt", "campaign", "destination", "did",
                      "trunk", "role", "status", "reason", "channel", "peer"):
            assert row[field] == getattr(rec, field), field
        assert row["decided_at"] == datetime.fromtimestamp(rec.decided_at, timezone.utc)
        assert row["dialstatus"] is None and row["outcome_at"] is None
        assert row["inserted_at"] is not None
    assert w.stats()["failed_batches"] == 0
    # A clean stop with everything confirmed leaves nothing to replay.
    assert segment_files(spool_path) == [] and spooled_entries(spool_path) == []


async def test_same_key_twice_gives_one_row(clean_db, spool_path, make_attempt, wait_until):
    rec = make_attempt()
    w = writer(spool_path, clean_db)
    await w.start()
    w.record(rec)
    w.record(rec)  # same batch
    await wait_until(lambda: w.stats()["written"] + w.stats()["duplicates"] == 2)
    w.record(rec)  # later batch
    await wait_until(lambda: w.stats()["duplicates"] == 2)
    await w.stop()
    assert await row_count(clean_db) == 1
    assert w.stats()["written"] == 1


async def test_replayed_spool_after_restart_gives_no_duplicates(
        clean_db, spool_path, make_attempt, wait_until):
    offline = writer(spool_path, None)
    await offline.start()
    recs = [make_attempt() for _ in range(7)]
    for rec in recs:
        offline.record(rec)
    await offline.stop()
    saved = spool_path.read_bytes()

    for round_ in range(2):  # second round replays the very same lines again
        if round_:
            spool_path.write_bytes(saved)
        w = writer(spool_path, clean_db)
        await w.start()
        await wait_until(lambda: w.stats()["backlog_segments"] == 0)
        await w.stop()
        assert await row_count(clean_db) == 7
        assert segment_files(spool_path) == []
    assert w.stats()["duplicates"] == 7


async def test_without_dsn_the_spool_is_the_store(spool_path, make_attempt):
    recs = [make_attempt(), make_attempt(did=None, role=None, trunk=None)]
    w = writer(spool_path, None)
    with capture_logs() as logs:
        await w.start()
    assert [e for e in logs if e["event"] == "cdr_spool_only"][0]["spool"] == str(spool_path)
    for rec in recs:
        w.record(rec)
    await w.stop()
    lines = [json.loads(line) for line in spool_path.read_text().splitlines()]
    assert lines == [rec.to_json() for rec in recs]
    assert lines[0]["kind"] == "attempt"
    assert w.stats()["spooled"] == 2 and w.stats()["queued"] == 0

    again = writer(spool_path, None)  # restart: nothing is ever deleted
    await again.start()
    again.record(make_attempt())
    await again.stop()
    assert len(spooled_entries(spool_path)) == 3


async def test_torn_last_line_is_skipped_on_replay(
        clean_db, spool_path, make_attempt, wait_until):
    offline = writer(spool_path, None)
    await offline.start()
    recs = [make_attempt() for _ in range(3)]
    for rec in recs:
        offline.record(rec)
    await offline.stop()
    with open(spool_path, "ab") as f:  # what kill -9 mid-write leaves
        f.write(json.dumps(make_attempt().to_json()).encode()[:40])

    w = writer(spool_path, clean_db)
    with capture_logs() as logs:
        await w.start()
        await wait_until(lambda: w.stats()["backlog_segments"] == 0)
    await w.stop()
    assert [r["uniqueid"] for r in await fetch_rows(clean_db)] == [r.uniqueid for r in recs]
    assert [e["torn"] for e in logs if e["event"] == "journal_line_skipped"] == [True]


async def test_outage_then_recovery_delivers_exactly_once(
        clean_db, dead_dsn, spool_path, make_attempt, wait_until):
    recs = [make_attempt(attempt=a) for a in (1, 2) for _ in range(30)]
    down = writer(spool_path, dead_dsn, batch_size=8)
    await down.start()
    for rec in recs:
        down.record(rec)
    await down.stop(timeout=0.5)
    assert down.stats()["written"] == 0 and down.stats()["failed_batches"] >= 1
    assert len(spooled_entries(spool_path)) == 60

    up = writer(spool_path, clean_db, batch_size=8)
    await up.start()
    await up.stop(timeout=0)  # tiny deadline: the replay may be cut short; fine
    up = writer(spool_path, clean_db, batch_size=8)
    await up.start()
    await wait_until(lambda: up.stats()["backlog_segments"] == 0)
    await up.stop()
    rows = await fetch_rows(clean_db)
    assert len(rows) == 60
    assert {(r["uniqueid"], r["attempt"]) for r in rows} == {
        (r.uniqueid, r.attempt) for r in recs}
    assert segment_files(spool_path) == [] and spooled_entries(spool_path) == []


async def test_record_never_waits_while_db_unreachable(dead_dsn, spool_path, make_attempt,
                                                       wait_until):
    assert not inspect.iscoroutinefunction(CdrWriter.record)
    w = writer(spool_path, dead_dsn)
    await w.start()
    results = [w.record(make_attempt()) for _ in range(100)]
    assert results == [None] * 100
    assert w.stats()["queued"] == 100 and w.stats()["spooled"] == 100
    await wait_until(lambda: w.stats()["failed_batches"] >= 2)  # retrying meanwhile
    w.record(make_attempt())
    assert w.stats()["queued"] == 101
    await w.stop(timeout=0.2)
    assert len(spooled_entries(spool_path)) == 101


async def test_disk_trouble_is_logged_not_raised(clean_db, spool_path, make_attempt,
                                                 monkeypatch, wait_until):
    w = writer(spool_path, clean_db)
    await w.start()

    def broken(entry):
        raise StoreError("No space left on device")

    monkeypatch.setattr(w._journal, "append", broken)
    with capture_logs() as logs:
        w.record(make_attempt())
        w.record(make_attempt())
    assert [e["event"] for e in logs] == ["cdr_spool_append_failed"]  # once, not per call
    assert w.stats()["spool_errors"] == 2
    # The rows still reach PostgreSQL from memory.
    await wait_until(lambda: w.stats()["written"] == 2)
    monkeypatch.undo()
    await w.stop()


async def test_kill_9_loses_nothing(clean_db, dead_dsn, spool_path, wait_until):
    child = textwrap.dedent(f"""
        import asyncio, os, signal
        from agi_server.cdr.record import AttemptRecord
        from agi_server.cdr.writer import CdrWriter
        async def main():
            w = CdrWriter({str(spool_path)!r}, {dead_dsn!r}, fsync_interval=60)
            await w.start()
            for n in range(200):
                w.record(AttemptRecord("ast1", f"k.{{n}}", 1, "sales", "+1555", "+1666",
                                       "t", "primary", "OK", "r", 1.7e9))
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=REPO, timeout=60)
    assert proc.returncode == -9

    w = writer(spool_path, clean_db)
    await w.start()
    await wait_until(lambda: w.stats()["backlog_segments"] == 0, timeout=10)
    await w.stop()
    assert await row_count(clean_db) == 200
    assert segment_files(spool_path) == []


async def test_bad_entries_are_set_aside_and_unknown_kinds_kept(
        clean_db, spool_path, make_attempt, wait_until):
    good = make_attempt()
    spool_path.parent.mkdir(parents=True)
    with open(spool_path, "w") as f:
        f.write(json.dumps(good.to_json()) + "\n")
        f.write(json.dumps({**make_attempt().to_json(), "attempt": "two"}) + "\n")
        f.write(json.dumps({**make_attempt().to_json(), "campaign": "a\x00b"}) + "\n")
        f.write(json.dumps({"kind": "outcome", "uniqueid": good.uniqueid}) + "\n")   # malformed
        f.write(json.dumps({"kind": "future", "uniqueid": good.uniqueid}) + "\n")    # unknown kind
    w = writer(spool_path, clean_db)
    with capture_logs() as logs:
        await w.start()
        await wait_until(lambda: w.stats()["backlog_segments"] == 0)
    await w.stop()
    assert [r["uniqueid"] for r in await fetch_rows(clean_db)] == [good.uniqueid]
    assert w.stats()["rejected"] == 3
    rejected = (spool_path.parent / "cdr.spool.rejected").read_text().splitlines()
    assert len(rejected) == 3
    assert any(e["event"] == "cdr_unknown_kind_kept" for e in logs)
    # The segment holds an entry nobody understands yet: it is kept, not deleted.
    kept = [e for seg in segment_files(spool_path) for e in read_entries(seg)]
    assert {"kind": "future", "uniqueid": good.uniqueid} in kept


async def test_memory_is_bounded_during_an_outage(
        clean_db, dead_dsn, spool_path, make_attempt, wait_until):
    down = writer(spool_path, dead_dsn, max_queued=10)
    await down.start()
    for _ in range(25):
        down.record(make_attempt())
    assert down.stats()["queued"] <= 10
    assert down.stats()["backlog_segments"] >= 1
    await down.stop(timeout=0.2)

    up = writer(spool_path, clean_db)
    await up.start()
    await wait_until(lambda: up.stats()["backlog_segments"] == 0)
    await up.stop()
    assert await row_count(clean_db) == 25
    assert segment_files(spool_path) == []


async def test_second_writer_on_same_spool_is_refused(spool_path):
    first = writer(spool_path, None)
    await first.start()
    with pytest.raises(StoreError, match="in use"):
        await writer(spool_path, None).start()
    await first.stop()


async def test_stalled_database_is_bounded_by_timeouts(spool_path, make_attempt, wait_until):
    """A server that accepts TCP and never answers: connects time out, retries go on,
    record() is unaffected and stop() keeps its deadline."""
    held = []

    async def swallow(reader, writer_):
        held.append(writer_)  # keep the socket open, say nothing

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    w = writer(spool_path, f"postgresql://postgres@127.0.0.1:{port}/x", connect_timeout=0.1)
    await w.start()
    w.record(make_attempt())
    await wait_until(lambda: w.stats()["failed_batches"] >= 2)
    w.record(make_attempt())
    assert w.stats()["queued"] == 2
    await asyncio.wait_for(w.stop(timeout=0.3), timeout=5)
    assert len(spooled_entries(spool_path)) == 2
    for conn in held:
        conn.close()
    server.close()
    await server.wait_closed()
