"""Plots as inline SVG strings (matplotlib's SVG backend), byte-for-byte reproducible.

Determinism: a fixed `svg.hashsalt` (element ids), no date metadata, text drawn as glyph paths (no
dependence on the viewer's fonts, and a model name in a plot can never become markup).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from reports.tables import pareto_mask  # noqa: E402

_STYLE = {"svg.hashsalt": "segbench", "svg.fonttype": "path", "font.size": 9}
_FRONT, _DOMINATED = "#d1495b", "#9aa5b1"


def _to_svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inlined in HTML
    start, end = text.find(" <metadata>"), text.find("</metadata>\n")
    if start >= 0 and end > start:  # the RDF block (creator, format) says nothing a reader needs
        text = text[:start] + text[end + len("</metadata>\n") :]
    return text


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def pareto(
    rows: pd.DataFrame,
    x: str,
    y: str,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    y_higher_better: bool = False,
    kind: str | None = None,
    label: str = "model",
    logy: bool = True,
) -> str:
    """Scatter of `y` against `x` (log x), the Pareto frontier as a red step line, dominated points grey.

    Lower x is better; lower y is better unless `y_higher_better`. With `kind`, rows whose `kind` column is
    "paper" are drawn hollow (a paper number, not ours) and the legend says so.
    """
    rows = rows.dropna(subset=[x, y])
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
        if rows.empty:
            _empty(ax, "no successful measurements")
            return _to_svg(fig)
        ys = [-v for v in rows[y]] if y_higher_better else list(rows[y])
        front = pareto_mask(list(rows[x]), ys)
        rows = rows.assign(_front=front)
        kinds = rows[kind] if kind else pd.Series("measured", index=rows.index)
        for on_front in (False, True):
            for k, fill in (("measured", True), ("paper", False)):
                part = rows[(rows["_front"] == on_front) & (kinds == k)]
                if part.empty:
                    continue
                color = _FRONT if on_front else _DOMINATED
                name = ("Pareto frontier" if on_front else "dominated") + (f", {k} mIoU" if kind else "")
                ax.scatter(
                    part[x],
                    part[y],
                    s=28,
                    marker="o" if fill else "D",
                    facecolors=color if fill else "none",
                    edgecolors=color,
                    label=name,
                    zorder=3 if on_front else 2,
                )
        on = rows[rows["_front"]].sort_values(x)
        ax.step(on[x], on[y], where="post", c=_FRONT, lw=1, zorder=1)
        for _, r in rows.iterrows():
            ax.annotate(
                str(r[label]), (r[x], r[y]), fontsize=6.5 if r["_front"] else 5.5, xytext=(4, 3),
                textcoords="offset points", color="#1f2933" if r["_front"] else "#7b8794",
            )  # fmt: skip
        ax.set(xscale="log", yscale="log" if logy else "linear", xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(True, which="major", lw=0.3, alpha=0.5)
        ax.legend(loc="best", fontsize=7)
        return _to_svg(fig)


def scaling(history: pd.DataFrame, title: str) -> str:
    """Latency, peak memory and MACs against input pixels, one line per measured condition."""
    ok = history[history["status"] == "ok"].copy()
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
        if ok.empty:
            for ax in axes:
                _empty(ax, "no successful measurements")
            return _to_svg(fig)
        ok["pixels"] = [int(h) * int(w) for h, w in (s.split("x") for s in ok["input"])]
        # The newest record of each cell is the curve; older ones are the history table's business.
        ok = ok.sort_values("timestamp", kind="stable").drop_duplicates(
            ["machine", "device", "precision", "conditions", "batch", "input"], keep="last"
        )
        series = ["machine", "device", "precision", "conditions", "batch"]
        for ax, (column, label) in zip(
            axes,
            (("latency_p50_ms", "median latency (ms)"), ("peak_mem_mb", "peak memory (MB)"),
             ("gmacs", "GMACs (fvcore)")),
            strict=True,
        ):  # fmt: skip
            for key, part in ok.groupby(series, sort=True):
                part = part.dropna(subset=[column]).sort_values("pixels")
                if part.empty:
                    continue
                name = f"{key[0]} {key[1]} {key[2]}" + (f" b{key[4]}" if key[4] != 1 else "")
                ax.plot(part["pixels"], part[column], marker="o", ms=3, lw=1, label=name)
            ax.set(xscale="log", yscale="log", xlabel="input pixels (H x W)", ylabel=label)
            ax.grid(True, which="major", lw=0.3, alpha=0.5)
        axes[0].legend(fontsize=6, loc="upper left")
        fig.suptitle(title, fontsize=9)
        fig.subplots_adjust(wspace=0.4)  # not tight_layout: it lays the figure out twice more, slowly
        return _to_svg(fig)
