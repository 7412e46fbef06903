import random
import statistics

import numpy as np
import pytest

from bench.measure.stats import percentile, summarize


def test_percentile_matches_numpy_linear_interpolation():
    rng = random.Random(1)
    values = sorted(rng.uniform(1, 100) for _ in range(37))
    for q in (0, 10, 25, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_summarize_hand_values():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0 and s["n"] == 5
    assert s["p10"] == pytest.approx(1.4) and s["p90"] == pytest.approx(4.6)
    assert s["mean"] == 3.0 and s["std"] == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]))


def test_percentile_of_nothing_raises():
    with pytest.raises(ValueError):
        percentile([], 50)
