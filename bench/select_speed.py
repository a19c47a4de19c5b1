#!/usr/bin/env python3
"""Time one selection decision in-process (no sockets) and the memory per call remembered.

    python bench/select_speed.py --calls 200000

Prints microseconds per decision (first attempts and retries, the CDR journal
append included, to a temporary spool) and the resident memory growth of the call
book, which is bounded by its capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import structlog

from agi_server.cdr.writer import CdrWriter
from agi_server.config.load import load_file
from agi_server.routing.router import Router, SelectRequest

CONFIG = Path(__file__).resolve().parent.parent / "config" / "didrouter.example.yaml"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(calls: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    config, _ = load_file(CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        writer = CdrWriter(f"{tmp}/spool", None, fsync_interval=1.0)
        await writer.start()
        router = Router(config, writer)
        before = rss_mib()
        started = time.perf_counter()
        for i in range(calls):
            router.select(SelectRequest("pbx1", "127.0.0.1", f"1796313750.{i}", "Local/x", "spring", "15551230001"))
        first = (time.perf_counter() - started) / calls
        started = time.perf_counter()
        for i in range(0, calls, 2):
            router.select(SelectRequest("pbx1", "127.0.0.1", f"1796313750.{i}", "Local/x", "spring", "15551230001"))
        retry = (time.perf_counter() - started) / (calls // 2)
        grown = rss_mib() - before
        await writer.stop()
    print(f"decisions: {calls} first attempts, {calls // 2} retries")
    print(f"per decision: first attempt {first * 1e6:.1f} us, retry {retry * 1e6:.1f} us (journal append included)")
    print(f"memory: +{grown:.1f} MiB max RSS for {len(router.calls)} calls remembered "
          f"(capacity {router.calls._capacity})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().calls))
