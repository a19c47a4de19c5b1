"""Short-lived PostgreSQL connections for commands and background jobs, bounded.

One place for what every caller wants: a connect timeout, a command timeout,
the same set of "database trouble" exceptions, and each failure turned into a
:class:`StoreError` that says what to do (a missing table: run ``didrouter migrate``).
The CDR writer keeps its own pool (see ``cdr/store.py``); the reply path never
touches either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from agi_server.errors import StoreError

# Errors that mean "the database is not there or refused": never a bug of ours.
DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0


@asynccontextmanager
async def connect(dsn: str, what: str, command_timeout: float | None = COMMAND_TIMEOUT
                  ) -> AsyncIterator[asyncpg.Connection]:
    """A connection for ``what`` (e.g. "report query"); database errors become StoreError."""
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, command_timeout=command_timeout)
    except DB_ERRORS as exc:
        raise StoreError(f"cannot connect to PostgreSQL for {what}: {exc}") from exc
    try:
        yield conn
    except asyncpg.UndefinedTableError as exc:
        raise StoreError(f"{what}: {exc}: run `didrouter migrate`") from exc
    except DB_ERRORS as exc:
        raise StoreError(f"{what} failed: {exc}") from exc
    finally:
        await close(conn)


async def close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=CONNECT_TIMEOUT)
    except DB_ERRORS:
        conn.terminate()
