"""Where the running server reads its config: a YAML file or the database.

Both give ``(Config, warnings)`` or raise :class:`ConfigError` with every problem;
the app swaps snapshots on a good load and keeps the last good one otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from agi_server.config.load import load_file
from agi_server.config.model import Config
from agi_server.config.validate import Problem

FILE, DATABASE = "file", "database"


class ConfigSource(Protocol):
    description: str

    async def load(self) -> tuple[Config, list[Problem]]: ...


class FileSource:
    """A YAML file, re-read on SIGHUP."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"file {path}"

    async def load(self) -> tuple[Config, list[Problem]]:
        return await asyncio.to_thread(load_file, self.path)


class DatabaseSource:
    """The config tables in PostgreSQL, re-read when they NOTIFY a change."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.description = "database"

    async def load(self) -> tuple[Config, list[Problem]]:
        from agi_server.config.db import load_db

        return await load_db(self.dsn)
