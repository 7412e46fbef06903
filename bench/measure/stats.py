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


# ------------------------------------------------------------------------------ Student's t, without scipy


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz's method)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (the normal distribution when df is inf)."""
    if math.isinf(df):
        return statistics.NormalDist().cdf(t)
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` (> 0) degrees of freedom, by bisection on `t_cdf`."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < p else (low, mid)
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


# ------------------------------------------------------------------- intervals across worker processes
#
# A process is a source of variance that no interval computed inside one process can see (memory layout,
# thread placement, allocator state): back-to-back runs of one cell differ by more than each run's own
# interval. So a cell is measured in several worker processes and its interval is built from a random-effects
# model of the process medians m_r = mu + b_r + e_r: b_r the process's own offset (between-process variance
# tau^2), e_r its median's sampling error (within-process variance, read off its order-statistic interval).
#
# - The cell's median is the mean of its process medians (processes weigh equally).
# - Between-process spread is pooled over the sweep's cells as a relative variance tau2_rel, robustly. If
#   processes differ by tau2_rel M_c^2, cell c's sample variance s_c^2 of its R_c process medians is
#   (tau2_rel M_c^2 + w_c) times a chi-square with R_c - 1 degrees of freedom over R_c - 1 (w_c: the mean
#   within-process variance of its medians, M_c its median). So tau2_rel is the value at which the median
#   over cells of s_c^2 / (tau2_rel M_c^2 + w_c), each over its chi-square's median, is 1 (0 when even
#   tau2_rel = 0 leaves it below 1). A median, so that one cell whose processes met a noisy neighbour does
#   not widen every other cell's interval. Two processes per cell then suffice: the sweep says how much
#   processes differ.
# - A cell's per-process variance moderates its own estimate s_c^2 with the pooled one (w_c + tau2_rel M_c^2),
#   weighted by their degrees of freedom (R_c - 1, and the pool's, capped at POOL_DF_MAX: cells differ, so
#   the pool is worth at most that many processes of this cell), never below w_c (Smyth's moderated variance).
# - The interval is where a repeat run's median (R_c fresh processes on the same machine) falls with the
#   stated confidence: M_c +- t(df) sqrt(var (1/R_c + 1/R_c)). It is sqrt(2) wider than a confidence
#   interval of the median itself, since the repeat has its own noise: that is what "the interval holds
#   across runs" asks, and what the calibration self-check tests (the share of a second sweep's medians
#   inside the first sweep's intervals).

POOL_DF_MAX = 10
CI_METHOD_PROCESSES = (
    "repeat interval across worker processes (random effects: within-process order-statistic error, "
    "between-process spread pooled over the sweep; Student t)"
)


def process_median_se(median_ci95: tuple[float, float], coverage: float) -> float:
    """Standard error of one process's median, read off its order-statistic interval: an interval of exact
    coverage c around an approximately normal median spans +-z_{(1+c)/2} standard errors."""
    low, high = median_ci95
    z = statistics.NormalDist().inv_cdf((1.0 + min(coverage, 0.999999)) / 2.0)
    return (high - low) / (2.0 * z)


def _moments(processes: list[dict]) -> tuple[float, float, float]:
    """(mean of the process medians, their sample variance, their mean squared standard error)."""
    medians = [p["median"] for p in processes]
    within = statistics.fmean(process_median_se(p["ci95"], p["ci_coverage"]) ** 2 for p in processes)
    spread = statistics.variance(medians) if len(medians) > 1 else 0.0
    return statistics.fmean(medians), spread, within


def chi2_median_ratio(df: int) -> float:
    """The median of a chi-square with `df` degrees of freedom, over `df`: exact for 1 and 2, Wilson and
    Hilferty's approximation above (within 1%)."""
    if df == 1:
        return statistics.NormalDist().inv_cdf(0.75) ** 2
    if df == 2:
        return math.log(2.0)
    return (1.0 - 2.0 / (9.0 * df)) ** 3


def pool_between(cells: list[list[dict]]) -> tuple[float, int]:
    """(tau2_rel, degrees of freedom): the between-process relative variance pooled over cells (see above),
    each cell a list of process summaries (`summarize` dicts: median, ci95, ci_coverage); cells of one
    process add nothing. The degrees of freedom are those of the cells' spreads together."""
    terms = []  # (s_c^2 / M_c^2, w_c / M_c^2, the chi-square's median ratio) per cell
    for processes in cells:
        if len(processes) < 2:
            continue
        mean, spread, within = _moments(processes)
        ratio = chi2_median_ratio(len(processes) - 1)
        terms.append((spread / mean**2, within / mean**2, ratio))
    if not terms:
        return 0.0, 0

    def spread_ratio(tau2: float) -> float:  # the median over cells of observed / expected spread
        return statistics.median(s / ((tau2 + w) * r) if tau2 + w > 0 else math.inf for s, w, r in terms)

    df = sum(len(p) - 1 for p in cells if len(p) > 1)
    if spread_ratio(0.0) <= 1.0:
        return 0.0, df
    low, high = 0.0, max(s / r for s, _, r in terms) + 1e-12
    while spread_ratio(high) > 1.0:
        high *= 2.0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if spread_ratio(mid) > 1.0 else (low, mid)
    return (low + high) / 2, df


def across_processes(
    processes: list[dict],
    pooled: tuple[float, int] = (0.0, 0),
    confidence: float = 0.95,
    target_rel: float = 0.05,
) -> dict:
    """The cell's median and its repeat interval from its processes' summaries and the sweep's pooled
    between-process spread (see above), as `Latency` fields: median, ci95, ci_rel, ci_df, between_rel,
    target_met (ci_rel <= target_rel), processes, process_medians, process_n, process_ci95.

    With one process and nothing pooled there is no between-process information: the interval is then the
    within-process one (normal quantile), and `ci_df` is None to say so."""
    if not processes:
        raise ValueError("an interval of no processes")
    tau2_rel, pool_df = pooled
    r = len(processes)
    mean, spread, within = _moments(processes)
    prior_df = min(max(pool_df - (r - 1), 0), POOL_DF_MAX)
    df = prior_df + r - 1
    if df == 0:
        variance, quantile = within, statistics.NormalDist().inv_cdf((1 + confidence) / 2)
    else:
        prior = within + tau2_rel * mean**2
        variance = max(within, (prior_df * prior + (r - 1) * spread) / df)
        quantile = t_quantile((1 + confidence) / 2, df)
    half = quantile * math.sqrt(variance * 2.0 / r)
    rel = half / mean
    return {
        "median": mean,
        "ci95": [max(0.0, mean - half), mean + half],
        "ci_rel": rel,
        "ci_confidence": confidence,
        "ci_coverage": None,  # model-based, not exact; the calibration self-check measures it
        "ci_method": CI_METHOD_PROCESSES,
        "ci_df": df or None,
        "between_rel": math.sqrt(tau2_rel),
        "target_met": rel <= target_rel,
        "processes": r,
        "process_medians": [p["median"] for p in processes],
        "process_n": [p["n"] for p in processes],
        "process_ci95": [list(p["ci95"]) for p in processes],
    }


def inside_share(pairs: list[tuple[tuple[float, float], float]]) -> float:
    """The share of (interval, value) pairs whose value lies inside the interval (bounds included): the
    calibration self-check's figure, with each first run's interval and the second run's median."""
    if not pairs:
        raise ValueError("a share of no pairs")
    return sum(low <= value <= high for (low, high), value in pairs) / len(pairs)
