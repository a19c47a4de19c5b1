"""``didrouter report``: per-DID / per-campaign figures and A/B verdicts.

:func:`register` adds the subcommand to the top-level subparsers and returns
``{"report": handler}``; the handler takes the parsed namespace, prints to stdout
and returns an exit code. User errors (no DSN, bad range, ``--ab`` without
``--campaign``) and database failures raise DidrouterError / StoreError for
``cli.main`` to print. Dates are UTC days, both ends inclusive; the default range
is the last 7 UTC days up to today.

Formats: ``table`` (aligned, ratios as percentages, ACD in seconds), ``csv``
(header row, raw numbers, ratios as fractions 0..1, empty for NULL) and ``json``
(a list of objects, dates as ISO strings, NULL as null).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import os
from typing import Any, Callable

import asyncpg

from agi_server import pg, reports, texttable
from agi_server.errors import DidrouterError

Handler = Callable[[argparse.Namespace], int]
DEFAULT_DAYS = 7

# (key, table header, kind) per report; kind picks the table formatting.
_FIGURES = (("attempts", "ATTEMPTS", "int"), ("answered", "ANSWERED", "int"),
            ("asr", "ASR", "pct"), ("ner", "NER", "pct"), ("acd", "ACD", "sec"),
            ("fallback_share", "FALLBACK", "pct"), ("carrier_share", "CARRIER", "pct"),
            ("reputation_share", "REPUTATION", "pct"), ("no_outcome", "NO_OUTCOME", "int"))
DID_COLUMNS = (("campaign", "CAMPAIGN", "str"), ("did", "DID", "str"),
               ("trunk", "TRUNK", "str")) + _FIGURES
CAMPAIGN_COLUMNS = (("campaign", "CAMPAIGN", "str"), ("dids", "DIDS", "int")) + _FIGURES
AB_COLUMNS = (("did", "DID", "str"), ("decided", "DECIDED", "int"),
              ("answered", "ANSWERED", "int"), ("answer_rate", "RATE", "pct"),
              ("ci_low", "CI95_LOW", "pct"), ("ci_high", "CI95_HIGH", "pct"),
              ("p_value", "P", "p"), ("no_outcome", "NO_OUTCOME", "int"),
              ("verdict", "VERDICT", "str"))
_DAY = (("day", "DAY", "str"),)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def register(commands: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add ``report`` to ``commands``; return ``{"report": handler}``."""
    p = commands.add_parser("report", help="answer rates (ASR, NER, ACD) per DID or campaign; A/B verdicts")
    p.add_argument("--by", choices=("did", "campaign"), default="did", help="one row per DID (default) or per campaign")
    p.add_argument("--campaign", metavar="NAME", help="only this campaign (required with --ab)")
    p.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help=f"first UTC day, inclusive (default: {DEFAULT_DAYS - 1} days before --until)")
    p.add_argument("--until", type=_date, metavar="YYYY-MM-DD", help="last UTC day, inclusive (default: today, UTC)")
    p.add_argument("--daily", action="store_true", help="one row per UTC day as well")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    p.add_argument("--ab", action="store_true", help="compare the DIDs of --campaign: Wilson 95%% CIs, Fisher exact test, verdict")
    p.add_argument("--dsn", default=os.environ.get("DIDROUTER_DSN"), metavar="DSN",
                   help="PostgreSQL DSN holding the CDR table [env: DIDROUTER_DSN]")
    return {"report": cmd_report}


def resolve_range(since: dt.date | None, until: dt.date | None,
                  today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """Fill in defaults (last 7 UTC days up to today); DidrouterError if since > until."""
    until = until or today or dt.datetime.now(dt.timezone.utc).date()
    since = since or until - dt.timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise DidrouterError(f"--since {since} is after --until {until}")
    return since, until


def cmd_report(args: argparse.Namespace) -> int:
    """Handler of ``didrouter report``."""
    if not args.dsn:
        raise DidrouterError("report needs --dsn or DIDROUTER_DSN")
    if args.ab and not args.campaign:
        raise DidrouterError("--ab needs --campaign")
    since, until = resolve_range(args.since, args.until)
    rows, columns = asyncio.run(_load(args, since, until))
    print(render(rows, columns, args.format), end="")
    return 0


async def _load(args: argparse.Namespace, since: dt.date, until: dt.date) -> tuple[list[dict], tuple]:
    async with pg.connect(args.dsn, "report query", command_timeout=None) as conn:
        return await _query(conn, args, since, until)


async def _query(conn: asyncpg.Connection, args: argparse.Namespace,
                 since: dt.date, until: dt.date) -> tuple[list[dict], tuple]:
    if args.ab:
        return await reports.ab_compare(conn, args.campaign, since, until), AB_COLUMNS
    day = _DAY if args.daily else ()
    if args.by == "campaign":
        rows = await reports.campaign_report(conn, since, until, args.campaign, daily=args.daily)
        return rows, day + CAMPAIGN_COLUMNS
    rows = await reports.did_report(conn, since, until, args.campaign, daily=args.daily)
    return rows, day + DID_COLUMNS


# -- rendering -----------------------------------------------------------------------


def render(rows: list[dict[str, Any]], columns: tuple, fmt: str) -> str:
    """``rows`` as ``fmt`` (table, csv or json), only ``columns``, newline-terminated."""
    if fmt == "json":
        return json.dumps([{k: _plain(r.get(k)) for k, _, _ in columns} for r in rows], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([k for k, _, _ in columns])
        writer.writerows([["" if r.get(k) is None else _plain(r.get(k)) for k, _, _ in columns]
                          for r in rows])
        return out.getvalue()
    return table(rows, columns) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, (int, float)):
        return float(value)   # Decimal
    return value


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "sec":
        return f"{float(value):.1f}s"
    if kind == "p":
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    return str(_plain(value))


def table(rows: list[dict[str, Any]], columns: tuple) -> str:
    """Aligned table: text columns left-aligned, numbers right-aligned; '-' for NULL."""
    cells = [[_cell(r.get(k), kind) for k, _, kind in columns] for r in rows]
    right = {i for i, (_, _, kind) in enumerate(columns) if kind != "str"}
    text = texttable.render([h for _, h, _ in columns], cells, right)
    return text + "\n(no attempts in this range)" if not rows else text
