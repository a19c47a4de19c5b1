"""The running service: config, CDR writer, router and FastAGI server wired together.

Start-up order: load config (a bad one stops start-up with every problem listed),
start the CDR writer (journal first, PostgreSQL in the background), then listen.
Shutdown is the reverse, and every task started is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, replace

import structlog

from agi_server.agi.server import AgiServer
from agi_server.cdr.writer import CdrWriter
from agi_server.config.load import load_file
from agi_server.config.model import Config
from agi_server.errors import StoreError
from agi_server.migrate import apply_migrations
from agi_server.routes import Routes
from agi_server.routing.router import Router

log = structlog.get_logger("didrouter.app")


@dataclass(frozen=True)
class Overrides:
    """Command-line / environment values that win over the config file."""

    host: str | None = None
    port: int | None = None
    dsn: str | None = None
    spool: str | None = None


def apply_overrides(config: Config, overrides: Overrides) -> Config:
    changes = {k: v for k, v in vars(overrides).items() if v not in (None, "")}
    return replace(config, settings=replace(config.settings, **changes)) if changes else config


class App:
    """One didrouter process. ``start()`` returns the FastAGI port actually bound."""

    def __init__(self, config_path: str, overrides: Overrides = Overrides()) -> None:
        self.config_path = config_path
        self.overrides = overrides
        self.config = self._load()
        settings = self.config.settings
        self.cdr = CdrWriter(settings.spool, settings.dsn, settings.spool_fsync_interval)
        self.router = Router(self.config, self.cdr)
        self.routes = Routes(self.router)
        self.agi = AgiServer(self.routes.handle, lambda: self.router.config.settings.timeouts)
        self.port: int | None = None
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro, name: str) -> asyncio.Task:
        """Start a background task that is kept, and cancelled by :meth:`stop`."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _load(self) -> Config:
        config, warnings = load_file(self.config_path)
        for problem in warnings:
            log.warning("config_warning", source=problem.source, field=problem.field, reason=problem.message)
        return apply_overrides(config, self.overrides)

    async def start(self) -> int:
        settings = self.config.settings
        await self.cdr.start()
        if settings.dsn:
            self.spawn(self._migrate(settings.dsn), "migrate")
        self.port = await self.agi.start(settings.host, settings.port)
        log.info("didrouter_started", config=self.config_path, campaigns=sorted(self.config.campaigns),
                 cdr="postgresql+spool" if settings.dsn else "spool only", spool=settings.spool)
        return self.port

    async def _migrate(self, dsn: str, attempts: int = 30) -> None:
        """Bring the schema up to date in the background; rows wait in the spool meanwhile."""
        for attempt in range(1, attempts + 1):
            try:
                applied = await apply_migrations(dsn)
            except StoreError as exc:
                log.warning("migrate_failed", attempt=attempt, reason=str(exc))
                await asyncio.sleep(min(30.0, 2.0 * attempt))
                continue
            log.info("schema_ready", applied=applied)
            return
        log.error("migrate_gave_up", reason="run `didrouter migrate` by hand; CDR rows wait in the spool")

    async def stop(self) -> None:
        await self.agi.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.cdr.stop()
        log.info("didrouter_stopped", served=self.agi.served)


async def run(app: App) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()
