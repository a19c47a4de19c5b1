"""One AMI connection per Asterisk server, feeding trunk health to a HealthBoard.

Lifecycle of :class:`AmiWatcher` (one task, started by :meth:`start`, cancelled by
:meth:`stop`)::

    connect (timeout) -> Login (timeout; refused -> AmiError) -> seed -> run until the
    link drops, a ping goes unanswered or an action times out -> board.link_lost
    -> capped exponential back-off with jitter -> connect ...

Seeding (after Login, and again on every ``FullyBooted``, which Asterisk sends after
each login and at the end of a boot): ``PJSIPShowRegistrationsOutbound`` (URI pairs
-> registration names, and their status), ``PJSIPShowAors`` (which AORs qualify)
and ``PJSIPShowEndpoints`` (``DeviceState``). Health events that arrive while a seed
runs are held back and replayed afterwards only if they are newer (by stream order)
than the reply line about the same object, so neither a stale event nor a stale
snapshot wins (Asterisk can write events between the lines of a list reply).

Event handlers run synchronously on the loop and only touch memory: Asterisk drops a
client that falls behind reading events, so nothing here may block.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from agi_server.config.model import AmiServer, Trunk
from agi_server.errors import AmiError
from agi_server.health import HealthBoard

from .client import _Manager, _Protocol
from .mapping import HEALTH_EVENTS, Observation, TrunkMap, Unmapped, as_list

log = structlog.get_logger()


@dataclass(frozen=True)
class AmiTimings:
    """Deadlines and back-off, in seconds."""

    connect_timeout: float = 5.0
    action_timeout: float = 5.0     # every action, Login and the seed included
    ping_interval: float = 10.0
    ping_timeout: float = 5.0       # no reply within this: the link is declared dead
    backoff_base: float = 0.5
    backoff_cap: float = 30.0       # also the steady retry rate after a refused login
    stable_after: float = 10.0      # a session this long resets the back-off
    tick_interval: float = 1.0      # how often hysteresis is applied to the board


class Backoff:
    """Capped exponential back-off with "equal jitter": uniform(d/2, d)."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base, self.cap, self.attempt = base, cap, 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.cap, self.base * 2 ** self.attempt)
        self.attempt += 1
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


class AmiWatcher:
    """Watches one Asterisk server's trunks over AMI (see the module docstring)."""

    def __init__(self, server: AmiServer, trunks: Mapping[str, Trunk], board: HealthBoard,
                 clock: Callable[[], float] = time.monotonic, *,
                 timings: AmiTimings = AmiTimings(), rng: random.Random | None = None) -> None:
        self.server, self.board, self.clock, self.timings = server, board, clock, timings
        self.map = TrunkMap(trunks)
        self._backoff = Backoff(timings.backoff_base, timings.backoff_cap, rng)
        self._listeners: list[tuple[str, Callable]] = []
        self._tasks: list[asyncio.Task] = []
        self._manager: _Manager | None = None
        self._lost = asyncio.Event()
        self._seed_wanted = asyncio.Event()
        self._held: list | None = None        # events held back while a seed runs
        self._unmapped: set[str] = set()      # Registry URI pairs a re-seed did not map
        self.connected = False                # logged in and seeded at least once
        self.sessions = 0                     # successful logins, for tests and status
        self.seeds = 0

    # ------------------------------------------------------------------ public
    async def start(self) -> None:
        """Start watching; returns at once (connection happens in the background)."""
        if self._tasks:
            return
        name = f"ami-{self.server.name}"
        self._tasks = [asyncio.create_task(self._run(), name=name),
                       asyncio.create_task(self._tick(), name=name + "-tick")]

    async def stop(self) -> None:
        """Cancel every task, close the socket; the board is told the link is gone."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._close_manager("stopped")

    def set_trunks(self, trunks: Mapping[str, Trunk]) -> None:
        """A config reload: adopt the new trunk list and re-seed (if connected)."""
        self.map = TrunkMap(trunks)
        self._unmapped.clear()
        self._seed_wanted.set()
        log.info("ami_trunks_reloaded", server=self.server.name, trunks=sorted(trunks),
                 action="re-seed")

    def add_listener(self, pattern: str, callback: Callable) -> None:
        """Also call ``callback(manager, event)`` for events matching ``pattern``.

        For other consumers of this connection (e.g. DialEnd for CDRs). A callback
        that raises is logged and does not disturb the others; it must not block.
        """
        self._listeners.append((pattern, callback))
        if self._manager is not None:
            self._manager.register_event(pattern, callback)

    # ---------------------------------------------------------------- sessions
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._session()
            except (AmiError, OSError, TimeoutError) as exc:
                log.warning("ami_session_ended", server=self.server.name,
                            reason=str(exc) or type(exc).__name__)
            finally:
                self._close_manager("session ended")
            if self.connected and loop.time() - started >= self.timings.stable_after:
                self._backoff.reset()
            self.connected = False
            delay = self._backoff.next()
            log.info("ami_reconnect_scheduled", server=self.server.name,
                     delay=round(delay, 3), attempt=self._backoff.attempt)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        srv, t = self.server, self.timings
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        manager = _Manager(self._on_lost, srv.name, host=srv.host, port=srv.port, loop=loop)
        manager.register_event("*", self._on_event)
        for pattern, callback in self._listeners:
            manager.register_event(pattern, callback)
        async with asyncio.timeout(t.connect_timeout):
            transport, protocol = await loop.create_connection(_Protocol, srv.host, srv.port)
        manager.attach(transport, protocol)
        self._manager = manager
        log.info("ami_connected", server=srv.name, host=srv.host, port=srv.port)
        await self._race(self._login())
        self._seed_wanted.set()
        await self._race(self._seeder(), self._keepalive())

    async def _race(self, *coros) -> None:
        """Run ``coros`` until one ends or the link drops; a failure is raised."""
        lost = asyncio.ensure_future(self._lost.wait())
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            done, _ = await asyncio.wait([lost, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (lost, *tasks):
                task.cancel()
            _, stuck = await asyncio.wait([lost, *tasks], timeout=self.timings.action_timeout)
            if stuck:   # a task that ignores cancellation must not hang stop()
                log.error("ami_task_stuck", server=self.server.name,
                          tasks=[t.get_name() for t in stuck])
        for task in tasks:
            if task in done:
                task.result()
        if lost in done:
            raise AmiError(f"AMI link to {self.server.name} lost")

    def _on_lost(self, exc) -> None:
        log.warning("ami_link_lost", server=self.server.name,
                    reason=repr(exc) if exc is not None else "connection closed by Asterisk")
        self._lost.set()

    def _close_manager(self, reason: str) -> None:
        manager, self._manager = self._manager, None
        self._held = None
        if manager is not None:
            manager.close()
            self.board.link_lost(self.server.name, self.clock())
            log.info("ami_closed", server=self.server.name, reason=reason,
                     consequence="trunks of this server are unknown until re-seeded")

    async def _action(self, action: dict, timeout: float | None = None):
        """Send one action and await its full reply, or raise ``AmiError``."""
        assert self._manager is not None
        timeout = timeout or self.timings.action_timeout
        future = self._manager.send_action(dict(action))
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that races with the reply, leaving stop() waiting forever.
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise AmiError(f"{action['Action']} to {self.server.name} "
                           f"unanswered after {timeout} s") from None

    async def _login(self) -> None:
        srv = self.server
        reply = await self._action({"Action": "Login", "Username": srv.username,
                                    "Secret": srv.secret, "Events": "on"})
        if not reply.success:
            # ami-12: "Response: Error / Authentication failed", then Asterisk hangs up.
            log.error("ami_login_refused", server=srv.name, username=srv.username,
                      message=reply.message, action="retry with back-off")
            raise AmiError(f"AMI login to {srv.name} as {srv.username!r} refused: "
                           f"{reply.message or reply.response}")
        self.sessions += 1
        log.info("ami_logged_in", server=srv.name, username=srv.username)

    async def _keepalive(self) -> None:
        t = self.timings
        while True:
            await asyncio.sleep(t.ping_interval)
            try:
                await self._action({"Action": "Ping"}, timeout=t.ping_timeout)
            except AmiError:
                raise AmiError(f"no Ping reply from {self.server.name} within "
                               f"{t.ping_timeout} s: link presumed dead") from None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.timings.tick_interval)
            self.board.tick(self.clock(), server=self.server.name)

    # ----------------------------------------------------------------- seeding
    async def _seeder(self) -> None:
        while True:
            await self._seed_wanted.wait()
            self._seed_wanted.clear()
            await self._seed()

    async def _seed(self) -> None:
        self._held = []
        try:
            regs = as_list(await self._action({"Action": "PJSIPShowRegistrationsOutbound"}))
            aors = as_list(await self._action({"Action": "PJSIPShowAors"}))
            eps = as_list(await self._action({"Action": "PJSIPShowEndpoints"}))
        finally:
            held, self._held = self._held or [], None
        self._apply(self.map.seed_registrations(regs), "seed")
        self._apply(self.map.seed_endpoints(aors, eps), "seed")
        seen_at = self.map.snapshot_positions(regs, eps)
        for event in held:       # replay only what is newer than its object's snapshot
            if event.seq > seen_at.get(self.map.object_of(event), 0):
                self._apply_event(event)
        self.seeds += 1
        self.connected = True
        log.info("ami_seeded", server=self.server.name, held_events=len(held),
                 registrations=sorted(set(self.map.registration_by_uri.values())),
                 qualified=sorted(self.map.qualified_endpoints))

    # ------------------------------------------------------------------ events
    def _on_event(self, _manager, event) -> None:
        name = event.event
        if name == "FullyBooted":
            log.info("ami_fully_booted", server=self.server.name, uptime=event.Uptime,
                     action="re-seed")
            self._seed_wanted.set()
        elif name in HEALTH_EVENTS:
            if self._held is not None:
                self._held.append(event)
            else:
                self._apply_event(event)

    def _apply_event(self, event) -> None:
        try:
            observations = self.map.event(event)
        except Unmapped as exc:
            again = str(exc) not in self._unmapped
            self._unmapped.add(str(exc))
            log.warning("ami_registry_unmapped", server=self.server.name, uris=str(exc),
                        action="re-seed" if again else "ignored (already re-seeded once)")
            if again:
                self._seed_wanted.set()
            return
        self._apply(observations, event.event)

    def _apply(self, observations: list[Observation], source: str) -> None:
        now = self.clock()
        for obs in observations:
            log.info("ami_health_signal", server=self.server.name, trunk=obs.trunk,
                     signal=obs.signal, ok=obs.ok, cause=obs.cause, source=source)
            self.board.observe(self.server.name, obs.trunk, obs.signal, obs.ok, obs.cause,
                               now, soft=obs.soft)
