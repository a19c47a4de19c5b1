"""Apply the numbered SQL migrations in ``sql/migrations`` to a PostgreSQL database.

Contract of :func:`apply_migrations`:

* pending migrations (version not in ``schema_migrations``) run in version order,
  each in its own transaction together with its ``schema_migrations`` row, so a
  failure leaves the database at the last good version;
* a session-level advisory lock serialises concurrent migrators: the second one
  waits, then sees the versions the first applied and does nothing;
* running it again is a no-op that returns ``[]``;
* every database call is bounded by a timeout; failures raise ``StoreError``.
"""

from __future__ import annotations

import asyncpg
import structlog

from agi_server import pg, sqlfiles

log = structlog.get_logger()

# Arbitrary constant shared by every didrouter process ("didr" in ASCII, 0x64696472).
LOCK_KEY = 0x64696472
LOCK_TIMEOUT = 60.0       # another process may be running a long migration
STATEMENT_TIMEOUT = 300.0  # one migration; generous because DDL may rewrite tables



async def apply_migrations(dsn: str) -> list[str]:
    """Apply pending migrations; return the names (file stems) applied, in order."""
    available = sqlfiles.migrations()
    # Closing the session (pg.connect always does) also releases the advisory lock
    # if unlock never ran.
    async with pg.connect(dsn, "migration", command_timeout=None) as conn:
        return await _apply_locked(conn, available)


async def _apply_locked(
    conn: asyncpg.Connection, available: list[tuple[int, str, str]]
) -> list[str]:
    await conn.execute(sqlfiles.query("migrate_lock"), LOCK_KEY, timeout=LOCK_TIMEOUT)
    try:
        await conn.execute(sqlfiles.query("schema_migrations_create"), timeout=STATEMENT_TIMEOUT)
        rows = await conn.fetch(sqlfiles.query("schema_migrations_applied"),
                                timeout=STATEMENT_TIMEOUT)
        done = {row["version"] for row in rows}
        known = {version for version, _, _ in available}
        if done - known:
            # The database is newer than this code: say so, but do not refuse to run.
            log.warning("migrations_unknown_applied", versions=sorted(done - known))
        applied = []
        for version, name, text in available:
            if version in done:
                continue
            await _apply_one(conn, version, name, text)
            applied.append(name)
        return applied
    finally:
        try:
            await conn.execute(sqlfiles.query("migrate_unlock"), LOCK_KEY, timeout=LOCK_TIMEOUT)
        except pg.DB_ERRORS as exc:
            # Harmless: closing the session (always done by the caller) releases it too.
            log.warning("migrate_unlock_failed", error=str(exc))


async def _apply_one(conn: asyncpg.Connection, version: int, name: str, text: str) -> None:
    async with conn.transaction():
        # No arguments: the simple query protocol, so a file may hold many statements.
        await conn.execute(text, timeout=STATEMENT_TIMEOUT)
        await conn.execute(sqlfiles.query("schema_migrations_insert"), version, name,
                           timeout=STATEMENT_TIMEOUT)
    log.info("migration_applied", version=version, name=name)
