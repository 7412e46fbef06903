"""SVG primitives for the report's plots: axes whose tick labels never overlap, and labels placed where they
collide with nothing.

Everything is laid out in the SVG's own units (its viewBox) and the figure scales as a whole, so a layout
free of overlaps at one screen width is free of them at every width. Text widths are estimated from
per-character widths of a wide sans-serif at the largest size text is drawn (`FONT`), an upper bound for
the fonts browsers pick, so estimated boxes contain the drawn text. Every string from a results file goes
through `esc` (text content and attributes: `el`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import escape

# The largest size plot text is drawn at, in viewBox units (report.css: 11 on wide screens, 13 on narrow ones,
# where the figure is scaled down most); every layout is computed for it, so it holds at both.
FONT = 13
GAP = 6  # between a point's marker and its label


def esc(value) -> str:
    return str(escape(str(value)))


def num(value: float) -> str:
    """A coordinate in the SVG: two decimals are finer than any screen."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def el(tag: str, values: dict, body: str = "") -> str:
    """One SVG element: its attributes (escaped; floats as `num`; None left out) and `body`, SVG already
    (escape text with `esc`)."""
    text = "".join(
        f' {k}="{num(v) if isinstance(v, float) else esc(v)}"' for k, v in values.items() if v is not None
    )
    return f"<{tag}{text}>{body}</{tag}>" if body else f"<{tag}{text}/>"


_NARROW = set("fijlrtI.,:;'|!()[] ")
_WIDE = set("mwMW@%")


def text_width(text: str, size: float = FONT) -> float:
    """An upper bound of the drawn width of `text` at `size` (DejaVu Sans' advances, rounded up)."""
    em = 0.0
    for ch in str(text):
        if ch in _NARROW:
            em += 0.4
        elif ch in _WIDE:
            em += 1.0
        elif ch.isupper():
            em += 0.78
        else:
            em += 0.66
    return em * size


def label(value: float) -> str:
    """A tick label: short, never in scientific notation ("0.5", "20", "1,500", "12k", "1.5M")."""
    if value == 0:
        return "0"
    size = abs(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if size >= scale:
            shown = value / (scale if suffix != "k" else 1e3)
            return f"{shown:.3g}{suffix}"
    if size >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


# ------------------------------------------------------------------------------------------------ axes


@dataclass(frozen=True)
class Axis:
    """A mapping from data values in [lo, hi] to SVG coordinates in [start, end] (end < start for y)."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        f = (
            (math.log(value) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
            if self.log
            else (value - self.lo) / (self.hi - self.lo)
        )
        return self.start + f * (self.end - self.start)


def domain(values: Iterable[float], log: bool, pad: float = 0.06) -> tuple[float, float]:
    """The range of `values`, widened by `pad` of its span on each side (in log space on a log axis)."""
    values = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not values:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(values), max(values)
    if log:
        a, b = math.log10(lo), math.log10(hi)
        span = max(b - a, 0.3)
        mid = (a + b) / 2
        a, b = min(a, mid - span / 2), max(b, mid + span / 2)
        return 10 ** (a - pad * span), 10 ** (b + pad * span)
    span = hi - lo or abs(hi) * 0.2 or 1.0
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - span / 2), max(hi, mid + span / 2)
    return lo - pad * span, hi + pad * span


def _linear_steps(lo: float, hi: float, most: float) -> list[float]:
    """Candidate tick steps 1, 2, 5 x 10^k from fine to coarse, for the range lo..hi, giving at most
    about `most` ticks."""
    smallest = (hi - lo) / max(most, 1)
    first = 10 ** math.floor(math.log10(smallest))
    steps = [m * first * 10**k for k in range(3) for m in (1, 2, 5)]
    return [step for step in steps if step >= smallest]


def _ticks_at(lo: float, hi: float, step: float) -> list[float]:
    start = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - start) / step + 1e-9)) + 1
    return [round(start + i * step, 12) for i in range(max(count, 0))]


def _log_candidates(lo: float, hi: float) -> list[list[float]]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    out = []
    for mantissas, every in (((1, 2, 5), 1), ((1, 3), 1), ((1,), 1), ((1,), 2), ((1,), 3)):
        values = [m * 10**e for e in range(a, b + 1) if (e - a) % every == 0 for m in mantissas]
        out.append([v for v in values if lo <= v <= hi])
    return out


def ticks(axis: Axis, horizontal: bool, size: float = FONT) -> list[tuple[float, str]]:
    """(value, label) ticks of `axis`: the densest nice set whose labels do not overlap (at least two when
    the range holds two nice values). On a log axis spanning less than a decade, linear nice values."""
    lo, hi = min(axis.lo, axis.hi), max(axis.lo, axis.hi)
    if axis.log and hi / lo >= 10:
        candidates = _log_candidates(lo, hi)
    else:
        length = abs(axis.end - axis.start)
        most = length / (size * (2.5 if horizontal else 1.5))  # no set of more ticks than this can fit
        candidates = (_ticks_at(lo, hi, step) for step in _linear_steps(lo, hi, most))
    best: list[float] = []
    for values in candidates:
        if len(values) < 2:
            continue
        if _fits(axis, values, horizontal, size):
            return [(v, label(v)) for v in values]
        best = values
    return [(v, label(v)) for v in best[:1]]


def _fits(axis: Axis, values: Sequence[float], horizontal: bool, size: float) -> bool:
    positions = [axis(v) for v in values]
    for i in range(1, len(values)):
        room = abs(positions[i] - positions[i - 1])
        if horizontal:
            need = (
                text_width(label(values[i]), size) + text_width(label(values[i - 1]), size)
            ) / 2 + size * 0.8
        else:
            need = size * 1.5
        if room < need:
            return False
    return True


# ---------------------------------------------------------------------------------------------- labels

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# Where a label may go around its point, in order of preference: (dx, dy, anchor, distance factor). The far
# ones (factor > 1) let a crowded point's label step over its neighbours' labels.
CANDIDATES = [(1, 0, "start", 1), (-1, 0, "end", 1), (0, -1, "middle", 1), (0, 1, "middle", 1),
              (1, -1, "start", 1), (1, 1, "start", 1), (-1, -1, "end", 1), (-1, 1, "end", 1),
              (0, -1, "middle", 2.6), (0, 1, "middle", 2.6), (1, -1, "start", 2.6), (1, 1, "start", 2.6),
              (-1, -1, "end", 2.6), (-1, 1, "end", 2.6)]  # fmt: skip


def _candidates(x: float, y: float, w: float, size: float) -> list[tuple[Box, float, float, str]]:
    """Label positions around a point: (box, text x, text baseline y, anchor), see CANDIDATES."""
    h, d = size, GAP
    out = []
    for dx, dy, anchor, far in CANDIDATES:
        tx = x + dx * d
        x0 = tx if anchor == "start" else tx - w if anchor == "end" else tx - w / 2
        if dy == 0:
            y0 = y - h / 2
        elif dy < 0:
            y0 = y - (d if dx == 0 else d * 0.6) * far - h
        else:
            y0 = y + (d if dx == 0 else d * 0.6) * far
        out.append(((x0, y0, x0 + w, y0 + h), tx, y0 + h * 0.8, anchor))
    return out


def place_labels(
    anchors: Sequence[tuple[float, float]],
    texts: Sequence[str],
    frame: Box,
    obstacles: Sequence[Box] = (),
    size: float = FONT,
) -> list[tuple[float, float, str] | None]:
    """Greedy placement: each label (in the order given) at the first candidate position inside `frame`
    that overlaps no placed label and no obstacle (the points' markers); None where none is free (the
    label is then shown on hover only)."""
    placed: list[Box] = []
    out: list[tuple[float, float, str] | None] = []
    for (x, y), text in zip(anchors, texts, strict=True):
        w = text_width(text, size)
        for box, tx, ty, anchor in _candidates(x, y, w, size):
            inside = box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2] and box[3] <= frame[3]
            if (
                inside
                and not any(overlaps(box, o) for o in placed)
                and not any(overlaps(box, o) for o in obstacles)
            ):
                placed.append(box)
                out.append((tx, ty, anchor))
                break
        else:
            out.append(None)
    return out


def marker_box(x: float, y: float, r: float) -> Box:
    return (x - r, y - r, x + r, y + r)
