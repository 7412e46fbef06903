"""Cost against input size (reports.scaling): power-law fits and crossovers, by hand."""

import dataclasses
import math

import pytest

from bench.records import from_dict
from reports.scaling import crossovers, curves, exponent_ranges, fit_power_law, scaling_fits


def row(model, hw, median, group="realtime", half=0.01, machine="m1", timestamp="2026-01-01", **extra):
    """A typed bench record (bench.records.from_dict checks it)."""
    status = extra.pop("status", "ok")
    return from_dict(
        {
            "schema_version": 3,
            "kind": "bench",
            "model": model,
            "group": group,
            "status": status,
            "error": None if status == "ok" else "failed",
            "input_hw": list(hw),
            "batch": 1,
            "device": "cpu",
            "precision": "fp32",
            "latency_ms": {"median": median, "n": 3, "ci95": [median * (1 - half), median * (1 + half)]},
            "peak_mem_mb": hw[0] * hw[1] / 1000,
            "macs": 5 * hw[0] * hw[1],
            "conditions": {"threads": 2},
            "env": {"machine": machine, "timestamp": timestamp},
            **extra,
        }
    )


SIZES = [(256, 256), (512, 512), (1024, 1024)]


def test_a_power_law_is_recovered_exactly():
    fit = fit_power_law([1e4, 1e5, 1e6], [2.0 * x**0.8 for x in (1e4, 1e5, 1e6)])
    assert fit.exponent == pytest.approx(0.8) and fit.coefficient == pytest.approx(2.0)
    assert fit.r2 == pytest.approx(1.0) and fit.n == 3
    assert fit_power_law([1e4, 1e5], [1.0, 3.0]).r2 is None  # two points: any line fits
    assert fit_power_law([1e4, 1e4], [1.0, 2.0]) is None and fit_power_law([1, 2], [0.0, 1.0]) is None


def test_fit_quality_by_hand():
    # log y = 0, 1, 0 at log x = 0, 1, 2 (natural logs): slope 0, mean 1/3, r2 = 1 - 2/3 / (2/3) = 0.
    fit = fit_power_law([1.0, math.e, math.e**2], [1.0, math.e, 1.0])
    assert fit.exponent == pytest.approx(0.0) and fit.r2 == pytest.approx(0.0)


def test_fits_per_model_and_metric_use_the_newest_ok_record_per_size():
    rows = [row("a", hw, 0.001 * hw[0] * hw[1]) for hw in SIZES]  # latency linear in pixels
    rows.append(row("a", SIZES[0], 999.0, timestamp="2025-01-01"))  # older: history, not the curve
    rows.append(row("a", (2048, 2048), 1.0, status="oom"))
    fits = scaling_fits(rows, "a").set_index("metric")
    assert fits.loc["latency_ms", "exponent"] == pytest.approx(1.0)
    assert fits.loc["macs", "exponent"] == pytest.approx(1.0) and fits.loc["peak_mem_mb", "points"] == 3
    assert (
        fits.loc["latency_ms", "from_input"] == "256x256"
        and fits.loc["latency_ms", "to_input"] == "1024x1024"
    )
    assert fits.loc["latency_ms", "condition"] == "b1 cpu/fp32 2 threads"


def in_sweep(records, file):
    return [dataclasses.replace(r, source=file) for r in records]


def test_a_curve_takes_one_sweep_the_one_with_most_sizes():
    linear = [row("a", hw, 0.001 * hw[0] * hw[1], timestamp="2026-02-01") for hw in SIZES]
    rows = in_sweep(linear, "results/m1/scaling.jsonl")
    rows += in_sweep([row("a", SIZES[0], 5000.0, timestamp="2026-03-01")], "quick.jsonl")  # newer, one size
    rows += in_sweep([row("a", hw, 9.0, timestamp="2026-01-01") for hw in SIZES], "older.jsonl")  # as many
    (curve,) = curves(rows, metrics=("latency_ms",))
    assert [p.value for p in curve.points] == [p.value for p in curves(linear, ("latency_ms",))[0].points]
    fit = scaling_fits(rows, "a").set_index("metric").loc["latency_ms"]
    assert fit["exponent"] == pytest.approx(1.0) and fit["sweep"] == "scaling.jsonl"


def test_the_model_page_plots_the_same_points_as_the_fit():
    from reports import plots
    from reports.tables import model_history

    rows = in_sweep([row("a", hw, 0.001 * hw[0] * hw[1], timestamp="2026-02-01") for hw in SIZES], "s.jsonl")
    rows += in_sweep([row("a", SIZES[0], 5000.0, timestamp="2026-03-01")], "quick.jsonl")
    (latency, *_) = plots.scaling(model_history(rows, "a"), "scaling", "a")
    assert list(latency.data["input"]) == ["256x256", "512x512", "1024x1024"]
    assert list(latency.data["latency_p50_ms"]) == pytest.approx([0.001 * h * w for h, w in SIZES])


def test_models_of_different_sweeps_are_not_compared():
    a = in_sweep([row("a", hw, 10.0 * (hw[0] / 256) ** 2.4) for hw in SIZES], "one.jsonl")
    b = [row("b", hw, 20.0 * (hw[0] / 256) ** 1.6) for hw in SIZES]  # crosses a between 512 and 1024
    assert len(crossovers(a + in_sweep(b, "one.jsonl"))) == 1
    assert crossovers(a + in_sweep(b, "two.jsonl")).empty


def test_curves_are_per_machine_and_condition():
    rows = [row("a", hw, 1.0 + hw[0]) for hw in SIZES]
    rows += [row("a", hw, 1.0 + hw[0], machine="m2") for hw in SIZES[:1]]  # one size: no curve
    rows += [row("a", hw, 2.0 + hw[0], channels_last=True) for hw in SIZES]
    found = {(c.machine, c.condition) for c in curves(rows, metrics=("latency_ms",))}
    assert found == {("m1", "b1 cpu/fp32 2 threads"), ("m1", "b1 cpu/fp32 channels_last 2 threads")}


def test_a_crossover_is_where_one_model_becomes_faster_than_the_other():
    # a: 10 ms, 20 ms, 40 ms; b: 5 ms, 20 ms, 80 ms. Equal at 512x512; b grows faster, so a is faster above.
    rows = [row("a", hw, v) for hw, v in zip(SIZES, (10.0, 21.0, 40.0), strict=True)]
    rows += [row("b", hw, v) for hw, v in zip(SIZES, (5.0, 19.0, 80.0), strict=True)]
    found = crossovers(rows)
    assert len(found) == 1
    cross = found.iloc[0]
    assert (cross["faster_above"], cross["faster_below"]) == ("a", "b")
    assert cross["between"] == "512x512 and 1024x1024"
    # log-log lines between 512^2 and 1024^2: a from 21 to 40, b from 19 to 80.
    d0, d1 = math.log(21 / 19), math.log(40 / 80)
    expected = math.exp(math.log(512**2) + math.log(4) * d0 / (d0 - d1))
    assert cross["pixels"] == round(expected) and cross["clear"]
    side = round(math.sqrt(expected))
    assert cross["about"] in {f"{side}x{side}", f"{side - 1}x{side - 1}", f"{side + 1}x{side + 1}"}


def test_a_crossover_inside_the_noise_is_not_clear_and_other_groups_are_apart():
    rows = [row("a", hw, v, half=0.2) for hw, v in zip(SIZES, (10.0, 21.0, 40.0), strict=True)]
    rows += [row("b", hw, v, half=0.2) for hw, v in zip(SIZES, (9.0, 19.0, 80.0), strict=True)]
    rows += [row("c", hw, v, group="semantic") for hw, v in zip(SIZES, (1.0, 100.0, 1000.0), strict=True)]
    found = crossovers(rows)
    assert len(found) == 1 and not found.iloc[0]["clear"]
    assert crossovers(rows, group="semantic").empty


def test_exponent_ranges_per_group():
    rows = [row("a", hw, 0.001 * (hw[0] * hw[1]) ** 0.5) for hw in SIZES]
    rows += [row("b", hw, 0.001 * (hw[0] * hw[1]) ** 1.2) for hw in SIZES]
    ranges = exponent_ranges(scaling_fits(rows))
    (line,) = ranges.to_dict("records")
    assert line["group"] == "realtime" and line["models"] == 2
    assert line["min"] == pytest.approx(0.5) and line["max"] == pytest.approx(1.2)
    assert (line["min_model"], line["max_model"]) == ("a", "b")
    assert exponent_ranges(scaling_fits([])).empty
