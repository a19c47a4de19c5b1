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

from agi_server import pg, sqlfiles
from agi_server.cdr.record import AttemptRecord, OutcomeRecord, TrunkStateRecord

# Errors that mean "the database is not there right now": retry later, keep the rows.
DB_ERRORS = pg.DB_ERRORS

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


def outcome_from_entry(entry: dict[str, Any]) -> OutcomeRecord:
    """The :class:`OutcomeRecord` of an ``outcome`` entry, checked; else :class:`BadEntry`."""
    try:
        rec = OutcomeRecord.from_json(entry)
    except TypeError as exc:
        raise BadEntry(str(exc)) from None
    for name in ("server", "uniqueid", "dialstatus", "fault", "source"):
        _check_text(name, getattr(rec, name), nullable=False)
    _check_text("trunk", rec.trunk, nullable=True)
    if rec.attempt is not None and (type(rec.attempt) is not int or not 1 <= rec.attempt <= _INT32_MAX):
        raise BadEntry(f"attempt must be an integer >= 1 or null, got {rec.attempt!r}")
    for name in ("hangupcause", "answered_seconds", "dialed_seconds"):
        value = getattr(rec, name)
        if value is not None and (type(value) is not int or not 0 <= value <= _INT32_MAX):
            raise BadEntry(f"{name} must be a whole number >= 0 or null, got {value!r}")
    if isinstance(rec.reported_at, bool) or not isinstance(rec.reported_at, (int, float)):
        raise BadEntry(f"reported_at must be a UNIX time, got {rec.reported_at!r}")
    return rec


def trunk_state_from_entry(entry: dict[str, Any]) -> TrunkStateRecord:
    """The :class:`TrunkStateRecord` of a ``trunk_state`` entry, checked; else :class:`BadEntry`."""
    try:
        rec = TrunkStateRecord.from_json(entry)
    except TypeError as exc:
        raise BadEntry(str(exc)) from None
    for name in ("server", "trunk", "old", "new", "cause", "observer"):
        _check_text(name, getattr(rec, name), nullable=False)
    if isinstance(rec.at, bool) or not isinstance(rec.at, (int, float)) or not math.isfinite(rec.at):
        raise BadEntry(f"at must be a UNIX time, got {rec.at!r}")
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


def outcome_arrays(records: Sequence[OutcomeRecord]) -> list[list[Any]]:
    """The 11 parallel arrays ``apply_outcomes.sql`` takes, in its parameter order."""
    columns = ("server", "uniqueid", "attempt", "dialstatus", "hangupcause", "answered_seconds",
               "dialed_seconds", "fault", "source", "reported_at", "trunk")
    arrays = [[getattr(rec, col) for rec in records] for col in columns]
    arrays[9] = [float(x) for x in arrays[9]]
    return arrays


async def apply_outcomes(conn: asyncpg.Connection, outcomes: Sequence[OutcomeRecord], timeout: float) -> None:
    """Complete attempt rows with ``outcomes`` (or hold them as pending/orphans)."""
    if outcomes:
        await conn.execute(sqlfiles.query("apply_outcomes"), *outcome_arrays(outcomes), timeout=timeout)


async def insert_trunk_states(conn: asyncpg.Connection, states: Sequence[TrunkStateRecord], timeout: float) -> None:
    if states:
        columns = ("server", "trunk", "old", "new", "cause", "at", "observer")
        arrays = [[getattr(rec, col) for rec in states] for col in columns]
        arrays[5] = [float(x) for x in arrays[5]]
        await conn.execute(sqlfiles.query("insert_trunk_states"), *arrays, timeout=timeout)


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

    async def insert(self, records: Sequence[AttemptRecord], outcomes: Sequence[OutcomeRecord] = (),
                     states: Sequence[TrunkStateRecord] = ()) -> int:
        """Insert ``records`` (duplicates ignored), then apply ``outcomes``, then record
        trunk ``states``, in one transaction; return how many attempt rows were new."""
        if self._pool is None:
            # min_size=0: no connection until needed, so this never waits on the server.
            self._pool = await asyncio.wait_for(asyncpg.create_pool(
                self._dsn, min_size=0, max_size=1, timeout=self._connect_timeout,
                command_timeout=self._query_timeout), self._connect_timeout)
        conn = await self._pool.acquire(timeout=self._connect_timeout)
        try:
            try:
                async with conn.transaction():
                    return await self._write(conn, records, outcomes, states)
            except DB_ERRORS as exc:
                if not is_data_error(exc):
                    raise
                return await self._insert_each(conn, records, outcomes, states)
        finally:
            await self._pool.release(conn, timeout=self._connect_timeout)

    async def _write(self, conn: asyncpg.Connection, records: Sequence[AttemptRecord],
                     outcomes: Sequence[OutcomeRecord], states: Sequence[TrunkStateRecord] = ()) -> int:
        inserted = await insert_attempts(conn, records, self._query_timeout)
        if records:
            await conn.execute(sqlfiles.query("adopt_pending_outcomes"), timeout=self._query_timeout)
        await apply_outcomes(conn, outcomes, self._query_timeout)
        await insert_trunk_states(conn, states, self._query_timeout)
        return inserted

    async def _insert_each(self, conn: asyncpg.Connection, records: Sequence[AttemptRecord],
                           outcomes: Sequence[OutcomeRecord], states: Sequence[TrunkStateRecord]) -> int:
        """The batch was refused for its data: go entry by entry, set refused ones aside."""
        inserted = 0
        single = ([([rec], [], []) for rec in records] + [([], [out], []) for out in outcomes]
                  + [([], [], [st]) for st in states])
        for attempts, outs, sts in single:
            try:
                async with conn.transaction():
                    inserted += await self._write(conn, attempts, outs, sts)
            except DB_ERRORS as exc:
                if not is_data_error(exc):
                    raise
                self._reject((attempts or outs or sts)[0].to_json(), f"{type(exc).__name__}: {exc}")
        return inserted

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self._connect_timeout)
        except (TimeoutError, *DB_ERRORS):
            pool.terminate()
