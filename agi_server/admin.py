"""Validated edits of the campaign config in PostgreSQL; the admin CLI's engine.

Every edit runs in one transaction under the config writers' lock: it reads the
tables as a YAML-shaped document, applies the change to the document, validates the
result with :func:`~agi_server.config.load.load_mapping` (the YAML validator) and only
then writes it. An invalid result raises :class:`ConfigError` carrying every problem
and writes nothing. Functions return plain data (dicts, lists, str, bool); formatting
is the CLI's job. Numbers may be written in any form :func:`to_e164` accepts.
"""

from __future__ import annotations

from typing import Any, Callable

from agi_server.config import db
from agi_server.config.load import load_mapping
from agi_server.config.model import Config, Settings
from agi_server.errors import DidrouterError
from agi_server.numbers import to_e164

ROLES = ("dynamic", "fallback")
TOGGLES = {"on": True, "off": False, "inherit": None}

HealthLookup = Callable[[str], "str | None"]
"""Trunk name -> current health ("up", "down", "unknown", ...) or None if not known."""


class AdminError(DidrouterError):
    """An edit that makes no sense (unknown campaign, DID not in the campaign, ...)."""


# -- reads ---------------------------------------------------------------------------


async def list_campaigns(dsn: str) -> list[dict[str, Any]]:
    """One summary dict per campaign, by name: primary, its trunk, counts, toggle."""
    config, _ = await db.load_db(dsn)
    return [_summary(config, name) for name in sorted(config.campaigns)]


async def show_campaign(dsn: str, name: str, health: HealthLookup | None = None) -> dict[str, Any]:
    """One campaign with each DID's role, position, trunk and (if ``health``) trunk health."""
    config, _ = await db.load_db(dsn)
    return campaign_view(config, name, health)


def campaign_view(config: Config, name: str, health: HealthLookup | None = None) -> dict[str, Any]:
    """The dict :func:`show_campaign` returns, from a config already loaded."""
    campaign = config.campaigns.get(name)
    if campaign is None:
        raise AdminError(f"unknown campaign {name!r} (known: {', '.join(sorted(config.campaigns))})")
    members = [("primary", 0, campaign.primary)]
    members += [("dynamic", i, n) for i, n in enumerate(campaign.dynamic)]
    members += [("fallback", i, n) for i, n in enumerate(campaign.fallback)]
    dids = []
    for role, position, number in members:
        trunk = config.trunk_of(number)
        dids.append({
            "number": number, "role": role, "position": position, "trunk": trunk.name,
            "trunk_admin_state": trunk.admin_state,
            "trunk_health": health(trunk.name) if health else None,
        })
    return {**_summary(config, name), "dids": dids}


def _summary(config: Config, name: str) -> dict[str, Any]:
    campaign = config.campaigns[name]
    return {
        "name": name,
        "primary": campaign.primary,
        "trunk": config.dids[campaign.primary].trunk,
        "dynamic": len(campaign.dynamic),
        "fallback": len(campaign.fallback),
        "dynamic_did_enabled": _toggle_name(campaign.dynamic_did_enabled),
        "dynamic_effective": config.dynamic_enabled(campaign),
    }


def _toggle_name(value: bool | None) -> str:
    return {True: "on", False: "off", None: "inherit"}[value]


# -- edits ---------------------------------------------------------------------------


async def add_did(dsn: str, campaign: str, number: str, role: str,
                  trunk: str | None = None) -> dict[str, Any]:
    """Append ``number`` to the campaign's ``role`` list (dynamic or fallback).

    A number not yet in ``dids`` is added on ``trunk`` (required then); for a known
    number ``trunk``, if given, must be the trunk it is on.
    """
    if role not in ROLES:
        raise AdminError(f"role must be one of {', '.join(ROLES)}, not {role!r}")

    def change(doc: dict[str, Any]) -> None:
        item, e164 = _campaign(doc, campaign), _number(doc, number)
        _ensure_did(doc, e164, trunk)
        if e164 in _members(item):
            raise AdminError(f"{e164} is already in campaign {campaign}")
        item.setdefault(role, []).append(e164)

    return await _edit_campaign(dsn, campaign, change)


async def remove_did(dsn: str, campaign: str, number: str) -> dict[str, Any]:
    """Take a dynamic or fallback DID out of a campaign (it stays in ``dids``)."""

    def change(doc: dict[str, Any]) -> None:
        item, e164 = _campaign(doc, campaign), _number(doc, number)
        if item.get("primary") == e164:
            raise AdminError(f"{e164} is the primary of {campaign}: set another primary first")
        for role in ROLES:
            if e164 in (item.get(role) or []):
                item[role].remove(e164)
                return
        raise AdminError(f"{e164} is not in campaign {campaign}")

    return await _edit_campaign(dsn, campaign, change)


async def set_primary(dsn: str, campaign: str, number: str, drop_old: bool = False) -> dict[str, Any]:
    """Make a known DID the campaign's primary.

    If it was one of the campaign's dynamic or fallback DIDs it leaves that list. The
    old primary becomes the first dynamic DID when it is on the new primary's trunk;
    on another trunk (or with ``drop_old``) it leaves the campaign (it stays in
    ``dids``). Dynamic DIDs must be on the new primary's trunk.

    Returns the edit result plus ``old_primary`` (``{"number", "role"}``, role
    ``"dynamic"`` or None when it left; None if the primary did not change) and
    ``message`` saying what happened to it.
    """
    outcome: dict[str, Any] = {"old_primary": None, "message": None}

    def change(doc: dict[str, Any]) -> None:
        item, e164 = _campaign(doc, campaign), _number(doc, number)
        _ensure_did(doc, e164, None)
        old = item.get("primary")
        for role in ROLES:
            item[role] = [n for n in (item.get(role) or []) if n != e164]
        item["primary"] = e164
        if old == e164:
            outcome["message"] = f"{e164} is already the primary of {campaign}"
            return
        trunks = {d.get("number"): d.get("trunk") for d in doc.get("dids") or []}
        old_trunk, new_trunk = trunks.get(old), trunks.get(e164)
        if drop_old:
            why = "as asked (--drop-old)"
        elif old_trunk != new_trunk:
            why = f"it is on {old_trunk}, not the new primary's {new_trunk}"
        else:
            item["dynamic"] = [old] + [n for n in item["dynamic"] if n != old]
            outcome["old_primary"] = {"number": old, "role": "dynamic"}
            outcome["message"] = f"old primary {old} is now the first dynamic DID"
            return
        outcome["old_primary"] = {"number": old, "role": None}
        outcome["message"] = f"old primary {old} left the campaign: {why}"

    result = await _edit_campaign(dsn, campaign, change)
    return {**result, **outcome}


async def set_dynamic(dsn: str, state: str, campaign: str | None = None) -> dict[str, Any]:
    """Set the dynamic-DID toggle: globally (``on``/``off``) or for one campaign
    (``on``/``off``/``inherit``, which follows the global setting).

    Returns ``{"global": bool, "campaign": view or None, "warnings": [...]}``.
    """
    if state not in TOGGLES or (campaign is None and state == "inherit"):
        allowed = "on, off, inherit" if campaign else "on, off (inherit is per campaign)"
        raise AdminError(f"dynamic toggle must be {allowed}, not {state!r}")

    def change(doc: dict[str, Any]) -> None:
        if campaign is None:
            doc.setdefault("settings", {})["dynamic_did_enabled"] = TOGGLES[state]
            return
        item = _campaign(doc, campaign)
        item.pop("dynamic_did_enabled", None)
        if TOGGLES[state] is not None:
            item["dynamic_did_enabled"] = TOGGLES[state]

    config, warnings = await _edit(dsn, change)
    view = campaign_view(config, campaign) if campaign else None
    return {"global": config.settings.dynamic_did_enabled, "campaign": view,
            "warnings": [str(w) for w in warnings]}


async def _edit_campaign(dsn: str, campaign: str, change: Callable[[dict], None]) -> dict[str, Any]:
    config, warnings = await _edit(dsn, change)
    return {"campaign": campaign_view(config, campaign), "warnings": [str(w) for w in warnings]}


async def _edit(dsn: str, change: Callable[[dict], None]) -> tuple[Config, list]:
    """Read, change, validate, write: all in one locked transaction. Returns the new
    (config, warnings); raises ConfigError/AdminError and writes nothing if refused."""
    async with db.connect(dsn) as conn:
        async with conn.transaction():
            await db.lock(conn)
            document = await db.read_document(conn)
            change(document)
            config, warnings = load_mapping(document, db.SOURCE)
            await db.write_config(conn, config)
    return config, warnings


# -- document helpers ----------------------------------------------------------------


def _campaign(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for item in doc.get("campaigns") or []:
        if item.get("name") == name:
            return item
    raise AdminError(f"unknown campaign {name!r}")


def _members(item: dict[str, Any]) -> list[str]:
    return [item.get("primary")] + list(item.get("dynamic") or []) + list(item.get("fallback") or [])


def _number(doc: dict[str, Any], raw: str) -> str:
    country = str((doc.get("settings") or {}).get("default_country", Settings.default_country))
    return to_e164(raw, country)


def _ensure_did(doc: dict[str, Any], number: str, trunk: str | None) -> None:
    """Check ``number`` is a DID (on ``trunk`` if given), adding it on ``trunk`` if new."""
    dids = doc.setdefault("dids", [])
    known = {d.get("number"): d.get("trunk") for d in dids}
    if number in known:
        if trunk is not None and trunk != known[number]:
            raise AdminError(f"DID {number} is on trunk {known[number]}, not {trunk}")
        return
    if trunk is None:
        raise AdminError(f"DID {number} is not known yet: give its trunk (--trunk)")
    dids.append({"number": number, "trunk": trunk})
