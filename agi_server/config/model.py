"""The configuration as frozen dataclasses.

A :class:`Config` is an immutable snapshot: a reload builds a new one and swaps the
reference, so a call in flight keeps the snapshot it started with. Numbers are
already +E.164 here; names are already checked unique (see ``validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timeouts:
    """Deadlines, in seconds, for each phase of a FastAGI session.

    Asterisk has no read timeout on FastAGI, so the server bounds every phase.
    """

    env_read: float = 2.0        # from accept to the blank line ending the env block
    reply: float = 2.0           # from sending a command to Asterisk's reply line
    session: float = 10.0        # the whole connection, however it goes


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 4573
    dynamic_did_enabled: bool = True
    default_country: str = "1"
    dsn: str | None = None
    spool: str = "var/didrouter-cdr.spool"
    spool_fsync_interval: float = 1.0
    unknown_health: str = "up"  # what selection assumes of a trunk whose health is unknown
    # Hysteresis and breaker (defaults justified in agi_server/health/board.py).
    trunk_fail_after: float = 15.0      # a down signal must hold this long (s)
    trunk_recover_after: float = 30.0   # an up signal must hold this long (s)
    breaker_failures: int = 3           # consecutive carrier failures that open the breaker
    breaker_cool_off: float = 30.0      # seconds open before one probe call
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass(frozen=True)
class Trunk:
    name: str
    dial: str                          # Dial() string template with one {number}
    callerid_format: str = "e164"
    national_prefix: str = ""
    admin_state: str = "up"            # "down" takes the trunk out of service by hand
    health: str = "auto"               # auto | registration | qualify | both | none
    registration: str | None = None    # PJSIP registration object name (default: name)
    endpoint: str | None = None        # PJSIP endpoint / AOR name (default: name)

    def dial_string(self, number: str) -> str:
        return self.dial.replace("{number}", number)


@dataclass(frozen=True)
class Did:
    number: str   # +E.164
    trunk: str


@dataclass(frozen=True)
class Campaign:
    name: str
    primary: str                              # +E.164
    dynamic: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    dynamic_did_enabled: bool | None = None   # None: follow the global setting


@dataclass(frozen=True)
class AmiServer:
    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = ""
    agi_peers: tuple[str, ...] = ()   # AGI client addresses that belong to this server


@dataclass(frozen=True)
class Config:
    settings: Settings
    trunks: dict[str, Trunk]
    dids: dict[str, Did]
    campaigns: dict[str, Campaign]
    ami_servers: tuple[AmiServer, ...] = ()
    source: str = "<memory>"

    def dynamic_enabled(self, campaign: Campaign) -> bool:
        """The admin toggle, overridden per campaign when the campaign says so."""
        if campaign.dynamic_did_enabled is not None:
            return campaign.dynamic_did_enabled and self.settings.dynamic_did_enabled
        return self.settings.dynamic_did_enabled

    def trunk_of(self, number: str) -> Trunk:
        return self.trunks[self.dids[number].trunk]
