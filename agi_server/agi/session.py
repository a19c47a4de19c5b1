"""One FastAGI connection over asyncio streams, every read bounded and deadlined.

Asterisk itself never times out a FastAGI session, so a stalled or vanished client
(or a stalled server) would hold a channel forever; here each phase has a deadline
and each read a size bound (the parser enforces line and block limits).
"""

from __future__ import annotations

import asyncio

from agi_server.agi.protocol import AgiParser, Closed, Environment, Hangup, Reply
from agi_server.errors import PeerGone, ProtocolError

READ_CHUNK = 4096


class AgiSession:
    """The server's side of one FastAGI session.

    Contract: :meth:`read_environment` once, then any number of :meth:`command`
    calls, then :meth:`close`. ``hung_up`` turns True once Asterisk has sent an
    unsolicited ``HANGUP``; variable commands still work after that.
    Raises :class:`PeerGone` (EOF or deadline) or :class:`ProtocolError` (garbage).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = AgiParser()
        self._pending: list[object] = []
        self.hung_up = False
        self.bytes_in = 0

    async def read_environment(self, timeout: float) -> Environment:
        event = await self._next_event(timeout, "environment")
        if not isinstance(event, Environment):
            raise ProtocolError(f"expected the environment block, got {type(event).__name__}")
        return event

    async def command(self, line: bytes, timeout: float) -> Reply:
        """Send one command line and wait for its final reply (skipping HANGUP and 100)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._writer.write(line)
        try:
            await asyncio.wait_for(self._writer.drain(), timeout)
        except TimeoutError:
            raise PeerGone(f"Asterisk stopped reading for {timeout} s") from None
        except ConnectionError as exc:
            raise PeerGone(f"connection lost sending a command: {exc}") from None
        while True:
            event = await self._next_event(max(0.0, deadline - loop.time()), "reply")
            if isinstance(event, Reply):
                return event

    async def _next_event(self, timeout: float | None, waiting_for: str) -> object:
        try:
            async with asyncio.timeout(timeout):
                while not self._pending:
                    data = await self._reader.read(READ_CHUNK)
                    self.bytes_in += len(data)
                    self._parser.feed(data)
                    self._pending.extend(self._parser.events())
        except TimeoutError:
            raise PeerGone(f"no {waiting_for} from Asterisk within {timeout:.3g} s") from None
        except ConnectionError as exc:
            raise PeerGone(f"connection lost waiting for {waiting_for}: {exc}") from None
        event = self._pending.pop(0)
        if isinstance(event, Hangup):
            self.hung_up = True
        elif isinstance(event, Closed):
            raise PeerGone(f"Asterisk closed the connection waiting for {waiting_for}")
        return event

    async def close(self) -> None:
        """Close our side; Asterisk answers with HANGUP and EOF, which we do not wait for."""
        try:
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (ConnectionError, TimeoutError):
            pass
