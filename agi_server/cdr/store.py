"""PostgreSQL side of the CDR writer: journal entries into rows, rows into the table.

Kept apart from the writer so the rules "what is a valid attempt row", "which
database errors are worth retrying" and "how we talk to the pool" are each in one
place; the writer only orchestrates (queue, journal segments, back-off).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Callable, Sequence

import asyncpg

from agi_server import sqlfiles
from agi_server.cdr.record import AttemptRecord

# Errors that mean "the database is not there right now": retry later, keep the rows.
DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

_TEXT = ("server", "uniqueid", "campaign", "destination", "status", "reason",
         "channel", "peer")
_NULLABLE_TEXT = ("did", "trunk", "role")
_INT32_MAX = 2**31 - 1


class BadEntry(ValueError):
    """A journal entry that can never become a row (wrong shape or types)."""


def attempt_from_entry(entry: dict[str, Any]) -> AttemptRecord:
    """The :class:`AttemptRecord` of an ``attempt`` entry, checked column by column.

    Raises :class:`BadEntry` with the reason; checking here (rather than letting
    PostgreSQL refuse a whole batch) keeps one bad line from blocking the others.
    """
    try:
        rec = AttemptRecord.from_json(entry)
    except TypeError as exc:  # missing or unexpected fields
        raise BadEntry(str(exc)) from None
    for name in _TEXT:
        _check_text(name, getattr(rec, name), nullable=False)
    for name in _NULLABLE_TEXT:
        _check_text(name, getattr(rec, name), nullable=True)
    if type(rec.attempt) is not int or not 1 <= rec.attempt <= _INT32_MAX:
        raise BadEntry(f"attempt must be an integer >= 1, got {rec.attempt!r}")
    if (isinstance(rec.decided_at, bool) or not isinstance(rec.decided_at, (int, float))
            or not math.isfinite(rec.decided_at)):
        raise BadEntry(f"decided_at must be a UNIX time, got {rec.decided_at!r}")
    return rec


def _check_text(name: str, value: Any, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise BadEntry(f"{name} must be a string, got {type(value).__name__}")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise BadEntry(f"{name} contains a NUL character")


def attempt_arrays(records: Sequence[AttemptRecord]) -> list[list[Any]]:
    """The 13 parallel arrays ``insert_attempts.sql`` takes, in its parameter order."""
    columns = ("server", "uniqueid", "attempt", "campaign", "destination", "did", "trunk",
               "role", "status", "reason", "decided_at", "channel", "peer")
    arrays = [[getattr(rec, col) for rec in records] for col in columns]
    arrays[10] = [float(x) for x in arrays[10]]
    return arrays


async def insert_attempts(
    conn: asyncpg.Connection, records: Sequence[AttemptRecord], timeout: float
) -> int:
    """Insert ``records`` in one statement; return how many were new (not duplicates)."""
    if not records:
        return 0
    status = await conn.execute(
        sqlfiles.query("insert_attempts"), *attempt_arrays(records), timeout=timeout
    )
    return int(status.rsplit(" ", 1)[-1])  # command tag "INSERT 0 <n>"


def is_data_error(exc: BaseException) -> bool:
    """True when retrying cannot help: PostgreSQL refused the data itself.

    SQLSTATE class 22 (data exception) and 23 (integrity constraint violation), or
    asyncpg failing to encode a value client-side (its DataError is a ValueError).
    """
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2] in ("22", "23")
    return isinstance(exc, ValueError)


class AttemptStore:
    """Inserts attempt rows through a lazily connected asyncpg pool.

    Creating it does no I/O; the first :meth:`insert` connects. Every asyncpg call
    is bounded by ``connect_timeout`` or ``query_timeout``. Transient failures raise
    one of :data:`DB_ERRORS` for the caller to retry; rows PostgreSQL refuses for
    their data are handed to ``reject(entry, reason)`` and count as settled.
    """

    def __init__(self, dsn: str | None, connect_timeout: float, query_timeout: float,
                 reject: Callable[[dict[str, Any], str], Any]) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._query_timeout = query_timeout
        self._reject = reject
        self._pool: asyncpg.Pool | None = None

    async def insert(self, records: Sequence[AttemptRecord]) -> int:
        """Insert ``records`` (duplicates ignored); return how many rows were new."""
        if self._pool is None:
            # min_size=0: no connection until needed, so this never waits on the server.
            self._pool = await asyncio.wait_for(asyncpg.create_pool(
                self._dsn, min_size=0, max_size=1, timeout=self._connect_timeout,
                command_timeout=self._query_timeout), self._connect_timeout)
        conn = await self._pool.acquire(timeout=self._connect_timeout)
        try:
            try:
                return await insert_attempts(conn, records, self._query_timeout)
            except DB_ERRORS as exc:
                if not is_data_error(exc):
                    raise
                return await self._insert_each(conn, records)
        finally:
            await self._pool.release(conn, timeout=self._connect_timeout)

    async def _insert_each(self, conn: asyncpg.Connection,
                           records: Sequence[AttemptRecord]) -> int:
        """The batch was refused for its data: go row by row, set refused rows aside."""
        inserted = 0
        for rec in records:
            try:
                inserted += await insert_attempts(conn, [rec], self._query_timeout)
            except DB_ERRORS as exc:
                if not is_data_error(exc):
                    raise
                self._reject(rec.to_json(), f"{type(exc).__name__}: {exc}")
        return inserted

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self._connect_timeout)
        except (TimeoutError, *DB_ERRORS):
            pool.terminate()
