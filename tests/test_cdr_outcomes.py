"""Outcomes complete their attempt's row in PostgreSQL: precedence, late attempts, orphans."""

import asyncpg

from agi_server.cdr.record import OutcomeRecord
from tests.test_cdr_writer import fetch_rows, writer


def outcome(uniqueid="1796313750.4", attempt=1, dialstatus="ANSWER", cause=16, source="agi",
            at=1796313760.0, fault="answered", answered=12, dialed=20, server="pbx1") -> OutcomeRecord:
    return OutcomeRecord(server=server, uniqueid=uniqueid, attempt=attempt, dialstatus=dialstatus,
                         hangupcause=cause, answered_seconds=answered, dialed_seconds=dialed,
                         fault=fault, source=source, reported_at=at, trunk="trunk-a")


async def pending_rows(dsn):
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetch("SELECT * FROM cdr_outcome_pending ORDER BY uniqueid, attempt NULLS FIRST")
    finally:
        await conn.close()


async def write_all(dsn, spool_path, wait_until, *entries):
    w = writer(spool_path, dsn)
    await w.start()
    for entry in entries:
        w.record(entry)
    await wait_until(lambda: w.stats()["queued"] == 0 and w.stats()["backlog_segments"] == 0)
    await w.stop()
    return w


async def test_report_completes_the_attempt_row(clean_db, spool_path, make_attempt, wait_until):
    attempt = make_attempt(server="pbx1", uniqueid="1796313750.4", attempt=1)
    await write_all(clean_db, spool_path, wait_until, attempt, outcome(answered=12, dialed=20))
    [row] = await fetch_rows(clean_db)
    assert (row["did"], row["dialstatus"], row["hangupcause"], row["outcome_fault"], row["outcome_source"]) == (
        attempt.did, "ANSWER", 16, "answered", "agi")
    assert (row["answered_seconds"], row["dialed_seconds"], row["outcome_trunk"]) == (12, 20, "trunk-a")
    assert await pending_rows(clean_db) == []


async def test_report_wins_over_ami_in_either_order(clean_db, spool_path, make_attempt, wait_until):
    a1 = make_attempt(server="pbx1", uniqueid="u1", attempt=1)
    a2 = make_attempt(server="pbx1", uniqueid="u2", attempt=1)
    ami = dict(dialstatus="CONGESTION", cause=34, source="ami", fault="carrier")
    await write_all(clean_db, spool_path, wait_until,
                    a1, a2,
                    outcome("u1", at=10.0, **ami), outcome("u1", at=11.0),      # ami first, then report
                    outcome("u2", at=10.0), outcome("u2", at=11.0, **ami))      # report first, then ami
    rows = {r["uniqueid"]: r for r in await fetch_rows(clean_db)}
    assert (rows["u1"]["dialstatus"], rows["u1"]["outcome_source"]) == ("ANSWER", "agi")
    assert (rows["u2"]["dialstatus"], rows["u2"]["outcome_source"]) == ("ANSWER", "agi")


async def test_outcome_before_its_attempt_is_adopted_later(clean_db, spool_path, make_attempt, wait_until, tmp_path):
    # two servers of a farm: the report's writer gets to PostgreSQL first
    await write_all(clean_db, tmp_path / "b" / "spool", wait_until, outcome("late", dialstatus="BUSY", cause=17, fault="callee"))
    assert [r["uniqueid"] for r in await pending_rows(clean_db)] == ["late"]
    await write_all(clean_db, spool_path, wait_until, make_attempt(server="pbx1", uniqueid="late", attempt=1))
    [row] = await fetch_rows(clean_db)
    assert (row["dialstatus"], row["hangupcause"], row["outcome_fault"]) == ("BUSY", 17, "callee")
    assert await pending_rows(clean_db) == []


async def test_orphan_outcome_is_kept_once_even_when_replayed(clean_db, spool_path, wait_until, tmp_path):
    orphan = outcome("nobody", attempt=None)
    await write_all(clean_db, spool_path, wait_until, orphan)
    await write_all(clean_db, tmp_path / "again" / "spool", wait_until, orphan)
    [row] = await pending_rows(clean_db)
    assert (row["uniqueid"], row["attempt"], row["dialstatus"]) == ("nobody", None, "ANSWER")
    assert await fetch_rows(clean_db) == []


async def test_outcomes_survive_an_outage_in_the_spool(clean_db, dead_dsn, spool_path, make_attempt, wait_until):
    down = writer(spool_path, dead_dsn)
    await down.start()
    down.record(make_attempt(server="pbx1", uniqueid="o1", attempt=1))
    down.record(outcome("o1", dialstatus="CHANUNAVAIL", cause=3, fault="carrier"))
    await down.stop(timeout=0.2)
    await write_all(clean_db, spool_path, wait_until)
    [row] = await fetch_rows(clean_db)
    assert (row["uniqueid"], row["dialstatus"], row["hangupcause"]) == ("o1", "CHANUNAVAIL", 3)
