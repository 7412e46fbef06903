"""The plots' layout (reports.svg) and the Pareto plot (reports.plots), checked without a browser: tick
labels and point labels never overlap (by the estimated boxes; the browser tests measure the drawn ones)."""

import itertools
import json
import random
import re
from pathlib import Path

import pandas as pd
import pytest

from reports import plots, svg
from reports.tables import pareto_mask
from tests.reports.fixtures import EVIL


def test_tick_labels_are_short_and_never_scientific():
    cases = {0.5: "0.5", 20: "20", 1500: "1,500", 12000: "12k", 100000: "100k", 1.5e6: "1.5M", 2.5e9: "2.5G",
             0.002: "0.002", 0: "0", -40: "-40"}  # fmt: skip
    assert {v: svg.label(v) for v in cases} == cases


@pytest.mark.parametrize("log", [True, False])
@pytest.mark.parametrize("horizontal", [True, False])
def test_ticks_fit_and_do_not_overlap(log, horizontal):
    rng = random.Random(0)
    for _ in range(300):
        lo = 10 ** rng.uniform(-2, 4)
        hi = lo * (10 ** rng.uniform(0.05, 4) if log else 1 + rng.uniform(0.01, 50))
        length = rng.uniform(120, 450)
        axis = svg.Axis(
            *svg.domain([lo, hi], log), 0 if horizontal else length, length if horizontal else 0, log
        )
        found = svg.ticks(axis, horizontal)
        assert found, (lo, hi)
        texts = [t for _, t in found]
        assert len(set(texts)) == len(texts) and not any("e" in t for t in texts)
        positions = [axis(v) for v, _ in found]
        assert all(
            min(axis.start, axis.end) - 1e-6 <= p <= max(axis.start, axis.end) + 1e-6 for p in positions
        )
        for (pa, ta), (pb, tb) in itertools.pairwise(zip(positions, texts, strict=True)):
            need = (svg.text_width(ta) + svg.text_width(tb)) / 2 if horizontal else svg.FONT
            assert abs(pb - pa) >= need, (lo, hi, texts)


def test_labels_are_placed_clear_of_each_other_and_of_the_points():
    rng = random.Random(1)
    frame = (40.0, 10.0, 470.0, 270.0)
    placed_count = total = 0
    for _ in range(50):
        anchors = [(rng.uniform(50, 460), rng.uniform(20, 260)) for _ in range(rng.randint(2, 25))]
        texts = [f"model_{i} {rng.choice(['360x480', '512x1024'])}" for i in range(len(anchors))]
        obstacles = [svg.marker_box(x, y, 5.5) for x, y in anchors]
        placed = svg.place_labels(anchors, texts, frame, obstacles)
        boxes = []
        for (tx, ty, anchor), text in ((p, t) for p, t in zip(placed, texts, strict=True) if p):
            w, h = svg.text_width(text), svg.FONT
            x0 = tx if anchor == "start" else tx - w if anchor == "end" else tx - w / 2
            boxes.append((x0, ty - h * 0.8, x0 + w, ty + h * 0.2))
        for box in boxes:
            assert frame[0] - 1e-6 <= box[0] and box[2] <= frame[2] + 1e-6
            assert not any(svg.overlaps(box, o) for o in obstacles)
        assert not any(svg.overlaps(a, b) for a, b in itertools.combinations(boxes, 2))
        placed_count, total = placed_count + len(boxes), total + len(texts)
    assert placed_count > 0.6 * total  # crowded points go unlabelled (their name is on hover), most do not


def test_the_page_script_places_labels_as_python_does():
    script = (Path(svg.__file__).parent / "static" / "report.js").read_text()
    found = re.search(r"CANDIDATES = \[(.*?)\];", script, re.S).group(1)
    assert json.loads("[" + found.replace("/* as reports/svg.py */", "") + "]") == [
        list(c) for c in svg.CANDIDATES
    ]
    assert f"GAP = {svg.GAP}," in script


def _rows():
    return pd.DataFrame(
        {
            "model": ["a", "b", "c", EVIL, "e"],
            "input": ["360x480"] * 5,
            "latency_p50_ms": [5.0, 8.0, 20.0, 3.0, 9.0],
            "gmacs": [1.0, 4.0, 0.5, 2.0, 0.7],
            "device": ["cpu"] * 5,
            "machine": ["m"] * 5,
        }
    )


def test_pareto_plot_draws_the_frontier_of_its_points():
    rows = _rows()
    plot = plots.pareto(rows, "latency_p50_ms", "gmacs", ident="p", title="t", xlabel="ms", ylabel="GMACs")
    text = str(plot.svg)
    assert text.count('class="pt front"') == 4 and text.count('class="pt"') == 1  # b is dominated by a
    assert list(plot.data["frontier"]) == pareto_mask(list(rows["latency_p50_ms"]), list(rows["gmacs"]))
    front = re.findall(r'class="pt front"[^>]*data-px="([\d.]+)" data-py="([\d.]+)"', text)
    path = re.search(r'class="frontier" d="([^"]*)"', text).group(1)
    assert path == plots.frontier_path([(float(x), float(y)) for x, y in front])
    labels = re.findall(r'<text class="lab"[^>]*>([^<]*)</text>', text)
    assert labels and set(labels) <= {"a", "c", "&lt;script&gt;alert(1)&lt;/script&gt;", "e"}
    assert "<script>" not in text and 'data-model="&lt;script&gt;' in text  # a name is text, never markup
    assert '<title id="p-t">t</title>' in text and "5 points. Frontier, ms ascending:" in text


def test_pareto_plot_is_deterministic_and_paper_points_are_hollow():
    rows = _rows().assign(kind=["measured", "paper", "measured", "measured", "paper"])
    args = dict(
        ident="p", title="t", xlabel="ms", ylabel="mIoU", y_higher_better=True, kind="kind", logy=False
    )
    first = plots.pareto(rows, "latency_p50_ms", "gmacs", **args)
    assert str(first.svg) == str(plots.pareto(rows, "latency_p50_ms", "gmacs", **args).svg)
    assert str(first.svg).count('<path class="pt') == 2 and 'data-higher="1"' in str(first.svg)
    assert ("sw-paper", "paper's number") in first.legend
