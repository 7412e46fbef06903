"""STDC-Seg: Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation", CVPR 2021 (2104.13188).

Official code: MichaelFan01/STDC-Seg @ 59ff37fbd693b99972c76fcefe97caa14aeb619f (nets/stdcnet.py: STDCNet813 =
STDC1, STDCNet1446 = STDC2; models/model_stages.py: BiSeNet, ContextPath, ARM, FFM, heads). An independent
re-implementation that computes the official function: a parity manifest per model
(tests/fixtures/parity/stdc1_seg.json, stdc2_seg.json) checks it, and `convert_official` loads the
released checkpoints (model_maxmIOU50/75.pth, a bare state_dict of the whole training model) strictly into
the default build (aux_heads=True).

Architecture. STDC backbone (base 64): two stride-2 3x3 ConvX stems (32, 64), then stages 3/4/5 (256, 512,
1024 channels) of STDC modules, [2, 2, 2] for STDC1 and [4, 5, 3] for STDC2, each opening with stride 2. An
STDC module (4 blocks, concatenation) runs a 1x1 ConvX to N/2 then 3x3 ConvX to N/4, N/8, N/8 and
concatenates all four outputs (N channels). A BiSeNet-style context path puts an ARM on stage 4 and stage 5,
adds a global-average-pooled stage-5 context, upsamples (nearest) and refines with 3x3 ConvBNReLUs to 128
channels; the FFM fuses the stride-8 context with stage 3 (the "spatial" feature, 256 channels) into 256
channels; the seg head (3x3 ConvBNReLU 256, 1x1 conv) predicts at stride 8 and logits are resized to the
input. Training only, under `aux_heads`: the two auxiliary seg heads on the stride-8 and stride-16 context
features (mid 64) and the detail head on stage 3 (mid 64, 1 channel), as in the official training script
(`--use_boundary_8 True`). The Laplacian detail ground truth and its learnable fusion weights are part of
the loss (official loss/detail_loss.py), not of the model. Seg50 / Seg75 are the same network fed a Cityscapes
image resized by 0.5 (512x1024) or 0.75 (768x1536); the model does not resize its input.

Deviations from the official code, and why:
- Stride-2 STDC modules follow the official code, not the paper's STDC-module figure (panel c, a stride-2
  3x3 ConvX; reproduced as images/stdc-architecture.png in the repo): the official module applies a
  3x3 stride-2 depthwise conv + BN (no ReLU) to the first block's output before the stride-1 3x3 ConvX of
  block 2, and average-pools (3x3, stride 2) the first block's output for the concatenation. The released
  ImageNet weights and all reported numbers use that form.
- The backbone's ImageNet classifier (conv_last, fc, bn, linear: 3.13M parameters) is not built: the
  segmentation forward never uses it (use_conv_last=False in training, evaluation and latency scripts).
  Likewise the detail heads at strides 2, 4 and 16, which the official model builds but never uses with
  use_boundary_8 only.
- Final upsampling is bilinear with align_corners=True, as in the official model (models/model_stages.py);
  the official TensorRT latency model (model_stages_trt.py) uses nearest instead. MACs are the same. The
  training-only heads are resized the same way (the official loss resizes the detail logits so too).
- Global pooling uses AdaptiveAvgPool2d / broadcasting instead of avg_pool2d with a kernel read from the
  tensor size and a nearest "upsample" from 1x1, which are the same numbers and keep the trace static.
- Every stride-2 op has k=3, p=1 (or 3x3/2/1 average pooling), so all paths shrink by ceil(n/2) and inputs
  of any size work; the context path upsamples to explicit sizes.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import AttentionRefinement, ConvBNAct, FeatureFusion, SegHead, resize_to
from zoo.layers.init import kaiming_init_
from zoo.registry import register_model
from zoo.weights import add_bn_counters

STDC1_LAYERS = (2, 2, 2)  # STDC modules per stage 3/4/5 (official STDCNet813)
STDC2_LAYERS = (4, 5, 3)  # official STDCNet1446


class STDCModule(nn.Module):
    """Short-term dense concatenate module (paper Fig. 3b/c, official CatBottleneck).

    Block widths for `num_blocks` = 4: N/2 (1x1), N/4, N/8, N/8 (3x3); the outputs are concatenated.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, num_blocks: int = 4):
        super().__init__()
        widths = [out_channels // 2 ** min(i + 1, num_blocks - 1) for i in range(num_blocks)]
        self.blocks = nn.ModuleList([ConvBNAct(in_channels, widths[0], 1)])
        self.blocks.extend(ConvBNAct(widths[i - 1], widths[i], 3) for i in range(1, num_blocks))
        if stride == 2:
            half = widths[0]
            self.down = ConvBNAct(half, half, 3, stride=2, groups=half, act_layer=None)
            self.skip = nn.AvgPool2d(3, stride=2, padding=1)
        else:
            self.down = self.skip = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.blocks[0](x)
        out = self.down(first)
        outs = [self.skip(first)]
        for block in self.blocks[1:]:
            out = block(out)
            outs.append(out)
        return torch.cat(outs, dim=1)


class STDCNet(nn.Module):
    """STDC backbone without its ImageNet classifier; forward -> [stride 8, 16, 32] features."""

    def __init__(self, layers: tuple[int, int, int], base: int = 64, num_blocks: int = 4):
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNAct(3, base // 2, 3, stride=2), ConvBNAct(base // 2, base, 3, stride=2)
        )
        stages, in_ch = [], base
        for i, depth in enumerate(layers):
            out_ch = base * 4 * 2**i
            stages.append(
                nn.Sequential(
                    *(
                        STDCModule(in_ch if j == 0 else out_ch, out_ch, 2 if j == 0 else 1, num_blocks)
                        for j in range(depth)
                    )
                )
            )
            in_ch = out_ch
        self.stage3, self.stage4, self.stage5 = stages
        self.out_channels = tuple(base * 4 * 2**i for i in range(len(layers)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f8 = self.stage3(self.stem(x))
        f16 = self.stage4(f8)
        return [f8, f16, self.stage5(f16)]


class STDCSeg(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with aux heads, (logits,
    [aux logits from the stride-8 and stride-16 context, detail logits (1 channel)]), each at H, W."""

    def __init__(
        self,
        layers: tuple[int, int, int],
        num_classes: int = 19,
        aux_heads: bool = True,
        context_channels: int = 128,
    ):
        super().__init__()
        c = context_channels
        self.backbone = STDCNet(layers)
        c8, c16, c32 = self.backbone.out_channels
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(c32, c, 1))
        self.arm32 = AttentionRefinement(c32, c)
        self.arm16 = AttentionRefinement(c16, c)
        self.refine32 = ConvBNAct(c, c, 3)
        self.refine16 = ConvBNAct(c, c, 3)
        # The official fusion gate and classifiers have no biases.
        self.ffm = FeatureFusion(c8 + c, 256, rd_channels=256 // 4, se_bias=False)
        self.head = SegHead(256, 256, num_classes, bias=False)
        self.aux_heads = (
            nn.ModuleDict(
                {
                    "context8": SegHead(c, 64, num_classes, bias=False),
                    "context16": SegHead(c, 64, num_classes, bias=False),
                    "detail": SegHead(c8, 64, 1, bias=False),
                }
            )
            if aux_heads
            else None
        )
        kaiming_init_(self)

    def forward(self, x: torch.Tensor):
        f8, f16, f32 = self.backbone(x)
        # Broadcasting adds the pooled context (official: a nearest "upsample" of the 1x1 map).
        ctx16 = self.refine32(resize_to(self.arm32(f32) + self.global_context(f32), f16, mode="nearest"))
        ctx8 = self.refine16(resize_to(self.arm16(f16) + ctx16, f8, mode="nearest"))
        logits = resize_to(self.head(self.ffm(f8, ctx8)), x, align_corners=True)
        if self.training and self.aux_heads is not None:
            heads = self.aux_heads
            aux = [heads["context8"](ctx8), heads["context16"](ctx16), heads["detail"](f8)]
            return logits, [resize_to(a, x, align_corners=True) for a in aux]
        return logits


# The official backbone holds its layers twice: in `features` and in the aliases x2 ... x32 that its
# forward runs (Sequentials over slices of `features`, keeping its indices: x8.0.<i>). The aliases are
# taken (load_state_dict leaves a shared module with its last-loaded alias; in the released files both hold
# the same tensors); `features` is dropped.
_ALIASES = {"x2": "stem", "x4": "stem", "x8": "stage3", "x16": "stage4", "x32": "stage5"}
_ALIAS = re.compile(r"cp\.backbone\.(x2|x4|x8|x16|x32)\.0\.(\d+)\.(.*)")
# Other official BiSeNet state_dict prefixes -> ours (first match wins). Dropped: the unused ImageNet
# classifier and the never-run detail heads.
_RENAMES = (
    ("cp.arm32.conv_atten.", "arm32.attention.1.conv."),
    ("cp.arm32.bn_atten.", "arm32.attention.1.bn."),
    ("cp.arm16.conv_atten.", "arm16.attention.1.conv."),
    ("cp.arm16.bn_atten.", "arm16.attention.1.bn."),
    ("cp.arm32.", "arm32."),
    ("cp.arm16.", "arm16."),
    ("cp.conv_head32.", "refine32."),
    ("cp.conv_head16.", "refine16."),
    ("cp.conv_avg.", "global_context.1."),
    ("ffm.convblk.", "ffm.conv."),
    ("ffm.conv1.", "ffm.se.reduce."),
    ("ffm.conv2.", "ffm.se.expand."),
    *(
        (f"{official}.{inner}", f"{ours}.{mine}")
        for official, ours in (
            ("conv_out16", "aux_heads.context8"),
            ("conv_out32", "aux_heads.context16"),
            ("conv_out_sp8", "aux_heads.detail"),
            ("conv_out", "head"),
        )
        for inner, mine in (("conv_out.", "cls."), ("conv.", "conv."))
    ),
)
_DROPPED = tuple(f"cp.backbone.{m}." for m in ("features", "conv_last", "fc", "bn", "linear"))
_DROPPED += ("conv_out_sp2.", "conv_out_sp4.", "conv_out_sp16.")
# Inside an official STDC module (CatBottleneck) -> ours.
_MODULE_RENAMES = (("conv_list.", "blocks."), ("avd_layer.0.", "down.conv."), ("avd_layer.1.", "down.bn."))


def convert_official(state: dict) -> dict:
    """Official STDC-Seg checkpoint (models/model_stages.py BiSeNet, either backbone) -> ours. Its norms
    outside the backbone are inplace_abn's (no batch counter): a zero counter is added (`add_bn_counters`)."""
    matches = {key: _ALIAS.fullmatch(key) for key in state}
    first: dict[str, int] = {}  # each stage's first `features` index: ours count from 0 within a stage
    for match in filter(None, matches.values()):
        stage, index = _ALIASES[match[1]], int(match[2])
        first[stage] = min(first.get(stage, index), index)
    out = {}
    for key, value in state.items():
        if key.startswith(_DROPPED):
            continue
        if match := matches[key]:
            stage = _ALIASES[match[1]]
            key = f"backbone.{stage}.{int(match[2]) - first[stage]}.{match[3]}"
        for official, ours in _RENAMES:
            if key.startswith(official):
                key = ours + key.removeprefix(official)
                break
        if key.startswith("backbone.stage"):
            for official, ours in _MODULE_RENAMES:
                key = key.replace(official, ours)
        out[key] = value
    return add_bn_counters(out)


_OFFICIAL = "MichaelFan01/STDC-Seg@59ff37fbd693b99972c76fcefe97caa14aeb619f"
_TABLE = f"{_OFFICIAL}:images/comparison-cityscapes.png"
_PAPER = Paper(
    title="Rethinking BiSeNet For Real-time Semantic Segmentation",
    venue="CVPR",
    year=2021,
    arxiv="2104.13188",
)
_FPS = dict(dataset="Cityscapes", device="GTX 1080 Ti", backend="TensorRT 5.1.5", precision="fp32")
_FPS_NOTE = (
    "From the paper's Cityscapes comparison table, reproduced as an image in the official README; the README "
    "repeats the FPS (latency/run_latency_stages.py). Batch 1 at the network input size, final upsample to "
    "that size inside. TensorRT 5.1.5 per the README; fp32 per latency/utils/darts_utils.py (engine dtype "
    "float32, no fp16 mode). Note the committed latency script re-imports the PyTorch timer after the "
    "TensorRT one, so as published it times PyTorch."
)


def _protocol(scale: float) -> str:
    return (
        f"single-scale, no flip: 2048x1024 image resized by {scale} (bilinear, align_corners=True) into the "
        "network, logits resized back to 2048x1024 likewise (official evaluation.py MscEvalV0)"
    )


def _card(variant: str, params: float, params_note: str, rows: dict) -> ModelCard:
    reported = [
        Reported(
            metric="params", value=params, source=f"{_OFFICIAL}:models/model_stages.py", note=params_note
        )
    ]
    for hw, scale, (val, test, fps) in (((512, 1024), 0.5, rows[50]), ((768, 1536), 0.75, rows[75])):
        name = f"{variant}-Seg{int(scale * 100)}"
        reported.append(
            Reported(metric="fps", value=fps, source=_TABLE, input_hw=hw, note=f"{name}. {_FPS_NOTE}", **_FPS)
        )
        reported += [
            Reported(
                metric="miou",
                value=v,
                source=_TABLE,
                input_hw=hw,
                dataset="Cityscapes",
                split=split,
                protocol=_protocol(scale),
                note=name,
            )
            for split, v in (("val", val), ("test", test))
        ]
    return ModelCard(
        group="realtime",
        paper=_PAPER,
        official_code="https://github.com/MichaelFan01/STDC-Seg",
        implementation="segbench",
        num_classes=19,
        input_hw=(512, 1024),
        params_counts_aux_heads=False,
        reported=tuple(reported),
        notes=(
            "Seg50 and Seg75 are one network at two input sizes (512x1024, 768x1536); every FPS and mIoU "
            "carries its input_hw. Params: the paper gives none (its Cityscapes table has no params or FLOPs "
            "column), so the card carries the official code's count of the modules the inference forward "
            "uses; it excludes the training-only heads, so compare with aux_heads=False. The official "
            "module's raw parameter total also counts the unused ImageNet classifier (3,125,248), both "
            "auxiliary heads (150,144) and four detail heads (498,432, three of them never run); other "
            "papers citing STDC params (e.g. RegSeg's plot, about 16.1M for STDC2-Seg75) use that raw "
            "total. FLOPs: none reported by the paper or the official README, so none on the card. Sources: "
            "the abstract's 71.9 test at 250.4 FPS (STDC1-Seg50) and 76.8 test at 97.0 FPS (STDC2-Seg75) "
            "match the table image. The README also gives the released checkpoints' val mIoU (72.22, "
            "74.50, 74.24, 77.04 for STDC1-50, STDC1-75, STDC2-50, STDC2-75), consistent with the table."
        ),
    )


def _params_note(backbone: str, eval_used: int) -> str:
    return (
        "Not a paper number: the paper gives no params. Count of the official "
        f"BiSeNet('{backbone}') built with 19 classes, restricted to the modules the eval forward runs "
        f"(backbone features, context path, FFM, seg head): {eval_used:,}."
    )


CARD_STDC1 = _card(
    "STDC1",
    8.275104,
    _params_note("STDCNet813", 8_275_104),
    {50: (72.2, 71.9, 250.4), 75: (74.5, 75.3, 126.7)},
)
CARD_STDC2 = _card(
    "STDC2",
    12.305568,
    _params_note("STDCNet1446", 12_305_568),
    {50: (74.2, 73.4, 188.6), 75: (77.0, 76.8, 97.0)},
)


@register_model(card=CARD_STDC1, converter=convert_official)
def stdc1_seg(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """STDC1-Seg (backbone layers [2, 2, 2]); Seg50 / Seg75 by input size."""
    return STDCSeg(STDC1_LAYERS, num_classes=num_classes, aux_heads=aux_heads, **kwargs)


@register_model(card=CARD_STDC2, converter=convert_official)
def stdc2_seg(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """STDC2-Seg (backbone layers [4, 5, 3]); Seg50 / Seg75 by input size."""
    return STDCSeg(STDC2_LAYERS, num_classes=num_classes, aux_heads=aux_heads, **kwargs)
