"""The whole service: real socket in, decision out, rows in real PostgreSQL or the spool."""

import json

from agi_server.app import App, Overrides
from tests.agi_harness import EXAMPLE_CONFIG
from tests.asterisk import env_block, play, with_env
from tests.test_cdr_writer import fetch_rows


async def test_three_attempts_land_three_rows_in_postgresql(clean_db, tmp_path, wait_until):
    app = await App.create(str(EXAMPLE_CONFIG), Overrides(port=0, dsn=clean_db, spool=str(tmp_path / "spool")))
    port = await app.start()
    try:
        results = [await play(port, env_block("agi-01-normal-select")) for _ in range(3)]
        report = await play(port, with_env(env_block("agi-09-report-busy-486"), uniqueid="1796313750.4",
                                           network_script="report?attempt=3&dialstatus=BUSY&hangupcause=17"))
        await wait_until(lambda: app.cdr.stats()["written"] == 3 and app.cdr.stats()["outcomes"] == 1)
    finally:
        await app.stop()
    assert [r.commands[0] for r in results] == [
        'SET VARIABLE CALLERID(num) "15557654321"',
        'SET VARIABLE CALLERID(num) "15557654322"',
        'SET VARIABLE CALLERID(num) "15557654323"']
    assert report.commands == ['SET VARIABLE DIDR_STATUS "OK"']
    rows = await fetch_rows(clean_db)
    assert [(r["uniqueid"], r["attempt"], r["did"], r["trunk"], r["role"], r["campaign"], r["destination"])
            for r in rows] == [
        ("1796313750.4", 1, "+15557654321", "trunk-a", "primary", "spring", "15551230001"),
        ("1796313750.4", 2, "+15557654322", "trunk-a", "dynamic", "spring", "15551230001"),
        ("1796313750.4", 3, "+15557654323", "trunk-a", "dynamic", "spring", "15551230001")]
    assert {r["server"] for r in rows} == {"127.0.0.1"}   # no AMI servers: the peer names the server
    assert [r["dialstatus"] for r in rows] == [None, None, "BUSY"]
    assert "round-robin slot 1/3" in rows[0]["reason"]


async def test_without_a_dsn_rows_go_to_the_spool_file(tmp_path):
    spool = tmp_path / "var" / "cdr.spool"
    app = await App.create(str(EXAMPLE_CONFIG), Overrides(port=0, spool=str(spool)))
    port = await app.start()
    try:
        await play(port, env_block("agi-05-extra-args-select"))
    finally:
        await app.stop()
    [entry] = [json.loads(line) for line in spool.read_text().splitlines()]
    assert (entry["kind"], entry["campaign"], entry["did"], entry["destination"]) == (
        "attempt", "autumn", "+15557654325", "15551230003")


async def test_a_busy_port_is_a_clear_error_and_nothing_is_left_running(tmp_path):
    import asyncio
    import socket

    import pytest

    from agi_server.errors import ListenError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = await App.create(str(EXAMPLE_CONFIG), Overrides(port=port, spool=str(tmp_path / "spool")))
        with pytest.raises(ListenError, match=f"cannot listen for FastAGI on 127.0.0.1:{port}"):
            await app.start()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []
    # the spool's lock was released: another server can start on it
    again = await App.create(str(EXAMPLE_CONFIG), Overrides(port=0, spool=str(tmp_path / "spool")))
    await again.start()
    await again.stop()
