"""``didrouter serve --workers N``: N processes on one port, one per core.

The parent starts N children (``serve`` with ``DIDROUTER_WORKER=i/N``), each binding
the same port with SO_REUSEPORT so the kernel spreads Asterisk's connections. It
forwards SIGHUP (reload) and SIGTERM/SIGINT (stop) to them and restarts a child that
dies, with back-off. Each worker rotates on its own from a staggered start and
journals to its own spool (``<spool>-w<i>``): across workers, per-DID use differs by
at most N (design invariant 6).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

log = structlog.get_logger("didrouter.workers")

WORKER_ENV = "DIDROUTER_WORKER"
RESTART_BACKOFF_MAX = 30.0


def parse_worker(value: str | None) -> tuple[int, int]:
    """``"i/N"`` from the environment, or (0, 1) for a single process."""
    if not value:
        return 0, 1
    index, _, count = value.partition("/")
    return int(index), int(count)


def supervise(argv: list[str], count: int, pidfile: str | None = None) -> int:
    """Run ``count`` workers of ``didrouter <argv>`` until told to stop; returns the exit code.

    The pidfile, if any, holds this supervisor's pid: SIGHUP to it reloads every worker.
    """
    children: dict[int, subprocess.Popen] = {}
    stopping = False
    backoff = [1.0] * count

    def spawn(index: int) -> None:
        env = {**os.environ, WORKER_ENV: f"{index}/{count}"}
        children[index] = subprocess.Popen([sys.executable, "-m", "agi_server", *argv], env=env)
        log.info("worker_started", worker=index, pid=children[index].pid)

    def forward(signum: int, _frame) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    for index in range(count):
        spawn(index)
    if pidfile:
        Path(pidfile).write_text(f"{os.getpid()}\n")
    while not stopping:
        time.sleep(0.5)
        for index, child in list(children.items()):
            if child.poll() is not None and not stopping:
                log.error("worker_died", worker=index, code=child.returncode, restart_in=backoff[index])
                time.sleep(backoff[index])
                backoff[index] = min(backoff[index] * 2, RESTART_BACKOFF_MAX)
                spawn(index)
    codes = [child.wait(timeout=15) for child in children.values()]
    if pidfile:
        Path(pidfile).unlink(missing_ok=True)
    return max(codes, default=0)
