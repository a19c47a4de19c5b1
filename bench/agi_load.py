#!/usr/bin/env python3
"""Load a running didrouter like a busy Asterisk would, and print what it sustained.

Plays Asterisk's side of FastAGI (the env block recorded in
tests/fixtures/asterisk/agi-01-normal-select.rx.txt, with a fresh uniqueid per
session) at a chosen concurrency, answers every command ``200 result=1`` and
measures each session from connect to the server's close.

    python bench/agi_load.py --port 4573 --sessions 5000 --concurrency 50

Prints sessions per second, p50/p90/p99/max latency and the status counts. Only
talks to the address you give (default 127.0.0.1); it stops after --sessions or
--duration, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from pathlib import Path

ENV_FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "asterisk" / "agi-01-normal-select.rx.txt"


def env_template(campaign: str) -> bytes:
    data = ENV_FIXTURE.read_bytes()
    env = data[: data.index(b"\n\n") + 2].decode()
    return env.replace("campaign=spring", f"campaign={campaign}").encode()


async def one_session(host: str, port: int, env: bytes, timeout: float) -> tuple[float, str]:
    started = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    status = "?"
    try:
        writer.write(env)
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            if line.startswith(b"SET VARIABLE DIDR_STATUS"):
                status = line.split(b'"')[1].decode()
            writer.write(b"200 result=1\n")
    finally:
        writer.close()
    return time.perf_counter() - started, status


async def run(args: argparse.Namespace) -> None:
    template = env_template(args.campaign).decode()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    counter = iter(range(args.sessions))
    run = int(time.time())      # one uniqueid per session: "<run>.<n>", n unique across workers
    deadline = time.perf_counter() + args.duration

    async def worker(worker_id: int) -> None:
        nonlocal errors
        for n in counter:
            if time.perf_counter() > deadline:
                return
            env = template.replace("1796313750.4", f"{run}.{n}").encode()
            try:
                latency, status = await one_session(args.host, args.port, env, args.timeout)
            except (OSError, TimeoutError):
                errors += 1
                continue
            latencies.append(latency)
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    report(latencies, statuses, errors, elapsed, args.concurrency)


def report(latencies: list[float], statuses: Counter, errors: int, elapsed: float, concurrency: int) -> None:
    if not latencies:
        print(f"no session completed ({errors} errors): is didrouter listening?")
        return
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    ms = lambda s: f"{s * 1000:.2f} ms"  # noqa: E731
    print(f"sessions: {len(latencies)} in {elapsed:.2f} s at concurrency {concurrency}, errors: {errors}")
    print(f"throughput: {len(latencies) / elapsed:.0f} sessions/s")
    print(f"latency: p50 {ms(q[49])}  p90 {ms(q[89])}  p99 {ms(q[98])}  max {ms(max(latencies))}")
    print("statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(statuses.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4573)
    parser.add_argument("--campaign", default="spring")
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-read timeout, seconds")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
