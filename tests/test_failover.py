"""Issue 3 at the service level: AMI trunk health moves AGI decisions to fallback and back.

A fake Asterisk AMI (real TCP, recorded ami-08 bytes) drives a running App; the
assertions are on what the FastAGI server answers after each step.
"""

import asyncio
import sys
from dataclasses import replace

import asyncpg
import pytest

from agi_server.app import App
from agi_server.config.load import load_file
from agi_server.config.model import AmiServer
from agi_server.config.source import FileSource
from tests import fake_ami
from tests.agi_harness import EXAMPLE_CONFIG, FAST
from tests.asterisk import env_block, play, with_env
from tests.test_ami_watcher import FAST as FAST_AMI
from tests.test_ami_watcher import split_at

HOLD = 0.3   # seconds of hysteresis in these tests (15 s / 30 s in production)


def call(i: int) -> bytes:
    return with_env(env_block("agi-01-normal-select"), uniqueid=f"3.{i}")


async def callerid_of(port: int, i: int) -> str:
    return (await play(port, call(i))).commands[0]


async def trunk_a_registration_lost(app, fake, wait_until) -> None:
    """Replay ami-08 up to Registry Rejected; wait until trunk-a is down and recorded."""
    down, _ = split_at(fake_ami.events("ami-08"), lambda m: m.header("Status") == "Rejected")
    fake.registration_status = "Rejected"
    await fake.replay(down)
    await wait_until(lambda: app.health.current("pbx1", "trunk-a") == "down", timeout=5)
    await wait_until(lambda: app.cdr.stats()["queued"] == 0)


@pytest.fixture
async def app(fake, tmp_path, clean_db):
    config, _ = load_file(EXAMPLE_CONFIG)
    settings = replace(config.settings, port=0, dsn=clean_db, spool=str(tmp_path / "spool"), timeouts=FAST,
                       trunk_fail_after=HOLD, trunk_recover_after=HOLD, dynamic_did_enabled=False)
    server = AmiServer(name="pbx1", port=fake.port, username="dialer", secret="test-secret", agi_peers=("127.0.0.1",))
    config = replace(config, settings=settings, ami_servers=(server,))
    app = App(FileSource(str(EXAMPLE_CONFIG)), config, ami_timings=FAST_AMI)
    await app.start()
    await fake_ami.until(lambda: app.watchers[0].seeds >= 1, what="seed")
    yield app
    await app.stop()


async def test_registration_down_moves_spring_to_fallback_and_back(app, fake, clean_db, wait_until):
    port = app.port
    assert await callerid_of(port, 0) == 'SET VARIABLE CALLERID(num) "15557654321"'
    down, rest = split_at(fake_ami.events("ami-08"), lambda m: m.header("Status") == "Rejected")
    fake.registration_status = "Rejected"
    await fake.replay(down)
    # within the hysteresis the primary still serves...
    assert await callerid_of(port, 1) == 'SET VARIABLE CALLERID(num) "15557654321"'
    await wait_until(lambda: app.health.current("pbx1", "trunk-a") == "down", timeout=5)
    # ...after it, spring's fallback DIDs rotate on trunk-b
    result = await play(port, call(2))
    assert result.commands[:5] == [
        'SET VARIABLE CALLERID(num) "15558880001"', 'SET VARIABLE DIDR_STATUS "OK"',
        'SET VARIABLE DIDR_DIAL "PJSIP/15551230001@trunk-b"', 'SET VARIABLE DIDR_TRUNK "trunk-b"',
        'SET VARIABLE DIDR_ROLE "fallback"']
    assert await callerid_of(port, 3) == 'SET VARIABLE CALLERID(num) "15558880002"'
    fake.registration_status = "Registered"
    await fake.replay(rest)
    await wait_until(lambda: app.health.current("pbx1", "trunk-a") == "up", timeout=5)
    assert await callerid_of(port, 4) == 'SET VARIABLE CALLERID(num) "15557654321"'
    await wait_until(lambda: app.cdr.stats()["queued"] == 0)
    conn = await asyncpg.connect(clean_db)
    try:
        rows = await conn.fetch("SELECT server, trunk, old_state, new_state, cause FROM trunk_state_change"
                                " WHERE trunk = 'trunk-a' ORDER BY changed_at")
    finally:
        await conn.close()
    assert [(r["old_state"], r["new_state"]) for r in rows][-2:] == [("up", "down"), ("down", "up")]
    assert rows[-2]["cause"] == "registration: Registry Rejected" and rows[-2]["server"] == "pbx1"


async def test_both_trunks_down_is_no_trunk(app, fake, wait_until):
    outage, _ = split_at(fake_ami.events("ami-10"), lambda m: m.header("Status") == "Rejected")
    fake.registration_status, fake.unavailable = "Rejected", {"trunk-b"}
    await fake.replay(outage)
    await wait_until(lambda: app.health.current("pbx1", "trunk-a") == "down"
                     and app.health.current("pbx1", "trunk-b") == "down", timeout=5)
    result = await play(app.port, call(1))
    assert result.commands == ['SET VARIABLE DIDR_STATUS "NO_TRUNK"', 'SET VARIABLE DIDR_ATTEMPT "1"']


async def test_ami_link_lost_delays_no_reply_and_follows_the_unknown_policy(app, fake, wait_until):
    await fake.close()                                  # Asterisk's AMI vanishes
    await wait_until(lambda: app.health.current("pbx1", "trunk-a") == "unknown", timeout=5)
    results = await asyncio.gather(*(play(app.port, call(i)) for i in range(20)))
    assert all(r.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"' for r in results)   # unknown: assumed up


async def test_carrier_failures_open_the_breaker_without_ami_news(app, wait_until):
    port = app.port
    for i in range(3):   # three calls fail in the carrier (ami-10: a dead provider rings out, cause 0)
        await play(port, call(i))
        report = with_env(env_block("agi-11-report-congestion-503"), uniqueid=f"3.{i}",
                          network_script="report?dialstatus=NOANSWER&hangupcause=0")
        assert (await play(port, report)).commands == ['SET VARIABLE DIDR_STATUS "OK"']
    assert app.health.current("pbx1", "trunk-a") == "down"
    assert await callerid_of(port, 10) == 'SET VARIABLE CALLERID(num) "15558880001"'


async def test_trunks_command_shows_the_latest_state_per_server_and_trunk(app, fake, clean_db, wait_until):
    await trunk_a_registration_lost(app, fake, wait_until)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", "trunks", "--dsn", clean_db, "--config", str(EXAMPLE_CONFIG),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    lines = out.decode().splitlines()
    assert proc.returncode == 0, err
    assert lines[0].split() == ["SERVER", "TRUNK", "STATE", "SINCE", "(UTC)", "CAUSE"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    assert ("pbx1", "trunk-a", "down") in rows and ("pbx1", "trunk-b", "up") in rows


@pytest.mark.parametrize("stream, uniqueid, dialstatus, cause, answered, dialed", [
    ("ami-03", "1796313750.4", "ANSWER", 16, 4, 5),
    ("ami-04", "1796313831.15", "BUSY", 17, 0, 0),
    ("ami-05", "1796313839.18", "CONGESTION", 34, 0, 0),
    ("ami-10", "1796314120.21", "FAILED", None, 0, 0),         # CHANUNAVAIL: no DialEnd, only the Cdr
])
async def test_ami_call_events_fill_the_attempt_row_and_the_report_wins(
        app, fake, clean_db, wait_until, stream, uniqueid, dialstatus, cause, answered, dialed):
    await play(app.port, with_env(env_block("agi-01-normal-select"), uniqueid=uniqueid))
    calls = [m for m in fake_ami.events(stream) if m.header("Event") in ("DialEnd", "Hangup", "Cdr")]
    await fake.replay(calls)
    row = await _row_when(clean_db, wait_until, uniqueid, lambda r: r["outcome_source"] == "ami"
                          and r["dialed_seconds"] is not None)
    assert (row["dialstatus"], row["hangupcause"], row["answered_seconds"], row["dialed_seconds"]) == (
        dialstatus, cause, answered, dialed)
    report = with_env(env_block("agi-02-normal-report-answer"), uniqueid=uniqueid,
                      network_script="report?attempt=1&dialstatus=CHANUNAVAIL&hangupcause=3")
    await play(app.port, report)
    row = await _row_when(clean_db, wait_until, uniqueid, lambda r: r["outcome_source"] == "agi")
    assert (row["dialstatus"], row["hangupcause"]) == ("CHANUNAVAIL", 3)


async def test_ami_events_of_calls_didrouter_did_not_select_are_ignored(app, fake, clean_db, wait_until):
    await fake.replay([m for m in fake_ami.events("ami-03") if m.header("Event") in ("DialEnd", "Hangup", "Cdr")])
    await play(app.port, call(99))     # something to wait on
    await wait_until(lambda: app.cdr.stats()["written"] == 1)
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM cdr_outcome_pending") == 0
    finally:
        await conn.close()


async def _row_when(dsn, wait_until, uniqueid, predicate):
    """Attempt 1 of ``uniqueid`` once ``predicate(row)`` holds (bounded wait)."""
    found = {}

    async def check():
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow("SELECT * FROM cdr_attempt WHERE uniqueid = $1 AND attempt = 1", uniqueid)
        finally:
            await conn.close()
        if row is not None and predicate(row):
            found["row"] = row
        return "row" in found

    await wait_until(check)
    return found["row"]


async def test_campaigns_show_includes_the_recorded_trunk_health(app, fake, clean_db, wait_until):
    from agi_server.config.db import import_config
    from tests.test_config_db import truncate_config

    await truncate_config(clean_db)
    await import_config(clean_db, load_file(EXAMPLE_CONFIG)[0])
    await trunk_a_registration_lost(app, fake, wait_until)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", "campaigns", "show", "spring", "--json", "--dsn", clean_db,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    import json
    health = {d["number"]: d["trunk_health"] for d in json.loads(out)["dids"]}
    assert health["+15557654321"] == "pbx1: down"
    assert health["+15558880001"] == "pbx1: up"
