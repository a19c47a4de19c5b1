"""Typed, frozen configuration: the model, the YAML loader and the validator."""

from agi_server.config.model import (  # noqa: F401
    AmiServer,
    Campaign,
    Config,
    Did,
    Settings,
    Timeouts,
    Trunk,
)
