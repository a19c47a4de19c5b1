"""AMI messages -> health observations (sans-IO: dicts in, observations out).

Asterisk names things differently from the config: a ``Registry`` event names the
registration by its client and server URIs, ``ContactStatus`` by AOR and endpoint,
``PeerStatus`` by ``PJSIP/<endpoint>``. :class:`TrunkMap` holds the config's names
(``Trunk.registration`` / ``Trunk.endpoint``, both defaulting to the trunk name) and
what the last seed learnt (URI pairs, which AORs qualify), and turns messages into
:class:`Observation` s for the :class:`~agi_server.health.HealthBoard`.

Which signal a trunk listens to (``Trunk.health``): ``registration`` / ``qualify`` /
``both`` as configured, ``none`` nothing, ``auto`` the registration if the seed found
one by that name and qualify if one of the endpoint's AORs has ``qualify_frequency``
> 0 (``PJSIPShowAors``). ``PeerStatus: Reachable`` for an endpoint that does not
qualify (trunk-a at login in ami-01) therefore says nothing and is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agi_server.config.model import Trunk
from agi_server.health import QUALIFY, REGISTRATION

# Registry Status (res_pjsip_outbound_registration.c knows only these three):
# Rejected is the real down signal (Asterisk already retried for ~32 s);
# Unregistered also follows an admin re-register and boot, hence soft.
REGISTRY_STATUS = {
    "Registered": (True, False),
    "Rejected": (False, False),
    "Unregistered": (False, True),
}
# ContactStatus: Created/Updated are contact bookkeeping, not reachability.
CONTACT_STATUS = {
    "Reachable": True, "Unreachable": False,
    "Unknown": None, "NonQualified": None, "Removed": None,
}
PEER_STATUS = {"Reachable": True, "Unreachable": False}
HEALTH_EVENTS = frozenset({"Registry", "ContactStatus", "PeerStatus"})


@dataclass(frozen=True)
class Observation:
    """One signal value for one config trunk, ready for ``HealthBoard.observe``."""

    trunk: str
    signal: str
    ok: bool | None
    cause: str
    soft: bool = False


class Unmapped(Exception):
    """A Registry event named URIs the last seed did not list (the seed is stale)."""


def as_list(result: object) -> list:
    """panoramisk returns one Message, or a list for an EventList: always a list."""
    return list(result) if isinstance(result, list) else [result]


class TrunkMap:
    """Config trunk names <-> Asterisk object names, plus the seed's knowledge."""

    def __init__(self, trunks: Mapping[str, Trunk]) -> None:
        self.trunks = dict(trunks)
        self.by_registration: dict[str, list[str]] = {}
        self.by_endpoint: dict[str, list[str]] = {}
        for name, trunk in self.trunks.items():
            self.by_registration.setdefault(trunk.registration or name, []).append(name)
            self.by_endpoint.setdefault(trunk.endpoint or name, []).append(name)
        self.registration_by_uri: dict[tuple[str, str], str] = {}
        self.qualified_endpoints: set[str] = set()

    # ------------------------------------------------------------- which signal
    def wants(self, trunk: str, signal: str) -> bool:
        """Does ``trunk`` take ``signal`` into account (see module docstring)?"""
        t = self.trunks[trunk]
        mode = t.health
        if mode in ("registration", "qualify"):
            return signal == mode
        if mode == "both":
            return True
        if mode != "auto":
            return False
        if signal == REGISTRATION:
            return (t.registration or trunk) in self.registration_by_uri.values()
        return (t.endpoint or trunk) in self.qualified_endpoints

    def _for(self, names: Iterable[str], signal: str, ok: bool | None, cause: str,
             soft: bool = False) -> list[Observation]:
        return [Observation(t, signal, ok, cause, soft) for t in names if self.wants(t, signal)]

    # ------------------------------------------------------------------ seeding
    def seed_registrations(self, messages: list) -> list[Observation]:
        """``PJSIPShowRegistrationsOutbound`` reply -> URI map and observations."""
        details = [m for m in messages if m.event == "OutboundRegistrationDetail"]
        self.registration_by_uri = {(m.ClientUri, m.ServerUri): m.ObjectName for m in details}
        status = {m.ObjectName: m.Status for m in details}
        out: list[Observation] = []
        for reg, trunks in self.by_registration.items():
            if reg not in status:
                out += self._for(trunks, REGISTRATION, None, "no such registration in Asterisk")
                continue
            # At boot the seed says Unregistered until the first REGISTER (up to 10 s,
            # ami-01): a soft down, so the board waits for Registered instead.
            ok, soft = REGISTRY_STATUS.get(status[reg], (None, False))
            out += self._for(trunks, REGISTRATION, ok, f"seed {status[reg]}", soft)
        return out

    def seed_endpoints(self, aors: list, endpoints: list) -> list[Observation]:
        """``PJSIPShowAors`` + ``PJSIPShowEndpoints`` replies -> qualify observations.

        ``DeviceState: Unavailable`` is how a failed qualify shows on the endpoint
        (ami-10); any other state of a qualifying endpoint means a contact answers.
        """
        qualifying = {m.ObjectName for m in aors
                      if m.event == "AorList" and _number(m.QualifyFrequency) > 0}
        states: dict[str, str] = {}
        self.qualified_endpoints = set()
        for m in endpoints:
            if m.event != "EndpointList":
                continue
            states[m.ObjectName] = m.DeviceState
            if qualifying & {a.strip() for a in m.Aor.split(",")}:
                self.qualified_endpoints.add(m.ObjectName)
        out: list[Observation] = []
        for endpoint, trunks in self.by_endpoint.items():
            state = states.get(endpoint)
            if state is None:
                ok, cause = None, "no such endpoint in Asterisk"
            elif state in ("Unknown", "Invalid"):
                ok, cause = None, f"seed DeviceState {state}"
            else:
                ok, cause = state != "Unavailable", f"seed DeviceState {state}"
            out += self._for(trunks, QUALIFY, ok, cause)
        return out

    @staticmethod
    def snapshot_positions(registrations: list, endpoints: list) -> dict[tuple[str, str], int]:
        """Stream position (``seq``) of each object's line in the seed replies.

        Asterisk may write events between the lines of a list reply, so an event is
        newer than the snapshot of *its* object iff its seq is larger than that line's.
        """
        pos = {("registration", m.ObjectName): m.seq for m in registrations
               if m.event == "OutboundRegistrationDetail"}
        pos.update({("endpoint", m.ObjectName): m.seq for m in endpoints
                    if m.event == "EndpointList"})
        return pos

    def object_of(self, msg) -> tuple[str, str]:
        """The seeded object a health event is about (see :meth:`snapshot_positions`)."""
        if msg.event == "Registry":
            return "registration", self.registration_by_uri.get((msg.Username, msg.Domain), "")
        if msg.event == "PeerStatus":
            return "endpoint", msg.Peer.partition("/")[2]
        return "endpoint", msg.EndpointName or msg.AOR

    # ------------------------------------------------------------------- events
    def event(self, msg) -> list[Observation]:
        """One health event -> observations; raises :class:`Unmapped` (Registry)."""
        handler = {"Registry": self._registry, "ContactStatus": self._contact,
                   "PeerStatus": self._peer}.get(msg.event)
        return handler(msg) if handler else []

    def _registry(self, msg) -> list[Observation]:
        if msg.ChannelType and msg.ChannelType != "PJSIP":
            return []
        reg = self.registration_by_uri.get((msg.Username, msg.Domain))
        if reg is None:
            raise Unmapped(f"{msg.Username} -> {msg.Domain}")
        ok, soft = REGISTRY_STATUS.get(msg.Status, (None, False))
        return self._for(self.by_registration.get(reg, ()), REGISTRATION, ok,
                         f"Registry {msg.Status}", soft)

    def _contact(self, msg) -> list[Observation]:
        if msg.ContactStatus not in CONTACT_STATUS:
            return []
        endpoint = msg.EndpointName or msg.AOR
        return self._for(self.by_endpoint.get(endpoint, ()), QUALIFY,
                         CONTACT_STATUS[msg.ContactStatus], f"ContactStatus {msg.ContactStatus}")

    def _peer(self, msg) -> list[Observation]:
        tech, _, endpoint = msg.Peer.partition("/")
        if tech != "PJSIP" or msg.PeerStatus not in PEER_STATUS:
            return []
        return self._for(self.by_endpoint.get(endpoint, ()), QUALIFY,
                         PEER_STATUS[msg.PeerStatus], f"PeerStatus {msg.PeerStatus}")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0
