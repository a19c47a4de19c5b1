"""Design invariants 1 and 2 at the service level: no reply waits on PostgreSQL, and
every decision that reached Asterisk ends up in PostgreSQL exactly once."""

import asyncio
import json
import os
import signal
import sys

import asyncpg

from agi_server.app import App, Overrides
from tests.agi_harness import EXAMPLE_CONFIG
from tests.asterisk import env_block, play, with_env
from tests.tcp_proxy import CuttableProxy
from tests.test_cdr_writer import fetch_rows


def call_env(i: int) -> bytes:
    return with_env(env_block("agi-01-normal-select"), uniqueid=f"1796313750.{i}")


async def count_rows(dsn: str) -> int:
    return len(await fetch_rows(dsn))


async def test_locked_table_delays_no_reply_and_loses_nothing(clean_db, tmp_path, wait_until):
    app = await App.create(str(EXAMPLE_CONFIG), Overrides(port=0, dsn=clean_db, spool=str(tmp_path / "spool")))
    port = await app.start()
    locker = await asyncpg.connect(clean_db)
    try:
        await play(port, call_env(0))
        await wait_until(lambda: app.cdr.stats()["written"] == 1)
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE cdr_attempt IN ACCESS EXCLUSIVE MODE")
        # Every call is answered in full while the table is locked.
        results = await asyncio.gather(*(play(port, call_env(i)) for i in range(1, 31)))
        assert all(len(r.commands) == 6 and r.closed_by_server for r in results)
        assert app.cdr.stats()["written"] == 1
        await tx.rollback()
        await wait_until(lambda: app.cdr.stats()["written"] == 31, timeout=30)
    finally:
        await locker.close()
        await app.stop()
    rows = await fetch_rows(clean_db)
    assert len(rows) == 31 == len({(r["uniqueid"], r["attempt"]) for r in rows})


async def test_database_outage_mid_run_loses_and_duplicates_nothing(clean_db, tmp_path, wait_until):
    proxy = CuttableProxy()
    await proxy.start()
    app = await App.create(str(EXAMPLE_CONFIG), Overrides(port=0, dsn=proxy.dsn(clean_db), spool=str(tmp_path / "spool")))
    app.cdr._retry_cap = 0.2   # retry quickly in the test (default 30 s)
    port = await app.start()
    try:
        for i in range(10):
            await play(port, call_env(i))
        await wait_until(lambda: app.cdr.stats()["written"] == 10)
        await proxy.cut()                                   # PostgreSQL "stops"
        for i in range(10, 40):
            result = await play(port, call_env(i))
            assert result.commands[1] == 'SET VARIABLE DIDR_STATUS "OK"'
        assert await count_rows(clean_db) == 10
        await proxy.restore()                               # and "starts" again
        await wait_until(lambda: app.cdr.stats()["written"] == 40, timeout=30)
    finally:
        await app.stop()
        await proxy.cut()
    rows = await fetch_rows(clean_db)
    assert sorted(int(r["uniqueid"].split(".")[1]) for r in rows) == list(range(40))


async def test_kill_9_loses_no_decision_that_reached_asterisk(clean_db, tmp_path, wait_until):
    spool = tmp_path / "spool"
    dead = "postgresql://postgres@127.0.0.1:9/nowhere"          # rows can only wait in the spool
    proc = await _serve(spool, dead)
    try:
        port = await _listening_port(proc)
        answered = [await play(port, call_env(i)) for i in range(25)]
        assert all(r.commands[1] == 'SET VARIABLE DIDR_STATUS "OK"' for r in answered)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    app = await App.create(str(EXAMPLE_CONFIG), Overrides(port=0, dsn=clean_db, spool=str(spool)))
    await app.start()
    try:
        await wait_until(lambda: app.cdr.stats()["written"] == 25, timeout=30)
    finally:
        await app.stop()
    rows = await fetch_rows(clean_db)
    assert sorted(int(r["uniqueid"].split(".")[1]) for r in rows) == list(range(25))


async def _serve(spool, dsn) -> asyncio.subprocess.Process:
    env = {**os.environ, "DIDROUTER_LOG_FORMAT": "json"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", "serve", "--config", str(EXAMPLE_CONFIG), "--port", "0",
        "--dsn", dsn, "--spool", str(spool), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def _listening_port(proc: asyncio.subprocess.Process) -> int:
    async with asyncio.timeout(15):
        while line := await proc.stderr.readline():
            event = json.loads(line)
            if event.get("event") == "agi_listening":
                asyncio.get_running_loop().create_task(_drain(proc.stderr))
                return event["port"]
    raise AssertionError("didrouter serve never logged agi_listening")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
