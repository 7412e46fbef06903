"""Render the static report: index (leaderboards, Pareto plots), ledger, one page per model, machines, CSVs.

Every page is self-contained (inline CSS, JS and SVG; no network), autoescaped, and a pure function of the
records: no clock, no absolute paths beyond the results files' names, so the same results give the same
bytes. Files are written atomically; a CSV of every table sits beside the page that shows it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from bench.conditions import REFERENCE_MODEL
from bench.store import write_atomic
from reports import cells, details, plots, selfcheck
from reports.ledger import ledger
from reports.load import load
from reports.scaling import crossovers, scaling_fits
from reports.tables import (
    bench_records,
    card_or_none,
    leaderboard,
    miou_points,
    model_history,
)

_TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,  # every string from a results file is data, never markup
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def slug(name: str) -> str:
    """A file name for a model page: the name where it is already safe, else a sanitised name + hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if safe == name and not name.startswith("."):
        return name
    return f"{safe.strip('.')[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def auto_columns(frame: pd.DataFrame) -> list[cells.Col]:
    """Columns for a detail table: every field, numbers right-aligned, the error shown under the status."""
    return [
        cells.Col(k, k.replace("_", " "), 3, num=pd.api.types.is_numeric_dtype(frame[k]))
        for k in frame.columns
        if k != "error"
    ]


def _svg(text: str) -> Markup:
    # Our own matplotlib output, with text drawn as paths: no string from a results file is markup in it.
    return Markup(text)


MIN_POINTS = 2  # a plot of one model has no frontier to show; such a set is named in a note instead


def _by_count(frame: pd.DataFrame, column: str) -> tuple[list[str], list[str]]:
    """Values of `column` with at least MIN_POINTS models (most models first, then by name), and the rest."""
    counts = frame.groupby(column)["model"].nunique()
    ordered = sorted(counts.index, key=lambda d: (-counts[d], str(d)))
    return [d for d in ordered if counts[d] >= MIN_POINTS], [d for d in ordered if counts[d] < MIN_POINTS]


def _index_plots(board: pd.DataFrame) -> list[dict]:
    """Per (machine, device, precision): mIoU vs latency per dataset, MACs vs latency per group; then
    params vs mIoU per dataset. mIoU on different datasets, and groups measured at different input sizes,
    do not share an axis."""
    if board.empty:
        return []
    ok = board[board["status"] == "ok"].copy()
    ok["label"] = ok["model"] + " " + ok["input"]
    points = miou_points(board)
    if not points.empty:
        points["label"] = points["model"] + " " + points["input"]
    out = []
    for (machine, device, precision), rows in ok.groupby(["machine", "device", "precision"], sort=True):
        where = f"{machine} · {device} · {precision}"
        svgs, left_out = [], []
        if not points.empty:
            here = (points["machine"] == machine) & (points["device"] == device)
            mine = points[here & (points["precision"] == precision)]
            datasets, few = _by_count(mine, "plot_dataset") if not mine.empty else ([], [])
            left_out += [f"mIoU on {d}" for d in few]
            for dataset in datasets:
                svgs.append(
                    _svg(
                        plots.pareto(
                            mine[mine["plot_dataset"] == dataset], "latency_p50_ms", "miou_value",
                            title=f"mIoU ({dataset}) vs latency · {where}", xlabel="median latency (ms)",
                            ylabel=f"mIoU on {dataset} (%)", y_higher_better=True, kind="miou_kind",
                            label="label", logy=False,
                        )
                    )
                )  # fmt: skip
        groups, few = _by_count(rows, "group")
        left_out += [f"MACs of {g}" for g in few]
        for group in groups:
            svgs.append(
                _svg(
                    plots.pareto(
                        rows[rows["group"] == group], "latency_p50_ms", "gmacs",
                        title=f"MACs vs latency · {group} · {where}", xlabel="median latency (ms)",
                        ylabel="GMACs (fvcore)", label="label",
                    )
                )
            )  # fmt: skip
        out.append({"title": where, "svgs": svgs, "left_out": left_out})
    if not points.empty:
        per_model = points.sort_values(["model", "machine"]).drop_duplicates("model")
        per_model = per_model.dropna(subset=["params_m"])
        datasets, few = _by_count(per_model, "plot_dataset")
        svgs = [
            _svg(
                plots.pareto(
                    per_model[per_model["plot_dataset"] == dataset], "params_m", "miou_value",
                    title=f"mIoU ({dataset}) vs params", xlabel="parameters (M)",
                    ylabel=f"mIoU on {dataset} (%)", y_higher_better=True, kind="miou_kind",
                    label="model", logy=False,
                )
            )
            for dataset in datasets
        ]  # fmt: skip
        out.append(
            {"title": "mIoU against parameters", "svgs": svgs, "left_out": [f"mIoU on {d}" for d in few]}
        )
    return out


def _sources(records: list[dict]) -> pd.DataFrame:
    """Provenance per results file: machine, hardware, commits, time span, what it holds."""
    rows = []
    by_file: dict[str, list[dict]] = {}
    for r in records:
        by_file.setdefault(r.get("source_file", ""), []).append(r)
    for name, recs in sorted(by_file.items()):
        envs = [r["env"] for r in recs]
        stamps = sorted(str(e.get("timestamp", "")) for e in envs)
        statuses = pd.Series([r["status"] for r in recs]).value_counts().sort_index()
        rows.append(
            {
                "file": name,
                "machine": ", ".join(sorted({str(e.get("machine")) for e in envs})),
                "cpu": ", ".join(sorted({str(e.get("cpu")) for e in envs})),
                "gpu": ", ".join(sorted({str(e["gpu"].get("name")) for e in envs if e.get("gpu")})) or "none",
                "commits": ", ".join(
                    sorted(
                        {
                            (e.get("git_commit") or "")[:10] + ("+dirty" if e.get("git_dirty") else "")
                            for e in envs
                        }
                    )
                ),
                "first": stamps[0],
                "last": stamps[-1],
                "records": len(recs),
                "statuses": ", ".join(f"{k} {v}" for k, v in statuses.items()),
                "torch": ", ".join(sorted({str(e.get("torch")) for e in envs})),
            }
        )
    return pd.DataFrame(rows)


def _machines(records: list[dict]) -> list[dict]:
    newest: dict[str, dict] = {}
    for r in records:
        machine = str(r["env"].get("machine"))
        if machine not in newest or str(r["env"].get("timestamp", "")) >= str(
            newest[machine].get("timestamp", "")
        ):
            newest[machine] = r["env"]
    return [
        {"name": name, "env": sorted((str(k), str(v)) for k, v in env.items())}
        for name, env in sorted(newest.items())
    ]


def _model_page(records: list[dict], name: str) -> tuple[dict, dict[str, str]]:
    """Context for one model's page and its CSV files (name -> text)."""
    history = model_history(records, name)
    tables = []
    csvs = {}
    if not history.empty:
        csvs[f"{slug(name)}-history.csv"] = to_csv(history)
        tables.append(
            {
                "id": "history", "title": "Every record, oldest first (history across commits)",
                "columns": cells.HISTORY, "rows": cells.cells(history, cells.HISTORY),
                "csv": f"{slug(name)}-history.csv",
            }
        )  # fmt: skip
    for key, title, frame in (
        ("evaluations", "Accuracy evaluations", details.evaluations(records, name)),
        ("flops", "FLOP counters' agreement (fvcore vs torch.utils.flop_counter)",
         details.flop_agreement(records, name)),
        ("agreement", "Output agreement of each backend against eager fp32",
         details.output_agreement(records, name)),
        ("hardware", "Hardware state, roofline and memory by method", details.hardware_state(records, name)),
        ("scaling", "Power-law fits of cost against input pixels (exponent; r2 on the log scale)",
         scaling_fits(records, name)),
    ):  # fmt: skip
        if frame.empty:
            tables.append({"id": key, "title": title, "columns": [], "rows": [], "csv": ""})
            continue
        columns = auto_columns(frame)
        csvs[f"{slug(name)}-{key}.csv"] = to_csv(frame)
        tables.append(
            {
                "id": key, "title": title, "columns": columns, "rows": cells.cells(frame, columns),
                "csv": f"{slug(name)}-{key}.csv",
            }
        )  # fmt: skip
    scaling = _svg(plots.scaling(history, f"{name}: cost against input size")) if not history.empty else ""
    return {"name": name, "card": card_or_none(name), "tables": tables, "scaling": scaling}, csvs


def build_site(
    records: list[dict], skipped: list[str] = (), checks: list[tuple[str, dict]] = ()
) -> dict[str, str]:
    """Every file of the report, relative path -> text. `skipped`: files found but not results; `checks`:
    the self-check files found (`reports.selfcheck.find`)."""
    env = _environment()
    board = leaderboard(records)
    files: dict[str, str] = {}
    groups = []
    if not board.empty:
        board["href"] = ["models/" + slug(m) + ".html" for m in board["model"]]
        board["miou_source"] = [
            " · ".join(x for x in (d, f"weights: {w}" if w else "") if x)
            for d, w in zip(board["miou_dataset"], board["miou_weights"], strict=True)
        ]
        for group, rows in board.groupby("group", sort=True):
            csv = f"leaderboard-{slug(str(group))}.csv"
            files[csv] = to_csv(rows.drop(columns=["href", "miou_source"]))
            crossing = crossovers(records, str(group))  # where one model overtakes another
            crossing_columns = auto_columns(crossing) if not crossing.empty else []
            groups.append(
                {"name": group, "rows": cells.cells(rows, cells.LEADERBOARD), "csv": csv,
                 "crossovers": cells.cells(crossing, crossing_columns), "crossover_columns": crossing_columns}
            )  # fmt: skip
    book = ledger(records)
    book["href"] = ["models/" + slug(m) + ".html" for m in book["model"]]
    files["ledger.csv"] = to_csv(book.drop(columns=["href"]))
    sources = _sources(records)
    files["machines.csv"] = to_csv(sources)
    options = {
        key: sorted({str(v) for v in board[key]}) if not board.empty else []
        for key in ("machine", "device", "precision")
    }
    common = {"n_records": len(records), "reference": REFERENCE_MODEL}
    files["index.html"] = env.get_template("index.html.j2").render(
        root="", page="index", groups=groups, columns=cells.LEADERBOARD, options=options,
        figures=_index_plots(board), min_points=MIN_POINTS, **common,
    )  # fmt: skip
    files["ledger.html"] = env.get_template("ledger.html.j2").render(
        root="", page="ledger", columns=cells.LEDGER, rows=cells.cells(book, cells.LEDGER), **common
    )
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
    names = sorted({r["model"] for r in records})
    model_links = []
    for name in names:
        context, csvs = _model_page(records, name)
        files.update({f"models/{k}": v for k, v in csvs.items()})
        files[f"models/{slug(name)}.html"] = env.get_template("model.html.j2").render(
            root="../", page="model", **context, **common
        )
        group = next((r.get("group") for r in bench_records(records) if r["model"] == name), "")
        model_links.append({"name": name, "href": f"models/{slug(name)}.html", "group": group or ""})
    files["models.html"] = env.get_template("models.html.j2").render(
        root="", page="models", models=model_links, **common
    )
    return files


def build_page(records: list[dict]) -> str:
    """The index page alone (kept for callers that want one string)."""
    return build_site(records)["index.html"]


def render_report(inputs: list[Path], out_dir: Path) -> Path:
    """Render the report for the records in `inputs` (files or folders) into `out_dir`; returns index.html.

    The index is written last, so a reader who opens it finds every page it links to.
    """
    out_dir = Path(out_dir)
    files = build_site(*load(inputs), selfcheck.find(inputs))
    for name, text in sorted(files.items()):
        if name != "index.html":
            write_atomic(out_dir / name, text)
    index = out_dir / "index.html"
    write_atomic(index, files["index.html"])
    return index
