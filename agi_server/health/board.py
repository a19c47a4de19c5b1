"""Trunk health per (Asterisk server, trunk): pure state, no asyncio, no I/O.

Inputs are *signals* (``registration``, ``qualify``) reported by the AMI watcher,
the AMI link going away, and call outcomes for the breaker. The output is
``"up" | "down" | "unknown"`` per (server, trunk) plus an ``on_change`` callback per
state change, so the caller can record it (PostgreSQL) and log it. An admin ``down``
in config is applied by the caller and always wins over what this board says.

Time is a parameter (monotonic seconds), never read here. Hysteresis is evaluated
lazily whenever the board is touched with a ``now`` (:meth:`observe`,
:meth:`state`, :meth:`tick`); a change is stamped with the moment its hold time
matured (``since + hold``), not the moment it was noticed, so the record is the
same however often the board is polled. The watcher calls :meth:`tick` every second.

Hysteresis defaults, from the measured timings in tests/fixtures/asterisk/README.md:

* ``fail_after = 15 s``. A down signal must hold that long before the trunk is down.
  The admin re-register of ami-01 shows ``Unregistered`` followed by ``Registered``
  7 s later: 15 s is twice that. Qualify runs every 10 s (``qualify_frequency``) with
  a 3 s timeout: one lost OPTIONS gives ``Unreachable`` and the next one, 10 s later,
  ``Reachable`` again, so 15 s needs two missed OPTIONS in a row. The cost is lateness:
  ``Unreachable`` arrives 10-13 s after the provider died and ``Rejected`` 59-81 s
  after; a trunk is thus declared down 25-28 s (qualify) or 74-96 s (registration)
  after the failure. The breaker, fed by call outcomes (NOANSWER cause 0, CHANUNAVAIL,
  CONGESTION), is what covers that window.
* ``recover_after = 30 s``. An up signal must hold that long before the trunk is up
  again. ``Reachable`` events only come on change; 30 s without a new ``Unreachable``
  means about three OPTIONS answered in a row (10 s apart, 3 s timeout), so a
  provider that comes back and dies again within a qualify cycle or two keeps the
  campaign on its fallback DIDs instead of flapping it back and forth. ``Registered``
  comes back 0.5-8 s after the provider returns; 30 s adds less than one refresh
  period (~50 s) to the failback.
* From ``unknown`` (startup, AMI link lost) the first evidence is adopted at once in
  either direction: there is no state to protect, and the seed after a reconnect
  reports what Asterisk already concluded. The exception is a *soft* down
  (``Unregistered``: seen after boot and on an admin re-register, not an outage),
  which always waits ``fail_after``.

Health source per trunk (``Trunk.health``): ``registration`` or ``qualify`` use that
signal; ``both`` is down if either is down, up if both are up, else unknown; ``none``
is always up (no signal, no breaker: the admin opted out); ``auto`` combines, like
``both``, the signals that were ever reported for that trunk on that server.

While the breaker (see :mod:`.breaker`) is open the trunk is down whatever the
signals say. When AMI is lost the signals become unknown; the breaker keeps its state,
because its evidence (call outcomes) does not come over AMI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from .breaker import (
    DEFAULT_COOL_OFF, DEFAULT_PROBE_TIMEOUT, DEFAULT_THRESHOLD, Breaker, classify,
)

UP, DOWN, UNKNOWN = "up", "down", "unknown"
REGISTRATION, QUALIFY = "registration", "qualify"
SIGNALS = (REGISTRATION, QUALIFY)
MODES = ("auto", "registration", "qualify", "both", "none")

DEFAULT_FAIL_AFTER = 15.0
DEFAULT_RECOVER_AFTER = 30.0

OnChange = Callable[[str, str, str, str, str, float], object]
"""``on_change(server, trunk, old, new, cause, at)``."""

log = structlog.get_logger()


@dataclass
class _Signal:
    raw: bool | None = None      # the last reported value
    raw_since: float = 0.0       # when ``raw`` took its current value
    cause: str = ""
    soft: bool = False           # a soft down never skips the hold time
    value: bool | None = None    # the value after hysteresis
    value_at: float = 0.0


@dataclass
class _Trunk:
    signals: dict[str, _Signal] = field(default_factory=lambda: {s: _Signal() for s in SIGNALS})
    seen: set[str] = field(default_factory=set)
    breaker: Breaker = field(default_factory=Breaker)
    breaker_at: float = 0.0
    state: str = UNKNOWN


class HealthBoard:
    """Health of every (server, trunk); see the module docstring for the rules."""

    def __init__(
        self,
        *,
        modes: Mapping[str, str] | None = None,
        fail_after: float = DEFAULT_FAIL_AFTER,
        recover_after: float = DEFAULT_RECOVER_AFTER,
        breaker_threshold: int = DEFAULT_THRESHOLD,
        breaker_cool_off: float = DEFAULT_COOL_OFF,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        on_change: Iterable[OnChange] = (),
    ) -> None:
        self.fail_after = fail_after
        self.recover_after = recover_after
        self._breaker_args = (breaker_threshold, breaker_cool_off, probe_timeout)
        self.on_change: list[OnChange] = list(on_change)
        self._modes: dict[str, str] = {}
        self._trunks: dict[tuple[str, str], _Trunk] = {}
        self.set_modes(modes or {})

    def set_modes(self, modes: Mapping[str, str]) -> None:
        """Health source per trunk name (``Trunk.health``); unlisted trunks are ``auto``."""
        bad = {name: mode for name, mode in modes.items() if mode not in MODES}
        if bad:
            raise ValueError(f"unknown health mode(s) {bad}; expected one of {MODES}")
        self._modes = dict(modes)

    # ------------------------------------------------------------------ inputs
    def observe(self, server: str, trunk: str, signal: str, ok: bool | None,
                cause: str, now: float, *, soft: bool = False) -> None:
        """Report a signal value: True up, False down, None unknown.

        Repeating the current value (``Registered`` on every refresh) does not restart
        its hold time. ``soft`` marks a down that must always wait ``fail_after``.
        """
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}")
        entry = self._entry(server, trunk)
        sig = entry.signals[signal]
        if ok is not None:
            entry.seen.add(signal)
        if ok != sig.raw:
            sig.raw, sig.raw_since = ok, now
        sig.cause = f"{signal}: {cause}"
        sig.soft = soft and ok is False
        self._evaluate(server, trunk, entry, now)

    def link_lost(self, server: str, now: float) -> None:
        """The AMI link to ``server`` is gone: every signal of its trunks is unknown."""
        for (srv, trunk), entry in self._trunks.items():
            if srv != server:
                continue
            for name, sig in entry.signals.items():
                sig.raw = sig.value = None
                sig.raw_since = sig.value_at = now
                sig.cause = f"{name}: AMI link lost"
            self._evaluate(srv, trunk, entry, now)

    def report_outcome(self, server: str, trunk: str, dialstatus: str,
                       hangupcause: int | None, now: float) -> str:
        """Feed one call outcome to the trunk's breaker; returns its classification."""
        entry = self._entry(server, trunk)
        kind = classify(dialstatus, hangupcause)
        verdict = entry.breaker.record(kind, f"{dialstatus}/{hangupcause}", now)
        if verdict is not None:
            entry.breaker_at = now
            log.info("trunk_breaker_" + verdict, server=server, trunk=trunk,
                     outcome=kind, dialstatus=dialstatus, hangupcause=hangupcause)
        self._evaluate(server, trunk, entry, now)
        return kind

    # ----------------------------------------------------------------- outputs
    def state(self, server: str, trunk: str, now: float) -> str:
        """The trunk's health for a routing decision at ``now``.

        This is the breaker's admission point: while it is half-open, the first call
        gets ``"up"`` (the probe) and later ones ``"down"`` until the probe's outcome
        is reported. Call it once per decision; use :meth:`peek` to only look.
        """
        current = self.peek(server, trunk, now)
        entry = self._trunks[(server, trunk)]
        if current == DOWN and self._mode(trunk) != "none" and entry.breaker.claim_probe(now):
            log.info("trunk_breaker_probe", server=server, trunk=trunk,
                     reason="cool-off over; one call let through")
            return UP
        return current

    def peek(self, server: str, trunk: str, now: float) -> str:
        """The trunk's health at ``now``, without claiming a breaker probe."""
        entry = self._entry(server, trunk)
        self._evaluate(server, trunk, entry, now)
        return entry.state

    def tick(self, now: float, server: str | None = None) -> None:
        """Apply every matured hold time (of one server, or all) and emit the changes."""
        for (srv, trunk), entry in list(self._trunks.items()):
            if server is None or srv == server:
                self._evaluate(srv, trunk, entry, now)

    def known(self) -> list[tuple[str, str]]:
        """Every (server, trunk) the board has heard of."""
        return sorted(self._trunks)

    # ---------------------------------------------------------------- internals
    def _entry(self, server: str, trunk: str) -> _Trunk:
        key = (server, trunk)
        if key not in self._trunks:
            threshold, cool_off, probe_timeout = self._breaker_args
            self._trunks[key] = _Trunk(breaker=Breaker(threshold, cool_off, probe_timeout))
        return self._trunks[key]

    def _mode(self, trunk: str) -> str:
        return self._modes.get(trunk, "auto")

    def _settle(self, sig: _Signal, now: float) -> None:
        """Move ``value`` towards ``raw`` once the hold time has passed."""
        if sig.raw == sig.value:
            return
        if sig.raw is None:                               # unknown is adopted at once
            sig.value, sig.value_at = None, sig.raw_since
        elif sig.value is None and not sig.soft:          # from unknown: no hysteresis
            sig.value, sig.value_at = sig.raw, sig.raw_since
        else:
            hold = self.recover_after if sig.raw else self.fail_after
            if now - sig.raw_since >= hold:
                sig.value, sig.value_at = sig.raw, sig.raw_since + hold

    def _combined(self, trunk: str, entry: _Trunk, now: float) -> tuple[str, str, float]:
        """(state, cause, at) from the mode, the settled signals and the breaker."""
        mode = self._mode(trunk)
        if mode == "none":
            return UP, "health: none (not monitored)", now
        if entry.breaker.is_open():
            b = entry.breaker
            return DOWN, f"breaker open after carrier failures (last {b.last_cause})", entry.breaker_at
        names = {"both": SIGNALS, "auto": tuple(sorted(entry.seen))}.get(mode, (mode,))
        sigs = [entry.signals[name] for name in names]
        at = max([s.value_at for s in sigs] + [entry.breaker_at])
        downs = [s for s in sigs if s.value is False]
        if downs:
            return DOWN, "; ".join(s.cause for s in downs), at
        if sigs and all(s.value is True for s in sigs):
            return UP, "; ".join(s.cause for s in sigs), at
        unknown = [s.cause for s in sigs if s.value is None and s.cause]
        return UNKNOWN, "; ".join(unknown) or "no signal yet", at

    def _evaluate(self, server: str, trunk: str, entry: _Trunk, now: float) -> None:
        for sig in entry.signals.values():
            self._settle(sig, now)
        new, cause, at = self._combined(trunk, entry, now)
        old = entry.state
        if new == old:
            return
        entry.state = new
        # The owner's on_change logs it with wall-clock time (app: trunk_state_changed).
        log.debug("trunk_health_changed", server=server, trunk=trunk, old=old, new=new,
                  cause=cause, at_monotonic=round(at, 3))
        for callback in list(self.on_change):
            try:
                callback(server, trunk, old, new, cause, at)
            except Exception:   # a broken recorder must not stop health tracking
                log.exception("trunk_health_callback_failed", server=server, trunk=trunk,
                              callback=repr(callback))
