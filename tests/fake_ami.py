"""A fake Asterisk Manager Interface over a real TCP socket, built from recordings.

Everything it sends is taken from the byte-exact transcripts in
``tests/fixtures/asterisk/ami-*.txt`` (recorded from Asterisk 22.10.1): the banner,
the Login replies (ami-08 success, ami-12 failure), the replies to the seed actions
and Ping (ami-02, ami-10) with their ``ActionID`` rewritten to the client's, and the
event streams, replayed time-compressed.

Knobs for failure tests: ``byte_by_byte`` (every byte its own write, so messages
arrive split across reads), ``stalled`` (action names left unanswered),
:meth:`drop` (close every client, optionally after half a message), :meth:`restart`
(drop everyone; the next login gets a new banner and ``FullyBooted`` with a reset
``Uptime``). ``registration_status`` / ``unavailable`` shape what the seed replies say.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "asterisk"
CRLF = b"\r\n"
_HEADER = re.compile(rb"^### (\S+) \(\+([0-9.]+)\) (recv|send|note)\n", re.M)


@dataclass(frozen=True)
class Recorded:
    """One message of an annotated transcript, its bytes exactly as on the wire."""

    t: float            # seconds since the recording started
    direction: str      # recv (from Asterisk), send (to Asterisk) or note
    data: bytes

    def header(self, name: str) -> str:
        for line in self.data.split(CRLF):
            key, sep, value = line.decode("utf-8", "replace").partition(": ")
            if sep and key.lower() == name.lower():
                return value
        return ""


@functools.lru_cache(maxsize=None)
def load(name: str) -> tuple[Recorded, ...]:
    """Parse ``<name>*.txt`` (the annotated transcript) into messages, in order."""
    (path,) = [p for p in FIXTURES.glob(name + "*.txt") if not p.name.endswith(".raw.txt")]
    blob = path.read_bytes()
    heads = list(_HEADER.finditer(blob))
    out = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(blob)
        out.append(Recorded(float(head.group(2)), head.group(3).decode(), blob[head.end():end]))
    return tuple(out)


def events(name: str, *, skip: Iterable[str] = ("FullyBooted",)) -> list[Recorded]:
    """The unsolicited events Asterisk sent in a transcript (no replies to actions)."""
    return [m for m in load(name) if m.direction == "recv" and m.header("Event")
            and not m.header("ActionID") and m.header("Event") not in skip]


def reply_to(name: str, action_id: str) -> list[Recorded]:
    """Every message Asterisk sent in reply to the recorded action ``action_id``."""
    return [m for m in load(name) if m.direction == "recv" and m.header("ActionID") == action_id]


def with_header(data: bytes, name: str, value: str) -> bytes:
    """``data`` with header ``name`` set to ``value`` (first occurrence)."""
    pattern = re.compile(rb"^(" + name.encode() + rb": )[^\r\n]*", re.M | re.I)
    return pattern.sub(lambda m: m.group(1) + value.encode(), data, count=1)


def parse_action(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            headers[key.lower()] = value
    return headers


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` every 5 ms until true; fail the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.005)


class FakeAmi:
    """A fake AMI server on 127.0.0.1, port chosen by the OS (see module docstring)."""

    BANNER = load("ami-08")[0].data                       # b"Asterisk Call Manager/11.0.0\r\n"

    def __init__(self, *, username: str = "dialer", secret: str = "test-secret") -> None:
        self.username, self.secret = username, secret
        self.byte_by_byte = False
        self.stalled: set[str] = set()
        self.registration_status = "Registered"
        self.unavailable: set[str] = set()                # endpoints whose DeviceState is Unavailable
        self.uptime = 227
        self.auth_delay = 0.01                            # Asterisk waited ~1 s (ami-12)
        self.logins = 0
        self.failed_logins = 0
        self.actions: list[dict[str, str]] = []
        self._clients: dict[asyncio.StreamWriter, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def drop(self, partial: bytes = b"") -> None:
        """Close every client connection, after writing ``partial`` (half a message)."""
        for writer, lock in list(self._clients.items()):
            async with lock:
                if partial:
                    writer.write(partial)
                    await writer.drain()
                writer.close()
            self._clients.pop(writer, None)

    async def restart(self) -> None:
        """An Asterisk restart as a client sees it: the socket closes, Uptime resets."""
        self.uptime = 0
        await self.drop()

    # ---------------------------------------------------------------- sending
    async def send(self, data: bytes) -> None:
        """Send one message (events) to every logged-in client."""
        for writer in list(self._clients):
            await self._write(writer, data)

    async def replay(self, messages: Iterable[Recorded], scale: float = 0.0) -> None:
        """Send recorded messages in order, sleeping ``scale`` x the recorded gaps."""
        previous = None
        for message in messages:
            if previous is not None and scale:
                await asyncio.sleep((message.t - previous) * scale)
            previous = message.t
            await self.send(message.data)

    async def _write(self, writer: asyncio.StreamWriter, *data: bytes | Callable[[], list[bytes]]) -> None:
        """Write messages under the client's lock, so no other message interleaves.

        A callable is evaluated under the lock: a reply reflects the fake's state at
        the moment it is written, as Asterisk's does.
        """
        lock = self._clients.get(writer)
        if lock is None or writer.is_closing():
            return
        async with lock:
            for item in data:
                for message in item() if callable(item) else [item]:
                    await self._write_bytes(writer, message)

    async def _write_bytes(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        chunks = [data[i:i + 1] for i in range(len(data))] if self.byte_by_byte else [data]
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            if self.byte_by_byte:
                await asyncio.sleep(0)        # let the client read this byte on its own

    # --------------------------------------------------------------- protocol
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._clients[writer] = asyncio.Lock()
        try:
            await self._write(writer, self.BANNER)
            while True:
                block = await reader.readuntil(CRLF + CRLF)
                action = parse_action(block)
                self.actions.append(action)
                if not await self._answer(writer, action):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.pop(writer, None)
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> bool:
        """Reply to one action; False when the connection must close."""
        name, action_id = action.get("action", ""), action.get("actionid", "")
        if name in self.stalled:
            return True
        if name.lower() == "login":
            return await self._login(writer, action)
        await self._write(writer, lambda: [with_header(data, "ActionID", action_id)
                                           for data in self._replies(name)])
        return name.lower() != "logoff"

    async def _login(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> bool:
        action_id = action.get("actionid", "")
        if (action.get("username"), action.get("secret")) != (self.username, self.secret):
            self.failed_logins += 1
            await asyncio.sleep(self.auth_delay)
            (refused,) = reply_to("ami-12", "login-1")   # "Authentication failed"
            await self._write(writer, with_header(refused.data, "ActionID", action_id))
            return False                                  # then Asterisk hangs up
        self.logins += 1
        (accepted,) = reply_to("ami-08", "login-1")
        await self._write(writer, with_header(accepted.data, "ActionID", action_id))
        booted = next(m for m in load("ami-08") if m.header("Event") == "FullyBooted")
        await self._write(writer, with_header(booted.data, "Uptime", str(self.uptime)))
        return True

    def _replies(self, name: str) -> list[bytes]:
        key = name.lower()
        if key == "pjsipshowregistrationsoutbound":
            source = reply_to("ami-10", "regs-rejected") if self.registration_status == "Rejected" \
                else reply_to("ami-02", "regs-1")
            return [with_header(m.data, "Status", self.registration_status)
                    if m.header("Event") == "OutboundRegistrationDetail" else m.data
                    for m in source]
        if key == "pjsipshowendpoints":
            return [with_header(m.data, "DeviceState", "Unavailable")
                    if m.header("ObjectName") in self.unavailable else m.data
                    for m in reply_to("ami-02", "endpoints-1")]
        recorded = {"pjsipshowaors": ("ami-02", "aors-1"), "ping": ("ami-02", "ping-1"),
                    "logoff": ("ami-02", "logoff-1"), "corestatus": ("ami-02", "status-1")}
        if key in recorded:
            return [m.data for m in reply_to(*recorded[key])]
        return [b"Response: Error\r\nActionID: \r\nMessage: Invalid/unknown command\r\n\r\n"]
