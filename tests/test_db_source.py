"""A running server on the database config source follows CLI edits without a restart."""

import asyncio
import os
import sys

from agi_server.app import App, Overrides
from agi_server.config.db import import_config
from agi_server.config.load import load_file
from agi_server.config.source import DatabaseSource
from tests.agi_harness import EXAMPLE_CONFIG
from tests.asterisk import env_block, play, with_env
from tests.test_config_db import truncate_config


def call(i: int) -> bytes:
    return with_env(env_block("agi-01-normal-select"), uniqueid=f"5.{i}")


async def didrouter(*args: str, dsn: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", *args, env={**os.environ, "DIDROUTER_DSN": dsn},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out.decode()


async def test_cli_edit_changes_the_next_select_within_a_second(pg_dsn, tmp_path, wait_until):
    await truncate_config(pg_dsn)
    config, _ = load_file(EXAMPLE_CONFIG)
    await import_config(pg_dsn, config)
    app = await App.create(DatabaseSource(pg_dsn), Overrides(port=0, spool=str(tmp_path / "spool")))
    port = await app.start()
    try:
        await wait_until(lambda: app._listener.listening)
        await wait_until(lambda: app.reloads >= 1)                        # the listener's first load
        before = await play(port, call(1))
        reloads = app.reloads
        code, out = await didrouter("campaigns", "set-primary", "spring", "+15557654324", dsn=pg_dsn)
        assert code == 0, out
        await wait_until(lambda: app.reloads > reloads, timeout=1.0)     # NOTIFY -> reload within a second
        after = await play(port, call(2))
        code, out = await didrouter("campaigns", "add-did", "spring", "+15558880003", "--role", "dynamic", dsn=pg_dsn)
        still = await play(port, call(3))
    finally:
        await app.stop()
    assert before.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"'
    # new pool [+15557654324, old primary +15557654321 as dynamic #1, 322, 323] starts
    # afresh: its first slot is the new primary, the next the old primary
    assert after.commands[0] == 'SET VARIABLE CALLERID(num) "15557654324"'
    assert code == 2 and "primary's trunk" in out                      # refused before writing
    assert still.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"'
