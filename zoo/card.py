"""Model cards: what a paper claims about a model, each number with its conditions and source.

Paper numbers live only here; measured numbers live only in results. A card is frozen data, checked by
`tests/zoo/test_cards.py`: every reported number names its source.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

GROUPS = ("backbone", "portrait", "realtime", "semantic")
EXTERNAL_GROUP = "external"  # models built by name from another library (zoo.external): no card

# What a `Reported.metric` may be, and the unit its `value` is in.
METRIC_UNITS = {
    "params": "M",  # millions of parameters
    "macs": "G",  # billions of multiply-adds (one per multiply-add, fvcore's convention)
    "flops": "G",  # billions of "FLOPs" as the paper states them; `convention` says what they count
    "fps": "1/s",
    "latency_ms": "ms",
    "miou": "%",
    "top1": "%",
}


@dataclass(frozen=True)
class Paper:
    title: str
    venue: str
    year: int
    arxiv: str | None = None  # arXiv id, e.g. "1801.04381"
    doi: str | None = None

    @property
    def url(self) -> str | None:
        if self.arxiv:
            return f"https://arxiv.org/abs/{self.arxiv}"
        if self.doi:
            return f"https://doi.org/{self.doi}"
        return None


@dataclass(frozen=True)
class Reported:
    """One number a paper (or its official code) reports, with the conditions it was obtained under.

    `source` says where exactly: "paper Table 3", "paper abstract", or "<repo>@<commit>:<file>".
    For `flops`, `convention` says whether the paper's "FLOPs" are multiply-adds (MACs) or 2 x MACs.
    `variant` names the network the number belongs to when it is not this model's (see the field).
    """

    metric: str
    value: float
    source: str
    input_hw: tuple[int, int] | None = None
    dataset: str | None = None  # e.g. "Cityscapes", "ImageNet-1k"
    split: str | None = None  # e.g. "val", "test"
    protocol: str | None = None  # e.g. "single-scale", "ms+flip"
    device: str | None = None  # e.g. "GTX 1080Ti", "Snapdragon 855 (1 thread)"
    backend: str | None = None  # e.g. "PyTorch", "TensorRT 5.1.5", "PaddleLite"
    precision: str | None = None  # e.g. "fp32", "fp16"
    convention: str | None = None  # FLOPs convention, e.g. "multiply-adds" or "2 x multiply-adds"
    # Set when the number was measured on another network than this registry id builds (another depth,
    # width, input or training set), e.g. "ResNet-101 backbone": shown on the card, never compared.
    variant: str | None = None
    note: str = ""

    @property
    def unit(self) -> str:
        return METRIC_UNITS[self.metric]


@dataclass(frozen=True)
class ModelCard:
    """Everything SegBench knows about a model without running it.

    `implementation` names the code that builds it ("torchvision 0.29 mobilenet_v2", or "segbench": ours).
    `params_rtol` is the relative tolerance within which our parameter count must match the card's reported
    `params` (tests enforce it); a larger gap is explained in `notes`, never hidden by a looser tolerance.
    `input_divisor`: input H and W must be multiples of this (the harness pads otherwise); 1 means any size.
    """

    group: str
    paper: Paper
    official_code: str | None
    implementation: str
    num_classes: int
    input_hw: tuple[int, int]
    reported: tuple[Reported, ...] = ()
    params_rtol: float = 0.05
    params_counts_aux_heads: bool = False  # whether the paper's params include training-only heads
    input_divisor: int = 1
    notes: str = ""
    name: str = field(default="", compare=False)  # filled in by the registry from the builder's name

    def reported_values(self, metric: str) -> tuple[Reported, ...]:
        return tuple(r for r in self.reported if r.metric == metric)

    @property
    def reported_params(self) -> Reported | None:
        """The params figure the tests check against (the first reported one)."""
        found = self.reported_values("params")
        return found[0] if found else None

    def to_dict(self) -> dict:
        """The card as JSON-ready data (how cards reach the report, which never imports the models)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        def hw(value):
            return tuple(value) if value is not None else None

        reported = tuple(
            Reported(**{**r, "input_hw": hw(r.get("input_hw"))}) for r in data.get("reported", ())
        )
        paper = Paper(**data["paper"])
        return cls(**{**data, "paper": paper, "reported": reported, "input_hw": hw(data["input_hw"])})
