"""Which DID and trunk an attempt gets: pure functions over data, no I/O, no clock.

Inputs are a config snapshot, the health of each trunk as seen from the calling
Asterisk server, the campaign's rotation counters, the DIDs already tried on this
call and whether the previous attempt failed in the carrier. The output is a
:class:`Decision`, including which rotation counter to advance: the caller applies
it without yielding to the event loop, so concurrent calls never share a slot.

Rotation rules (design invariant 6):

* The main pool is ``[primary, *dynamic]`` when dynamic DIDs are on for the
  campaign, else ``[primary]``. The fallback pool is the fallback DIDs whose trunk
  is up. Each pool has its own round-robin counter.
* A call's first use of a pool takes the counter's slot and advances it, so
  fairness is counted over first attempts.
* A retry takes the next DID after the last one tried on this call, skipping those
  already tried, and leaves the counter alone. When every DID of the pool was tried
  the answer is ``NO_DID``: the dialplan stops retrying.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agi_server.config.model import Campaign, Config
from agi_server.numbers import format_callerid

MAIN, FALLBACK = "main", "fallback"
PRIMARY, DYNAMIC, FALLBACK_ROLE = "primary", "dynamic", "fallback"

OK = "OK"
UNKNOWN_CAMPAIGN = "UNKNOWN_CAMPAIGN"
NO_DID = "NO_DID"
NO_TRUNK = "NO_TRUNK"
BAD_REQUEST = "BAD_REQUEST"
UNSUPPORTED_ROUTE = "UNSUPPORTED_ROUTE"
ERROR = "ERROR"


@dataclass(frozen=True)
class Decision:
    status: str
    reason: str
    did: str | None = None        # +E.164
    callerid: str | None = None   # as the trunk sends it
    trunk: str | None = None
    dial: str | None = None
    role: str | None = None
    advance: tuple[str, int] | None = None   # (pool, new counter value) to store


@dataclass(frozen=True)
class TrunkView:
    """A trunk's usability for this request, with the reason in words."""

    up: bool
    reason: str


def trunk_view(config: Config, trunk: str, health: str) -> TrunkView:
    """Combine the admin state and the observed health ("up", "down", "unknown").

    An admin ``down`` always wins. ``unknown`` (no AMI, link lost) follows
    ``settings.unknown_health``.
    """
    if config.trunks[trunk].admin_state == "down":
        return TrunkView(False, f"{trunk} is down by admin state")
    if health == "unknown":
        assumed = config.settings.unknown_health == "up"
        return TrunkView(assumed, f"{trunk} health unknown, assumed {config.settings.unknown_health}")
    return TrunkView(health == "up", f"{trunk} is {health}")


def decide(
    config: Config,
    campaign: Campaign,
    health: Callable[[str], str],
    counters: Callable[[str], int],
    tried: Sequence[str],
    destination: str,
    carrier_failed: bool = False,
) -> Decision:
    """The decision for one attempt. ``health(trunk)`` and ``counters(pool)`` are lookups."""
    primary_trunk = config.dids[campaign.primary].trunk
    primary = trunk_view(config, primary_trunk, health(primary_trunk))
    main_pool = _main_pool(config, campaign)
    if primary.up and not carrier_failed:
        return _from_pool(config, MAIN, main_pool, counters(MAIN), tried, destination, primary.reason)
    why = primary.reason if not primary.up else f"previous attempt failed in the carrier on {primary_trunk}"
    fallback = _fallback_pool(config, campaign, health)
    if fallback:
        return _from_pool(config, FALLBACK, fallback, counters(FALLBACK), tried, destination, why)
    no_fallback = _why_no_fallback(config, campaign, health)
    if primary.up:  # carrier failure but nowhere to fail over: the next main DID is better than nothing
        return _from_pool(config, MAIN, main_pool, counters(MAIN), tried, destination, f"{why}; {no_fallback}")
    return Decision(NO_TRUNK, f"{why}; {no_fallback}")


def _main_pool(config: Config, campaign: Campaign) -> list[tuple[str, str]]:
    pool = [(campaign.primary, PRIMARY)]
    if config.dynamic_enabled(campaign):
        pool += [(number, DYNAMIC) for number in campaign.dynamic]
    return pool


def _fallback_pool(config: Config, campaign: Campaign, health: Callable[[str], str]) -> list[tuple[str, str]]:
    usable = []
    for number in campaign.fallback:
        trunk = config.dids[number].trunk
        if trunk_view(config, trunk, health(trunk)).up:
            usable.append((number, FALLBACK_ROLE))
    return usable


def _why_no_fallback(config: Config, campaign: Campaign, health: Callable[[str], str]) -> str:
    if not campaign.fallback:
        return "campaign has no fallback DIDs"
    trunks = sorted({config.dids[n].trunk for n in campaign.fallback})
    views = [trunk_view(config, t, health(t)).reason for t in trunks]
    return "fallback trunk not usable: " + ", ".join(views)


def _from_pool(
    config: Config,
    pool_name: str,
    pool: list[tuple[str, str]],
    counter: int,
    tried: Sequence[str],
    destination: str,
    context: str,
) -> Decision:
    index, advance = pick_slot([n for n, _ in pool], counter, tried)
    if index is None:
        return Decision(NO_DID, f"{context}; all {len(pool)} DID(s) of the {pool_name} pool were tried on this call")
    number, role = pool[index]
    how = f"round-robin slot {index + 1}/{len(pool)}" if advance else f"retry: next untried DID, slot {index + 1}/{len(pool)}"
    return decision_for(config, number, role, destination, f"{context}; {pool_name} pool, {how}",
                        advance=(pool_name, counter + 1) if advance else None)


def decision_for(config: Config, number: str, role: str, destination: str, reason: str,
                 advance: tuple[str, int] | None = None) -> Decision:
    """An OK decision for DID ``number``: caller ID as its trunk sends it, the dial string."""
    trunk = config.trunk_of(number)
    return Decision(
        OK, reason, did=number,
        callerid=format_callerid(number, trunk.callerid_format, config.settings.default_country, trunk.national_prefix),
        trunk=trunk.name, dial=trunk.dial_string(destination), role=role, advance=advance,
    )


def dids_shown(config: Config, campaign: Campaign, callerids: Sequence[str]) -> list[str]:
    """The campaign's DIDs behind caller IDs as the trunks sent them (``tried=`` hint)."""
    if not callerids:          # every first attempt: nothing to match, nothing to format
        return []
    wanted = set(callerids)
    shown = []
    for number in (campaign.primary, *campaign.dynamic, *campaign.fallback):
        trunk = config.trunk_of(number)
        sent = format_callerid(number, trunk.callerid_format, config.settings.default_country, trunk.national_prefix)
        if sent in wanted or number in wanted:
            shown.append(number)
    return shown


def pick_slot(pool: Sequence[str], counter: int, tried: Sequence[str]) -> tuple[int | None, bool]:
    """Index into ``pool`` for this attempt, and whether the counter advances.

    No DID of the pool tried on this call yet: the counter's slot, and advance.
    Otherwise: the first untried DID after the last tried one, counter untouched.
    """
    if not pool:
        return None, False
    tried_here = [pool.index(n) for n in tried if n in pool]
    if not tried_here:
        return counter % len(pool), True
    start = tried_here[-1] + 1
    for step in range(len(pool)):
        index = (start + step) % len(pool)
        if pool[index] not in tried:
            return index, False
    return None, False
