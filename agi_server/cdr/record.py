"""The CDR attempt record, as it travels from the reply path to storage.

A record is keyed by (server, uniqueid, attempt): the same key replayed twice is the
same row, which makes spool replays idempotent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class AttemptRecord:
    """A decision made for one attempt of one call (written when the decision is made)."""

    server: str            # Asterisk server name (from the AGI peer address)
    uniqueid: str          # agi_uniqueid of the channel
    attempt: int           # 1-based attempt number of this call
    campaign: str
    destination: str       # the number dialled, as the dialplan gave it
    did: str | None        # chosen caller ID, +E.164; None when no DID was chosen
    trunk: str | None
    role: str | None       # primary | dynamic | fallback
    status: str            # DIDR_STATUS sent: OK, NO_DID, NO_TRUNK, ...
    reason: str            # why this decision, in words
    decided_at: float      # UNIX time of the decision
    channel: str = ""
    peer: str = ""         # AGI client address

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.server, self.uniqueid, self.attempt)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "attempt", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AttemptRecord":
        values = {k: v for k, v in data.items() if k != "kind"}
        return cls(**values)


@dataclass(frozen=True)
class OutcomeRecord:
    """How an attempt ended, from the ``report`` route (source "agi") or AMI ("ami").

    ``attempt`` is None when no select is on record for the call and the report
    named no attempt: such an outcome is kept as an orphan, never dropped.
    """

    server: str
    uniqueid: str
    attempt: int | None
    dialstatus: str
    hangupcause: int | None
    answered_seconds: int | None
    dialed_seconds: int | None
    fault: str              # agi_server.outcomes class: answered, callee, carrier, ...
    source: str             # "agi" | "ami"
    reported_at: float
    trunk: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "outcome", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "OutcomeRecord":
        return cls(**{k: v for k, v in data.items() if k != "kind"})


@dataclass(frozen=True)
class TrunkStateRecord:
    """A change of a trunk's health as one Asterisk server sees it (kind ``trunk_state``).

    ``observer`` names the didrouter process that saw it (host:pid), since every
    process watching the same Asterisk records the same change.
    """

    server: str
    trunk: str
    old: str
    new: str
    cause: str
    at: float              # UNIX time the change took effect
    observer: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": "trunk_state", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrunkStateRecord":
        return cls(**{k: v for k, v in data.items() if k != "kind"})
