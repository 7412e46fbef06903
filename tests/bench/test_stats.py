import math
import random
import statistics

import numpy as np
import pytest

from bench.measure.stats import bootstrap_median_ci, median_ci_ranks, percentile, summarize


def test_percentile_matches_numpy_linear_interpolation():
    rng = random.Random(1)
    values = sorted(rng.uniform(1, 100) for _ in range(37))
    for q in (0, 10, 25, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_summarize_hand_values():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0 and s["n"] == 5
    assert s["p10"] == pytest.approx(1.4) and s["p90"] == pytest.approx(4.6)
    assert s["p99"] == pytest.approx(4.96)  # position 0.99 * 4 = 3.96 between 4 and 5
    assert s["mean"] == 3.0 and s["std"] == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]))


def test_p99_of_a_hundred_and_one_values_is_the_hundredth():
    values = [float(i) for i in range(101)]  # 0..100: position 0.99 * 100 = 99 exactly
    random.Random(0).shuffle(values)
    assert summarize(values)["p99"] == 99.0


def test_percentile_of_nothing_raises():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        summarize([])


def test_median_ci_ranks_by_hand():
    # n = 20: P(B <= 5) = (1 + 20 + 190 + 1140 + 4845 + 15504) / 2**20 = 21700 / 2**20, twice that is
    # 0.0414 <= 0.05; adding C(20, 6) = 38760 gives 0.115 > 0.05. So k = 6: ranks 6 and 15.
    lo, hi, coverage = median_ci_ranks(20, 0.95)
    assert (lo, hi) == (6, 15)
    assert coverage == pytest.approx(1 - 2 * 21700 / 2**20)
    # n = 6: [min, max] misses with probability 2 / 64 = 0.031 <= 0.05; [x2, x5] with 2 * 7 / 64 > 0.05.
    assert median_ci_ranks(6, 0.95) == (1, 6, pytest.approx(1 - 2 / 64))
    # Published tables (Conover, Practical Nonparametric Statistics): n = 50 -> 18, 33; n = 100 -> 40, 61.
    assert median_ci_ranks(50, 0.95)[:2] == (18, 33)
    assert median_ci_ranks(100, 0.95)[:2] == (40, 61)
    # A lower confidence narrows it: n = 20 at 80%, 2 * P(B <= 6) = 0.115 <= 0.20 < 2 * P(B <= 7) = 0.263.
    assert median_ci_ranks(20, 0.80)[:2] == (7, 14)


def test_tiny_samples_have_no_interval_so_min_max_with_its_lower_coverage():
    s = summarize([10.0, 12.0, 11.0, 13.0, 9.0])  # n = 5: even [min, max] covers only 1 - 2/32
    assert s["ci95"] == [9.0, 13.0]
    assert s["ci_coverage"] == pytest.approx(1 - 2 / 32) and s["ci_coverage"] < 0.95
    assert summarize([5.0] * 5, target_rel=0.5)["target_met"] is False  # zero width, but not 95%
    assert summarize([5.0] * 6, target_rel=0.5)["target_met"] is True
    one = summarize([7.0])
    assert one["ci95"] == [7.0, 7.0] and one["ci_coverage"] == 0.0


def test_coverage_is_at_least_the_confidence_from_six_samples_on():
    for n in range(6, 400):
        lo, hi, coverage = median_ci_ranks(n, 0.95)
        assert lo + hi == n + 1 and coverage >= 0.95
        # ...and the next narrower interval would fall short (the ranks are the tightest).
        if lo + 1 <= (n + 1) // 2:
            narrower = 1 - 2 * sum(math.comb(n, i) for i in range(lo + 1)) / 2**n
            assert narrower < 0.95


def test_ci_rel_and_target_by_hand():
    values = [100.0 + i for i in range(20)]  # sorted 100..119, median 109.5, ranks 6 and 15 -> 105, 114
    s = summarize(values, target_rel=0.05)
    assert s["ci95"] == [105.0, 114.0]
    assert s["ci_rel"] == pytest.approx(4.5 / 109.5)
    assert s["target_met"] is True  # 0.041 <= 0.05
    assert summarize(values, target_rel=0.01)["target_met"] is False


def test_order_statistic_interval_agrees_with_the_bootstrap():
    rng = random.Random(42)
    samples = [10.0 * rng.lognormvariate(0, 0.1) for _ in range(201)]  # skewed, like latencies
    s = summarize(samples)
    b_lo, b_hi = bootstrap_median_ci(samples, 0.95, n_boot=2000, seed=0)
    width = s["ci95"][1] - s["ci95"][0]
    assert b_lo < s["median"] < b_hi
    # Two methods, same question: the ends agree to within a fifth of the interval's width.
    assert abs(b_lo - s["ci95"][0]) < 0.2 * width and abs(b_hi - s["ci95"][1]) < 0.2 * width


def test_bootstrap_is_deterministic_with_its_seed():
    samples = [float(x) for x in range(1, 31)]
    assert bootstrap_median_ci(samples, seed=3) == bootstrap_median_ci(samples, seed=3)
    assert bootstrap_median_ci(samples, seed=3) != bootstrap_median_ci(samples, seed=4)


def test_bad_confidence_is_refused():
    with pytest.raises(ValueError):
        median_ci_ranks(10, 1.5)
