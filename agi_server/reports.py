"""Report figures for analysts, read from the views of ``004_report_views.sql``.

Every function takes an open asyncpg connection and UTC dates ``since``/``until``
(both inclusive; a day is the UTC date of ``decided_at``), runs its SQL from
``sql/queries/report_*.sql`` with a timeout of :data:`QUERY_TIMEOUT` seconds and
returns plain dicts (JSON-friendly apart from ``datetime.date`` values). Database
errors propagate as asyncpg exceptions; the CLI maps them to StoreError.

A/B (:func:`ab_compare`): every DID of a campaign is compared with the campaign's
*reference* DID, the one with the highest Wilson 95% lower bound on its answer rate
(it is the best DID that also has the data to back it: a DID at 1/1 does not become
the reference). The answer rate here is answered / attempts *with an outcome*;
attempts whose outcome is not known yet are missing data, not failures. Each
comparison uses Fisher's exact test at alpha = 0.05 / (number of comparisons)
(Bonferroni), and :func:`agi_server.stats.compare` decides when to call.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from agi_server import sqlfiles, stats

QUERY_TIMEOUT = 30.0
CONFIDENCE = 0.95


async def _fetch(conn: asyncpg.Connection, name: str, *args: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(sqlfiles.query(name), *args, timeout=QUERY_TIMEOUT)
    return [dict(row) for row in rows]


def _check_range(since: dt.date, until: dt.date) -> None:
    if since > until:
        raise ValueError(f"since ({since}) is after until ({until})")


async def did_report(conn: asyncpg.Connection, since: dt.date, until: dt.date,
                     campaign: str | None = None, *, daily: bool = False) -> list[dict[str, Any]]:
    """Rows per campaign, DID and trunk, summed over the range (``daily``: one row per
    UTC day as well). Columns: see docs/reports.md; ratios are floats or None."""
    _check_range(since, until)
    return await _fetch(conn, "report_did_days" if daily else "report_did_range",
                        since, until, campaign)


async def campaign_report(conn: asyncpg.Connection, since: dt.date, until: dt.date,
                          campaign: str | None = None, *, daily: bool = False) -> list[dict[str, Any]]:
    """Rows per campaign summed over the range (``daily``: per UTC day as well)."""
    _check_range(since, until)
    return await _fetch(conn, "report_campaign_days" if daily else "report_campaign_range",
                        since, until, campaign)


def _p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def verdict_text(did: str, reference: str, result: stats.Comparison) -> str:
    """The plain-language verdict of ``did`` against ``reference``."""
    if result.call == stats.TOO_SMALL:
        if result.needed is None:
            return "sample too small to call: no answered calls to compare yet"
        return f"sample too small to call: need ≥ {result.needed} attempts with an outcome per DID"
    if result.call == stats.SAME:
        return f"no significant difference ({_p_text(result.p_value)})"
    word = "better" if result.call == stats.BETTER else "worse"
    return f"{did} {word} than {reference} ({_p_text(result.p_value)})"


def _with_interval(row: dict[str, Any]) -> dict[str, Any]:
    decided, answered = row["decided"], row["answered"]
    low, high = stats.wilson_interval(answered, decided, CONFIDENCE)
    return {**row, "answer_rate": answered / decided if decided else None,
            "ci_low": low, "ci_high": high}


def pick_reference(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with the highest Wilson lower bound; ties: more decided attempts, then
    the smaller DID. ``rows`` must be non-empty and carry ``ci_low``."""
    return min(rows, key=lambda r: (-r["ci_low"], -r["decided"], r["did"]))


async def ab_compare(conn: asyncpg.Connection, campaign: str, since: dt.date,
                     until: dt.date) -> list[dict[str, Any]]:
    """A/B rows for every DID of ``campaign`` that has attempts in the range.

    Each row: did, decided (attempts with an outcome), answered, no_outcome,
    answer_rate, ci_low, ci_high (Wilson 95%), reference (bool), against (the
    reference DID), p_value (None on the reference row), alpha, verdict. The
    reference row comes first, then the others by DID. Empty if no DID.
    """
    _check_range(since, until)
    rows = [_with_interval(r) for r in await _fetch(conn, "report_ab_dids", since, until, campaign)]
    if not rows:
        return []
    ref = pick_reference(rows)
    others = [r for r in rows if r is not ref]
    alpha = stats.ALPHA / max(1, len(others))
    out = [{**ref, "reference": True, "against": None, "p_value": None, "alpha": alpha,
            "verdict": "reference (highest Wilson lower bound)" if others
            else "only DID of the campaign: nothing to compare"}]
    for row in others:
        result = stats.compare(row["answered"], row["decided"], ref["answered"], ref["decided"],
                               alpha=alpha)
        out.append({**row, "reference": False, "against": ref["did"], "p_value": result.p_value,
                    "alpha": alpha, "verdict": verdict_text(row["did"], ref["did"], result)})
    return out
