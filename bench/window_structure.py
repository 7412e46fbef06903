"""Structure (params, MACs) for a GPU window, without counting anything in it.

A model's structure at an input does not depend on the machine, so the window reads it from the structure
records committed under results/structure/ (`segbench structure`, bench.structure) instead of counting it
in its few minutes. A record is keyed by a digest of the model's code and of the versions of the libraries
that built and counted it; a GPU machine has other library versions (its torch, torchvision, timm), so its
own digest differs even where the model is the same. So the window checks each model on the CPU at its
start (`check_models`, in a worker process): its digest computed with the record's library versions
(`digest_versions`) must equal the record's. Then the model built here has the same module tree, weights
layout and source as the one counted, and the record's counts are used, with `structure_source` saying
where they come from; else the cell's record has no structure fields, and the manifest says why.

`StructureFacts` gives the plan its MACs: a structure record at the cell's input, else the structural
baseline's count at its small input scaled by pixels and batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError
from bench.records import StructureRecord
from bench.store import Layout, read_records


def stored(results: Path, model: str) -> list[StructureRecord]:
    """The model's ok structure records under `results` (oldest first)."""
    path = Layout(Path(results)).structure(model)
    records = read_records(path) if path.exists() else []
    return [r for r in records if isinstance(r, StructureRecord) and r.ok]


def at_input(records: list[StructureRecord], hw, batch: int) -> StructureRecord | None:
    """The newest of `records` counted at this input size and batch."""
    found = [r for r in records if tuple(r.input_hw) == tuple(hw) and r.batch == batch]
    return found[-1] if found else None


@dataclass(frozen=True)
class Facts:
    """What an estimate needs of a model at one input and batch, and where it came from."""

    macs: float
    params: float
    source: str


class StructureFacts:
    """MACs and params per (model, input, batch) for the plan (see the module docstring)."""

    def __init__(self, results: Path):
        self.results = Path(results)
        self._baseline = None
        self._records: dict[str, list[StructureRecord]] = {}

    def _baseline_doc(self) -> dict:
        if self._baseline is None:
            path = self.results / "baselines" / "structure.json"
            try:
                self._baseline = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the structural baseline {path}: {exc}") from None
        return self._baseline

    def record(self, model: str, hw, batch: int) -> StructureRecord | None:
        if model not in self._records:
            self._records[model] = stored(self.results, model)
        return at_input(self._records[model], hw, batch)

    def params(self, model: str) -> float:
        """The model's parameter count (params_total) from the structural baseline."""
        entry = self._baseline_doc()["models"].get(model) or {}
        return float(entry.get("params_total") or entry.get("params") or 0)

    def of(self, model: str, hw, batch: int) -> Facts:
        record = self.record(model, hw, batch)
        if record is not None and record.macs:
            params = record.get("params_total") or record.get("params") or 0
            return Facts(float(record.macs), float(params), f"structure record {hw[0]}x{hw[1]} b{batch}")
        doc = self._baseline_doc()
        entry = doc["models"].get(model)
        if entry is None:
            raise UsageError(f"{model} is not in the structural baseline: run `segbench baseline --update`")
        bh, bw = doc["input_hw"]
        scale = hw[0] * hw[1] / (bh * bw) * batch
        params = entry.get("params_total") or entry["params"]
        return Facts(entry["macs"] * scale, float(params), f"baseline {bh}x{bw} x pixels")


def candidates(results: Path, models: list[str]) -> dict[str, list[tuple[str, dict | None]]]:
    """Per model, the distinct (digest, digest_versions) of its committed structure records: what
    `check_models` compares this machine's build against."""
    out = {}
    for model in models:
        seen = {}
        for record in stored(results, model):
            seen.setdefault(record.digest, record.get("digest_versions"))
        out[model] = list(seen.items())
    return out


def check_models(wanted: dict[str, list[tuple[str, dict | None]]]) -> dict[str, dict]:
    """In a worker: build each model on the CPU (seeded, as counted) and say which of its committed digests
    it has: {model: {"digest": this machine's digest, "matches": [committed digests that match]}}. A record
    without `digest_versions` matches only this machine's own digest."""
    import torch

    import zoo
    from bench.structure import structure_digest

    torch.set_num_threads(1)
    out = {}
    for model, digests in wanted.items():
        torch.manual_seed(0)
        built = zoo.create_inference_model(model)
        here = structure_digest(built)
        matches = [
            d for d, versions in digests if (structure_digest(built, versions) if versions else here) == d
        ]
        out[model] = {"digest": here, "matches": matches}
        del built
    return out


def for_cell(results: Path, checked: dict[str, dict], model: str, hw, batch: int):
    """(the committed record to use for this cell or None, why not / where from)."""
    record = at_input(stored(results, model), hw, batch)
    if record is None:
        return None, f"no structure record at {hw[0]}x{hw[1]} b{batch}: run `segbench structure`"
    check = checked.get(model)
    if check is None:
        return None, "this machine's build of the model was not checked"
    if record.digest not in check["matches"]:
        return None, f"the model changed since its structure was counted (digest {record.digest})"
    torch_version = (record.get("digest_versions") or {}).get("torch") or record.env.torch
    return record, f"structure record {record.digest}, counted on {record.machine} with torch {torch_version}"
