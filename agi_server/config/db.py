"""Campaign config in PostgreSQL (tables of ``sql/migrations/003_config.sql``).

* :func:`load_db` reads the tables into the YAML document shape and validates it with
  :func:`~agi_server.config.load.load_mapping` (source ``"database"``), so a database
  config is checked exactly like a YAML file.
* :func:`import_config` replaces the whole database config in one transaction (so
  servers see one NOTIFY and never a half-written config).
* :class:`ConfigListener` calls back when any config table changes.

Every database call is bounded (``command_timeout``); connection and database
failures raise :class:`~agi_server.errors.StoreError`, a config the database refuses
raises :class:`~agi_server.errors.ConfigError`.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import asyncpg
import structlog

from agi_server import pg, sqlfiles
from agi_server.config.export import to_document  # noqa: F401  (part of this API)
from agi_server.config.load import load_mapping
from agi_server.config.model import Config
from agi_server.config.validate import Problem, warning
from agi_server.errors import ConfigError

log = structlog.get_logger()

SOURCE = "database"
CHANNEL = "didrouter_config"
LOCK_KEY = 0x64696463  # "didc": serialises config writers (see config_lock.sql)
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0

DB_ERRORS = pg.DB_ERRORS


async def load_db(dsn: str) -> tuple[Config, list[Problem]]:
    """Read and validate the database config. Returns (config, warnings).

    Raises ConfigError with every problem if it does not validate, StoreError if the
    database cannot be read. The tables are read in one snapshot.
    """
    async with connect(dsn) as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            document = await read_document(conn)
    return load_mapping(document, SOURCE)


async def import_config(dsn: str, config: Config) -> list[Problem]:
    """Replace the whole database config with ``config`` in one transaction.

    Returns warnings about what the database does not store (``asterisk_servers``,
    ``settings.dsn``).
    """
    async with connect(dsn) as conn:
        async with conn.transaction():
            await lock(conn)
            await write_config(conn, config)
    warnings = []
    if config.ami_servers:
        warnings.append(warning(config.source, "asterisk_servers",
                                "not stored in the database (per deployment; keep them in YAML)"))
    if config.settings.dsn:
        warnings.append(warning(config.source, "settings.dsn",
                                "not stored in the database (it may hold a password): "
                                "give servers the DSN with --dsn or DIDROUTER_DSN"))
    return warnings


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection with bounded commands; database errors become StoreError/ConfigError."""
    async with pg.connect(dsn, "config database", command_timeout=COMMAND_TIMEOUT) as conn:
        try:
            yield conn
        except asyncpg.IntegrityConstraintViolationError as exc:
            problem = Problem("error", SOURCE, getattr(exc, "table_name", None) or "-", str(exc))
            raise ConfigError(f"{SOURCE}: 1 error(s)", (problem,)) from exc


async def lock(conn: asyncpg.Connection) -> None:
    """Take the config writers' lock until the current transaction ends."""
    await conn.execute(sqlfiles.query("config_lock"), LOCK_KEY)


async def read_document(conn: asyncpg.Connection) -> dict[str, Any]:
    """The config tables as a YAML-shaped document (not validated)."""
    settings = await conn.fetchrow(sqlfiles.query("config_select_settings"))
    trunks = await conn.fetch(sqlfiles.query("config_select_trunks"))
    dids = await conn.fetch(sqlfiles.query("config_select_dids"))
    campaigns = await conn.fetch(sqlfiles.query("config_select_campaigns"))
    members = await conn.fetch(sqlfiles.query("config_select_campaign_dids"))
    return {
        "settings": _settings_doc(settings),
        "trunks": [{k: v for k, v in dict(r).items() if v is not None} for r in trunks],
        "dids": [dict(r) for r in dids],
        "campaigns": _campaigns_doc(campaigns, members),
    }


def _settings_doc(row: asyncpg.Record | None) -> dict[str, Any]:
    if row is None:
        return {}
    # The DSN is never stored (see write_config); one written by an older version is ignored.
    values = {k: v for k, v in dict(row).items() if v is not None and k != "dsn"}
    doc: dict[str, Any] = {}
    listen = {k: values.pop(f"listen_{k}") for k in ("host", "port") if f"listen_{k}" in values}
    if listen:
        doc["listen"] = listen
    timeouts = {k[len("timeout_"):]: values.pop(k) for k in list(values) if k.startswith("timeout_")}
    doc.update(values)
    if timeouts:
        doc["timeouts"] = timeouts
    return doc


def _campaigns_doc(campaigns: list[asyncpg.Record], members: list[asyncpg.Record]) -> list[dict]:
    docs: dict[str, dict[str, Any]] = {}
    for row in campaigns:
        doc = {"name": row["name"], "primary": row["primary_did"], "dynamic": [], "fallback": []}
        if row["dynamic_did_enabled"] is not None:
            doc["dynamic_did_enabled"] = row["dynamic_did_enabled"]
        docs[row["name"]] = doc
    for row in members:
        docs[row["campaign"]][row["role"]].append(row["did"])
    return list(docs.values())


async def write_config(conn: asyncpg.Connection, config: Config) -> None:
    """Replace every config row with ``config`` (call inside a transaction, locked).

    ``settings.dsn`` is not written (NULL): it may hold a password, and every reader of
    the config database already has a DSN of its own.
    """
    s = config.settings
    await conn.execute(sqlfiles.query("config_clear"))
    await conn.execute(
        sqlfiles.query("config_insert_settings"), s.dynamic_did_enabled, s.default_country,
        s.unknown_health, s.host, s.port, None, s.spool, s.spool_fsync_interval,
        s.timeouts.env_read, s.timeouts.reply, s.timeouts.session,
    )
    await _insert_many(conn, "config_insert_trunk", [
        (t.name, t.dial, t.callerid_format, t.national_prefix, t.admin_state, t.health,
         t.registration, t.endpoint) for t in config.trunks.values()])
    await _insert_many(conn, "config_insert_did", [(d.number, d.trunk) for d in config.dids.values()])
    await _insert_many(conn, "config_insert_campaign", [
        (c.name, c.primary, c.dynamic_did_enabled) for c in config.campaigns.values()])
    await _insert_many(conn, "config_insert_campaign_did", [
        (c.name, number, role, position)
        for c in config.campaigns.values()
        for role, numbers in (("dynamic", c.dynamic), ("fallback", c.fallback))
        for position, number in enumerate(numbers)])


async def _insert_many(conn: asyncpg.Connection, name: str, rows: list[tuple]) -> None:
    if rows:
        await conn.executemany(sqlfiles.query(name), rows)


class ConfigListener:
    """Calls ``on_change()`` when the database config changes (LISTEN didrouter_config).

    Contract:

    * one dedicated connection; ``on_change`` runs on the event loop, must not block,
      and its exceptions are logged, never propagated;
    * ``on_change`` is also called after every (re)connection, including the first,
      because notifications sent while not listening are lost: the caller reloads;
    * a dropped connection (closed, killed, or silent: a ping every ``keepalive``
      seconds) is reopened with exponential back-off from ``min_backoff`` to
      ``max_backoff`` seconds;
    * :meth:`stop` cancels the one task it started and closes the connection.
    """

    def __init__(self, dsn: str, on_change: Callable[[], None], *, keepalive: float = 5.0,
                 min_backoff: float = 0.2, max_backoff: float = 10.0) -> None:
        self.dsn = dsn
        self.on_change = on_change
        self.keepalive = keepalive
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.connections = 0          # successful LISTENs so far (observability, tests)
        self.server_pid: int | None = None
        self._task: asyncio.Task | None = None

    @property
    def listening(self) -> bool:
        return self.server_pid is not None

    async def start(self) -> None:
        """Start listening in the background (returns at once; idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="didrouter-config-listener")

    async def stop(self) -> None:
        """Cancel the listener task and wait (bounded) for it to close its connection."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task}, timeout=CONNECT_TIMEOUT + 1)

    async def _run(self) -> None:
        delay = self.min_backoff
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)
            except DB_ERRORS as exc:
                log.warning("config_listener_connect_failed", error=str(exc), retry_in=delay)
            else:
                try:
                    await self._listen(conn)
                    delay = self.min_backoff
                except DB_ERRORS as exc:
                    log.warning("config_listener_lost", error=str(exc), retry_in=delay)
                finally:
                    self.server_pid = None
                    await pg.close(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """Listen until the connection is lost (returns) or fails (raises)."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await asyncio.wait_for(conn.add_listener(CHANNEL, self._notified), CONNECT_TIMEOUT)
        self.server_pid = conn.get_server_pid()
        self.connections += 1
        log.info("config_listener_listening", channel=CHANNEL, connections=self.connections)
        self._fire()
        while not lost.is_set() and not conn.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), self.keepalive)
            except TimeoutError:
                await conn.execute(sqlfiles.query("config_ping"), timeout=self.keepalive)
        log.warning("config_listener_connection_closed")

    def _notified(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._fire()

    def _fire(self) -> None:
        try:
            self.on_change()
        except Exception:  # a caller's bug must not stop the listener
            log.exception("config_listener_callback_failed")
