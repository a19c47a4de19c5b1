"""``didrouter trunks``: the current health of every trunk on every Asterisk server.

Read from PostgreSQL (table ``trunk_state_change``, the latest change per server
and trunk), where every running didrouter records each change it sees. A trunk
with no change recorded is shown as never reported.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg

from agi_server import sqlfiles
from agi_server.errors import StoreError

TIMEOUT = 10.0


async def current(dsn: str) -> list[dict]:
    """One dict per (server, trunk): state, previous state, cause, since, observer."""
    try:
        conn = await asyncpg.connect(dsn, timeout=TIMEOUT)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        raise StoreError(f"cannot reach PostgreSQL: {exc}") from exc
    try:
        rows = await conn.fetch(sqlfiles.query("trunks_current"), timeout=TIMEOUT)
    except asyncpg.UndefinedTableError as exc:
        raise StoreError("no trunk_state_change table: run `didrouter migrate`") from exc
    finally:
        await conn.close(timeout=TIMEOUT)
    return [dict(row) for row in rows]


def table(rows: list[dict], configured: list[str]) -> str:
    """Aligned text; configured trunks no server has reported yet are listed too."""
    reported = {row["trunk"] for row in rows}
    lines = [("SERVER", "TRUNK", "STATE", "SINCE (UTC)", "CAUSE")]
    for row in rows:
        since = row["changed_at"].strftime("%Y-%m-%d %H:%M:%S") if isinstance(row["changed_at"], datetime) else ""
        lines.append((row["server"], row["trunk"], row["state"], since, row["cause"]))
    for trunk in configured:
        if trunk not in reported:
            lines.append(("-", trunk, "never reported", "", "no change recorded yet"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(4)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths + [0])).rstrip() for line in lines)
