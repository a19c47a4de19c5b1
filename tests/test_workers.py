"""Several processes on one database: rotation stays fair within the bound of invariant 6."""

import asyncio
import os
import signal
import socket
import sys
from collections import Counter


from agi_server.app import App, Overrides, Worker
from agi_server.workers import parse_worker
from tests.agi_harness import EXAMPLE_CONFIG
from tests.asterisk import env_block, play, with_env
from tests.test_cdr_writer import fetch_rows
from tests.test_reload import Events

SPRING_MAIN = {"+15557654321", "+15557654322", "+15557654323"}


def call(i: int) -> bytes:
    return with_env(env_block("agi-01-normal-select"), uniqueid=f"9.{i}")


async def test_two_servers_on_one_database_rotate_within_the_bound(clean_db, tmp_path, wait_until):
    apps = [await App.create(str(EXAMPLE_CONFIG), Overrides(port=0, dsn=clean_db, spool=str(tmp_path / "spool")),
                             Worker(i, 2)) for i in range(2)]
    ports = [await app.start() for app in apps]
    try:
        # an uneven split, as a kernel's SO_REUSEPORT hashing gives: 2 of every 3 calls to server 0
        for i in range(61):
            await play(ports[0 if i % 3 else 1], call(i))
        await wait_until(lambda: sum(app.cdr.stats()["written"] for app in apps) == 61)
    finally:
        for app in apps:
            await app.stop()
    rows = await fetch_rows(clean_db)
    counts = Counter(r["did"] for r in rows)
    assert set(counts) == SPRING_MAIN and sum(counts.values()) == 61
    assert max(counts.values()) - min(counts.values()) <= 2          # at most the number of processes
    per_server = Counter((r["peer"], r["did"]) for r in rows)
    assert len(per_server) >= 3


def test_worker_environment_parsing():
    assert parse_worker(None) == (0, 1)
    assert parse_worker("1/4") == (1, 4)


async def test_serve_workers_shares_one_port_and_serves_every_call(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pidfile = tmp_path / "pid"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", "serve", "--config", str(EXAMPLE_CONFIG), "--port", str(port),
        "--workers", "2", "--spool", str(tmp_path / "spool"), "--pidfile", str(pidfile),
        env={**os.environ, "DIDROUTER_LOG_FORMAT": "json"}, stderr=asyncio.subprocess.PIPE)
    events = Events(proc.stderr)
    try:
        workers = {(await events.wait_for("didrouter_started"))["worker"] for _ in range(2)}
        results = await asyncio.gather(*(play(port, call(i)) for i in range(40)))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert workers == {0, 1}
    assert all(r.commands[1] == 'SET VARIABLE DIDR_STATUS "OK"' for r in results)
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("spool-w*") if "." not in p.name) == ["spool-w0", "spool-w1"]


async def _start_workers(tmp_path, port: int, name: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agi_server", "serve", "--config", str(EXAMPLE_CONFIG), "--port", str(port),
        "--workers", "2", "--spool", str(tmp_path / name), "--pidfile", str(tmp_path / f"{name}.pid"),
        env={**os.environ, "DIDROUTER_LOG_FORMAT": "json"}, stderr=asyncio.subprocess.PIPE)


async def test_a_second_instance_on_the_same_port_fails_and_orphaned_workers_stop(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first = await _start_workers(tmp_path, port, "a")
    events = Events(first.stderr)
    for _ in range(2):
        await events.wait_for("didrouter_started")
    second = await _start_workers(tmp_path, port, "b")
    _, err = await asyncio.wait_for(second.communicate(), 20)
    assert second.returncode == 1
    assert f"cannot listen for FastAGI on 127.0.0.1:{port}" in err.decode()
    served = await play(port, call(1))
    assert served.commands[1] == 'SET VARIABLE DIDR_STATUS "OK"'
    first.send_signal(signal.SIGKILL)                       # the supervisor dies, as in an OOM kill
    await first.wait()
    await events.wait_for("supervisor_gone", timeout=10)    # each worker notices and stops
    await events.wait_for("supervisor_gone", timeout=10)
    for _ in range(100):                                    # nobody serves the port any more
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await asyncio.sleep(0.1)
        except OSError:
            break
    else:
        raise AssertionError("orphaned workers still accept calls")
