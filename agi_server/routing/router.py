"""The router: one synchronous ``select`` per attempt over in-memory state.

It resolves the campaign, the attempt number and the call's history, asks the pure
policy for a :class:`Decision`, applies the rotation advance, remembers the DID on
the call, hands a CDR record to the sink (a journal append, no network) and logs
one event with the reason. Nothing here awaits: the AGI reply path never waits on
PostgreSQL or AMI (design invariant 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from agi_server.cdr.record import AttemptRecord, OutcomeRecord
from agi_server.config.model import Config
from agi_server.outcomes import CARRIER, classify
from agi_server.routing import policy
from agi_server.routing.policy import Decision
from agi_server.routing.state import CallBook, Rotation

log = structlog.get_logger("didrouter.select")


class CdrSink(Protocol):
    def record(self, rec: AttemptRecord | OutcomeRecord) -> None: ...


class HealthSource(Protocol):
    def for_decision(self, server: str) -> Callable[[str], str]:
        """A trunk -> "up"/"down"/"unknown" lookup for one decision (asked once per trunk)."""
        ...

    def report_outcome(self, server: str, trunk: str, dialstatus: str, hangupcause: int | None) -> None: ...


@dataclass(frozen=True)
class SelectRequest:
    server: str
    peer: str
    uniqueid: str
    channel: str
    campaign: str
    destination: str
    attempt: int | None = None   # explicit attempt number from the dialplan, if any
    # Call state the dialplan carries, so any server of a farm (or any worker) can
    # serve a retry: caller IDs already shown on this call, and the previous
    # attempt's DIALSTATUS / HANGUPCAUSE.
    tried_callerids: tuple[str, ...] = ()
    previous: tuple[str, int | None] | None = None


@dataclass(frozen=True)
class ReportRequest:
    server: str
    uniqueid: str
    dialstatus: str
    hangupcause: int | None
    answered_seconds: int | None = None
    dialed_seconds: int | None = None
    attempt: int | None = None


class Router:
    """Owns the live config reference, rotation counters and the call book."""

    def __init__(self, config: Config, sink: CdrSink, health: HealthSource | None = None,
                 clock: Callable[[], float] = time.time, worker: int = 0) -> None:
        self.config = config
        self.rotation = Rotation(start=worker)
        self.calls = CallBook()
        self._sink = sink
        self._health = health
        self._clock = clock

    def swap_config(self, config: Config) -> None:
        """Use a new snapshot from the next select on; calls in flight keep theirs."""
        self.config = config

    def server_for_peer(self, peer: str) -> str:
        """The Asterisk server an AGI client address belongs to.

        A peer listed in a server's ``agi_peers`` is that server; otherwise, with
        exactly one AMI server configured, it is that one; otherwise the peer
        address itself names the server (its trunk health is then unknown).
        """
        servers = self.config.ami_servers
        for server in servers:
            if peer in server.agi_peers:
                return server.name
        return servers[0].name if len(servers) == 1 else peer

    def select(self, req: SelectRequest) -> tuple[Decision, int]:
        """Decide one attempt; returns the decision and the attempt number used."""
        config = self.config
        memory = self.calls.get(req.server, req.uniqueid)
        attempt = req.attempt or memory.selects + 1
        memory.selects = max(memory.selects, attempt)
        repeat = self._repeat(config, req, memory.chosen(attempt))
        if repeat is not None:
            # Asterisk ran the same attempt's select again: same answer, the row exists.
            log.info("select", status=repeat.status, campaign=req.campaign, did=repeat.did, trunk=repeat.trunk,
                     role=repeat.role, attempt=attempt, uniqueid=req.uniqueid, server=req.server,
                     reason=repeat.reason)
            return repeat, attempt
        campaign = config.campaigns.get(req.campaign)
        if campaign is None:
            decision = Decision(policy.UNKNOWN_CAMPAIGN, f"no campaign named {req.campaign!r}")
        else:
            previous_carrier = req.previous is not None and classify(*req.previous) == CARRIER
            hinted = policy.dids_shown(config, campaign, req.tried_callerids)
            if len(hinted) < len(set(req.tried_callerids)):
                log.warning("tried_unmatched", campaign=campaign.name, uniqueid=req.uniqueid,
                            tried=list(req.tried_callerids), matched=hinted,
                            reason="some tried= caller IDs are not DIDs of this campaign")
            decision = policy.decide(
                config, campaign,
                health=self._health.for_decision(req.server) if self._health else _all_up,
                counters=lambda pool: self.rotation.get(campaign.name, pool, self._members(config, campaign.name, pool)),
                tried=_merge(memory.tried, hinted),
                destination=req.destination,
                carrier_failed=memory.carrier_failed or previous_carrier,
            )
            if decision.advance:
                pool, value = decision.advance
                self.rotation.set(campaign.name, pool, self._members(config, campaign.name, pool), value)
        if decision.did and decision.trunk and decision.role:
            memory.attempts.append((attempt, decision.did, decision.trunk, decision.role))
        self._record(req, attempt, decision)
        return decision, attempt

    def report(self, req: ReportRequest, source: str = "agi") -> OutcomeRecord | None:
        """Record how an attempt ended; remember a carrier fault for the call's next select.

        The attempt is the one named, else the call's latest select. With neither,
        an ``agi`` report is an orphan (attempt None): logged and stored, never
        dropped. An ``ami`` outcome for a call didrouter never selected for (AMI
        sees every call on the box) is ignored and returns None. Only ``agi``
        reports feed the trunk breaker, so a call is never counted twice.
        """
        memory = self.calls.peek(req.server, req.uniqueid)
        if source == "ami" and (memory is None or not memory.attempts):
            return None
        attempt = req.attempt or (memory.selects if memory else None)
        trunk = memory.trunk_of(attempt) if memory and attempt else None
        fault = classify(req.dialstatus, req.hangupcause)
        if memory:
            memory.carrier_failed = fault == CARRIER
        if trunk and self._health and source == "agi":
            self._health.report_outcome(req.server, trunk, req.dialstatus, req.hangupcause)
        outcome = OutcomeRecord(
            server=req.server, uniqueid=req.uniqueid, attempt=attempt, dialstatus=req.dialstatus,
            hangupcause=req.hangupcause, answered_seconds=req.answered_seconds,
            dialed_seconds=req.dialed_seconds, fault=fault, source=source, reported_at=self._clock(),
            trunk=trunk,
        )
        log.info("outcome", source=source, uniqueid=req.uniqueid, server=req.server, attempt=attempt, trunk=trunk,
                 dialstatus=req.dialstatus, hangupcause=req.hangupcause, fault=fault,
                 reason="orphan: no select on record for this call" if attempt is None else f"{fault} outcome")
        self._sink.record(outcome)
        return outcome

    @staticmethod
    def _repeat(config: Config, req: SelectRequest, chosen: tuple[str, str, str] | None) -> Decision | None:
        """The earlier decision for this very attempt, if its DID and trunk still exist."""
        if chosen is None:
            return None
        did, trunk, role = chosen
        if did not in config.dids or trunk not in config.trunks:
            return None
        return policy.decision_for(config, did, role, req.destination,
                                   f"repeat of attempt {req.attempt}: the DID already chosen for it")

    def _members(self, config: Config, campaign: str, pool: str) -> tuple[str, ...]:
        c = config.campaigns[campaign]
        return (c.primary, *c.dynamic) if pool == policy.MAIN else c.fallback

    def _record(self, req: SelectRequest, attempt: int, decision: Decision) -> None:
        now = self._clock()
        log.info(
            "select", status=decision.status, campaign=req.campaign, did=decision.did,
            trunk=decision.trunk, role=decision.role, attempt=attempt, uniqueid=req.uniqueid,
            server=req.server, reason=decision.reason,
        )
        self._sink.record(AttemptRecord(
            server=req.server, uniqueid=req.uniqueid, attempt=attempt, campaign=req.campaign,
            destination=req.destination, did=decision.did, trunk=decision.trunk,
            role=decision.role, status=decision.status, reason=decision.reason,
            decided_at=now, channel=req.channel, peer=req.peer,
        ))


def _all_up(trunk: str) -> str:
    return "up"


def _merge(remembered: list[str], hinted: list[str]) -> list[str]:
    """DIDs tried on the call: what this process remembers, then what the dialplan says."""
    return remembered + [did for did in hinted if did not in remembered]
