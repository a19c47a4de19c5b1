"""Call outcomes from AMI events, for calls didrouter chose a DID for.

Asterisk tells the outcome of a ``Dial()`` in three events (see ami-03/04/05/10):

* ``DialEnd`` on the dialling channel (``Uniqueid`` = the channel that ran the
  select AGI, ``DialStatus``, ``DestUniqueid`` of the outbound PJSIP channel);
* ``Hangup`` of that outbound channel: its ``Cause`` is the Q.850 HANGUPCAUSE;
* ``Cdr`` with ``LastApplication: Dial`` for the dialling channel: ``Duration`` and
  ``BillableSeconds``. A call gets several Cdr events (ami-03 has two for one
  uniqueid: the Dial leg and the ``h``-extension leg); only the Dial one counts.
  When no outbound channel was created at all (CHANUNAVAIL on an unreachable
  trunk, ami-10) there is no DialEnd: the Cdr's ``Disposition`` is all there is.

:class:`CallOutcomeTracker` is pure (dict-like messages in, callbacks out) and
bounded: it remembers at most ``capacity`` calls in flight.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Cdr Disposition -> the DIALSTATUS it stands for ("FAILED" is CHANUNAVAIL or
# CONGESTION: it stays FAILED and the cause, if any, classifies it).
DISPOSITIONS = {"ANSWERED": "ANSWER", "NO ANSWER": "NOANSWER", "BUSY": "BUSY",
                "CONGESTION": "CONGESTION", "FAILED": "FAILED"}


@dataclass(frozen=True)
class AmiOutcome:
    uniqueid: str
    dialstatus: str
    hangupcause: int | None
    answered_seconds: int | None = None
    dialed_seconds: int | None = None
    dest_channel: str = ""


class CallOutcomeTracker:
    def __init__(self, emit: Callable[[AmiOutcome], None], capacity: int = 10_000) -> None:
        self._emit = emit
        self._capacity = capacity
        self._by_dest: OrderedDict[str, AmiOutcome] = OrderedDict()   # DestUniqueid -> outcome so far
        self._by_call: OrderedDict[str, AmiOutcome] = OrderedDict()   # Uniqueid -> last outcome

    def dial_end(self, msg: Mapping[str, str]) -> None:
        status, uniqueid = msg.get("DialStatus", ""), msg.get("Uniqueid", "")
        if not status or not uniqueid:
            return
        outcome = AmiOutcome(uniqueid, status, None, dest_channel=msg.get("DestChannel", ""))
        dest = msg.get("DestUniqueid", "")
        if dest:
            _put(self._by_dest, dest, outcome, self._capacity)   # the cause comes with its Hangup
        self._remember_and_emit(outcome)

    def hangup(self, msg: Mapping[str, str]) -> None:
        known = self._by_dest.pop(msg.get("Uniqueid", ""), None)
        if known is not None:
            self._remember_and_emit(_replace(known, hangupcause=_int(msg.get("Cause"))))

    def cdr(self, msg: Mapping[str, str]) -> None:
        if msg.get("LastApplication") != "Dial" or not msg.get("UniqueID"):
            return
        uniqueid = msg["UniqueID"]
        known = self._by_call.pop(uniqueid, None)
        duration, billable = _int(msg.get("Duration")), _int(msg.get("BillableSeconds"))
        status = known.dialstatus if known else DISPOSITIONS.get(msg.get("Disposition", ""), "")
        if not status:
            return
        self._emit(AmiOutcome(uniqueid, status, known.hangupcause if known else None,
                              answered_seconds=billable,
                              dialed_seconds=duration,
                              dest_channel=known.dest_channel if known else msg.get("DestinationChannel", "")))

    def _remember_and_emit(self, outcome: AmiOutcome) -> None:
        _put(self._by_call, outcome.uniqueid, outcome, self._capacity)
        self._emit(outcome)


def _put(cache: OrderedDict, key: str, value: AmiOutcome, capacity: int) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > capacity:
        cache.popitem(last=False)


def _replace(outcome: AmiOutcome, **changes) -> AmiOutcome:
    from dataclasses import replace

    return replace(outcome, **changes)


def _int(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.strip().isdigit() else None
