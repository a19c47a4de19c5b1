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


def _parse(cls, entry: dict[str, Any], *, text: tuple[str, ...] = (), nullable_text: tuple[str, ...] = (),
           whole: dict[str, tuple[int, bool]] | None = None, times: tuple[str, ...] = ()):
    """``cls.from_json(entry)``, each field checked; else :class:`BadEntry` with the reason.

    Checking here (rather than letting PostgreSQL refuse a whole batch) keeps one bad
    line from blocking the others. ``whole`` maps an integer field to (minimum, nullable).
    """
    try:
        rec = cls.from_json(entry)
    except TypeError as exc:  # missing or unexpected fields
        raise BadEntry(str(exc)) from None
    for name in text:
        _check_text(name, getattr(rec, name), nullable=False)
    for name in nullable_text:
        _check_text(name, getattr(rec, name), nullable=True)
    for name, (minimum, nullable) in (whole or {}).items():
        value = getattr(rec, name)
        if value is None and nullable:
            continue
        if type(value) is not int or not minimum <= value <= _INT32_MAX:
            raise BadEntry(f"{name} must be a whole number >= {minimum}{' or null' if nullable else ''}, got {value!r}")
    for name in times:
        value = getattr(rec, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadEntry(f"{name} must be a UNIX time, got {value!r}")
    return rec


def attempt_from_entry(entry: dict[str, Any]) -> AttemptRecord:
    """The checked :class:`AttemptRecord` of an ``attempt`` entry."""
    return _parse(AttemptRecord, entry, text=_TEXT, nullable_text=_NULLABLE_TEXT,
                  whole={"attempt": (1, False)}, times=("decided_at",))


def outcome_from_entry(entry: dict[str, Any]) -> OutcomeRecord:
    """The checked :class:`OutcomeRecord` of an ``outcome`` entry (attempt may be null: orphan)."""
    return _parse(OutcomeRecord, entry, text=("server", "uniqueid", "dialstatus", "fault", "source"),
                  nullable_text=("trunk",), times=("reported_at",),
                  whole={"attempt": (1, True), "hangupcause": (0, True), "answered_seconds": (0, True),
                         "dialed_seconds": (0, True)})


def trunk_state_from_entry(entry: dict[str, Any]) -> TrunkStateRecord:
    """The checked :class:`TrunkStateRecord` of a ``trunk_state`` entry."""
    return _parse(TrunkStateRecord, entry, text=("server", "trunk", "old", "new", "cause", "observer"),
                  times=("at",))


def _check_text(name: str, value: Any, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise BadEntry(f"{name} must be a string, got {type(value).__name__}")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise BadEntry(f"{name} contains a NUL character")


def _arrays(records: Sequence[Any], columns: tuple[str, ...], time_column: str) -> list[list[Any]]:
    """Parallel arrays, one per column, for an ``unnest(...)`` insert; times as float8."""
    arrays = [[getattr(rec, col) for rec in records] for col in columns]
    at = columns.index(time_column)
    arrays[at] = [float(x) for x in arrays[at]]
    return arrays


def attempt_arrays(records: Sequence[AttemptRecord]) -> list[list[Any]]:
    """The 13 parallel arrays ``insert_attempts.sql`` takes, in its parameter order."""
    return _arrays(records, ("server", "uniqueid", "attempt", "campaign", "destination", "did", "trunk",
                             "role", "status", "reason", "decided_at", "channel", "peer"), "decided_at")


def outcome_arrays(records: Sequence[OutcomeRecord]) -> list[list[Any]]:
    """The 11 parallel arrays ``apply_outcomes.sql`` takes, in its parameter order."""
    return _arrays(records, ("server", "uniqueid", "attempt", "dialstatus", "hangupcause", "answered_seconds",
                             "dialed_seconds", "fault", "source", "reported_at", "trunk"), "reported_at")


async def apply_outcomes(conn: asyncpg.Connection, outcomes: Sequence[OutcomeRecord], timeout: float) -> None:
    """Complete attempt rows with ``outcomes`` (or hold them as pending/orphans)."""
    if outcomes:
        await conn.execute(sqlfiles.query("apply_outcomes"), *outcome_arrays(outcomes), timeout=timeout)


async def insert_trunk_states(conn: asyncpg.Connection, states: Sequence[TrunkStateRecord], timeout: float) -> None:
    if states:
        arrays = _arrays(states, ("server", "trunk", "old", "new", "cause", "at", "observer"), "at")
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
