"""Shared fixtures: a real throwaway PostgreSQL database, spool paths, a dead DSN.

PostgreSQL is required (design: "PostgreSQL is real in tests"). If it cannot be
reached the tests that need it *fail* with a message saying so; they do not skip.
Set ``DIDROUTER_TEST_PG_ADMIN`` to use another server than the default below.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from agi_server.cdr.record import AttemptRecord
from agi_server.migrate import apply_migrations

ADMIN_DSN = os.environ.get(
    "DIDROUTER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CDR_TABLES = ("cdr_attempt", "cdr_outcome_pending", "trunk_state_change")


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _run(coro: Awaitable[Any]) -> Any:
    """Run a coroutine to completion on a private loop in a private thread, so a
    sync (session) fixture never meddles with pytest-asyncio's loops."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql, timeout=30)
    finally:
        await conn.close(timeout=10)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh database ``didrouter_test_<random>`` with migrations applied;
    dropped at the end of the session."""
    name = f"didrouter_test_{secrets.token_hex(6)}"
    try:
        _run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        pytest.fail(
            f"PostgreSQL is required for these tests and is not usable at {ADMIN_DSN} "
            f"({type(exc).__name__}: {exc}). Start it or set DIDROUTER_TEST_PG_ADMIN.",
            pytrace=False,
        )
    dsn = with_database(ADMIN_DSN, name)
    try:
        _run(apply_migrations(dsn))
        yield dsn
    finally:
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def clean_db(pg_dsn: str) -> str:
    """``pg_dsn`` with the CDR tables emptied before the test."""
    conn = await asyncpg.connect(pg_dsn, timeout=10)
    try:
        await conn.execute(f"TRUNCATE {', '.join(CDR_TABLES)}", timeout=30)
    finally:
        await conn.close(timeout=10)
    return pg_dsn


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    """A spool path whose parent directory does not exist yet."""
    return tmp_path / "spool" / "cdr.spool"


@pytest.fixture
def dead_dsn() -> str:
    """A DSN pointing at a local port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.fixture
def make_attempt() -> Callable[..., AttemptRecord]:
    """Factory of valid AttemptRecords; keyword arguments override fields."""
    counter = iter(range(1, 10**9))

    def make(**overrides: Any) -> AttemptRecord:
        n = next(counter)
        values: dict[str, Any] = dict(
            server="ast1", uniqueid=f"1700000000.{n}", attempt=1, campaign="sales",
            destination="+15550001111", did="+15550002222", trunk="trunk-a",
            role="primary", status="OK", reason="rotation", decided_at=1_700_000_000.5,
            channel=f"PJSIP/agent-{n:08x}", peer="10.0.0.5:40000",
        )
        values.update(overrides)
        return AttemptRecord(**values)

    return make


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(predicate, timeout=5)``: poll a condition, bounded."""

    async def wait(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    return wait


@pytest.fixture
async def fake():
    """A fake Asterisk AMI on a free port (see tests/fake_ami.py)."""
    from tests.fake_ami import FakeAmi

    server = await FakeAmi().start()
    yield server
    await server.close()
