import math
import random
import statistics

import numpy as np
import pytest

from bench.measure.stats import (
    across_processes,
    bootstrap_median_ci,
    chi2_median_ratio,
    inside_share,
    median_ci_ranks,
    percentile,
    pool_between,
    process_median_se,
    summarize,
    t_cdf,
    t_quantile,
)


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


# ------------------------------------------------------------------- intervals across worker processes


@pytest.mark.parametrize(
    "p, df, expected",
    [(0.975, 1, 12.7062047), (0.975, 2, 4.30265273), (0.975, 5, 2.57058184), (0.975, 30, 2.04227246),
     (0.995, 3, 5.84090931), (0.025, 10, -2.22813885), (0.975, math.inf, 1.95996398)],
)  # fmt: skip
def test_t_quantiles_match_the_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)
    assert t_cdf(expected, df) == pytest.approx(p, abs=1e-9)


def test_a_process_medians_standard_error_is_read_off_its_interval():
    # 95% exact coverage spans +-1.96 standard errors; a min..max interval of 75% coverage +-1.15.
    assert process_median_se((9.0, 11.0), 0.95) == pytest.approx(1 / 1.959964, rel=1e-6)
    assert process_median_se((9.0, 11.0), 0.75) == pytest.approx(1 / 1.150349, rel=1e-6)


def process(median, half=0.0, n=50):
    return {"median": median, "ci95": [median - half, median + half], "ci_coverage": 0.95, "n": n}


def test_the_cells_interval_by_hand():
    # Two processes 10 and 12 ms, no within-process error, nothing pooled: variance 2, df 1, t = 12.706,
    # repeat half-width t * sqrt(2 * 2 / 2) = 12.706 * sqrt(2).
    out = across_processes([process(10.0), process(12.0)], (0.0, 0))
    assert out["median"] == 11.0 and out["ci_df"] == 1 and out["processes"] == 2
    half = 12.7062047 * math.sqrt(2.0)
    assert out["ci95"] == pytest.approx([0.0, 11.0 + half])  # a latency is never below 0
    assert out["ci_rel"] == pytest.approx(half / 11.0) and out["target_met"] is False
    assert out["process_medians"] == [10.0, 12.0] and out["process_n"] == [50, 50]


def test_a_pooled_spread_moderates_the_cells_own():
    # Pooled tau_rel 1% over 30 df (capped at 10); the cell's processes agree exactly.
    out = across_processes([process(100.0), process(100.0)], (0.01**2, 30))
    variance = 10 * 1.0 / 11  # (10 * pooled 1 ms^2 + 1 * 0) / 11
    half = t_quantile(0.975, 11) * math.sqrt(variance)
    assert out["ci_df"] == 11 and out["ci_rel"] == pytest.approx(half / 100.0)
    assert out["between_rel"] == pytest.approx(0.01) and out["target_met"] is True


def test_one_process_and_nothing_pooled_is_the_within_process_interval():
    out = across_processes([process(10.0, half=0.196)], (0.0, 0))
    assert out["ci_df"] is None
    assert out["ci95"] == pytest.approx([10.0 - 0.196 * math.sqrt(2), 10.0 + 0.196 * math.sqrt(2)])


def test_the_pooled_spread_is_the_median_over_cells_so_one_noisy_cell_does_not_widen_all():
    calm = [[process(10.0), process(10.0 * 1.02)] for _ in range(4)]  # 2% apart
    noisy = [[process(10.0), process(20.0)]]
    tau2, df = pool_between(calm + noisy)
    assert df == 5
    expected = statistics.variance([10.0, 10.2]) / statistics.fmean([10.0, 10.2]) ** 2 / chi2_median_ratio(1)
    assert tau2 == pytest.approx(expected)
    assert pool_between([[process(10.0)]]) == (0.0, 0)


def simulated_sweep(rng, means, tau, sigma, processes, n=30):
    """One sweep of cells with true medians `means`: per process an offset ~ N(0, tau) and n lognormal(sigma)
    samples; returns each cell's process summaries."""
    cells = []
    for mu in means:
        summaries = []
        for _ in range(processes):
            offset = 1.0 + rng.gauss(0.0, tau)
            summaries.append(summarize([mu * offset * rng.lognormvariate(0.0, sigma) for _ in range(n)]))
        cells.append(summaries)
    return cells


def test_repeat_intervals_hold_across_runs_where_within_process_intervals_do_not():
    """The calibration self-check, simulated: processes differ by 2%, samples within one by 3%. The share of
    a second sweep's medians inside the first sweep's intervals is about 95% for the repeat interval, and far
    below for the interval of one process's samples (what records held before rounds)."""
    rng = random.Random(7)
    means = [rng.uniform(5.0, 500.0) for _ in range(300)]
    first = simulated_sweep(rng, means, tau=0.02, sigma=0.03, processes=2)
    second = simulated_sweep(rng, means, tau=0.02, sigma=0.03, processes=2)
    pooled = pool_between(first)
    intervals = [across_processes(cell, pooled) for cell in first]
    repeat = [across_processes(cell, pool_between(second))["median"] for cell in second]
    share = inside_share([(tuple(i["ci95"]), m) for i, m in zip(intervals, repeat, strict=True)])
    assert 0.90 <= share <= 0.99
    assert statistics.median(i["ci_rel"] for i in intervals) < 0.07
    assert math.sqrt(pooled[0]) == pytest.approx(0.02, rel=0.3)
    within = [tuple(cell[0]["ci95"]) for cell in first]  # one process, its own order-statistic interval
    assert inside_share(list(zip(within, repeat, strict=True))) < 0.6
