"""The report's plots as inline SVG written here: Pareto scatters, cost against input size, a cell's history.

No plotting library: a point is an SVG element carrying its values and the filter attributes
(`reports.filters`) as data attributes, so the page's script can hide points and recompute the frontier
for what is shown. Each plot has a title and a description for screen readers, a native tooltip per point,
its legend outside the data (in the page: `Plot.legend`), and its data as a table beside it (`Plot.data`).
Laid out in viewBox units (`reports.svg`): tick labels that never overlap, point labels placed where they
collide with nothing (the rest on hover). Deterministic: the same rows give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from markupsafe import Markup

from reports import filters
from reports.scaling import one_sweep
from reports.svg import FONT, Axis, domain, el, esc, marker_box, num, place_labels, text_width, ticks
from reports.tables import pareto_mask

W, H = 480, 320  # a Pareto plot's viewBox
R = 4.5  # marker radius
LINE = FONT * 1.25  # from one line of text to the next
PALETTE = ("#1d4ed8", "#c2410c", "#047857", "#7e22ce", "#be123c", "#0e7490", "#4d7c0f", "#a16207")


@dataclass(frozen=True)
class Plot:
    svg: Markup
    data: pd.DataFrame  # the plotted values, one row per point (the table beside the plot)
    legend: tuple[tuple[str, str], ...] = ()  # (swatch class or colour, text)


def _text(cls: str, x: float, y: float, text: str, anchor: str = "middle", **extra) -> str:
    return el("text", {"class": cls, "x": float(x), "y": float(y), "text-anchor": anchor, **extra}, esc(text))


def _axes(x: Axis, y: Axis, xlabel: str, ylabel: str, xticks=None) -> list[str]:
    """Frame, grid lines, tick labels (an x tick's label may have a second line, after a newline) and
    axis titles."""
    x0, x1, y0, y1 = x.start, x.end, y.end, y.start  # plot area: x0..x1, y0 (top)..y1 (bottom)
    out = [el("rect", {"class": "area", "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})]
    lines = 1
    for value, text in xticks if xticks is not None else ticks(x, horizontal=True):
        px = x(value)
        out.append(el("line", {"class": "grid", "x1": px, "y1": y0, "x2": px, "y2": y1}))
        for i, part in enumerate(text.split("\n")):
            lines = max(lines, i + 1)
            out.append(_text("tick", px, y1 + FONT + 2 + i * LINE, part))
    for value, text in ticks(y, horizontal=False):
        py = y(value)
        out.append(el("line", {"class": "grid", "x1": x0, "y1": py, "x2": x1, "y2": py}))
        out.append(_text("tick", x0 - 4, py + FONT * 0.35, text, "end"))
    out.append(_text("axis-title", (x0 + x1) / 2, y1 + FONT + 2 + lines * LINE + 4, xlabel))
    transform = f"translate({FONT} {num((y0 + y1) / 2)}) rotate(-90)"
    out.append(
        el("text", {"class": "axis-title", "transform": transform, "text-anchor": "middle"}, esc(ylabel))
    )
    return out


def _bottom(lines: int = 1) -> float:
    """The room below the plot area for `lines` lines of tick labels and the axis title."""
    return FONT + 2 + lines * LINE + 4 + FONT * 0.3


def _left(y: Axis) -> float:
    """The room left of the plot area for the y axis' title and tick labels."""
    widest = max((text_width(t) for _, t in ticks(y, horizontal=False)), default=FONT)
    return FONT + 10 + widest + 6


def _svg(
    cls: str, ident: str, size: tuple[int, int], title: str, desc: str, body: list[str], **extra
) -> Markup:
    values = {"class": cls, "id": ident, "viewBox": f"0 0 {size[0]} {size[1]}", "role": "img",
              "aria-labelledby": f"{ident}-t {ident}-d", **extra}  # fmt: skip
    head = el("title", {"id": f"{ident}-t"}, esc(title)) + el("desc", {"id": f"{ident}-d"}, esc(desc))
    return Markup(el("svg", values, head + "".join(body)))


def _titled(tag: str, values: dict, tip: str) -> str:
    return el(tag, values, el("title", {}, esc(tip)))


def segment_boxes(points: list[tuple[float, float]]) -> list[tuple[float, float, float, float]]:
    """Thin boxes around the frontier's step line (as `frontier_path` draws it), for label placement."""
    points = sorted(points)
    out = []
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        out.append((ax, ay - 1, bx, ay + 1))
        out.append((bx - 1, min(ay, by), bx + 1, max(ay, by)))
    return out


def frontier_path(points: list[tuple[float, float]]) -> str:
    """The frontier as a step line through its points, sorted by x (each step holds y until the next x)."""
    points = sorted(points)
    if not points:
        return ""
    return f"M{num(points[0][0])} {num(points[0][1])}" + "".join(f"H{num(x)}V{num(y)}" for x, y in points[1:])


# --------------------------------------------------------------------------------------------- Pareto


def pareto(
    rows: pd.DataFrame, x: str, y: str, *, ident: str, title: str, xlabel: str, ylabel: str,
    y_higher_better: bool = False, kind: str | None = None, label: str = "model", logx: bool = True,
    logy: bool = True,
) -> Plot:  # fmt: skip
    """Scatter of `y` against `x`; the Pareto frontier (lower x better; lower y better unless
    `y_higher_better`) in red and labelled, dominated points grey. With `kind`, rows whose `kind` is "paper"
    are hollow diamonds (a paper's number, not ours). Points carry the filter attributes of their row, so the
    page can hide them and recompute the frontier."""
    rows = rows.dropna(subset=[x, y])
    rows = rows[(rows[x] > 0 if logx else True) & (rows[y] > 0 if logy else True)]
    records = rows.to_dict("records")
    front = pareto_mask([r[x] for r in records], [-r[y] if y_higher_better else r[y] for r in records])
    yaxis = Axis(*domain([r[y] for r in records], logy), H - _bottom(), 10, logy)
    xaxis = Axis(*domain([r[x] for r in records], logx), _left(yaxis), W - 10, logx)
    body = _axes(xaxis, yaxis, xlabel, ylabel)
    points, data, on_front = [], [], []
    for i, (r, on) in enumerate(zip(records, front, strict=True)):
        px, py = xaxis(r[x]), yaxis(r[y])
        paper = bool(kind) and r.get(kind) == "paper"
        name = str(r[label])
        tip = f"{name}: {xlabel} {r[x]:.4g}, {ylabel} {r[y]:.4g}" + (" (paper's number)" if paper else "")
        values = {
            "class": "pt" + (" front" if on else "") + (" paper" if paper else ""), "data-i": i,
            "data-x": repr(float(r[x])), "data-y": repr(float(r[y])), "data-px": num(px), "data-py": num(py),
            "data-label": name, **filters.attributes(r),
        }  # fmt: skip
        if paper:  # a hollow diamond
            d = f"M{num(px)} {num(py - R - 1)}l{R + 1} {R + 1} -{R + 1} {R + 1} -{R + 1} -{R + 1}z"
            points.append(_titled("path", {**values, "d": d}, tip))
        else:
            points.append(_titled("circle", {**values, "cx": px, "cy": py, "r": R}, tip))
        data.append({"label": name, "x": r[x], "y": r[y], "kind": "paper" if paper else "measured",
                     "frontier": on, "i": i})  # fmt: skip
        if on:
            on_front.append((px, py, name))
    on_front.sort()
    body.append(el("path", {"class": "frontier", "d": frontier_path([(a, b) for a, b, _ in on_front])}))
    body.append(el("g", {"class": "pts"}, "".join(points)))
    frame = (xaxis.start, yaxis.end, xaxis.end, yaxis.start)
    obstacles = [marker_box(xaxis(r[x]), yaxis(r[y]), R + 1) for r in records]
    obstacles += segment_boxes([(a, b) for a, b, _ in on_front])  # no label across the frontier line
    placed = place_labels([(a, b) for a, b, _ in on_front], [t for _, _, t in on_front], frame, obstacles)
    labels = [
        _text("lab", *where[:2], text, where[2])
        for (_, _, text), where in zip(on_front, placed, strict=True)
        if where
    ]
    body.append(el("g", {"class": "labels"}, "".join(labels)))
    names = ", ".join(t for _, _, t in on_front)
    desc = f"{len(records)} points. Frontier, {xlabel} ascending: {names}." if records else "No points."
    svg = _svg("plot pareto", ident, (W, H), title, desc, body, **{"data-higher": int(y_higher_better)})
    legend = [("sw-front", "Pareto frontier"), ("sw-dom", "dominated")]
    if kind:
        legend += [("sw-measured", "measured (ours)"), ("sw-paper", "paper's number")]
    return Plot(svg, pd.DataFrame(data), tuple(legend))


# ------------------------------------------------------------------------------------ cost vs input size

SCALING = (
    ("latency_p50_ms", "median latency (ms)"),
    ("peak_mem_mb", "peak memory (MB)"),
    ("gmacs", "GMACs (fvcore)"),
)
SW, SH = 320, 230


def scaling(history: pd.DataFrame, ident: str, name: str) -> list[Plot]:
    """Latency, peak memory and MACs against input pixels (log-log), one line per measured condition, each
    from one sweep as reports.scaling draws curves (`history`: reports.tables.model_history of every record
    of the model). Empty when nothing succeeded."""
    lines: dict[str, list[dict]] = {}
    for r in history.to_dict("records"):
        if r["status"] == "ok":
            series = f"{r['machine']} {r['device']} {r['precision']}"
            series += f" {r['conditions']}" if r["conditions"] != "eager" else ""
            series += f" b{r['batch']}" if r["batch"] != 1 else ""
            lines.setdefault(series, []).append({**r, "series": series})
    kept = [
        r
        for line in lines.values()
        for r in one_sweep(line, lambda r: r["source_file"], lambda r: r["timestamp"], lambda r: r["input"])
    ]
    points = sorted(kept, key=lambda r: (r["series"], r["pixels"]))
    names = sorted({r["series"] for r in points})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(names)}
    columns = ["series", "input", "pixels", "latency_p50_ms", "peak_mem_mb", "gmacs"]
    table = pd.DataFrame(points, columns=columns)
    plots = []
    for column, ylabel in SCALING:
        part = [r for r in points if _positive(r[column])]
        if not part:
            continue
        yaxis = Axis(*domain([r[column] for r in part], True), SH - _bottom(), 8, True)
        xaxis = Axis(*domain([r["pixels"] for r in part], True), _left(yaxis), SW - 10, True)
        body = _axes(xaxis, yaxis, "input pixels (H x W)", ylabel)
        for series in names:
            line = [(xaxis(r["pixels"]), yaxis(r[column]), r) for r in part if r["series"] == series]
            if not line:
                continue
            d = "M" + "L".join(f"{num(a)} {num(b)}" for a, b, _ in line)
            body.append(el("path", {"class": "series", "d": d, "stroke": colour[series]}))
            for a, b, r in line:
                values = {"class": "spt", "cx": a, "cy": b, "r": 3, "fill": colour[series]}
                body.append(_titled("circle", values, f"{series}, {r['input']}: {r[column]:.4g}"))
        desc = f"{ylabel} of {name} against input pixels, {len(names)} conditions."
        svg = _svg("plot scaling", f"{ident}-{column}", (SW, SH), f"{name}: {ylabel}", desc, body)
        plots.append(Plot(svg, table, tuple((colour[s], s) for s in names)))
    return plots


def _positive(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value > 0


# ------------------------------------------------------------------------------------------- history

HW, HH = 480, 230
_MARKS = {"regression": "slower", "improved": "faster"}  # compare's verdicts marked on the plot
HISTORY_LEGEND = (
    ("sw-hpt", "median, with its 95% interval"),
    ("sw-slower", "slower: segbench compare flags a regression"),
    ("sw-faster", "faster: compare reports an improvement"),
    ("sw-structural", "structure changed (params, MACs, output shape, status)"),
    ("sw-failed", "run failed"),
)


def history(steps, ident: str, title: str) -> Plot:
    """One cell's median latency across runs (oldest left) with the 95% interval of each median that
    `segbench compare` used; the changes it flags marked (slower: red triangle up; faster: green triangle
    down), structural changes as amber lines, failed runs as red crosses on the axis. Ticks name each run's
    commit and date. `steps`: reports.history.Step list of one cell."""
    shown = [s for s in steps if s.median is not None]
    bounds = [v for s in shown for v in (s.interval or (s.median, s.median))]
    yaxis = Axis(*domain(bounds, False), HH - _bottom(2), 8, False)
    n = len(steps)
    xaxis = Axis(-0.6, max(n - 0.4, 0.6), _left(yaxis), HW - 10, False)
    names = [(s.record.env.git_commit or "?")[:7] + "\n" + s.record.timestamp[5:10] for s in steps]
    width = max(text_width(part) for name in names for part in name.split("\n")) + FONT
    every = 1
    while every < n and xaxis(every) - xaxis(0) < width:
        every += 1
    xticks = [(i, names[i]) for i in range(0, n, every)]
    body = _axes(xaxis, yaxis, "run (commit, date; oldest left)", "median latency (ms)", xticks=xticks)
    marks = []
    for i, s in enumerate(steps):
        px = xaxis(i)
        info = f"{s.record.env.commit_label} {s.record.timestamp}"
        if s.structural:
            values = {"class": "structural", "x1": px, "y1": yaxis.end, "x2": px, "y2": yaxis.start}
            body.append(_titled("line", values, info + ": " + "; ".join(s.structural)))
        if s.median is None:
            d = f"M{num(px - 4)} {num(yaxis.start - 9)}l8 8m0 -8l-8 8"
            body.append(
                _titled(
                    "path",
                    {"class": "failed", "d": d},
                    f"{info}: {s.record.status} {s.record.error or ''}"[:200],
                )
            )
            continue
        py = yaxis(s.median)
        low, high = s.interval or (s.median, s.median)
        if s.interval:
            body.append(el("line", {"class": "ci", "x1": px, "y1": yaxis(low), "x2": px, "y2": yaxis(high)}))
        tip = f"{info}: median {s.median:.4g} ms [{low:.4g}, {high:.4g}], n={s.record.latency.n}"
        tip += (f", {s.change:+.1%} vs previous" if s.change is not None else "") + (
            f"; compare: {s.verdict}" if s.verdict else ""
        )
        mark = _MARKS.get(s.verdict)
        values = {
            "class": "hpt" + (f" {mark}" if mark else ""),
            "data-i": i,
            "data-verdict": s.verdict or None,
        }
        if mark:  # a triangle pointing the way the time moved, drawn above the plain points
            d = (
                f"M{num(px)} {num(py - 7)}l6 10h-12z"
                if mark == "slower"
                else f"M{num(px)} {num(py + 7)}l6 -10h-12z"
            )
            marks.append(_titled("path", {**values, "d": d}, tip))
        else:
            body.append(_titled("circle", {**values, "cx": px, "cy": py, "r": 2.6}, tip))
    flagged = [s for s in steps if s.flagged]
    desc = f"{n} runs from {steps[0].record.timestamp[:10]} to {steps[-1].record.timestamp[:10]}"
    if shown:
        desc += f"; median {shown[0].median:.4g} ms first, {shown[-1].median:.4g} ms last"
    desc += f"; segbench compare flags {len(flagged)} of the changes"
    desc += (
        (": " + ", ".join(f"{s.record.env.commit_label} ({s.verdict or 'structure'})" for s in flagged[:8]))
        if flagged
        else ""
    )
    return Plot(_svg("plot history", ident, (HW, HH), title, desc + ".", body + marks), pd.DataFrame())
