"""``didrouter serve --workers N``: N processes on one listening socket, one per core.

The supervisor binds the FastAGI port itself (a second instance on the same port
fails at once, as a single process would) and hands the socket to N children
(``serve`` with ``DIDROUTER_WORKER=i/N`` and ``DIDROUTER_LISTEN_FD``); the kernel
gives each new connection to one of the workers waiting in accept. The supervisor
forwards SIGHUP (reload) and SIGTERM/SIGINT (stop), restarts a worker that dies
(with back-off), and holds the pidfile. A worker whose supervisor disappears
(``kill -9``, OOM) stops by itself within a second, so no orphan keeps serving an
old config. Each worker rotates from a staggered start and journals to its own
spool (``<spool>-w<i>``): across workers per-DID use differs by at most N
(design invariant 6).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import structlog

from agi_server.errors import ListenError

log = structlog.get_logger("didrouter.workers")

WORKER_ENV = "DIDROUTER_WORKER"
LISTEN_FD_ENV = "DIDROUTER_LISTEN_FD"
RESTART_BACKOFF_MAX = 30.0
BACKLOG = 1024


def parse_worker(value: str | None) -> tuple[int, int]:
    """``"i/N"`` from the environment, or (0, 1) for a single process."""
    if not value:
        return 0, 1
    index, _, count = value.partition("/")
    return int(index), int(count)


def inherited_socket() -> socket.socket | None:
    """The listening socket a supervisor passed down, if any."""
    fd = os.environ.get(LISTEN_FD_ENV)
    return socket.socket(fileno=int(fd)) if fd else None


def listen(host: str, port: int) -> socket.socket:
    try:
        sock = socket.create_server((host, port), backlog=BACKLOG)
    except OSError as exc:
        raise ListenError(f"cannot listen for FastAGI on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def supervise(argv: list[str], count: int, host: str, port: int, pidfile: str | None = None) -> int:
    """Run ``count`` workers of ``didrouter <argv>`` until told to stop; returns the exit code.

    The pidfile, if any, holds this supervisor's pid: SIGHUP to it reloads every worker.
    """
    sock = listen(host, port)
    children: dict[int, subprocess.Popen] = {}
    stopping = False
    backoff = [1.0] * count

    def spawn(index: int) -> None:
        env = {**os.environ, WORKER_ENV: f"{index}/{count}", LISTEN_FD_ENV: str(sock.fileno())}
        children[index] = subprocess.Popen([sys.executable, "-m", "agi_server", *argv], env=env,
                                           pass_fds=(sock.fileno(),))
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
    log.info("supervisor_listening", host=host, port=sock.getsockname()[1], workers=count)
    while not stopping:
        time.sleep(0.5)
        for index, child in list(children.items()):
            if child.poll() is not None and not stopping:
                log.error("worker_died", worker=index, code=child.returncode, restart_in=backoff[index])
                time.sleep(backoff[index])
                backoff[index] = min(backoff[index] * 2, RESTART_BACKOFF_MAX)
                spawn(index)
    codes = [child.wait(timeout=15) for child in children.values()]
    sock.close()
    if pidfile:
        Path(pidfile).unlink(missing_ok=True)
    return max(codes, default=0)
