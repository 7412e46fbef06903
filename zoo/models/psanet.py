"""PSANet: Zhao, Zhang, Liu, Shi, Loy, Lin, Jia, "PSANet: Point-wise Spatial Attention Network for Scene
Parsing", ECCV 2018.

Official code: hszhao/semseg @ 4f274c3f276778228bc14a4565822d46359f0cc8 (model/psanet.py, model/resnet.py,
lib/psa/src/cpu/psamask.cpp, tool/train.py, config/cityscapes/cityscapes_psanet{50,101}.yaml).

Dilated ResNet (deep 3x3 stem, output stride 8) -> bi-directional PSA module -> 3x3 conv 4096 -> 512 + BN +
ReLU -> dropout + 1x1 classifier -> bilinear upsampling; FCN auxiliary head on layer3 (training only).

PSA module (official psa_type=2, compact=False, shrink_factor=2, psa_softmax=True), per branch (collect,
distribute): 1x1 conv 2048 -> 512 + BN + ReLU; bilinear shrink to ceil(H/2) x ceil(W/2) (align_corners);
1x1 conv + BN + ReLU, then a 1x1 conv to mask_h * mask_w channels: the over-complete map of each position.
Each position's (mask_h x mask_w) map, centred on it, is cropped to the feature map (the official CUDA op
`psa_mask`) into an (HW x HW) attention matrix, softmaxed over source positions, and applied by one matrix
product. Collect: position j gathers from i with the weight j predicts for offset i - j; distribute:
position i sends to j with the weight i predicts for offset j - i. Both results are concatenated, projected
by a 1x1 conv 1024 -> 2048 + BN + ReLU, upsampled back and concatenated with the input (4096 channels).

Choices and deviations:
- `psa_mask` is written in plain PyTorch: the mask channels are gathered with an (HW x HW) index built from
  the shapes (`_relative_index`); the aggregations are `torch.bmm`, which fvcore counts. Like the official
  op, a source outside a position's mask window gets logit 0 (not -inf) before the softmax.
- Mask size 89 x 89: the official code fixes it at construction from the training crop,
  2 * ((705 - 1) // 16 + 1) - 1 = 89 for Cityscapes (config train_h = train_w = 705), i.e. the paper's
  (2H - 1) x (2W - 1) at the 45 x 45 shrunk feature map of a 705 crop. The attention conv's output width (and
  4.06M parameters per branch) depends on it. The official evaluation slides 705 x 705 crops, so the window
  always covers the whole crop; on larger inputs (whole-image inference, as the harness runs it) each
  position attends within +-44 shrunk positions (+-704 input pixels), exactly as the official op would.
- The attention runs at half the feature resolution (shrink_factor 2), as the official code does: at
  512 x 1024 the features are 64 x 128 and the attention matrices 2048 x 2048 (not 8192 x 8192).
- Inputs of any multiple of 8: the official code needs sides 8k + 1 (it upsamples the shrunk map by 2x + 1);
  we resize to the feature map's own size, which is the same for odd feature sizes. Final upsampling uses
  align_corners=True, as the official code (exact at its 8k + 1 inputs).
- The official normalization_factor is 1.0 (a no-op) and is left out.
- Trunk: torchvision Bottleneck ResNet with the deep 3x3 stem, as semseg's "deep base" ResNet (same
  parameters). Every unit of layer3 has rate 2 and every unit of layer4 rate 4, as semseg's dilation patch
  (torchvision would keep rate 1 / 2 in each stage's first unit; rates change no parameter or MAC).
- Auxiliary head on layer3: 3x3 conv 1024 -> 256 + BN + ReLU, dropout 0.1, 1x1 conv (official `aux`).
- `convert_official_psanet` maps semseg checkpoints; parity with the official code (its psa_mask op
  translated to torch) is tested for both depths (tests/fixtures/parity/psanet_r*.json).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model

_CITYSCAPES_MASK = 89  # 2 * ((705 - 1) // (8 * 2) + 1) - 1, official tool/train.py with train_h = 705


def _relative_index(height: int, width: int, mask_h: int, mask_w: int, device: torch.device) -> torch.Tensor:
    """index[a, b] = mask channel of the offset pos(a) - pos(b) (centre at the mask's middle), or
    mask_h * mask_w (a zero channel) where the offset falls outside the mask. Shape (HW, HW), int64."""
    rows = torch.arange(height, device=device, dtype=torch.int32).repeat_interleave(width)
    cols = torch.arange(width, device=device, dtype=torch.int32).repeat(height)
    dy = rows[:, None] - rows[None, :] + mask_h // 2
    dx = cols[:, None] - cols[None, :] + mask_w // 2
    inside = (dy >= 0) & (dy < mask_h) & (dx >= 0) & (dx < mask_w)
    return torch.where(inside, dy * mask_w + dx, mask_h * mask_w).long()


class _AttentionBranch(nn.Module):
    """Reduce (1x1 conv-BN-ReLU) and over-complete mask prediction (1x1 conv-BN-ReLU, 1x1 conv)."""

    def __init__(self, in_channels: int, mid_channels: int, mask_size: int):
        super().__init__()
        self.reduce = ConvBNAct(in_channels, mid_channels, 1)
        self.attention = nn.Sequential(
            ConvBNAct(mid_channels, mid_channels, 1), nn.Conv2d(mid_channels, mask_size, 1, bias=False)
        )


class PointwiseSpatialAttention(nn.Module):
    """Bi-directional PSA; forward(x[N, C, H, W]) -> cat(x, context)[N, 2C, H, W]."""

    def __init__(
        self,
        in_channels: int = 2048,
        mid_channels: int = 512,
        mask_hw: tuple[int, int] = (_CITYSCAPES_MASK, _CITYSCAPES_MASK),
        shrink_factor: int = 2,
    ):
        super().__init__()
        if mask_hw[0] % 2 == 0 or mask_hw[1] % 2 == 0:
            raise ValueError(f"mask sides must be odd (centred on each position), got {mask_hw}")
        self.mask_hw = mask_hw
        self.shrink_factor = shrink_factor
        self.collect = _AttentionBranch(in_channels, mid_channels, mask_hw[0] * mask_hw[1])
        self.distribute = _AttentionBranch(in_channels, mid_channels, mask_hw[0] * mask_hw[1])
        self.project = ConvBNAct(2 * mid_channels, in_channels, 1)

    def _branch(self, branch: _AttentionBranch, x: torch.Tensor, size, index, collect: bool) -> torch.Tensor:
        x = branch.reduce(x)
        if self.shrink_factor != 1:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        mask = branch.attention(x).flatten(2)  # (N, mask_h * mask_w, HW): one over-complete map per position
        mask = F.pad(mask, (0, 0, 0, 1))  # the zero "channel" that offsets outside the mask point to
        # gathered[n, a, b] = mask[n, channel of pos(a) - pos(b), b]
        gathered = torch.gather(mask, 1, index.expand(mask.shape[0], -1, -1))
        # Collect: b is the receiving position, a the source. Distribute: b is the source (its own map),
        # a the receiver; transpose to (source, receiver). Softmax over sources in both, as the official.
        attention = gathered if collect else gathered.transpose(1, 2)
        attention = torch.softmax(attention, dim=1)
        n, c = x.shape[:2]
        return torch.bmm(x.flatten(2), attention).view(n, c, *size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        size = ((height - 1) // self.shrink_factor + 1, (width - 1) // self.shrink_factor + 1)
        index = _relative_index(*size, *self.mask_hw, x.device)
        context = torch.cat(
            [
                self._branch(self.collect, x, size, index, collect=True),
                self._branch(self.distribute, x, size, index, collect=False),
            ],
            dim=1,
        )
        context = self.project(context)
        if self.shrink_factor != 1:
            context = F.interpolate(context, size=(height, width), mode="bilinear", align_corners=True)
        return torch.cat([x, context], dim=1)


class PSAHead(nn.Sequential):
    """PSA module, then the official `cls` trunk: 3x3 conv 4096 -> 512 + BN + ReLU."""

    def __init__(self, in_channels: int = 2048, channels: int = 512, **psa_kwargs):
        super().__init__()
        self.psa = PointwiseSpatialAttention(in_channels, **psa_kwargs)
        self.fuse = ConvBNAct(2 * in_channels, channels, 3)


def _semseg_rates(model: DilatedResNetSegmenter) -> DilatedResNetSegmenter:
    """Rate 2 in layer3's first unit too (layer4's rates are set by multi_grid=(1, 1, 1))."""
    conv = model.backbone.layer3[0].conv2
    conv.dilation = conv.padding = (2, 2)
    return model


def _psanet(depth: int, num_classes: int, aux_heads: bool, **psa_kwargs) -> DilatedResNetSegmenter:
    model = DilatedResNetSegmenter(
        PSAHead(2048, 512, **psa_kwargs),
        512,
        num_classes,
        depth=depth,
        output_stride=8,
        deep_stem=True,
        multi_grid=(1, 1, 1),
        dropout=0.1,
        aux_heads=aux_heads,
        align_corners=True,  # the official final upsampling
    )
    return _semseg_rates(model)


_REPO = "hszhao/semseg"
_COMMIT = "4f274c3f276778228bc14a4565822d46359f0cc8"
_README = f"{_REPO}@{_COMMIT}:README.md"
_PAPER = Paper(
    title="PSANet: Point-wise Spatial Attention Network for Scene Parsing",
    venue="ECCV",
    year=2018,
    doi="10.1007/978-3-030-01240-3_17",
)
_CS_PROTOCOL = (
    "+ horizontal flip (tool/test.py net_process flips by default), sliding 705x705 crops at stride 470 "
    "over the 1024x2048 image (config test_h = test_w = 705, base_size 2048)"
)
_MIOU_NOTE = (
    "Official re-implementation (semseg README, Cityscapes table), trained on fine_train (2975 images), "
    "200 epochs, crop 705 (configs; the README header says 709). The README prints fractions; x100 here."
)
_NOTES = (
    "No paper numbers are recorded: the ECCV paper's tables could not be retrieved to verify them "
    "(third-party pages cite 80.1 Cityscapes test and 43.77 ADE20K val for ResNet-101; not used). "
    "The paper gives no parameter count, so the card's params are the official code's: "
    "model.psanet.PSANet(layers={depth}, classes=19, mask_h=mask_w=89) built from {repo}@{commit} with "
    "pretrained=False, counted without its training-only `aux` head ({aux:,} parameters). Ours matches "
    "it exactly. The official test slides 705 crops; input_hw is the Cityscapes image the harness feeds "
    "whole (see the module docstring on the mask window)."
)


def _card(depth: int, params: int, aux: int, miou_ss: float, miou_ms: float) -> ModelCard:
    miou = dict(source=_README, input_hw=(1024, 2048), dataset="Cityscapes", split="val", note=_MIOU_NOTE)
    return ModelCard(
        group="semantic",
        paper=_PAPER,
        official_code=f"https://github.com/{_REPO}/blob/{_COMMIT}/model/psanet.py",
        implementation="segbench (torchvision 0.29 ResNet trunk with deep stem)",
        num_classes=19,
        input_hw=(1024, 2048),
        reported=(
            Reported(
                "params",
                params / 1e6,
                f"{_REPO}@{_COMMIT}:model/psanet.py",
                note=f"Counted by us from the official definition ({params:,}; no training-only aux head), "
                "Cityscapes mask 89x89, 19 classes; neither the paper nor the README states a count.",
            ),
            Reported("miou", miou_ss, protocol=f"single-scale {_CS_PROTOCOL}", **miou),
            Reported("miou", miou_ms, protocol=f"scales 0.5-1.75 (6) {_CS_PROTOCOL}", **miou),
        ),
        notes=_NOTES.format(depth=depth, repo=_REPO, commit=_COMMIT[:7], aux=aux),
    )


_STEM = {"0": "conv1.0", "1": "conv1.1", "3": "conv1.3", "4": "conv1.4", "6": "conv1.6", "7": "bn1"}
_PSA = {"reduce.0": "collect.reduce.conv", "reduce.1": "collect.reduce.bn"}
_PSA |= {"attention.0": "collect.attention.0.conv", "attention.1": "collect.attention.0.bn"}
_PSA |= {"attention.3": "collect.attention.1"}
_PSA |= {k.replace(".", "_p.", 1): v.replace("collect", "distribute") for k, v in _PSA.items()}
_PSA |= {"proj.0": "project.conv", "proj.1": "project.bn"}
_TAIL = {"cls.0": "head.fuse.conv", "cls.1": "head.fuse.bn", "cls.4": "classifier.1"}
_TAIL |= {"aux.0": "aux_heads.0.conv.conv", "aux.1": "aux_heads.0.conv.bn", "aux.4": "aux_heads.0.cls"}


def _official_key(key: str) -> str:
    """Our name for an official key; a key no rule covers keeps its name (check_fits then reports it)."""
    prefix, _, rest = key.partition(".")
    module, _, param = rest.rpartition(".")
    if prefix == "layer0" and module in _STEM:
        return f"backbone.{_STEM[module]}.{param}"
    if prefix in ("layer1", "layer2", "layer3", "layer4"):
        return f"backbone.{key}"
    if prefix == "psa" and module in _PSA:
        return f"head.psa.{_PSA[module]}.{param}"
    module = f"{prefix}.{module}"
    return f"{_TAIL[module]}.{param}" if module in _TAIL else key


def convert_official_psanet(state_dict) -> dict[str, torch.Tensor]:
    """Rename an official semseg PSANet state_dict (psa_type 2, compact 0) to ours; tensors unchanged."""
    return {_official_key(k): v for k, v in state_dict.items()}


@register_model(card=_card(50, 55_354_835, 2_364_691, 77.45, 78.18), converter=convert_official_psanet)
def psanet_r50(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return _psanet(50, num_classes, aux_heads, **kwargs)


@register_model(card=_card(101, 74_346_963, 2_364_691, 78.42, 79.40), converter=convert_official_psanet)
def psanet_r101(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return _psanet(101, num_classes, aux_heads, **kwargs)
