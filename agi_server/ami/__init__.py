"""Asterisk Manager Interface: the trunk-health watcher over panoramisk."""

from .mapping import Observation, TrunkMap
from .watcher import AmiTimings, AmiWatcher, Backoff

__all__ = ["AmiTimings", "AmiWatcher", "Backoff", "Observation", "TrunkMap"]
