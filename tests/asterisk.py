"""Play Asterisk's side of FastAGI over a real TCP socket, from the recorded transcripts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "asterisk"
AGI_TRANSCRIPTS = sorted(p.name[: -len(".rx.txt")] for p in FIXTURES.glob("agi-*.rx.txt"))


def env_block(name: str) -> bytes:
    """The exact env bytes Asterisk sent in transcript ``name``, up to and including the blank line."""
    data = (FIXTURES / f"{name}.rx.txt").read_bytes()
    end = data.index(b"\n\n") + 2
    return data[:end]


def with_env(env: bytes, **changes: str) -> bytes:
    """The env block with some ``agi_*`` values replaced (keys without the prefix)."""
    lines = env.decode().split("\n")
    for key, value in changes.items():
        lines = [f"agi_{key}: {value}" if line.startswith(f"agi_{key}:") else line for line in lines]
    return "\n".join(lines).encode()


@dataclass
class Playback:
    commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False


async def play(port: int, env: bytes, *, byte_by_byte: bool = False, hangup_after_env: bool = False,
               reply: bytes = b"200 result=1\n", timeout: float = 5.0) -> Playback:
    """Send ``env``, answer each command line like Asterisk, return what the server sent.

    ``hangup_after_env`` writes an unsolicited ``HANGUP`` line as agi-07 shows.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    result = Playback()
    try:
        await _send(writer, env, byte_by_byte)
        if hangup_after_env:
            await _send(writer, b"HANGUP\n", byte_by_byte)
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                result.closed_by_server = True
                break
            result.commands.append(line.decode().rstrip("\n"))
            await _send(writer, reply, byte_by_byte)
    finally:
        writer.close()
    return result


async def _send(writer: asyncio.StreamWriter, data: bytes, byte_by_byte: bool) -> None:
    if not byte_by_byte:
        writer.write(data)
        await writer.drain()
        return
    for i in range(len(data)):
        writer.write(data[i : i + 1])
        await writer.drain()
        await asyncio.sleep(0)
