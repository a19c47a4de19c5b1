"""Whose fault a failed attempt was, from DIALSTATUS and the Q.850 HANGUPCAUSE.

The classes drive failover (carrier failures move a retry to the fallback trunk
and feed the trunk breaker) and the CDR figures (NER counts what the network
completed). Sources: ITU-T Q.850 cause meanings, Asterisk 22's SIP-to-cause map
(``ast_sip_hangup_sip2cause``), FreePBX's dial-out macro; see docs/telecom notes.
"""

from __future__ import annotations

ANSWERED, CALLEE, CARRIER, REPUTATION, ABORTED, UNKNOWN = (
    "answered", "callee", "carrier", "reputation", "aborted", "unknown")

# The callee (or the number) ended it: no failover, counts as network-completed.
CALLEE_CAUSES = frozenset({1, 17, 18, 19, 20, 22, 23, 28})
# The network failed: failover and breaker.
CARRIER_CAUSES = frozenset({3, 27, 34, 38, 41, 42, 44, 47, 102})
# 21 call rejected (SIP 603/401/403/407) and 127 interworking (e.g. SIP 608
# Rejected by call analytics): possibly the DID is labelled as spam.
REPUTATION_CAUSES = frozenset({21, 127})

DIALSTATUSES = frozenset({"ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL",
                          "DONTCALL", "TORTURE", "INVALIDARGS"})


def classify(dialstatus: str, cause: int | None) -> str:
    """One of ANSWERED, CALLEE, CARRIER, REPUTATION, ABORTED, UNKNOWN."""
    status = dialstatus.upper()
    if status == "ANSWER":
        return ANSWERED
    if status in ("CANCEL", "DONTCALL", "TORTURE", "INVALIDARGS"):
        return ABORTED          # ended on our side, nobody's network fault
    if status == "BUSY":
        return CALLEE
    if status == "NOANSWER":
        # cause 0: nothing at all came back (dead provider, see ami-10) -> carrier;
        # no cause reported at all: we cannot tell.
        return {0: CARRIER, None: UNKNOWN}.get(cause, CALLEE)
    by_cause = _by_cause(cause)
    if status in ("CHANUNAVAIL", "CONGESTION"):
        return by_cause if by_cause != UNKNOWN else CARRIER
    return by_cause   # other statuses (e.g. a Cdr disposition FAILED): the cause decides


def _by_cause(cause: int | None) -> str:
    if cause in CALLEE_CAUSES:
        return CALLEE
    if cause in REPUTATION_CAUSES:
        return REPUTATION
    if cause in CARRIER_CAUSES:
        return CARRIER
    return UNKNOWN


def is_carrier_failure(dialstatus: str, cause: int | None) -> bool:
    return classify(dialstatus, cause) == CARRIER
