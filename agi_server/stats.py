"""Small-sample statistics for comparing answer rates: pure functions, stdlib only.

* :func:`wilson_interval`: Wilson score confidence interval for a proportion.
* :func:`fisher_exact`: two-sided Fisher exact test on a 2x2 table (exact
  hypergeometric sums, computed in log space so large tables do not overflow).
* :func:`compare`: the A/B rule used by ``didrouter report --ab``; it says plainly
  when a sample is too small to call.

The "too small to call" rule (see :func:`compare`):

1. fewer than ``min_attempts`` (default :data:`MIN_ATTEMPTS` = 30) decided attempts
   on either side: never called, whatever the p-value. Attempts of one DID come in
   bursts (one hour, one destination list) and are not independent trials; a floor
   keeps a verdict from resting on one burst.
2. otherwise Fisher's exact test; p < alpha is called "better"/"worse" (Fisher's
   p-value is exact at any size, so a significant result stands).
3. a non-significant result on a thin table (some expected cell count below
   ``min_expected`` = 5) is "too small", not "no difference": the test had almost
   no power there. The attempts needed per side are then
   ``ceil(min_expected / min(pooled_rate, 1 - pooled_rate))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

MIN_ATTEMPTS = 30
MIN_EXPECTED = 5.0
ALPHA = 0.05

BETTER, WORSE, SAME, TOO_SMALL = "better", "worse", "same", "too_small"

# Tables whose log-probability is within this (relative) margin of the observed
# table's count as "as extreme" (guards against float noise on ties; R uses 1e-7).
_TIE_MARGIN = 1e-7


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``successes`` out of ``trials``.

    ``trials == 0`` gives ``(0.0, 1.0)`` (no information). Raises ValueError when
    ``successes`` is outside ``0..trials`` or ``confidence`` outside ``(0, 1)``.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / (1 + z2n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)     # exact at the ends
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p-value for the table ``[[a, b], [c, d]]``.

    The p-value is the total hypergeometric probability (margins fixed) of every
    table no more probable than the observed one. Returns 1.0 when a margin is 0.
    Raises ValueError on negative counts.
    """
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be >= 0, got {(a, b, c, d)}")
    row1, col1, n = a + b, a + c, a + b + c + d
    lo, hi = max(0, col1 - (n - row1)), min(row1, col1)
    if lo == hi:
        return 1.0
    log_total = _log_comb(n, col1)

    def log_p(k: int) -> float:
        return _log_comb(row1, k) + _log_comb(n - row1, col1 - k) - log_total

    observed = log_p(a)
    limit = observed + _TIE_MARGIN * max(1.0, abs(observed))
    p = math.fsum(math.exp(lp) for lp in map(log_p, range(lo, hi + 1)) if lp <= limit)
    return min(1.0, p)


@dataclass(frozen=True)
class Comparison:
    """Outcome of :func:`compare`.

    ``call`` is BETTER/WORSE (side A against side B), SAME (no significant
    difference) or TOO_SMALL. ``needed`` is the attempts per side needed before a
    call can be made (TOO_SMALL only; None when no number would do, e.g. no call
    answered on either side). ``p_value`` is always computed.
    """

    call: str
    p_value: float
    needed: int | None = None


def needed_attempts(pooled_rate: float, min_attempts: int = MIN_ATTEMPTS,
                    min_expected: float = MIN_EXPECTED) -> int | None:
    """Attempts per side so that every expected cell reaches ``min_expected`` at
    ``pooled_rate`` (and at least ``min_attempts``); None if the rate is 0 or 1."""
    thin = min(pooled_rate, 1.0 - pooled_rate)
    if thin <= 0:
        return None
    return max(min_attempts, math.ceil(min_expected / thin - 1e-9))


def compare(a_success: int, a_trials: int, b_success: int, b_trials: int, *,
            alpha: float = ALPHA, min_attempts: int = MIN_ATTEMPTS,
            min_expected: float = MIN_EXPECTED) -> Comparison:
    """Compare A's success rate against B's with the rule in the module docstring."""
    p_value = fisher_exact(a_success, a_trials - a_success, b_success, b_trials - b_success)
    total = a_trials + b_trials
    pooled = (a_success + b_success) / total if total else 0.0
    if min(a_trials, b_trials) < min_attempts:
        return Comparison(TOO_SMALL, p_value, needed_attempts(pooled, min_attempts, min_expected)
                          or min_attempts)
    if p_value < alpha:
        better = a_success / a_trials > b_success / b_trials
        return Comparison(BETTER if better else WORSE, p_value)
    min_cell = min(a_trials, b_trials) * min(pooled, 1.0 - pooled)
    if min_cell < min_expected:
        return Comparison(TOO_SMALL, p_value, needed_attempts(pooled, min_attempts, min_expected))
    return Comparison(SAME, p_value)
