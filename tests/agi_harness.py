"""A running FastAGI server on a free port, with an in-memory CDR sink."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from agi_server.agi.server import AgiServer
from agi_server.config.load import load_file
from agi_server.config.model import Config, Timeouts
from agi_server.routes import Routes
from agi_server.routing.router import Router

EXAMPLE_CONFIG = Path(__file__).parent.parent / "config" / "didrouter.example.yaml"
FAST = Timeouts(env_read=0.5, reply=0.5, session=2.0)


class ListSink:
    def __init__(self) -> None:
        self.records = []

    def record(self, rec) -> None:
        self.records.append(rec)


def example_config(**settings) -> Config:
    config, _ = load_file(EXAMPLE_CONFIG)
    return replace(config, settings=replace(config.settings, timeouts=FAST, **settings))


@contextlib.asynccontextmanager
async def running_server(config: Config | None = None, health=None):
    """Yields (port, router, sink); stops the server afterwards."""
    sink = ListSink()
    router = Router(config or example_config(), sink, health)
    routes = Routes(router)
    server = AgiServer(routes.handle, lambda: router.config.settings.timeouts)
    port = await server.start("127.0.0.1", 0)
    try:
        yield port, router, sink
    finally:
        await server.stop()
