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
from reports import ledger as ledgers
from reports.load import load
from reports.tables import (
    bench_records,
    card_or_none,
    leaderboard,
    model_history,
    pareto_sections,
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


def _index_plots(records: list) -> list[dict]:
    """The Pareto sets of reports.tables.pareto_sections, drawn: each set within one condition."""
    return [
        {
            "title": section["title"],
            "left_out": section["left_out"],
            "svgs": [
                _svg(
                    plots.pareto(
                        p.rows, p.x, p.y, title=p.title, xlabel=p.xlabel, ylabel=p.ylabel,
                        y_higher_better=p.y_higher_better, kind="kind", label="label", logy=p.logy,
                    )
                )
                for p in section["sets"]
            ],
        }
        for section in pareto_sections(records, MIN_POINTS)
    ]  # fmt: skip


def _sources(records: list) -> pd.DataFrame:
    """Provenance per results file: machine, hardware, commits, time span, what it holds."""
    rows = []
    by_file: dict[str, list] = {}
    for r in records:
        by_file.setdefault(r.source, []).append(r)
    for name, recs in sorted(by_file.items()):
        envs = [r.env for r in recs]
        stamps = sorted(e.timestamp for e in envs)
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


def _machines(records: list) -> list[dict]:
    newest: dict[str, dict] = {}
    for r in records:
        machine = str(r.machine)
        if machine not in newest or r.timestamp >= str(newest[machine].get("timestamp", "")):
            newest[machine] = r.env.to_dict()
    return [
        {"name": name, "env": sorted((str(k), str(v)) for k, v in env.items())}
        for name, env in sorted(newest.items())
    ]


def _model_page(records: list, name: str, book: pd.DataFrame) -> tuple[dict, dict[str, str]]:
    """Context for one model's page and its CSV files (name -> text)."""
    history = model_history(records, name)
    tables = []
    csvs = {}
    claims = details.claims(book, name)
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
    claim_rows = cells.cells(claims, cells.CLAIMS)
    context = {"name": name, "card": card_or_none(name), "tables": tables, "scaling": scaling}
    return {**context, "claims": claim_rows, "claim_columns": cells.CLAIMS}, csvs


def build_site(records: list, skipped: list[str] = (), checks: list[tuple[str, dict]] = ()) -> dict[str, str]:
    """Every file of the report, relative path -> text. `skipped`: files found but not results; `checks`:
    the self-check files found (`reports.selfcheck.find`)."""
    env = _environment()
    board = leaderboard(records, checks)
    names = sorted({r.model for r in records})
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
            groups.append({"name": group, "rows": cells.cells(rows, cells.LEADERBOARD), "csv": csv})
    book = ledgers.ledger(records)
    book["href"] = ["models/" + slug(m) + ".html" if m in names else "" for m in book["model"]]
    files["ledger.csv"] = to_csv(book.drop(columns=["href"]))
    counts, trained = ledgers.summary(book), ledgers.trained_here(records)
    if not trained.empty:
        trained["href"] = ["models/" + slug(m) + ".html" for m in trained["model"]]
        files["trained-here.csv"] = to_csv(trained.drop(columns=["href"]))
    own, other = book[book["variant"] == ""], book[book["variant"] != ""]
    ratios = own[own["paper_vs_ref"].notna()]
    sources = _sources(records)
    files["machines.csv"] = to_csv(sources)
    options = {
        key: sorted({str(v) for v in board[key]}) if not board.empty else []
        for key in ("machine", "device", "precision")
    }
    common = {"n_records": len(records), "reference": REFERENCE_MODEL}
    files["index.html"] = env.get_template("index.html.j2").render(
        root="", page="index", groups=groups, columns=cells.LEADERBOARD, options=options,
        figures=_index_plots(records), min_points=MIN_POINTS, **common,
    )  # fmt: skip
    files["ledger.html"] = env.get_template("ledger.html.j2").render(
        root="", page="ledger", columns=cells.LEDGER, rows=cells.cells(own, cells.LEDGER),
        summary_columns=cells.SUMMARY, summary=cells.cells(counts, cells.SUMMARY),
        rule_columns=cells.RULES, rules=cells.cells(ledgers.rules(), cells.RULES),
        variant_columns=cells.VARIANTS, variants=cells.cells(other, cells.VARIANTS),
        ratio_columns=cells.RATIOS, ratios=cells.cells(ratios, cells.RATIOS),
        trained_columns=cells.TRAINED, trained=cells.cells(trained, cells.TRAINED), **common,
    )  # fmt: skip
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
    model_links = []
    for name in names:
        context, csvs = _model_page(records, name, book)
        files.update({f"models/{k}": v for k, v in csvs.items()})
        files[f"models/{slug(name)}.html"] = env.get_template("model.html.j2").render(
            root="../", page="model", **context, **common
        )
        card = card_or_none(name)
        group = next((r.group for r in bench_records(records) if r.model == name), card.group if card else "")
        model_links.append({"name": name, "href": f"models/{slug(name)}.html", "group": group or ""})
    files["models.html"] = env.get_template("models.html.j2").render(
        root="", page="models", models=model_links, **common
    )
    return files


def build_page(records: list) -> str:
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
