"""Render the static report: index (leaderboards, Pareto plots), ledger, one page per model (history), the
latest regressions, machines, and a CSV beside every table.

One pass: load (reports.load) -> tables (reports.tables, ledger, details, history) -> plots (reports.plots)
-> render (jinja2, autoescaped) -> write (reports.site: a temporary folder swapped in whole). Every page is
self-contained (inline CSS, JS and SVG; no network) and a pure function of the records: no clock, no
absolute paths beyond the results files' names, so the same results give the same bytes. Every file name
built from a results field goes through bench.store.safe_name (bounded, unique, no path characters).
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections import defaultdict
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from bench import intervals
from bench.conditions import REFERENCE_MODEL
from bench.frame import to_csv  # the one CSV writer: text cells quoted, never a formula
from bench.records import BenchRecord, Record, latest_per_cell
from bench.store import safe_name
from reports import cells, details, filters, history, plots, selfcheck, site
from reports import ledger as ledgers
from reports.load import load
from reports.scaling import crossovers, scaling_fits
from reports.tables import MIN_POINTS, card_or_none, hw_text, leaderboard, model_history, pareto_sections

_TEMPLATES = Path(__file__).parent / "templates"
_STATIC = Path(__file__).parent / "static"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,  # every string from a results file is data, never markup
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@functools.cache
def _static(name: str) -> Markup:
    """The page's own CSS or JS (reports/static), inlined in every page."""
    return Markup((_STATIC / name).read_text(encoding="utf-8"))


def slug(name: str) -> str:
    """A model's (or group's) name as a file name or HTML id: bench.store.safe_name."""
    return safe_name(name)


def auto_columns(frame: pd.DataFrame) -> list[cells.Col]:
    """Columns for a detail table: every field, numbers right-aligned, the error shown under the status."""
    return [
        cells.Col(k, k.replace("_", " "), 3, num=pd.api.types.is_numeric_dtype(frame[k]))
        for k in frame.columns
        if k != "error"
    ]


def _rows(frame: pd.DataFrame, columns: list[cells.Col], filterable: bool = False) -> list[dict]:
    """Table rows for `macros.table`; with `filterable`, each carries the filters' data attributes."""
    rows = cells.cells(frame, columns)
    if filterable:
        for row, record in zip(rows, frame.to_dict("records"), strict=True):
            row["attrs"] = filters.attributes(record)
    return rows


# ------------------------------------------------------------------------------------------- Pareto sets


def _point_attributes(point: dict, groups: dict[str, str]) -> dict:
    """The filter columns of one Pareto point (reports.filters): its speed condition's device, precision,
    machine and input, the model's group, its latency (when x is one) and its mIoU (when y is one)."""
    speed, accuracy = point.get("speed"), point.get("accuracy")
    execution = speed.execution if speed is not None else None
    miou = point["y"] if accuracy is not None else None
    return {
        "device": execution.device if execution else None,
        "precision": execution.precision if execution else None,
        "machine": speed.machine if speed is not None else None,
        "input": hw_text(execution.input_hw) if execution else None,
        "group": groups.get(point["model"]),
        "latency_p50_ms": point["x"] if speed is not None else None,
        "miou" if point.get("kind") == "measured" else "paper_miou": miou,
    }


def _figures(records: list[Record]) -> list[dict]:
    """Draw every Pareto set of reports.tables.pareto_sections (each within one condition), with its legend
    and its data as a filterable table."""
    groups = {r.model: r.group for r in records if isinstance(r, BenchRecord)}
    out, n = [], 0
    for section in pareto_sections(records, MIN_POINTS):
        figures = []
        for spec in section["sets"]:
            n += 1
            ident = f"plot-{n}"
            points = spec.rows.to_dict("records")
            rows = pd.DataFrame([{**p, **_point_attributes(p, groups)} for p in points])
            plot = plots.pareto(
                rows, spec.x, spec.y, ident=ident, title=spec.title, xlabel=spec.xlabel, ylabel=spec.ylabel,
                y_higher_better=spec.y_higher_better, kind="kind", label="label", logy=spec.logy,
            )  # fmt: skip
            data = plot.data
            columns = [
                cells.Col("label", "point", num=False),
                cells.Col("x", spec.xlabel, 3),
                cells.Col("y", spec.ylabel, 3),
                cells.Col("kind", "kind", num=False),
                cells.Col("frontier", "on frontier", num=False, cls="fr"),
            ]
            rows = cells.cells(data, columns) if not data.empty else []
            for row, i in zip(rows, data.get("i", []), strict=False):
                row["attrs"] = {"data-i": str(i)}  # shown and hidden with its point (report.js)
            figures.append({"id": ident, "title": spec.title, "svg": plot.svg, "legend": plot.legend,
                            "columns": columns, "rows": rows, "points": len(data)})  # fmt: skip
        out.append({"title": section["title"], "figures": figures, "left_out": section["left_out"]})
    return out


# ---------------------------------------------------------------------------------------------- machines


def _sources(records: list[Record]) -> pd.DataFrame:
    """Provenance per results file: machine, hardware, commits, time span, what it holds."""
    rows = []
    by_file: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_file[r.source].append(r)
    for name, recs in sorted(by_file.items()):
        envs = {id(r.env): r.env for r in recs}.values()
        stamps = sorted(r.timestamp for r in recs)
        statuses = pd.Series([r.status for r in recs]).value_counts().sort_index()
        rows.append(
            {
                "file": name,
                "machine": ", ".join(sorted({str(e.machine) for e in envs})),
                "cpu": ", ".join(sorted({str(e.cpu) for e in envs})),
                "gpu": ", ".join(sorted({str(e.gpu_name) for e in envs if e.gpu})) or "none",
                "commits": ", ".join(sorted({e.commit_label for e in envs})),
                "first": stamps[0],
                "last": stamps[-1],
                "records": len(recs),
                "statuses": ", ".join(f"{k} {v}" for k, v in statuses.items()),
                "torch": ", ".join(sorted({str(e.torch) for e in envs})),
            }
        )
    return pd.DataFrame(rows)


def _machines(records: list[Record]) -> list[dict]:
    newest = {}
    for r in records:
        machine = str(r.machine)
        if machine not in newest or r.timestamp >= newest[machine].timestamp:
            newest[machine] = r.env
    return [
        {"name": name, "id": slug(name), "env": sorted((str(k), str(v)) for k, v in env.to_dict().items())}
        for name, env in sorted(newest.items())
    ]


# ------------------------------------------------------------------------------------------- model pages


def _history_section(name: str, cells_of_model: list[tuple[tuple, list[history.Step]]]) -> dict:
    """One figure per cell measured more than once (plot + its data table), a table of the cells measured
    once, and the model's whole history as one frame (its CSV)."""
    steps = [step for _, cell in cells_of_model for step in cell]
    whole = history.frame(steps)
    rows = cells.cells(whole, HISTORY_COLUMNS) if steps else []
    for row, flagged in zip(rows, whole.get("flagged", []), strict=True):
        row["flagged"] = bool(flagged)
    figures, once, start = [], [], 0
    for _, cell in cells_of_model:
        end = start + len(cell)
        if len(cell) == 1:
            once.append(start)
        else:
            label = history.cell_label(cell[0].record)
            ident = f"history-{len(figures) + 1}"
            svg = plots.history(cell, ident, f"{name} · {label}").svg
            figures.append({"id": ident, "title": label, "svg": svg, "rows": rows[start:end],
                            "runs": len(cell), "flagged": sum(s.flagged for s in cell),
                            "columns": HISTORY_COLUMNS})  # fmt: skip
        start = end
    return {
        "history": figures,
        "once_columns": ONCE_COLUMNS,
        "once_rows": cells.cells(whole.iloc[once], ONCE_COLUMNS) if once else [],
        "whole": whole,
    }


HISTORY_COLUMNS = [
    cells.Col("timestamp", "timestamp (UTC)", num=False),
    cells.Col("commit", "commit", num=False),
    cells.Col("latency_p50_ms", "p50 (ms)", 3),
    cells.Col("interval", "95% interval (ms)", sort="ci95_low_ms", help="of the median, as compare uses it"),
    cells.Col("latency_n", "n"),
    cells.Col("change_pct", "change (%)", 1, help="median against the previous run's"),
    cells.Col("compare_verdict", "segbench compare", num=False, help="its verdict on the change"),
    cells.Col("structural_changes", "structure changed", num=False, cls="wrap"),
    cells.Col("status", "status", num=False),
]  # params, MACs and the results file of each run are in the CSV
ONCE_COLUMNS = [
    cells.Col("machine", "machine", num=False),
    cells.Col("cell", "cell", num=False),
    cells.Col("timestamp", "timestamp (UTC)", num=False),
    cells.Col("commit", "commit", num=False),
    *HISTORY_COLUMNS[2:5],
    cells.Col("params_m", "params (M)", 3),
    cells.Col("gmacs", "GMACs", 3),
    HISTORY_COLUMNS[-1],
]


def _model_page(
    name: str, mine: list[Record], every: list[Record], cells_of_model, book: pd.DataFrame
) -> tuple[dict, dict]:
    """Context for one model's page and its CSV files (name -> text): `mine` the model's newest records,
    `every` all of them (its cost-against-size curves take one sweep's, reports.scaling), `book` the ledger
    (its claims' verdicts)."""
    page = slug(name)
    csvs = {}
    section = _history_section(name, cells_of_model)
    whole = section.pop("whole")
    if not whole.empty:
        csvs[f"{page}-history.csv"] = to_csv(whole)
    tables = []
    for key, title, frame in (
        ("evaluations", "Accuracy evaluations", details.evaluations(mine, name)),
        ("flops", "FLOP counters' agreement (fvcore vs torch.utils.flop_counter)",
         details.flop_agreement(mine, name)),
        ("agreement", "Output agreement of each backend against eager fp32",
         details.output_agreement(mine, name)),
        ("hardware", "Hardware state, roofline and memory by method", details.hardware_state(mine, name)),
        ("scaling", "Power-law fits of cost against input pixels (exponent; r2 on the log scale)",
         scaling_fits(every, name)),
    ):  # fmt: skip
        if frame.empty:
            tables.append({"id": key, "title": title, "columns": [], "rows": [], "csv": ""})
            continue
        columns = auto_columns(frame)
        csvs[f"{page}-{key}.csv"] = to_csv(frame)
        tables.append(
            {
                "id": key,
                "title": title,
                "columns": columns,
                "rows": cells.cells(frame, columns),
                "csv": f"{page}-{key}.csv",
            }
        )
    costs = model_history(every, name)
    scaling = plots.scaling(costs, "scaling", name) if not costs.empty else []
    context = {
        "name": name, "card": card_or_none(name), "tables": tables, "scaling": scaling,
        "scaling_columns": SCALING_COLUMNS,
        "scaling_rows": cells.cells(scaling[0].data, SCALING_COLUMNS) if scaling else [],
        **section, "history_legend": plots.HISTORY_LEGEND,
        "history_csv": f"{page}-history.csv" if not whole.empty else "",
        "claims": cells.cells(details.claims(book, name), cells.CLAIMS), "claim_columns": cells.CLAIMS,
    }  # fmt: skip
    return context, csvs


SCALING_COLUMNS = [
    cells.Col("series", "condition", num=False),
    cells.Col("input", "input", sort="pixels"),
    cells.Col("latency_p50_ms", "p50 (ms)", 3),
    cells.Col("peak_mem_mb", "peak mem (MB)", 1),
    cells.Col("gmacs", "GMACs", 3),
]


# ------------------------------------------------------------------------------------------------- site

REGRESSION_COLUMNS = [
    cells.Col("item", "cell", num=False, cls="wrap"),
    cells.Col("metric", "metric", num=False),
    cells.Col("base", "previous", num=False),
    cells.Col("new", "newest", num=False),
    cells.Col("change", "change", num=False),
    cells.Col("verdict", "verdict", num=False),
]
_ACT = ("ok", "within noise")  # verdicts that need no action: folded away on the regressions page


def _regressions(records: list[Record]) -> tuple[list[dict], pd.DataFrame]:
    runs = []
    frames = []
    for run in history.latest_comparisons(records):
        table = history.verdict_frame(run)
        frames.append(table.assign(base_file=run.base, new_file=run.new))
        act, quiet = table[~table["verdict"].isin(_ACT)], table[table["verdict"].isin(_ACT)]
        rows = cells.cells(act, REGRESSION_COLUMNS)
        for row, regression in zip(rows, act["regression"], strict=True):
            row["flagged"] = bool(regression)
        runs.append({
            "machine": run.machine, "id": slug(f"{run.machine}-{run.kind}"),
            "kind": "sweeps" if run.kind == "bench" else "evaluations", "run": run,
            "summary": run.comparison.summary(), "regressions": len(run.comparison.regressions()),
            "rows": rows, "quiet": cells.cells(quiet, REGRESSION_COLUMNS),
        })  # fmt: skip
    return runs, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def build_site(
    records: list[Record], skipped: list[str] = (), checks: list[tuple[str, dict]] = ()
) -> dict[str, str]:
    """Every file of the report, relative path -> text. `records`: typed records (reports.load); `skipped`:
    files found but not results; `checks`: the self-check files found (`reports.selfcheck.find`)."""
    env = _environment()
    # The tables read the newest record of each cell and machine; the history and the machines page read
    # every record.
    newest = latest_per_cell(records)
    by_model: dict[str, list[Record]] = defaultdict(list)
    for record in newest:
        if record.kind != "structure":
            by_model[record.model].append(record)
    board = leaderboard(newest, checks)
    files: dict[str, str] = {}
    groups = []
    if not board.empty:
        board["href"] = ["models/" + slug(m) + ".html" for m in board["model"]]
        board["miou_source"] = [
            " · ".join(x for x in (d, f"weights: {w}" if w else "") if x)
            for d, w in zip(board["miou_dataset"], board["miou_weights"], strict=True)
        ]
        for group, part in board.groupby("group", sort=True):
            csv = f"leaderboard-{slug(str(group))}.csv"
            files[csv] = to_csv(part.drop(columns=["href", "miou_source"]))
            crossing = crossovers(records, str(group))  # where one model overtakes another, within a sweep
            crossing_columns = auto_columns(crossing) if not crossing.empty else []
            groups.append({"name": group, "id": slug(str(group)), "csv": csv,
                           "rows": _rows(part, cells.LEADERBOARD, filterable=True),
                           "crossovers": cells.cells(crossing, crossing_columns),
                           "crossover_columns": crossing_columns})  # fmt: skip
    runs, verdicts = _regressions(records)
    common = {
        "n_records": len(records), "reference": REFERENCE_MODEL, "generator": site.GENERATOR,
        "styles": _static("report.css"), "script": _static("report.js"),
    }  # fmt: skip
    options = {key: filters.options(board, key) for key in filters.CHOICES}
    files["index.html"] = env.get_template("index.html.j2").render(
        root="", page="index", groups=groups, columns=cells.LEADERBOARD, options=options,
        sections=_figures(newest), min_points=MIN_POINTS, runs=runs, **common,
    )  # fmt: skip
    book = ledgers.ledger(newest)
    book["href"] = ["models/" + slug(m) + ".html" if m in by_model else "" for m in book["model"]]
    files["ledger.csv"] = to_csv(book.drop(columns=["href"]))
    counts, trained = ledgers.summary(book), ledgers.trained_here(newest)
    if not trained.empty:
        trained["href"] = ["models/" + slug(m) + ".html" for m in trained["model"]]
        files["trained-here.csv"] = to_csv(trained.drop(columns=["href"]))
    own, other = book[book["variant"] == ""], book[book["variant"] != ""]
    ratios = own[own["paper_vs_ref"].notna()]
    files["ledger.html"] = env.get_template("ledger.html.j2").render(
        root="", page="ledger", columns=cells.LEDGER, rows=cells.cells(own, cells.LEDGER),
        summary_columns=cells.SUMMARY, summary=cells.cells(counts, cells.SUMMARY),
        rule_columns=cells.RULES, rules=cells.cells(ledgers.rules(), cells.RULES),
        variant_columns=cells.VARIANTS, variants=cells.cells(other, cells.VARIANTS),
        ratio_columns=cells.RATIOS, ratios=cells.cells(ratios, cells.RATIOS),
        trained_columns=cells.TRAINED, trained=cells.cells(trained, cells.TRAINED), **common,
    )  # fmt: skip
    if not verdicts.empty:
        files["regressions.csv"] = to_csv(verdicts)
    files["regressions.html"] = env.get_template("regressions.html.j2").render(
        root="", page="regressions", runs=runs, columns=REGRESSION_COLUMNS, csv=not verdicts.empty, **common
    )
    sources = _sources(records)
    files["machines.csv"] = to_csv(sources)
    source_columns = auto_columns(sources)
    trust = selfcheck.table(checks)
    trust_columns = auto_columns(trust)
    if not trust.empty:
        files["selfchecks.csv"] = to_csv(trust)
    files["machines.html"] = env.get_template("machines.html.j2").render(
        root="", page="machines", machines=_machines(records), columns=source_columns,
        rows=cells.cells(sources, source_columns), skipped=list(skipped), check_columns=trust_columns,
        check_rows=cells.cells(trust, trust_columns), **common,
    )  # fmt: skip
    steps_by_model: dict[str, list] = defaultdict(list)
    for key, steps in history.histories(records).items():
        steps_by_model[key[1][0]].append((key, steps))
    model_links = []
    template = env.get_template("model.html.j2")
    every_by_model: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        every_by_model[record.model].append(record)
    for name in sorted(by_model):
        context, csvs = _model_page(
            name, by_model[name], every_by_model[name], steps_by_model.get(name, []), book
        )
        files.update({f"models/{k}": v for k, v in csvs.items()})
        files[f"models/{slug(name)}.html"] = template.render(root="../", page="model", **context, **common)
        card = card_or_none(name)
        bench = [r.group for r in by_model[name] if isinstance(r, BenchRecord)]
        group = bench[0] if bench else card.group if card else ""
        model_links.append({"name": name, "href": f"models/{slug(name)}.html", "group": group})
    files["models.html"] = env.get_template("models.html.j2").render(
        root="", page="models", models=model_links, **common
    )
    return files


@contextlib.contextmanager
def _no_cycle_collection():
    """The report makes millions of small objects (records, rows, cells, strings) and keeps most of them to
    the end; none needs the cycle collector, which would walk the growing heap again and again (a quarter of
    the load time at 36,000 records). Off while rendering, as it was after; reference counting still frees
    everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def render_report(inputs: list[Path], out_dir: Path) -> Path:
    """Render the report for the records in `inputs` (files or folders) into the folder `out_dir`, replacing
    a previous report there whole (reports.site); returns its index.html. The target is checked first."""
    out_dir = Path(out_dir)
    site.check_target(out_dir)
    with _no_cycle_collection():
        records, skipped = load(inputs)
        calibrations = intervals.find(inputs)  # latency intervals widened across runs, as load_results does
        records = [intervals.calibrated(r, calibrations) for r in records]
        site.write_site(build_site(records, skipped, selfcheck.find(inputs)), out_dir)
    return out_dir / "index.html"
