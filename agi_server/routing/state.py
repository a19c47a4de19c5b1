"""In-memory state the policy reads: rotation counters and what each call has tried.

Both are touched only from the event loop thread and never across an ``await``,
so a read-decide-advance sequence is atomic with respect to other calls.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


class Rotation:
    """Round-robin counters keyed by (campaign, pool name, pool contents).

    Keying by contents means a reload that leaves a campaign's pool unchanged keeps
    its position, and one that changes the pool starts it afresh.
    """

    def __init__(self, start: int = 0) -> None:
        # Worker i of N starts every pool at slot i: workers sharing a campaign then
        # spread their first calls instead of all starting on the primary.
        self._start = start
        self._counters: dict[tuple, int] = {}

    def get(self, campaign: str, pool: str, members: tuple[str, ...]) -> int:
        return self._counters.get((campaign, pool, members), self._start)

    def set(self, campaign: str, pool: str, members: tuple[str, ...], value: int) -> None:
        self._counters[(campaign, pool, members)] = value


@dataclass(slots=True)
class CallMemory:
    """What one call (Asterisk server + uniqueid) has been through so far."""

    selects: int = 0
    # (attempt, DID, trunk, role) of each attempt that got a DID, in order. A list
    # of tuples rather than a dict: ~300 bytes less per remembered call.
    attempts: list[tuple[int, str, str, str]] = field(default_factory=list)
    carrier_failed: bool = False                             # last outcome's fault

    @property
    def tried(self) -> list[str]:
        return [did for _, did, _, _ in self.attempts]

    def trunk_of(self, attempt: int) -> str | None:
        return next((trunk for n, _, trunk, _ in self.attempts if n == attempt), None)

    def chosen(self, attempt: int) -> tuple[str, str, str] | None:
        """(DID, trunk, role) already chosen for ``attempt`` of this call, if any."""
        return next(((did, trunk, role) for n, did, trunk, role in self.attempts if n == attempt), None)


class CallBook:
    """Bounded LRU of :class:`CallMemory`: old calls fall out, memory stays flat.

    A dialler's retries of one call come within minutes; ``capacity`` calls is
    far more than the calls in flight on a farm of Asterisk boxes.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._calls: OrderedDict[tuple[str, str], CallMemory] = OrderedDict()
        self._capacity = capacity

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, server: str, uniqueid: str) -> CallMemory:
        """The call's memory (a fresh one if unseen), marked most recently used."""
        key = (server, uniqueid)
        memory = self._calls.pop(key, None) or CallMemory()
        self._calls[key] = memory
        while len(self._calls) > self._capacity:
            self._calls.popitem(last=False)
        return memory

    def peek(self, server: str, uniqueid: str) -> CallMemory | None:
        return self._calls.get((server, uniqueid))
