"""Render the self-contained leaderboard page: one HTML file, inline CSS and SVG, autoescaped."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jinja2
from markupsafe import Markup

import zoo
from reports.load import load_records
from reports.plots import pareto_latency_macs
from reports.tables import leaderboard

_TEMPLATES = Path(__file__).parent / "templates"


def _fmt(value, digits: int = 2) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,  # every string from a results file is data, never markup
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = _fmt
    return env


def build_page(records: list[dict]) -> str:
    board = leaderboard(records)
    plots = []
    if not board.empty:
        for (machine, device, precision), rows in board.groupby(
            ["machine", "device", "precision"], sort=True
        ):
            title = f"{machine} · {device} · {precision}"
            # Our own matplotlib output; model names are rendered as glyph paths, not text.
            plots.append({"title": title, "svg": Markup(pareto_latency_macs(rows, title))})
    models = sorted(set(board["model"])) if not board.empty else []
    cards = []
    for name in models:
        try:
            cards.append(zoo.get_card(name))
        except zoo.UnknownModelError:
            continue
    machines = {}
    for record in records:
        machines.setdefault(record["env"].get("machine"), record["env"])
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            rows=board.to_dict("records"),
            plots=plots,
            cards=cards,
            machines=sorted(machines.items(), key=lambda kv: str(kv[0])),
            n_records=len(records),
            sources=sorted({r["source_file"] for r in records}),
        )
    )


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # a page to be served and shared, not mkstemp's private 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def render_report(inputs: list[Path], out_dir: Path) -> Path:
    """Render index.html for the records in `inputs` (files or folders) into `out_dir`; returns its path."""
    page = build_page(load_records(inputs))
    index = out_dir / "index.html"
    write_atomic(index, page)
    return index
