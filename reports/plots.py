"""Plots as inline SVG strings (matplotlib, Agg-free SVG backend), byte-for-byte reproducible."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from reports.tables import pareto_mask  # noqa: E402

_STYLE = {"svg.hashsalt": "segbench", "svg.fonttype": "path", "font.size": 9}


def _to_svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG is inlined in HTML


def pareto_latency_macs(rows: pd.DataFrame, title: str) -> str:
    """Median latency against GMACs, log-log; the frontier (fast for its cost) drawn and labelled."""
    rows = rows.dropna(subset=["latency_median_ms", "gmacs"])
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if rows.empty:
            ax.text(0.5, 0.5, "no successful measurements", ha="center", va="center", transform=ax.transAxes)
            return _to_svg(fig)
        front = pareto_mask(list(rows["latency_median_ms"]), list(rows["gmacs"]))
        on = rows[front].sort_values("latency_median_ms")
        off = rows[[not f for f in front]]
        ax.scatter(off["latency_median_ms"], off["gmacs"], c="#9aa5b1", label="dominated", zorder=2)
        ax.scatter(on["latency_median_ms"], on["gmacs"], c="#d1495b", label="Pareto frontier", zorder=3)
        ax.step(on["latency_median_ms"], on["gmacs"], where="post", c="#d1495b", lw=1, zorder=1)
        for _, r in rows.iterrows():
            ax.annotate(
                f"{r['model']} {r['input']}",
                (r["latency_median_ms"], r["gmacs"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="median latency (ms, batch 1)",
            ylabel="GMACs (fvcore)",
            title=title,
        )
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.legend(loc="lower right", fontsize=7)
        return _to_svg(fig)
