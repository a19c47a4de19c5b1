"""Render a :class:`Config` back into the YAML document shape :func:`load_mapping` reads.

Contract: ``load_mapping(to_document(c), s)[0] == replace(c, source=s)`` for every
config ``c`` without ``asterisk_servers``. AMI servers are left out on purpose: they
are per deployment, and their secrets (often read from the environment) must not
end up in an export or in the shared database. Comments of the original file are
not kept. Numbers come out in +E.164.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

import yaml

from agi_server.config.model import Campaign, Config, Settings, Timeouts, Trunk


def to_document(config: Config) -> dict[str, Any]:
    """The config as a plain YAML-shaped dict: settings, trunks, dids, campaigns."""
    return {
        "settings": _settings(config.settings),
        "trunks": [_trunk(t) for t in config.trunks.values()],
        "dids": [{"number": d.number, "trunk": d.trunk} for d in config.dids.values()],
        "campaigns": [_campaign(c) for c in config.campaigns.values()],
    }


def dump_yaml(document: dict[str, Any], header: str = "") -> str:
    """YAML text of a document, keys in document order, with an optional comment header."""
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + text


def dump_json(document: Any) -> str:
    """JSON text of a document (for ``--json``)."""
    return json.dumps(document, indent=2, sort_keys=False)


def _settings(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"listen": {"host": settings.host, "port": settings.port}}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name in ("host", "port", "timeouts") or value is None:
            continue
        out[f.name] = value
    out["timeouts"] = {f.name: getattr(settings.timeouts, f.name) for f in fields(Timeouts)}
    return out


def _trunk(trunk: Trunk) -> dict[str, Any]:
    return {k: v for k, v in asdict(trunk).items() if v is not None}


def _campaign(campaign: Campaign) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": campaign.name,
        "primary": campaign.primary,
        "dynamic": list(campaign.dynamic),
        "fallback": list(campaign.fallback),
    }
    if campaign.dynamic_did_enabled is not None:
        out["dynamic_did_enabled"] = campaign.dynamic_did_enabled
    return out
