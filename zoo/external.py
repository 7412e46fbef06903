"""Models from the libraries people build with, named by a spec instead of registered:

    smp:<Arch>:<encoder>   segmentation-models-pytorch, e.g. smp:Unet:resnet34,
                           smp:DeepLabV3Plus:efficientnet-b0 (any smp encoder, or tu-<timm model>)
    torchvision:<builder>  torchvision.models.segmentation, e.g. torchvision:lraspp_mobilenet_v3_large
    hf:<name>              Hugging Face transformers, built from the library's config class:
                           hf:segformer-b0 .. hf:segformer-b5, hf:upernet-convnext-tiny (sizes below, sourced)
    timm:<model>           a timm ImageNet classifier, e.g. timm:resnet18 (logits [N, C], as zoo backbones)

Each is built with random initialisation and nothing is downloaded: smp with `encoder_weights=None`,
torchvision with `weights=None, weights_backbone=None`, transformers from a config object (never
`from_pretrained`), timm with `pretrained=False`. `ExternalModel` puts each under the zoo's forward
contract: the logits are taken out of the library's output dict (torchvision "out", transformers "logits")
and, where the library returns them at a lower resolution (SegFormer: 1/4), upsampled bilinearly to the
input size inside the model, as the libraries' own post-processing does, so that cost is measured.
`zoo.create_inference_model` pads the input to the multiple the architecture declares (smp: its encoder's
output stride where the model says `requires_divisible_input_shape`; smp's Unet takes any size), as it
does for zoo models.

Deliberate differences from the libraries' defaults: training-only auxiliary heads are not built
(torchvision `aux_loss=False`, UperNet `use_auxiliary_head=False`), and num_classes defaults to 19
(Cityscapes, as the zoo's segmentation models; smp's default is 1) and to 1000 for timm classifiers.
Other keyword arguments of `create_model` go to the library's builder (to the config class for hf).

These models form the group "external" and have no card, so no paper claims are attached to them. The
libraries are optional: `pip install 'segbench[external]'` adds segmentation-models-pytorch and
transformers (timm and torchvision are core dependencies).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import MissingLibraryError, UnknownModelError

DEFAULT_INPUT_HW = (512, 512)  # where the library documents no input size for the model
EXTRA = "pip install 'segbench[external]'"


class ExternalModel(nn.Module):
    """A library's model under the zoo's contract: forward(x[N,3,H,W]) -> logits [N,C,H,W] at the input size
    ([N, C] for a classifier). `output_key` picks the logits out of a dict-like output; `input_divisor` is the
    multiple that H and W must be (zoo.create_inference_model pads to it)."""

    def __init__(self, model: nn.Module, output_key: str | None = None, input_divisor: int = 1):
        super().__init__()
        self.model = model
        self.output_key = output_key
        self.input_divisor = input_divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.output_key is not None:
            out = out[self.output_key]
        if out.dim() == 4 and out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out


# --- segmentation-models-pytorch ---


def _smp_archs(smp: ModuleType) -> dict[str, type]:
    return {cls.__name__: cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}


def _smp_check(smp: ModuleType, arch: str, encoder: str) -> None:
    archs = _smp_archs(smp)
    if arch not in archs:
        raise UnknownModelError(f"unknown smp architecture {arch!r} (expected one of {', '.join(archs)})")
    if encoder.startswith("tu-"):
        import timm

        if not timm.is_model(encoder[3:]):
            raise UnknownModelError(f"unknown smp encoder {encoder!r}: {encoder[3:]!r} is not a timm model")
    elif encoder not in (names := smp.encoders.get_encoder_names()):
        raise UnknownModelError(
            f"unknown smp encoder {encoder!r} (expected one of {', '.join(names)}, or tu-<timm model>)"
        )


def _smp_build(smp: ModuleType, num_classes: int, arch: str, encoder: str, **kwargs) -> ExternalModel:
    model = _smp_archs(smp)[arch](encoder_name=encoder, encoder_weights=None, classes=num_classes, **kwargs)
    divisor = model.encoder.output_stride if model.requires_divisible_input_shape else 1
    return ExternalModel(model, input_divisor=divisor)


# --- torchvision ---


def _tv_builders(tv: ModuleType) -> list[str]:
    return tv.models.list_models(module=tv.models.segmentation)


def _tv_check(tv: ModuleType, builder: str) -> None:
    if builder not in (names := _tv_builders(tv)):
        raise UnknownModelError(
            f"unknown torchvision segmentation builder {builder!r} (expected one of {', '.join(names)})"
        )


def _tv_build(tv: ModuleType, num_classes: int, builder: str, **kwargs) -> ExternalModel:
    build = tv.models.get_model_builder(builder)
    if "aux_loss" in inspect.signature(build).parameters:  # lraspp has no auxiliary head
        kwargs = {"aux_loss": False, **kwargs}
    model = build(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    return ExternalModel(model, output_key="out")


# --- Hugging Face transformers ---


class SegformerSize(NamedTuple):
    hidden_sizes: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    decoder_hidden_size: int
    input_hw: tuple[int, int]


# SegFormer (Xie et al., NeurIPS 2021, arXiv 2105.15203), official code NVlabs/SegFormer@073b02d: widths
# and depths of MiT-B0..B5 from mmseg/models/backbones/mix_transformer.py (mit_b0..mit_b5), the MLP
# decoder's width (`decoder_params.embed_dim`) and the input (crop) size from the ADE20K configs
# local_configs/segformer/B*/segformer.b*.512x512.ade.160k.py (B5: segformer.b5.640x640.ade.160k.py).
# Common to every size: heads (1, 2, 5, 8), reduction ratios (8, 4, 2, 1), patch sizes (7, 3, 3, 3),
# strides (4, 2, 2, 2), MLP ratio 4. At 150 classes these build the paper's Table 1 parameter counts
# (3.8, 13.7, 27.5, 47.3, 64.1, 84.7 M), which tests/zoo/test_external.py checks.
SEGFORMER_SIZES = {
    "b0": SegformerSize((32, 64, 160, 256), (2, 2, 2, 2), 256, (512, 512)),
    "b1": SegformerSize((64, 128, 320, 512), (2, 2, 2, 2), 256, (512, 512)),
    "b2": SegformerSize((64, 128, 320, 512), (3, 4, 6, 3), 768, (512, 512)),
    "b3": SegformerSize((64, 128, 320, 512), (3, 4, 18, 3), 768, (512, 512)),
    "b4": SegformerSize((64, 128, 320, 512), (3, 8, 27, 3), 768, (512, 512)),
    "b5": SegformerSize((64, 128, 320, 512), (3, 6, 40, 3), 768, (640, 640)),
}


def _segformer(size: SegformerSize) -> Callable[..., nn.Module]:
    def build(transformers: ModuleType, num_classes: int, **kwargs) -> nn.Module:
        config = transformers.SegformerConfig(
            num_labels=num_classes,
            hidden_sizes=list(size.hidden_sizes),
            depths=list(size.depths),
            decoder_hidden_size=size.decoder_hidden_size,
            num_attention_heads=[1, 2, 5, 8],
            sr_ratios=[8, 4, 2, 1],
            patch_sizes=[7, 3, 3, 3],
            strides=[4, 2, 2, 2],
            mlp_ratios=[4, 4, 4, 4],
            **kwargs,
        )
        return transformers.SegformerForSemanticSegmentation(config)

    return build


def _upernet_convnext_tiny(transformers: ModuleType, num_classes: int, **kwargs) -> nn.Module:
    # UperNet on ConvNeXt-T (Liu et al., CVPR 2022, arXiv 2201.03545), official code
    # facebookresearch/ConvNeXt: semantic_segmentation/configs/convnext/
    # upernet_convnext_tiny_512_160k_ade20k_ss.py@dcb9287 (depths, dims, 512x512 crop) on
    # configs/_base_/models/upernet_convnext.py@516276f (UPerHead: 512 channels, pool scales 1, 2, 3, 6).
    # The auxiliary FCN head is training-only and not built.
    backbone = transformers.ConvNextConfig(
        depths=[3, 3, 9, 3],
        hidden_sizes=[96, 192, 384, 768],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = transformers.UperNetConfig(
        backbone_config=backbone,
        num_labels=num_classes,
        hidden_size=512,
        pool_scales=[1, 2, 3, 6],
        use_auxiliary_head=False,
        **kwargs,
    )
    return transformers.UperNetForSemanticSegmentation(config)


class HFModel(NamedTuple):
    build: Callable[..., nn.Module]  # (transformers module, num_classes, **config kwargs)
    classes: tuple[str, ...]  # the transformers classes it is built from
    input_hw: tuple[int, int]  # the authors' ADE20K training crop


_SEGFORMER_CLASSES = ("SegformerConfig", "SegformerForSemanticSegmentation")
HF_MODELS = {
    **{
        f"segformer-{k}": HFModel(_segformer(s), _SEGFORMER_CLASSES, s.input_hw)
        for k, s in SEGFORMER_SIZES.items()
    },
    "upernet-convnext-tiny": HFModel(
        _upernet_convnext_tiny,
        ("ConvNextConfig", "UperNetConfig", "UperNetForSemanticSegmentation"),
        (512, 512),
    ),
}


def _hf_check(transformers: ModuleType, name: str) -> None:
    if name not in HF_MODELS:
        raise UnknownModelError(f"unknown hf model {name!r} (expected one of {', '.join(HF_MODELS)})")
    for cls in HF_MODELS[name].classes:  # transformers imports a model's modules on first access: here,
        getattr(transformers, cls)  # so that a worker's measured build and memory peak do not include it


def _hf_build(transformers: ModuleType, num_classes: int, name: str, **kwargs) -> ExternalModel:
    return ExternalModel(HF_MODELS[name].build(transformers, num_classes, **kwargs), output_key="logits")


# --- timm ---


def _timm_check(timm: ModuleType, name: str) -> None:
    if not timm.is_model(name):
        count = len(timm.list_models())
        raise UnknownModelError(
            f"unknown timm model {name!r} (`timm.list_models()` lists the {count} known ones)"
        )


def _timm_build(timm: ModuleType, num_classes: int, name: str, **kwargs) -> ExternalModel:
    return ExternalModel(timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs))


def _timm_input_hw(name: str) -> tuple[int, int]:
    """The input size of the model's pretrained configuration (in timm's code, not downloaded)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return tuple(cfg.input_size[1:]) if cfg and cfg.input_size else (224, 224)


# --- the table of providers ---


@dataclass(frozen=True)
class Provider:
    """How models of one library are named, checked and built, and which package provides the library."""

    prefix: str
    syntax: str  # the parts after the prefix, e.g. "<Arch>:<encoder>"
    module: str  # what is imported
    package: str  # the distribution that provides it
    install: str  # how to install it
    check: Callable[..., None]  # (module, *parts): raises UnknownModelError for an unknown name
    build: Callable[..., ExternalModel]  # (module, num_classes, *parts, **kwargs)
    num_classes: int = 19
    input_hw: Callable[..., tuple[int, int]] = lambda *parts: DEFAULT_INPUT_HW

    @property
    def spec(self) -> str:
        return f"{self.prefix}:{self.syntax}"


PROVIDERS = {
    p.prefix: p
    for p in (
        Provider(
            "smp", "<Arch>:<encoder>", "segmentation_models_pytorch", "segmentation-models-pytorch", EXTRA,
            _smp_check, _smp_build,
        ),
        Provider(
            "torchvision", "<builder>", "torchvision", "torchvision", "pip install torchvision",
            _tv_check, _tv_build,
        ),
        Provider(
            "hf", "<name>", "transformers", "transformers", EXTRA, _hf_check, _hf_build,
            input_hw=lambda name: HF_MODELS[name].input_hw,
        ),
        Provider(
            "timm", "<model>", "timm", "timm", "pip install timm", _timm_check, _timm_build,
            num_classes=1000, input_hw=_timm_input_hw,
        ),
    )
}  # fmt: skip
SPECS = ", ".join(p.spec for p in PROVIDERS.values())


def is_external(name: str) -> bool:
    """Whether `name` is a library model spec (zoo names, being Python identifiers, never hold a ':')."""
    return ":" in name


def parse(name: str) -> tuple[Provider, tuple[str, ...]]:
    """'smp:Unet:resnet34' -> (the smp provider, ('Unet', 'resnet34')); nothing is imported."""
    prefix, _, rest = name.partition(":")
    provider = PROVIDERS.get(prefix)
    if provider is None:
        raise UnknownModelError(f"unknown model library {prefix!r} in {name!r} (expected one of {SPECS})")
    parts = tuple(rest.split(":"))
    if len(parts) != provider.syntax.count(":") + 1 or not all(parts):
        raise UnknownModelError(f"malformed {prefix} model {name!r}: expected {provider.spec}")
    return provider, parts


def _library(provider: Provider, name: str) -> ModuleType:
    try:
        return importlib.import_module(provider.module)
    except ImportError as exc:
        raise MissingLibraryError(f"model {name!r} needs {provider.package}: {provider.install}") from exc


def check(name: str) -> None:
    """Raise UnknownModelError for an unknown library, architecture, encoder or builder, MissingLibraryError
    (saying what to install) when the library is not installed; builds nothing, but imports what the build
    needs."""
    provider, parts = parse(name)
    provider.check(_library(provider, name), *parts)


def create_model(name: str, num_classes: int | None = None, **kwargs) -> ExternalModel:
    """Build the library's model with random initialisation (nothing downloaded), under the zoo's contract."""
    provider, parts = parse(name)
    library = _library(provider, name)
    provider.check(library, *parts)
    classes = provider.num_classes if num_classes is None else num_classes
    return provider.build(library, classes, *parts, **kwargs)


def input_hw(name: str) -> tuple[int, int]:
    """The input size the library documents for the model, else DEFAULT_INPUT_HW."""
    check(name)
    provider, parts = parse(name)
    return tuple(provider.input_hw(*parts))
