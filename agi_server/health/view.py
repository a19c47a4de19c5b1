"""The router's view of a :class:`HealthBoard`: the board's clock applied, one
admission per trunk per decision.

``HealthBoard.state`` hands out the breaker's half-open probe, so it must be asked
once per decision and trunk; :meth:`BoardView.for_decision` returns a memoised
lookup for one decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agi_server.health.board import HealthBoard


class BoardView:
    def __init__(self, board: HealthBoard, clock: Callable[[], float] = time.monotonic) -> None:
        self.board = board
        self.clock = clock

    def for_decision(self, server: str) -> Callable[[str], str]:
        seen: dict[str, str] = {}

        def health(trunk: str) -> str:
            if trunk not in seen:
                seen[trunk] = self.board.state(server, trunk, self.clock())
            return seen[trunk]

        return health

    def report_outcome(self, server: str, trunk: str, dialstatus: str, hangupcause: int | None) -> None:
        self.board.report_outcome(server, trunk, dialstatus, hangupcause, self.clock())

    def current(self, server: str, trunk: str) -> str:
        """Look without taking a breaker probe (for status displays)."""
        return self.board.peek(server, trunk, self.clock())
