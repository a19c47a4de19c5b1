"""The asyncio FastAGI server: accept, read the env, answer, close.

Per connection: read the environment block within ``timeouts.env_read``, ask the
routes for the variables to set (synchronous, in-memory), send each ``SET
VARIABLE`` and wait for its reply within ``timeouts.reply``, close. The whole
session is bounded by ``timeouts.session``. Whatever goes wrong with one
connection is logged and costs only that connection (design invariant 3).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import structlog

from agi_server.agi.protocol import Environment, set_variable
from agi_server.agi.session import AgiSession
from agi_server.config.model import Timeouts
from agi_server.errors import ListenError, PeerGone, ProtocolError
from agi_server.routing import policy

log = structlog.get_logger("didrouter.agi")

Handler = Callable[[Environment, str], list[tuple[str, str]]]
MAX_SESSIONS = 2000   # concurrent connections; more are closed at once with a log line
# Pending connections the kernel queues before accept: asyncio's default of 100
# makes a burst of new calls wait a second for a SYN retransmit.
BACKLOG = 1024


class AgiServer:
    """Owns the listening socket and every connection task it started."""

    def __init__(self, handler: Handler, timeouts: Callable[[], Timeouts]) -> None:
        self._handler = handler
        self._timeouts = timeouts          # read per session, so a reload applies to new calls
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task] = set()
        self.served = 0

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> int:
        """Listen (on ``sock`` if given: a worker's inherited socket); returns the bound port."""
        try:
            if sock is not None:
                self._server = await asyncio.start_server(self._on_connect, sock=sock, backlog=BACKLOG)
            else:
                self._server = await asyncio.start_server(self._on_connect, host, port, reuse_address=True,
                                                          backlog=BACKLOG)
        except OSError as exc:
            raise ListenError(f"cannot listen for FastAGI on {host}:{port}: {exc.strerror or exc}") from exc
        bound = self._server.sockets[0].getsockname()[1]
        log.info("agi_listening", host=host, port=bound)
        return bound

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let sessions in flight finish for ``grace`` s, cancel the rest."""
        if self._server is not None:
            self._server.close()
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            if len(self._sessions) > MAX_SESSIONS:
                log.error("agi_overloaded", sessions=len(self._sessions), reason="too many concurrent sessions, connection refused")
                writer.close()
                return
            await self._serve(reader, writer)
        finally:
            self._sessions.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_address(writer)
        session = AgiSession(reader, writer)
        timeouts = self._timeouts()
        uniqueid = ""
        try:
            async with asyncio.timeout(timeouts.session):
                env = await session.read_environment(timeouts.env_read)
                uniqueid = env.get("agi_uniqueid")
                await self._answer(session, env, peer, timeouts)
            self.served += 1
        except ProtocolError as exc:
            log.warning("agi_protocol_error", peer=peer, uniqueid=uniqueid, reason=str(exc))
        except PeerGone as exc:
            if session.bytes_in == 0:   # connect-and-close: a health check or port probe
                log.debug("agi_probe", peer=peer)
            else:
                log.warning("agi_peer_gone", peer=peer, uniqueid=uniqueid, hung_up=session.hung_up, reason=str(exc))
        except TimeoutError:
            log.warning("agi_session_timeout", peer=peer, uniqueid=uniqueid, reason=f"session over {timeouts.session} s")
        finally:
            await session.close()

    async def _answer(self, session: AgiSession, env: Environment, peer: str, timeouts: Timeouts) -> None:
        try:
            variables = self._handler(env, peer)
        except Exception:  # a bug in a handler must not cost more than this call
            log.exception("route_failed", route=env.request.route, uniqueid=env.get("agi_uniqueid"), peer=peer)
            variables = [("DIDR_STATUS", policy.ERROR)]
        for name, line in _encode(variables):
            reply = await session.command(line, timeouts.reply)
            if not reply.ok:
                log.warning("agi_command_refused", name=name, code=reply.code, text=reply.text,
                            uniqueid=env.get("agi_uniqueid"))


def _encode(variables: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """All command lines, or only ``DIDR_STATUS=ERROR`` if any value cannot be sent."""
    try:
        return [(name, set_variable(name, value)) for name, value in variables]
    except ProtocolError as exc:
        log.error("unsendable_variable", reason=str(exc))
        return [("DIDR_STATUS", set_variable("DIDR_STATUS", policy.ERROR))]


def _peer_address(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    return str(peername[0]) if peername else "unknown"
