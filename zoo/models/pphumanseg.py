"""PP-HumanSeg Lite (ConnectNet): an ultra-lightweight 2-class portrait segmenter.

Paper: L. Chu et al., "PP-HumanSeg: Connectivity-Aware Portrait Segmentation with a Large-Scale
Teleconferencing Video Dataset", WACV 2022 Workshops, arXiv 2112.07146.
Official code: PaddlePaddle/PaddleSeg, paddleseg/models/pphumanseg_lite.py (class `PPHumanSegLite`) at commit
d7975e7cb3b9102eae4eabcef5afb81b878473aa; the architecture is unchanged since it first appeared as `PPSegLite`
(commit d2294fbe, Jul 2021), i.e. before the paper.
Read for understanding only; this is an independent PyTorch re-implementation.

Architecture (official code):
  stem   3x3 s2 conv-BN-ReLU (36) -> 1x1 conv-BN-ReLU (18) as the skip feature at 1/2, and
         3x3 s2 max-pool (pad 1) to 1/4
  block1 ShuffleNetV2-style units: one stride-2 unit 36->72, three stride-1 units  (1/8)
  block2 one stride-2 unit 72->144, seven stride-1 units                            (1/16)
  decoder separable conv 144->64, bilinear upsample (align_corners=False) to the skip, concat (18+64),
         separable conv 82->64, separable conv 64->num_classes, bilinear upsample to the input size.
Every separable conv is depthwise 3x3 conv-BN (no activation) then pointwise 1x1 conv-BN-ReLU; convs have
no bias. The SCL connectivity loss is training-only and not part of the module.

Deviations from the official code, and why:
  - Stride-1 units of the official `InvertedResidual` also build a `_depthwise_separable_0` branch that their
    forward never uses (91,584 dead parameters). We leave it out: it cannot change any output, and Paddle's
    `paddle.flops`, which produced the README's params, only counts layers that run.
  - The last separable conv keeps the official BN + ReLU on the logits (eval logits are >= 0). Unusual but
    faithful; argmax/softmax over the classes behave as in the official deployment.
  - Returns one tensor, not the official `[logit]` list.
  - Init follows the official `init_weight` (conv ~ N(0, 0.001), BN weight 1, bias 0); the KaimingUniform
    weight_attr in the official convs is overwritten by that call, so we skip it.
  - Channel shuffle of cat([a, b]) with 2 groups is written as stack((a, b), dim=2).flatten(1, 2): the same
    interleaving a0 b0 a1 b1 ..., without reshapes that read tensor sizes.
Parameter convention: PyTorch counts 131,766 parameters; Paddle also counts each BatchNorm's moving mean and
variance as (non-trainable) parameters, +5,700, giving 137,466, the README's "137K".

Parity: tests/fixtures/parity/pphumanseg_lite.json was recorded by running the official PPHumanSegLite
(@ d7975e7) in PaddlePaddle 3.3.1 (CPU), with small shims for the paddleseg helpers it imports, on weights
filled by name. `convert_paddle` maps the official state dict (Paddle names, the never-called
`_depthwise_separable_0` branches dropped) onto ours strictly, and our logits equal Paddle's (relative
difference about 1e-6, identical argmax). It was recorded with 8 classes: with 2, the final BN + ReLU is
0 everywhere under the deterministic fill, which would test nothing.

Official weights: PaddleSeg's `.pdparams` files are Python pickles, which `load_weights` never opens (no
unpickling of untrusted data). Reading them safely would take a pickle reader restricted to numpy arrays
(what torch's weights_only does for torch files); the inference `.pdiparams` files would need a parser of
Paddle's tensor serialisation plus the `.pdmodel` program for the names. Neither is done here. Where a
Paddle environment trusts the file, export its arrays by name to .safetensors (e.g. `paddle.load(path)`, then
`safetensors.numpy.save_file`), which `load_weights(model, path, "pphumanseg_lite")` reads.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, SeparableConvBNAct, resize_to
from zoo.registry import register_model
from zoo.weights import add_bn_counters

_CODE = "PaddlePaddle/PaddleSeg"
_README_V1 = f"{_CODE}@8aa672489fc244494f0503ad5ef78d90f92974b7:contrib/PP-HumanSeg/README.md"
_README_V2 = f"{_CODE}@d7975e7cb3b9102eae4eabcef5afb81b878473aa:contrib/PP-HumanSeg/README.md"


def _sep(in_ch: int, out_ch: int, stride: int = 1) -> SeparableConvBNAct:
    # Official separable conv: depthwise conv-BN without activation, pointwise conv-BN-ReLU.
    return SeparableConvBNAct(in_ch, out_ch, 3, stride=stride, dw_act_layer=None)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit as in the official `InvertedResidual` (two branches, concat, shuffle 2 groups).

    stride 1: split channels in half; the first half passes through, the second goes 1x1 -> separable conv.
    stride 2: the whole input feeds both a separable-conv shortcut and the 1x1 -> separable-conv branch.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        branch_in = in_channels // 2 if stride == 1 else in_channels
        self.shortcut = _sep(in_channels, half, stride) if stride == 2 else nn.Identity()
        self.branch = nn.Sequential(ConvBNAct(branch_in, half, 1), _sep(half, half, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:  # fixed at construction, so tracing sees a single path
            left, right = x.chunk(2, dim=1)
        else:
            left, right = self.shortcut(x), x
        # concat + channel shuffle (2 groups) == interleave the two branches' channels
        return torch.stack((left, self.branch(right)), dim=2).flatten(1, 2)


class PPHumanSegLite(nn.Module):
    def __init__(self, num_classes: int = 2, in_channels: int = 3):
        super().__init__()
        self.conv_bn0 = ConvBNAct(in_channels, 36, 3, stride=2)
        self.conv_bn1 = ConvBNAct(36, 18, 1)  # skip feature at 1/2
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.block1 = nn.Sequential(ShuffleUnit(36, 72, 2), *(ShuffleUnit(72, 72, 1) for _ in range(3)))
        self.block2 = nn.Sequential(ShuffleUnit(72, 144, 2), *(ShuffleUnit(144, 144, 1) for _ in range(7)))
        self.depthwise_separable0 = _sep(144, 64)
        self.depthwise_separable1 = _sep(64 + 18, 64)
        self.depthwise_separable2 = _sep(64, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.conv_bn0(x)  # 1/2
        skip = self.conv_bn1(stem)
        y = self.block2(self.block1(self.pool(stem)))  # 1/16
        y = resize_to(self.depthwise_separable0(y), skip)  # bilinear, align_corners=False
        y = self.depthwise_separable1(torch.cat([skip, y], dim=1))
        return resize_to(self.depthwise_separable2(y), x)


_WEB = dict(device="AMD Radeon Pro 5300M 4GB (web)", backend="Paddle.js (graph optimized by its converter)")
_ARM = dict(device="Snapdragon 855 ARM CPU (Xiaomi 9), 1 thread", backend="PaddleLite")

CARD = ModelCard(
    group="portrait",
    paper=Paper(
        title="PP-HumanSeg: Connectivity-Aware Portrait Segmentation with a Large-Scale Teleconferencing "
        "Video Dataset",
        venue="WACV Workshops",
        year=2022,
        arxiv="2112.07146",
    ),
    official_code=f"https://github.com/{_CODE}/blob/d7975e7cb3b9102eae4eabcef5afb81b878473aa/"
    "paddleseg/models/pphumanseg_lite.py",
    implementation="segbench",
    num_classes=2,
    input_hw=(224, 398),  # README "398x224" is PaddleSeg's (w, h): config Resize target_size [398, 224]
    reported=(
        Reported(
            "params",
            0.137,
            _README_V1,
            note="'137K'; Paddle counts BN moving mean/var as parameters (PyTorch convention: 0.1318M)",
        ),
        Reported(
            "flops",
            0.266,
            _README_V1,
            input_hw=(224, 398),
            convention="multiply-adds",
            note="'266M' = paddle.flops: conv multiply-adds + 2 per BN output, resize/pool uncounted "
            "(our recount in that convention: 266,440,496)",
        ),
        Reported(
            "flops",
            0.138,
            _README_V1,
            input_hw=(162, 288),
            convention="multiply-adds",
            note="'138M' at 288x162 (w x h); our paddle.flops-style recount gives 141.4M at 162x288",
        ),
        Reported("latency_ms", 23.49, _README_V1, input_hw=(224, 398), **_WEB),
        Reported("latency_ms", 15.62, _README_V1, input_hw=(162, 288), **_WEB),
        Reported("latency_ms", 29.68, _README_V2, input_hw=(224, 398), **_ARM),
        Reported(
            "miou",
            93.60,
            _README_V2,
            input_hw=(224, 398),
            dataset="PP-HumanSeg14K",
            split="not stated in the README",
            protocol="single-scale, best input shape",
        ),
        Reported(
            "latency_ms",
            12.3,
            _README_V2,
            input_hw=(192, 192),
            **_ARM,
            note="general-human V1-Lite weights (same architecture)",
        ),
        Reported(
            "miou",
            86.02,
            _README_V2,
            input_hw=(192, 192),
            dataset="mini Supervisely Person",
            split="not stated in the README",
            protocol="single-scale",
            note="general-human V1-Lite, trained on a large human dataset",
            variant="PP-HumanSeg-Lite V1 general-human weights (another training set)",
        ),
    ),
    params_rtol=0.05,
    input_divisor=1,
    notes=(
        "All numbers are from the official README at two commits (each Reported names its own). The paper's "
        "tables (arXiv 2112.07146) could not be retrieved, so none of its numbers are here (the survey's "
        "~0.13M is consistent with ours). Params: ours 131,766 (PyTorch convention) vs the README's 137K, "
        "-3.8%: Paddle's count adds BN moving mean/var (2 x 2,850) = 137,466. Left out: the older README's "
        "192x192 row '121M FLOPs, 10.51 ms (Tesla V100)': its 121,272,192 FLOPs and 137,012 params "
        "(PaddlePaddle/PaddleSeg@a79cb15066cf154e089f0b266cd34c6422199b09:contrib/HumanSeg/README.md) are "
        "exact counts of the precursor ShuffleNetV2-slim with a ConvTranspose2d(64, 2, 2, s2) head, not this "
        "architecture (110.0M in the same convention); the 2.3 MB / 543 KB model sizes; "
        "and the 33.69 / 36.02 FPS of the PP-HumanSegV2 benchmark_en.md, which is not in this repo. "
        "Parity is checked against the official Paddle network (PaddlePaddle/PaddleSeg@d7975e7). Official "
        ".pdparams files are pickles and are not read (see the module docstring): export them by name to "
        ".safetensors in a Paddle environment that trusts them, then load with "
        "load_weights(model, path, 'pphumanseg_lite')."
    ),
)


# Paddle name fragment -> ours, applied in order (the official spells "pointwise" "piontwise").
_RENAMES = (
    (r"\._depthwise_separable_0\.", ".shortcut."),
    (r"\._depthwise_separable_1\.", ".branch.1."),
    (r"^(block\d\.\d+)\._conv\.", r"\1.branch.0."),  # a unit's 1x1 _ConvBNReLU: its own _conv, _batch_norm
    (r"\.depthwise_conv\.", ".depthwise."),
    (r"\.piontwise_conv\.", ".pointwise."),
    (r"\._conv\.", ".conv."),
    (r"\._batch_norm\.(weight|bias)$", r".bn.\1"),
    (r"\._batch_norm\._mean$", ".bn.running_mean"),
    (r"\._batch_norm\._variance$", ".bn.running_var"),
)
# Stride-1 units (every unit but a block's first) build a `_depthwise_separable_0` their forward never calls.
_NEVER_CALLED = re.compile(r"^block\d\.[1-9]\d*\._depthwise_separable_0\.")


def convert_paddle(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official PaddleSeg state dict (its names, e.g. exported by name from a .pdparams file in Paddle)
    -> ours: the never-called branches of the stride-1 units are dropped, BatchNorms get a zero
    num_batches_tracked. A key no rule covers keeps its name, so `check_fits` reports it."""
    out = {}
    for key, value in state.items():
        if _NEVER_CALLED.match(key):
            continue
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return add_bn_counters(out)


@register_model(card=CARD, converter=convert_paddle)
def pphumanseg_lite(num_classes: int = 2, **kwargs) -> nn.Module:
    return PPHumanSegLite(num_classes=num_classes, **kwargs)
