"""What a model is at one input size and batch, counted once: params, MACs by both counters, output shape.

These numbers depend on the model's code and the input, never on timing, threads, precision or the machine.
So they are computed once per (model, input size, batch) and kept as `structure` records in
`results/structure/<model>.jsonl` (bench.store.Layout), keyed by a digest of the model's structure: the
module tree (`repr`), the state_dict layout, the source of every module class defined in this repository,
and the versions of the libraries that build or count it. Any change to one of them is a new digest, so a
stale count is never reused. A sweep looks a cell's structure up instead of recounting it inside the cell,
and the ledger counts MACs at a paper claim's own input size (`segbench structure --claims`).
"""

from __future__ import annotations

import hashlib
import inspect
from importlib import metadata
from pathlib import Path

import torch

import zoo
from bench.env import REPO_ROOT, collect_env
from bench.measure.flops import flop_report
from bench.measure.params import count_params
from bench.records import SCHEMA_VERSION, StructureRecord, from_dict
from bench.store import Layout, append_record, read_records

# Libraries whose code builds a model or counts its MACs: their versions are part of the digest.
_VERSIONED = ("torch", "torchvision", "timm", "fvcore", "segmentation-models-pytorch", "transformers")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """The versions of the libraries that build or count a model here (part of every digest)."""
    return {package: _version(package) for package in _VERSIONED}


def structure_digest(model: torch.nn.Module, versions: dict[str, str | None] | None = None) -> str:
    """A short sha256 of everything that decides the model's structure and its counts. `versions`: the
    library versions to hash instead of this machine's (`library_versions()`), so that a record counted
    elsewhere (its `digest_versions`) can be checked against this machine's build of the same model."""
    h = hashlib.sha256(repr(model).encode())
    for key, tensor in model.state_dict().items():
        h.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    sources = set()
    for module in model.modules():
        try:
            path = Path(inspect.getsourcefile(type(module)) or "").resolve()
        except TypeError:  # a builtin
            continue
        if REPO_ROOT in path.parents:
            sources.add(path)
    for path in sorted(sources):
        h.update(path.relative_to(REPO_ROOT).as_posix().encode() + path.read_bytes())
    versions = library_versions() if versions is None else versions
    h.update(repr([(p, versions.get(p)) for p in _VERSIONED]).encode())
    return h.hexdigest()[:16]


def _build(
    name: str, input_hw: tuple[int, int], batch: int, device: str = "cpu"
) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return zoo.create_inference_model(name).to(device), torch.randn(batch, 3, *input_hw, device=device)


def measure_structure(
    name: str, input_hw: tuple[int, int], batch: int = 1, model=None, device: str = "cpu"
) -> StructureRecord:
    """Count one model's structure at `input_hw` and `batch` (a seeded build on `device` unless `model` is
    given: the counts do not depend on the device, the time to make them does); a failure (a model that
    cannot run at this size) is a record with status "error"."""
    if model is None:
        model, x = _build(name, input_hw, batch, device)
    else:
        x = torch.randn(batch, 3, *input_hw, device=device)
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": "structure",
        "model": name,
        "input_hw": list(input_hw),
        "batch": batch,
        "digest": structure_digest(model),
        "digest_versions": library_versions(),
        "status": "ok",
        "error": None,
        "params": count_params(model, include_aux=False),
        "params_total": count_params(model),
        "env": {k: v for k, v in collect_env("cpu").items() if k != "calibration"},
    }
    try:
        with torch.inference_mode():
            record["output_shape"] = list(model(x).shape)
        record.update(flop_report(model, x))
    except Exception as exc:  # noqa: BLE001 - a model that cannot run at this size is a result
        record.update(
            status="error", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
    return from_dict(record)


class StructureStore:
    """Structure records of one results folder, looked up by (model, digest, input size, batch)."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self._known: dict[str, dict[tuple, StructureRecord]] = {}

    def _of(self, name: str) -> dict[tuple, StructureRecord]:
        if name not in self._known:
            path = self.layout.structure(name)
            records = read_records(path) if path.exists() else []
            self._known[name] = {r.key: r for r in records if isinstance(r, StructureRecord)}
        return self._known[name]

    def find(self, name: str, digest: str, input_hw, batch: int = 1) -> StructureRecord | None:
        return self._of(name).get(("structure", name, digest, tuple(input_hw), batch))

    def known_digests(self, name: str, input_hw, batch: int = 1) -> frozenset[str]:
        """The digests of the model's structures already counted at this input size and batch."""
        hw = tuple(input_hw)
        return frozenset(r.digest for r in self._of(name).values() if r.input_hw == hw and r.batch == batch)

    def add(self, record: StructureRecord) -> None:
        """Keep a count made elsewhere (a sweep's worker process) in the store."""
        append_record(self.layout.structure(record.model), record)
        self._of(record.model)[record.key] = record

    def ensure(self, name: str, input_hw, batch: int = 1) -> tuple[StructureRecord, bool]:
        """The model's structure at this size, counted now unless a record with its digest exists;
        (record, whether it was counted now). A new count is appended to the store."""
        model, _ = _build(name, tuple(input_hw), batch)
        found = self.find(name, structure_digest(model), input_hw, batch)
        if found is not None:
            return found, False
        record = measure_structure(name, tuple(input_hw), batch, model=model)
        self.add(record)
        return record, True
