"""Summary statistics of latency samples, and how sure we are of the median.

The headline statistic is the median: one slow call (a page fault, a preempted thread) moves a mean but not
a median. Its uncertainty is a distribution-free order-statistic interval (below), which assumes only that the
samples are independent draws from one distribution; it needs no normality, which latencies (skewed, with a
long right tail) rarely have. `bootstrap_median_ci` is a second, independent method used to check it.
"""

from __future__ import annotations

import functools
import math
import random
import statistics

# What `summarize` writes into `ci_method`, so a record says how its interval was made.
CI_METHOD = "order-statistic (exact binomial ranks)"


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between order statistics (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@functools.lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int, float]:
    """1-based ranks (l, u) of the sorted samples bounding the median, and the interval's exact coverage.

    The number of samples below the true median m is Binomial(n, 1/2), whatever the distribution. So the
    symmetric interval [x_(k), x_(n+1-k)] misses m only when at most k-1 samples fall below it or at most k-1
    above it: P(miss) = 2 * P(B <= k-1). We take the largest k whose miss probability is at most
    1 - confidence, computed exactly in integers (the narrowest symmetric interval with that coverage).

    For tiny n no such k exists (at 95%, n <= 5: even [min, max] misses with probability 2 / 2**n > 5%);
    then the ranks are (1, n), i.e. the sample min and max, and the returned coverage, 1 - 2 / 2**n, is
    below the requested confidence, which says so.
    """
    if n < 1:
        raise ValueError("confidence interval of no samples")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    alpha = 1.0 - confidence
    total = 2**n
    k, missed = 0, 0  # the largest k found so far (0: none) and 2**n * P(miss) for it
    below, term = 0, 1  # running sum of C(n, j) for j <= i, and C(n, i)
    for i in range((n + 1) // 2):  # k = i + 1 <= (n + 1) / 2 keeps x_(k) <= x_(n+1-k)
        below += term
        term = term * (n - i) // (i + 1)
        if 2 * below / total > alpha:
            break
        k, missed = i + 1, 2 * below
    if k == 0:
        return 1, n, 1.0 - 2.0 / total
    return k, n + 1 - k, 1.0 - missed / total


def median_ci(sorted_values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, high, exact coverage) of the order-statistic confidence interval of the median."""
    lo, hi, coverage = median_ci_ranks(len(sorted_values), confidence)
    return sorted_values[lo - 1], sorted_values[hi - 1], coverage


def bootstrap_median_ci(
    samples: list[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median: resample with replacement `n_boot` times (seeded, so the
    same inputs give the same interval) and take the central `confidence` range of the resampled medians."""
    if not samples:
        raise ValueError("bootstrap of no samples")
    rng = random.Random(seed)
    n = len(samples)
    medians = sorted(statistics.median(rng.choices(samples, k=n)) for _ in range(n_boot))
    tail = (1.0 - confidence) / 2 * 100
    return percentile(medians, tail), percentile(medians, 100 - tail)


def summarize(samples_ms: list[float], confidence: float = 0.95, target_rel: float = 0.01) -> dict:
    """Percentiles, moments and the median's confidence interval of latency samples in milliseconds.

    `ci95` is [low, high] of the median at `confidence` (the name keeps the default level; `ci_confidence`
    records the level asked for, `ci_coverage` the interval's exact coverage, lower than asked when there were
    too few samples for any interval, see `median_ci_ranks`). `ci_rel` is the larger half-width over the
    median, and `target_met` says whether it is within `target_rel` at the full confidence (never with the
    lower-coverage min/max of tiny samples).
    """
    values = sorted(samples_ms)
    if not values:
        raise ValueError("summary of no samples")
    median = percentile(values, 50)
    low, high, coverage = median_ci(values, confidence)
    ci_rel = max(median - low, high - median) / median if median > 0 else None
    return {
        "median": median,
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": values[0],
        "max": values[-1],
        "n": len(values),
        "ci95": [low, high],
        "ci_rel": ci_rel,
        "ci_confidence": confidence,
        "ci_coverage": coverage,
        "ci_method": CI_METHOD,
        "target_met": ci_rel is not None and ci_rel <= target_rel and coverage >= confidence,
    }
