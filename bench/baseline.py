"""The structural baseline: the deterministic facts of every registered model, committed per machine.

Params, MACs at one small fixed input, the output shape and a digest of the model card do not depend on
timing noise, so CI can compare them exactly: any difference is a change someone made, and it fails until
the baseline is updated on purpose (`nox -s baseline`, or `segbench baseline --update`). MACs are counted by
fvcore at `STRUCTURE_INPUT_HW`, small so that the whole zoo is counted in about a minute on 2 cores; their
exact value also depends on the fvcore version, which the baseline records.

Latency is not here: it is compared noise-aware by `bench.compare` (`nox -s regress`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

import zoo
from bench.errors import UsageError
from bench.measure.flops import count_macs
from bench.measure.params import count_params
from bench.store import Layout

STRUCTURE_VERSION = 1
STRUCTURE_INPUT_HW = (64, 96)  # not square, so that a transposed H/W shows; small, so CI stays cheap
RESULTS = Layout(Path(__file__).resolve().parent.parent / "results")
BASELINES_DIR = RESULTS.root / "baselines"
STRUCTURE_FILE = "structure.json"
BENCHMARKS_FILE = "benchmarks.json"
UPDATE_COMMAND = "nox -s baseline"


def card_digest(card: zoo.ModelCard) -> str:
    """A short sha256 of the card's content: any edit to a card (a number, a source, a field) changes it;
    a field the card leaves unset (None) does not count, so adding an optional field to the schema does
    not change every digest."""

    def set_only(value):
        if isinstance(value, dict):
            return {k: set_only(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [set_only(v) for v in value]
        return value

    text = json.dumps(set_only(card.to_dict()), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_structure(name: str, input_hw: tuple[int, int] = STRUCTURE_INPUT_HW) -> dict:
    """params, params_total, macs, output_shape and card digest of one registered model (seeded build)."""
    torch.manual_seed(0)
    model = zoo.create_inference_model(name)
    x = torch.randn(1, 3, *input_hw)
    with torch.inference_mode():
        output_shape = list(model(x).shape)
    macs, _ = count_macs(model, x)
    return {
        "params": count_params(model, include_aux=False),
        "params_total": count_params(model),
        "macs": macs,
        "output_shape": output_shape,
        "card_digest": card_digest(zoo.get_card(name)),
    }


def fvcore_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("fvcore")
    except metadata.PackageNotFoundError:
        return None


def compute_structure(names: list[str] | None = None, progress=None) -> dict:
    """The structural baseline document for the given (default: all registered) models.

    Counted on one thread (restored after): at this input size threads only add overhead, and on a shared
    CI machine they contend.
    """
    models = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in names or zoo.survey_models():
            models[name] = model_structure(name)
            if progress:
                progress(name)
    finally:
        torch.set_num_threads(threads)
    return {
        "structure_version": STRUCTURE_VERSION,
        "input_hw": list(STRUCTURE_INPUT_HW),
        "macs_counter": "fvcore",
        "fvcore": fvcore_version(),
        "models": models,
    }


def default_structure_path() -> Path:
    """results/baselines/structure.json: one file for every machine, since params, MACs (fvcore, CPU
    trace), output shapes and cards do not depend on the machine that counts them."""
    return RESULTS.structure_baseline()


def find_structure_baseline() -> Path | None:
    path = default_structure_path()
    return path if path.exists() else None


def read_structure(path: Path) -> dict:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read structural baseline {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("structure_version") != STRUCTURE_VERSION:
        raise UsageError(f"{path}: not a structural baseline of version {STRUCTURE_VERSION}")
    return document


def diff_structure(baseline: dict, current: dict) -> list[str]:
    """One line per difference between two structural baselines (empty: identical)."""
    lines = []
    for key in ("input_hw", "macs_counter"):
        if baseline.get(key) != current.get(key):
            lines.append(f"baseline {key} {baseline.get(key)!r} -> {current.get(key)!r}")
    old, new = baseline["models"], current["models"]
    for name in sorted(set(old) | set(new)):
        if name not in new:
            lines.append(f"{name}: removed from the registry")
        elif name not in old:
            lines.append(f"{name}: new model, not in the baseline")
        else:
            changes = [
                f"{field} {old[name].get(field)!r} -> {new[name].get(field)!r}"
                for field in sorted(set(old[name]) | set(new[name]))
                if old[name].get(field) != new[name].get(field)
            ]
            if changes:
                lines.append(f"{name}: " + "; ".join(changes))
    return lines
