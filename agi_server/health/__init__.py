"""Trunk health: the pure :class:`HealthBoard` and its call-outcome breaker."""

from .board import (
    DEFAULT_FAIL_AFTER, DEFAULT_RECOVER_AFTER, DOWN, MODES, QUALIFY, REGISTRATION, UNKNOWN,
    UP, HealthBoard, OnChange,
)
from .breaker import Breaker, classify

__all__ = [
    "DEFAULT_FAIL_AFTER", "DEFAULT_RECOVER_AFTER", "DOWN", "MODES", "QUALIFY",
    "REGISTRATION", "UNKNOWN", "UP", "Breaker", "HealthBoard", "OnChange", "classify",
]
