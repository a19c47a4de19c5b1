"""agi_server.stats against known values: Wilson intervals, Fisher's exact test, the A/B rule."""

from fractions import Fraction
from math import comb

import pytest

from agi_server import stats


def exact_fisher(a, b, c, d):
    """Independent brute force in exact rational arithmetic (no logs, no tolerance)."""
    r1, c1, n = a + b, a + c, a + b + c + d
    def prob(k):
        return Fraction(comb(r1, k) * comb(n - r1, c1 - k), comb(n, c1))
    observed = prob(a)
    return float(sum(prob(k) for k in range(max(0, c1 - (n - r1)), min(r1, c1) + 1)
                     if prob(k) <= observed))


# -- Wilson ---------------------------------------------------------------------------

def test_wilson_zero_trials_is_the_whole_unit_interval():
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_5_of_10():
    # z = 1.959964; z²/n = 0.384146; centre = (0.5 + 0.192073) / 1.384146 = 0.5
    # half = z·sqrt(0.025 + 0.009604) / 1.384146 = 1.959964·0.186021 / 1.384146 = 0.263407
    low, high = stats.wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)


def test_wilson_50_of_100():
    # half = 1.959964·sqrt(0.0025 + 0.00009604) / 1.0384146 = 0.096168
    low, high = stats.wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4)
    assert high == pytest.approx(0.5962, abs=1e-4)


def test_wilson_extremes_stay_inside_0_1():
    # 0/10: centre = 0.192073/1.384146 = 0.138767 = half, so low = 0, high = 0.277533
    assert stats.wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    low, high = stats.wilson_interval(10, 10)
    assert (low, high) == (pytest.approx(0.7225, abs=1e-4), 1.0)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)
    with pytest.raises(ValueError):
        stats.wilson_interval(1, 10, confidence=1.0)


# -- Fisher ---------------------------------------------------------------------------

def test_fisher_lady_tasting_tea():
    # margins 4/4/4/4, N = 8: P(k) = C(4,k)·C(4,4-k)/70 = 1, 16, 36, 16, 1 (/70).
    # observed k = 3 (16/70); tables no more probable: k = 0, 1, 3, 4 -> 34/70 = 0.485714
    assert stats.fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70, rel=1e-9)


def test_fisher_wikipedia_dieting_example():
    # Wikipedia "Fisher's exact test": [[1, 9], [11, 3]], two-sided p = 0.002759
    assert stats.fisher_exact(1, 9, 11, 3) == pytest.approx(0.002759, abs=1e-6)


@pytest.mark.parametrize("table", [(8, 2, 1, 5), (12, 48, 30, 30), (27, 33, 30, 30),
                                   (0, 5, 5, 0), (2, 7, 8, 2), (40, 960, 60, 940)])
def test_fisher_matches_exact_rational_sums(table):
    assert stats.fisher_exact(*table) == pytest.approx(exact_fisher(*table), rel=1e-9)


def test_fisher_degenerate_margins_give_one():
    assert stats.fisher_exact(0, 10, 0, 10) == 1.0
    assert stats.fisher_exact(0, 0, 3, 4) == 1.0


def test_fisher_large_table_does_not_overflow():
    p = stats.fisher_exact(5000, 5000, 5200, 4800)
    assert 0.0 < p < 0.01


# -- the A/B rule ---------------------------------------------------------------------

def test_compare_below_min_attempts_is_too_small_even_when_significant():
    # 0/10 vs 10/10: Fisher p = 2/C(20,10) = 1.08e-5, but 10 < 30 attempts per arm;
    # pooled rate 0.5 -> need max(30, ceil(5 / 0.5)) = 30
    result = stats.compare(0, 10, 10, 10)
    assert (result.call, result.needed) == (stats.TOO_SMALL, 30)
    assert result.p_value == pytest.approx(2 / comb(20, 10))


def test_compare_thin_table_not_significant_is_too_small():
    # 1/40 vs 3/40: p = 0.615; pooled 4/80 = 0.05, min expected cell 40·0.05 = 2 < 5
    # -> need ceil(5 / 0.05) = 100 attempts per DID
    result = stats.compare(1, 40, 3, 40)
    assert (result.call, result.needed) == (stats.TOO_SMALL, 100)


def test_compare_significant_difference_is_called_with_direction():
    # 12/60 vs 30/60: p = 0.001018 (exact sums above)
    assert stats.compare(12, 60, 30, 60).call == stats.WORSE
    assert stats.compare(30, 60, 12, 60).call == stats.BETTER
    assert stats.compare(30, 60, 12, 60).p_value == pytest.approx(0.0010182, rel=1e-4)


def test_compare_no_difference_on_enough_data():
    # 27/60 vs 30/60: p = 0.7148, pooled 57/120, min cell 60·0.475 = 28.5 >= 5
    assert stats.compare(27, 60, 30, 60).call == stats.SAME


def test_compare_alpha_is_honoured():
    # p = 0.001018: significant at 0.05, not at 0.001
    assert stats.compare(12, 60, 30, 60, alpha=0.001).call == stats.SAME


def test_needed_attempts_without_any_answer_is_unknown():
    assert stats.needed_attempts(0.0) is None
    assert stats.compare(0, 40, 0, 40) == stats.Comparison(stats.TOO_SMALL, 1.0, None)
