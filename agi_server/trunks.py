"""``didrouter trunks``: the current health of every trunk on every Asterisk server.

Read from PostgreSQL (table ``trunk_state_change``, the latest change per server
and trunk), where every running didrouter records each change it sees. A trunk
with no change recorded is shown as never reported.
"""

from __future__ import annotations

from datetime import datetime

from agi_server import pg, sqlfiles, texttable


async def current(dsn: str) -> list[dict]:
    """One dict per (server, trunk): state, previous state, cause, since, observer."""
    async with pg.connect(dsn, "trunk health query") as conn:
        rows = await conn.fetch(sqlfiles.query("trunks_current"))
    return [dict(row) for row in rows]


def table(rows: list[dict], configured: list[str]) -> str:
    """Aligned text; configured trunks no server has reported yet are listed too."""
    reported = {row["trunk"] for row in rows}
    lines = []
    for row in rows:
        since = row["changed_at"].strftime("%Y-%m-%d %H:%M:%S") if isinstance(row["changed_at"], datetime) else ""
        lines.append((row["server"], row["trunk"], row["state"], since, row["cause"]))
    for trunk in configured:
        if trunk not in reported:
            lines.append(("-", trunk, "never reported", "", "no change recorded yet"))
    return texttable.render(("SERVER", "TRUNK", "STATE", "SINCE (UTC)", "CAUSE"), lines)
