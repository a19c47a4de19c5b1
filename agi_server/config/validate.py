"""Cross-checks over a whole config: what makes a DID plan wrong or weak.

Errors make a config unusable (load refuses it, a reload keeps the last good one);
warnings are printed and logged but the config is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from agi_server.config.model import Campaign, Config


@dataclass(frozen=True)
class Problem:
    severity: str   # "error" | "warning"
    source: str     # file name (or "database")
    field: str      # dotted path, e.g. campaigns.spring.dynamic[1]
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.severity}: {self.field}: {self.message}"


def error(source: str, field: str, message: str) -> Problem:
    return Problem("error", source, field, message)


def warning(source: str, field: str, message: str) -> Problem:
    return Problem("warning", source, field, message)


def check_config(config: Config) -> list[Problem]:
    """Every problem of the DID plan that a single field cannot show."""
    problems: list[Problem] = []
    for campaign in config.campaigns.values():
        problems.extend(_check_campaign(config, campaign))
    return problems


def _check_campaign(config: Config, campaign: Campaign) -> list[Problem]:
    src, base = config.source, f"campaigns.{campaign.name}"
    problems: list[Problem] = []
    refs = [("primary", campaign.primary)]
    refs += [(f"dynamic[{i}]", n) for i, n in enumerate(campaign.dynamic)]
    refs += [(f"fallback[{i}]", n) for i, n in enumerate(campaign.fallback)]
    for path, number in refs:
        if number not in config.dids:
            problems.append(error(src, f"{base}.{path}", f"unknown DID {number} (not in dids)"))
    seen: dict[str, str] = {}
    for path, number in refs:
        if number in seen:
            problems.append(error(src, f"{base}.{path}", f"DID {number} is listed twice in the campaign (also {seen[number]})"))
        seen.setdefault(number, path)
    if campaign.primary not in config.dids:
        return problems
    primary_trunk = config.dids[campaign.primary].trunk
    for i, number in enumerate(campaign.dynamic):
        did = config.dids.get(number)
        if did and did.trunk != primary_trunk:
            problems.append(error(
                src, f"{base}.dynamic[{i}]",
                f"dynamic DID {number} is on trunk {did.trunk}, but dynamic DIDs must be on the primary's trunk {primary_trunk}",
            ))
    for i, number in enumerate(campaign.fallback):
        did = config.dids.get(number)
        if did and did.trunk == primary_trunk:
            problems.append(warning(
                src, f"{base}.fallback[{i}]",
                f"fallback DID {number} is on the primary's trunk {primary_trunk}: it cannot help while that trunk is down",
            ))
    if not campaign.fallback:
        problems.append(warning(src, f"{base}.fallback", "no fallback DIDs: calls fail with NO_TRUNK while the primary trunk is down"))
    if campaign.dynamic_did_enabled and not config.settings.dynamic_did_enabled:
        problems.append(warning(
            src, f"{base}.dynamic_did_enabled",
            "true has no effect while the admin toggle settings.dynamic_did_enabled is off: "
            "the campaign stays off until the global toggle is on",
        ))
    trunk = config.trunks.get(primary_trunk)
    if trunk is not None and trunk.admin_state == "down":
        fate = "calls use its fallback DIDs" if campaign.fallback else "calls fail with NO_TRUNK (no fallback DIDs)"
        problems.append(warning(
            src, f"{base}.primary",
            f"the primary's trunk {primary_trunk} has admin_state down: {fate} until it is up",
        ))
    return problems
