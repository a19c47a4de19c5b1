"""Live reload: a good edit applies to the next call, a bad one keeps the last good config."""

import asyncio
import json
import os
import signal
import sys

from agi_server.app import App, Overrides
from tests.agi_harness import EXAMPLE_CONFIG
from tests.asterisk import env_block, play, with_env


def call(i: int, campaign: str = "spring") -> bytes:
    env = with_env(env_block("agi-01-normal-select"), uniqueid=f"7.{i}")
    return env.replace(b"campaign=spring", f"campaign={campaign}".encode())


def edited(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


async def started_on_a_copy_of_the_example(tmp_path):
    """A running App on tmp_path/didrouter.yaml (a copy of the example), ready to edit."""
    path = tmp_path / "didrouter.yaml"
    text = EXAMPLE_CONFIG.read_text()
    path.write_text(text)
    app = await App.create(str(path), Overrides(port=0, spool=str(tmp_path / "spool")))
    return path, text, app, await app.start()


async def test_reload_applies_a_good_edit_and_keeps_rotation_of_unchanged_campaigns(tmp_path):
    path, text, app, port = await started_on_a_copy_of_the_example(tmp_path)
    try:
        first_spring = await play(port, call(1))
        first_summer = await play(port, call(2, "summer"))
        # summer gets a new primary; spring is untouched
        path.write_text(edited(text, 'primary: "+15557654324"', 'primary: "+15557654325"'))
        assert await app.reload()
        second_spring = await play(port, call(3))
        second_summer = await play(port, call(4, "summer"))
    finally:
        await app.stop()
    assert first_spring.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"'
    assert second_spring.commands[0] == 'SET VARIABLE CALLERID(num) "15557654322"'   # rotation carried over
    assert first_summer.commands[0] == 'SET VARIABLE CALLERID(num) "15557654324"'
    assert second_summer.commands[0] == 'SET VARIABLE CALLERID(num) "15557654325"'


async def test_bad_edit_keeps_the_last_good_config(tmp_path):
    path, text, app, port = await started_on_a_copy_of_the_example(tmp_path)
    try:
        path.write_text(edited(text, 'dynamic: ["+15557654322", "+15557654323"]', 'dynamic: ["+15558880003"]'))
        assert not await app.reload()
        path.write_text("campaigns: [")
        assert not await app.reload()
        result = await play(port, call(1))
    finally:
        await app.stop()
    assert result.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"'
    assert app.config.campaigns["spring"].dynamic == ("+15557654322", "+15557654323")


async def test_sighup_with_pidfile_reloads_a_running_server_and_logs_why_a_bad_edit_is_refused(tmp_path):
    path, pidfile = tmp_path / "didrouter.yaml", tmp_path / "didrouter.pid"
    text = EXAMPLE_CONFIG.read_text()
    path.write_text(text)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", "serve", "--config", str(path), "--port", "0",
        "--spool", str(tmp_path / "spool"), "--pidfile", str(pidfile),
        env={**os.environ, "DIDROUTER_LOG_FORMAT": "json"}, stderr=asyncio.subprocess.PIPE)
    events = Events(proc.stderr)
    try:
        port = (await events.wait_for("agi_listening"))["port"]
        await events.wait_for("didrouter_started")
        pid = int(pidfile.read_text())
        path.write_text(edited(text, 'dynamic: ["+15557654322", "+15557654323"]', 'dynamic: ["+15558880003"]'))
        os.kill(pid, signal.SIGHUP)
        error = await events.wait_for("config_error")
        await events.wait_for("config_reload_rejected")
        still_old = await play(port, call(1))
        path.write_text(edited(text, 'primary: "+15557654321"', 'primary: "+15557654323"').replace(
            'dynamic: ["+15557654322", "+15557654323"]', 'dynamic: ["+15557654322"]'))
        os.kill(pid, signal.SIGHUP)
        await events.wait_for("config_reloaded")
        new = await play(port, call(2))
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    assert error["field"] == "campaigns.spring.dynamic[0]" and "trunk-b" in error["reason"]
    assert still_old.commands[0] == 'SET VARIABLE CALLERID(num) "15557654321"'
    assert new.commands[0] == 'SET VARIABLE CALLERID(num) "15557654323"'
    assert not pidfile.exists()


class Events:
    """Structured JSON log lines of a child process, awaited by event name."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream

    async def wait_for(self, name: str, timeout: float = 15.0) -> dict:
        async with asyncio.timeout(timeout):
            while line := await self.stream.readline():
                event = json.loads(line)
                if event.get("event") == name:
                    return event
        raise AssertionError(f"no {name} event")
