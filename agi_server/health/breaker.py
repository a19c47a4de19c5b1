"""Call-outcome circuit breaker for one trunk (pure, no asyncio).

The AMI signals are slow: ``Registry: Rejected`` came 59-81 s after the provider
died in the recorded fixtures, while calls placed meanwhile rang out with
``NOANSWER`` / cause 0 after the 20 s Dial timeout. The outcomes of real calls are the
faster signal, so every outcome the dialplan reports is fed here.

Classification (Q.850 meanings; the one table is :mod:`agi_server.outcomes`):

* carrier failure (counts): ``CHANUNAVAIL``, ``CONGESTION``, ``NOANSWER`` with cause 0
  (nothing came back at all), and any status whose cause is one of
  :data:`CARRIER_CAUSES`;
* success (resets the count): ``ANSWER``;
* callee outcome (neither counts nor resets): ``BUSY``, a ringing ``NOANSWER``
  (cause 18/19) and the causes in :data:`CALLEE_CAUSES`;
* neutral: everything else (``CANCEL``: the caller gave up; ``DONTCALL`` ...).

States: *closed* -> (``threshold`` consecutive carrier failures) -> *open* for
``cool_off`` seconds -> *half-open*: one probe call is let through; a probe that is
not a carrier failure (answered, busy, ringing no-answer) closes the breaker -- the
network carried the call -- and a carrier failure re-opens it. A probe whose outcome
never comes back is given up after ``probe_timeout`` and another probe is admitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from agi_server import outcomes

CARRIER = "carrier"
CALLEE = "callee"
SUCCESS = "success"
NEUTRAL = "neutral"

DEFAULT_THRESHOLD = 3
DEFAULT_COOL_OFF = 30.0
DEFAULT_PROBE_TIMEOUT = 60.0   # longer than a Dial timeout (20 s here) plus the report AGI

# What each fault class of agi_server.outcomes means to a trunk's breaker. A
# "reputation" rejection (cause 21/127: SIP 603/608, 401/403/407) concerns the DID
# or the credentials, not the trunk's reachability: neutral here.
_BREAKER_KIND = {outcomes.ANSWERED: SUCCESS, outcomes.CARRIER: CARRIER, outcomes.CALLEE: CALLEE}


def classify(dialstatus: str, hangupcause: int | None) -> str:
    """Whose fault was this outcome: ``carrier``, ``callee``, ``success`` or ``neutral``."""
    return _BREAKER_KIND.get(outcomes.classify((dialstatus or "").strip(), hangupcause), NEUTRAL)


@dataclass
class Breaker:
    """The breaker of one (server, trunk). Times are the caller's monotonic seconds."""

    threshold: int = DEFAULT_THRESHOLD
    cool_off: float = DEFAULT_COOL_OFF
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    failures: int = 0
    opened_at: float | None = None       # None: closed
    probe_at: float | None = None        # when the half-open probe was handed out
    last_cause: str = ""

    def is_open(self) -> bool:
        """True while the breaker keeps the trunk out (open or half-open)."""
        return self.opened_at is not None

    def half_open(self, now: float) -> bool:
        return self.opened_at is not None and now - self.opened_at >= self.cool_off

    def claim_probe(self, now: float) -> bool:
        """In half-open, hand out the one probe call; False if one is already out."""
        if not self.half_open(now):
            return False
        if self.probe_at is not None and now - self.probe_at < self.probe_timeout:
            return False
        self.probe_at = now
        return True

    def record(self, kind: str, cause: str, now: float) -> str | None:
        """Feed one classified outcome. Returns ``"opened"``, ``"closed"`` or None."""
        if self.opened_at is not None:
            return self._record_open(kind, cause, now)
        if kind == SUCCESS:
            self.failures = 0
        elif kind == CARRIER:
            self.failures += 1
            self.last_cause = cause
            if self.failures >= self.threshold:
                self._open(now)
                return "opened"
        return None

    def _record_open(self, kind: str, cause: str, now: float) -> str | None:
        # Outcomes of calls placed before the breaker opened land here too and are
        # ignored. Once a probe is out, the first outcome that carries a verdict is
        # taken as the probe's (outcomes carry no call id to tell them apart).
        if self.probe_at is None or kind == NEUTRAL:
            if self.probe_at is not None:
                self.probe_at = None     # the probe gave no verdict: admit another
            return None
        if kind == CARRIER:
            self.last_cause = cause
            self._open(now)
            return "opened"
        self.opened_at = self.probe_at = None
        self.failures = 0
        return "closed"

    def _open(self, now: float) -> None:
        self.opened_at = now
        self.probe_at = None
        self.failures = 0
