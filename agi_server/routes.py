"""AGI routes: turn a request's environment into the channel variables to set.

Each route handler is synchronous and returns the ordered ``(name, value)`` pairs
to send as ``SET VARIABLE``; the connection handler does the I/O. The variable
names are the dialplan contract (README, "Dialplan variables").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agi_server.agi.protocol import Environment
from agi_server.routing import policy
from agi_server.outcomes import DIALSTATUSES
from agi_server.routing.router import ReportRequest, Router, SelectRequest

log = structlog.get_logger("didrouter.routes")

Variables = list[tuple[str, str]]

# A destination goes into the Dial() string: "&" would add a channel and "/" or "@"
# change the target, so only what a phone number can hold is accepted.
_DESTINATION = re.compile(r"^\+?[0-9*#]{1,32}$")
_WHOLE = re.compile(r"^[0-9]{1,9}$")        # ASCII digits only: str.isdigit() takes "²" and "٣"
MAX_ATTEMPT = 99
# Asterisk's AST_MAX_UNIQUEID is 150; anything longer is not from Asterisk.
MAX_UNIQUEID = 150
SELECT_PARAMETERS = {"campaign", "number", "attempt", "tried", "prev", "prevcause"}
MAX_TRIED = MAX_ATTEMPT
REPORT_PARAMETERS = {"attempt", "dialstatus", "hangupcause", "answered", "dialed", "number"}


@dataclass(frozen=True)
class Peer:
    address: str
    server: str


class BadRequest(ValueError):
    """The request cannot be served as asked; the message says why."""


def status_only(status: str) -> Variables:
    return [("DIDR_STATUS", status)]


class Routes:
    """Dispatch by route name. Unknown routes answer ``UNSUPPORTED_ROUTE``."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._handlers: dict[str, Callable[[Environment, Peer], Variables]] = {
            "select": self.select, "report": self.report}

    def add(self, name: str, handler: Callable[[Environment, Peer], Variables]) -> None:
        self._handlers[name] = handler

    def handle(self, env: Environment, peer_address: str) -> Variables:
        peer = Peer(peer_address, self.router.server_for_peer(peer_address))
        handler = self._handlers.get(env.request.route)
        if handler is None:
            log.warning("unsupported_route", route=env.request.route, uniqueid=env.get("agi_uniqueid"),
                        peer=peer_address, reason="no handler for this route; no rotation slot used, no row written")
            return status_only(policy.UNSUPPORTED_ROUTE)
        try:
            return handler(env, peer)
        except BadRequest as exc:
            log.warning("bad_request", route=env.request.route, uniqueid=env.get("agi_uniqueid"),
                        peer=peer_address, reason=str(exc))
            return status_only(policy.BAD_REQUEST)

    def select(self, env: Environment, peer: Peer) -> Variables:
        req = select_request(env, peer)
        decision, attempt = self.router.select(req)
        if decision.status != policy.OK:
            return [("DIDR_STATUS", decision.status), ("DIDR_ATTEMPT", str(attempt))]
        return [
            ("CALLERID(num)", decision.callerid or ""),
            ("DIDR_STATUS", decision.status),
            ("DIDR_DIAL", decision.dial or ""),
            ("DIDR_TRUNK", decision.trunk or ""),
            ("DIDR_ROLE", decision.role or ""),
            ("DIDR_ATTEMPT", str(attempt)),
        ]


    def report(self, env: Environment, peer: Peer) -> Variables:
        self.router.report(report_request(env, peer))
        return status_only(policy.OK)


def _checked(env: Environment, route: str, known: set[str]) -> tuple[dict[str, str], str]:
    """The query and uniqueid, after the checks every route shares."""
    query = env.request.query
    ignored = sorted(set(query) - known)
    if ignored:
        log.info("ignored_parameters", route=route, parameters=ignored, uniqueid=env.get("agi_uniqueid"))
    repeated = sorted(env.request.repeated & known)
    if repeated:
        raise BadRequest(f"parameter(s) {', '.join(repeated)} given more than once")
    uniqueid = env.get("agi_uniqueid")
    if not uniqueid:
        raise BadRequest("no agi_uniqueid in the environment")
    if len(uniqueid) > MAX_UNIQUEID:
        raise BadRequest(f"agi_uniqueid longer than {MAX_UNIQUEID} characters")
    return query, uniqueid


def select_request(env: Environment, peer: Peer) -> SelectRequest:
    """The dialplan contract for ``select`` (design.md), or :class:`BadRequest`."""
    query, uniqueid = _checked(env, "select", SELECT_PARAMETERS)
    args = env.request.args
    campaign = query.get("campaign") or (args[0] if args else "")
    if not campaign:
        raise BadRequest("no campaign: give ?campaign=NAME or the first AGI argument")
    destination = query.get("number") or env.get("agi_extension")
    if not _DESTINATION.match(destination):
        raise BadRequest(f"destination {destination[:40]!r} is not a dialable number (digits, *, #, optional +)")
    return SelectRequest(
        server=peer.server, peer=peer.address, uniqueid=uniqueid, channel=env.get("agi_channel"),
        campaign=campaign, destination=destination, attempt=_attempt(query.get("attempt")),
        tried_callerids=_tried(query.get("tried", "")), previous=_previous(query),
    )


def _tried(raw: str) -> tuple[str, ...]:
    """``tried=15557654321-15557654322``: caller IDs shown on earlier attempts ("-" separated,
    since "," would split the AGI() arguments)."""
    shown = tuple(part.strip() for part in raw.split("-") if part.strip())
    if len(shown) > MAX_TRIED:
        raise BadRequest(f"tried lists {len(shown)} caller IDs, more than {MAX_TRIED}")
    return shown


def _previous(query: dict[str, str]) -> tuple[str, int | None] | None:
    """``prev=${DIALSTATUS}&prevcause=${HANGUPCAUSE}`` of the previous attempt; empty on the first."""
    status = query.get("prev", "").upper()
    if not status:
        return None
    if status not in DIALSTATUSES:
        raise BadRequest(f"prev {status[:20]!r} is not a Dial() status")
    return status, _whole(query.get("prevcause"), "prevcause")


def report_request(env: Environment, peer: Peer) -> ReportRequest:
    """The ``report`` route: the Dial() result from the query, else ``agi_arg_1``/``agi_arg_2``.

    ``report?attempt=N&dialstatus=${DIALSTATUS}&hangupcause=${HANGUPCAUSE}&answered=${ANSWEREDTIME}&dialed=${DIALEDTIME}``
    """
    query, uniqueid = _checked(env, "report", REPORT_PARAMETERS)
    args = env.request.args
    dialstatus = (query.get("dialstatus") or (args[0] if args else "")).upper()
    if dialstatus not in DIALSTATUSES:
        raise BadRequest(f"dialstatus {dialstatus[:20]!r} is not a Dial() status")
    cause = query.get("hangupcause") or (args[1] if len(args) > 1 else "")
    return ReportRequest(
        server=peer.server, uniqueid=uniqueid, dialstatus=dialstatus,
        hangupcause=_whole(cause, "hangupcause"), answered_seconds=_whole(query.get("answered"), "answered"),
        dialed_seconds=_whole(query.get("dialed"), "dialed"), attempt=_attempt(query.get("attempt")),
    )


def _whole(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if not _WHOLE.match(raw):
        raise BadRequest(f"{name} {raw[:10]!r} is not a whole number")
    return int(raw)


def _attempt(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not _WHOLE.match(raw) or not 1 <= int(raw) <= MAX_ATTEMPT:
        raise BadRequest(f"attempt {raw[:10]!r} is not a number from 1 to {MAX_ATTEMPT}")
    return int(raw)
