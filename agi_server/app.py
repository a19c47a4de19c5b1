"""The running service: config, CDR writer, router and FastAGI server wired together.

Start-up order: load config (a bad one stops start-up with every problem listed),
start the CDR writer (journal first, PostgreSQL in the background), then listen.
Shutdown is the reverse, and every task started is cancelled and awaited.

Reload (SIGHUP for a file, NOTIFY for the database): a new snapshot replaces the
old one for the next select; calls in flight keep theirs; a config that fails
validation is logged problem by problem and the last good one stays. Settings that
need a restart (listen address, DSN, spool) are kept and a warning says so.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from agi_server.agi.server import AgiServer
from agi_server.cdr.writer import CdrWriter
from agi_server.ami.calls import AmiOutcome, CallOutcomeTracker
from agi_server.ami.watcher import AmiTimings, AmiWatcher
from agi_server.cdr.record import TrunkStateRecord
from agi_server.config.model import AmiServer, Config
from agi_server.health.board import HealthBoard
from agi_server.health.view import BoardView
from agi_server.config.source import ConfigSource, DatabaseSource, FileSource
from agi_server.errors import ConfigError, StoreError
from agi_server.migrate import apply_migrations
from agi_server.routes import Routes
from agi_server.routing.router import ReportRequest, Router

log = structlog.get_logger("didrouter.app")


@dataclass(frozen=True)
class Overrides:
    """Command-line / environment values that win over the config file."""

    host: str | None = None
    port: int | None = None
    dsn: str | None = None
    spool: str | None = None
    ami: tuple[AmiServer, ...] | None = None   # --ami: replaces the config's asterisk_servers


@dataclass(frozen=True)
class Worker:
    """This process's place among ``count`` workers sharing one port (``--workers``)."""

    index: int = 0
    count: int = 1
    sock: socket.socket | None = None   # the listening socket the supervisor passed down

    def spool(self, path: str) -> str:
        """Each worker journals to its own spool (a journal has one owner)."""
        return path if self.count == 1 else f"{path}-w{self.index}"


def apply_overrides(config: Config, overrides: Overrides) -> Config:
    changes = {k: v for k, v in vars(overrides).items() if v not in (None, "") and k != "ami"}
    if changes:
        config = replace(config, settings=replace(config.settings, **changes))
    if overrides.ami:
        config = replace(config, ami_servers=overrides.ami)
    return config


RESTART_SETTINGS = ("host", "port", "dsn", "spool", "spool_fsync_interval", "breaker_failures", "breaker_cool_off")


class App:
    """One didrouter process. ``start()`` returns the FastAGI port actually bound.

    Build it with :meth:`create` (loads the config); ``source`` may be a YAML path.
    """

    @classmethod
    async def create(cls, source: ConfigSource | str, overrides: Overrides = Overrides(),
                     worker: Worker = Worker()) -> "App":
        source = FileSource(source) if isinstance(source, str) else source
        config, warnings = await source.load()
        _log_problems(warnings)
        return cls(source, apply_overrides(config, overrides), overrides, worker)

    def __init__(self, source: ConfigSource, config: Config, overrides: Overrides = Overrides(),
                 worker: Worker = Worker(), ami_timings: AmiTimings = AmiTimings()) -> None:
        self.source = source
        self.ami_timings = ami_timings
        self.worker = worker
        self.overrides = overrides
        self.config = config
        self.reloads = 0
        self._reload_task: asyncio.Task | None = None
        self._reload_again = False
        self._listener = None
        settings = self.config.settings
        self.cdr = CdrWriter(worker.spool(settings.spool), settings.dsn, settings.spool_fsync_interval)
        # The board runs with or without AMI: call outcomes feed its breaker either way.
        self.board = HealthBoard(
            modes=_health_modes(config), fail_after=settings.trunk_fail_after,
            recover_after=settings.trunk_recover_after, breaker_threshold=settings.breaker_failures,
            breaker_cool_off=settings.breaker_cool_off, on_change=[self._trunk_changed])
        self.health = BoardView(self.board)
        self.router = Router(self.config, self.cdr, self.health, worker=worker.index)
        self.watchers = [self._watch(server) for server in config.ami_servers]
        self.routes = Routes(self.router)
        self.agi = AgiServer(self.routes.handle, lambda: self.router.config.settings.timeouts)
        self.port: int | None = None
        self._tasks: set[asyncio.Task] = set()

    def _watch(self, server: AmiServer) -> AmiWatcher:
        """An AMI watcher for trunk health, whose call events also fill CDR outcomes."""
        watcher = AmiWatcher(server, self.config.trunks, self.board, timings=self.ami_timings)
        tracker = CallOutcomeTracker(lambda outcome: self._ami_outcome(server.name, outcome))
        for event, handler in (("DialEnd", tracker.dial_end), ("Hangup", tracker.hangup), ("Cdr", tracker.cdr)):
            watcher.add_listener(event, lambda _manager, message, handler=handler: handler(message))
        return watcher

    def _ami_outcome(self, server: str, outcome: AmiOutcome) -> None:
        self.router.report(ReportRequest(
            server=server, uniqueid=outcome.uniqueid, dialstatus=outcome.dialstatus,
            hangupcause=outcome.hangupcause, answered_seconds=outcome.answered_seconds,
            dialed_seconds=outcome.dialed_seconds), source="ami")

    def _trunk_changed(self, server: str, trunk: str, old: str, new: str, cause: str, at: float) -> None:
        """Log and journal a trunk health change (``at`` is on the board's monotonic clock)."""
        wall = time.time() - (self.health.clock() - at)
        log.warning("trunk_state_changed", server=server, trunk=trunk, old=old, new=new, reason=cause)
        self.cdr.record(TrunkStateRecord(server, trunk, old, new, cause, wall, OBSERVER))

    def spawn(self, coro, name: str) -> asyncio.Task:
        """Start a background task that is kept, and cancelled by :meth:`stop`."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def request_reload(self) -> None:
        """Reload soon; requests that arrive during a reload coalesce into one more."""
        if self._reload_task and not self._reload_task.done():
            self._reload_again = True
            return
        self._reload_task = self.spawn(self._reload_until_settled(), "reload")

    async def _reload_until_settled(self) -> None:
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again:
                return

    async def reload(self) -> bool:
        """Load the source again; swap on success, keep the last good config on failure."""
        try:
            config, warnings = await self.source.load()
        except ConfigError as exc:
            _log_problems(exc.problems)
            log.error("config_reload_rejected", source=self.source.description, reason=str(exc),
                      detail="keeping the last good config")
            return False
        _log_problems(warnings)
        config = apply_overrides(config, self.overrides)
        config = self._keep_restart_settings(config)
        self.config = config
        self.board.set_modes(_health_modes(config))
        self.board.fail_after = config.settings.trunk_fail_after
        self.board.recover_after = config.settings.trunk_recover_after
        for watcher in self.watchers:
            watcher.set_trunks(config.trunks)
        self.router.swap_config(config)
        self.reloads += 1
        log.info("config_reloaded", source=self.source.description, campaigns=sorted(config.campaigns))
        return True

    def _keep_restart_settings(self, config: Config) -> Config:
        old = self.config.settings
        changed = [name for name in RESTART_SETTINGS if getattr(config.settings, name) != getattr(old, name)]
        if config.ami_servers != self.config.ami_servers:
            changed.append("asterisk_servers")
            config = replace(config, ami_servers=self.config.ami_servers)
        if not changed:
            return config
        log.warning("config_needs_restart", settings=changed, detail="these settings apply at the next start")
        kept = {n: getattr(old, n) for n in changed if n in RESTART_SETTINGS}
        return replace(config, settings=replace(config.settings, **kept))

    async def start(self) -> int:
        """Start everything; on failure (or cancellation), stop what did start, then raise."""
        started = False
        try:
            port = await self._start()
            started = True
            return port
        finally:
            if not started:
                await self.stop()

    async def _start(self) -> int:
        settings = self.config.settings
        if settings.dsn:
            self.cdr.db_ready = asyncio.Event()
        await self.cdr.start()
        if settings.dsn:
            self.spawn(self._migrate(settings.dsn), "migrate")
        if isinstance(self.source, DatabaseSource):
            from agi_server.config.db import ConfigListener

            # Every change to the config tables NOTIFYs; the listener also fires
            # after each (re)connect, since notifications sent meanwhile are lost.
            self._listener = ConfigListener(self.source.dsn, self.request_reload)
            await self._listener.start()
        for watcher in self.watchers:
            await watcher.start()
        self.port = await self.agi.start(settings.host, settings.port, sock=self.worker.sock)
        log.info("didrouter_started", config=self.source.description, worker=self.worker.index,
                 ami=[f"{s.name}@{s.host}:{s.port}" for s in self.config.ami_servers] or "none: admin state and breaker only",
                 campaigns=sorted(self.config.campaigns), cdr="postgresql+spool" if settings.dsn else "spool only",
                 spool=self.worker.spool(settings.spool))
        return self.port

    async def _migrate(self, dsn: str, attempts: int = 30) -> None:
        """Bring the schema up to date in the background; rows wait in the spool meanwhile."""
        try:
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
        finally:
            if self.cdr.db_ready is not None:
                self.cdr.db_ready.set()   # the writer tries (and retries) on its own from here

    async def stop(self) -> None:
        await self.agi.stop()
        for watcher in self.watchers:
            await watcher.stop()
        if self._listener is not None:
            await self._listener.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.cdr.stop()
        log.info("didrouter_stopped", served=self.agi.served)


OBSERVER = f"{socket.gethostname()}:{os.getpid()}"


async def _stop_when_orphaned(supervisor: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor died (re-parented) must not keep serving an old config."""
    while os.getppid() == supervisor:
        await asyncio.sleep(1.0)
    log.error("supervisor_gone", supervisor=supervisor, reason="stopping this worker")
    stop.set()


def _health_modes(config: Config) -> dict[str, str]:
    return {name: trunk.health for name, trunk in config.trunks.items()}


def _log_problems(problems) -> None:
    for problem in problems:
        event = log.error if problem.severity == "error" else log.warning
        event(f"config_{problem.severity}", source=problem.source, field=problem.field, reason=problem.message)


def raise_fd_limit() -> None:
    """Each FastAGI session holds a socket: lift the soft open-files limit to the hard one
    (Debian's soft default of 1024 is below MAX_SESSIONS)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("fd_limit_unchanged", soft=soft, hard=hard, reason=str(exc))


async def run(app: App, pidfile: str | None = None, supervisor: int | None = None) -> None:
    """Serve until SIGINT or SIGTERM (or, for a worker, until its supervisor is gone);
    SIGHUP reloads the config."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app.request_reload)
    if supervisor is not None:
        app.spawn(_stop_when_orphaned(supervisor, stop), "supervisor-watch")
    raise_fd_limit()
    if pidfile:   # before start(): whoever sees "didrouter_started" can signal us
        Path(pidfile).write_text(f"{os.getpid()}\n")
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()
        if pidfile:
            Path(pidfile).unlink(missing_ok=True)
