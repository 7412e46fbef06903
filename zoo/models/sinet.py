"""SINet (Park, Sjösund, Yoo, Monet, Bang, Kwak, "SINet: Extreme Lightweight Portrait Segmentation Networks
with Spatial Squeeze Modules and Information Blocking Decoder", WACV 2020, arXiv 1911.09099).

Official code: clovaai/ext_portrait_segmentation, models/SINet.py (`Dnc_SINet(classes=2, p=2, q=8, chnn=1)`)
at commit 5ebd2d6d2f1270483f8ddae97641a893f7d1af67 (unchanged at the latest commit, 9bc1bad); read for
understanding, this is an independent re-implementation. The authors' trained EG1800 checkpoint loads through
`convert_official_sinet` (every one of its 393 tensors maps onto ours) and then gives the official module's
logits up to float rounding (max abs difference below 1e-4, identical argmax, on real 224x224 portraits and
random inputs up to 256x512, checked against a scratch copy of the official module).

Network (p = 2, q = 8), BatchNorm eps 1e-3, per-channel PReLU, convs without bias:
  encoder  stem: 3x3 s2 conv-BN-PReLU (12)                                              -> 1/2
           down2: 3x3 s2 depthwise conv, SE-style channel scaling, 1x1 conv-BN-PReLU (16) -> 1/4
           stage2: 2 S2 modules (48), then concat [down2, stage2], BN + PReLU (64)
           down3: the same downsampling block (48)                                       -> 1/8
           stage3: 8 S2 modules (96), then concat [down3, stage3], BN + PReLU (144)
           classifier: 1x1 conv to the classes (coarse logits at 1/8)
  decoder  (information blocking) coarse logits x2 up + BN; confidence c = max softmax; the stage-2 feature
           goes through a 1x1 conv-BN-PReLU to the classes and is multiplied by (1 - c), so high-resolution
           detail only enters where the coarse prediction is unsure; the sum is x2 up + BN, then x2 up and a
           3x3 conv give the logits at the input size.
S2 module: grouped (2 groups) 1x1 conv to half the output width, channel shuffle, two parallel S2 blocks,
concat, residual add (except the first module of a stage), BN + PReLU. S2 block: average pool (kernel =
stride = s, when s > 1), depthwise k x k conv-BN-PReLU, 1x1 conv, bilinear upsample back, BN. Per-module
(k, s) pairs follow the official `config` table.

Training-only parts: none are modules. The boundary auxiliary loss is the same criterion applied to the same
output against a boundary (edge) target, weighted 0.5 (official etc/help_function.py `train_edge`), so there
are no aux heads; `aux_heads` is accepted and ignored.

Deviations from the official code, and why:
- Upsampling resizes to explicit sizes (the skip feature's, the pre-pool size, the input's) instead of
  nn.UpsamplingBilinear2d(scale_factor=2/s), so that inputs whose sides are not multiples of 8 (or of 8 * s
  for the pooled S2 blocks) work; for 224x224 and other multiples of 32 the sizes and results are the same.
  The interpolation keeps the official align_corners=True (what UpsamplingBilinear2d does).
- The SE-style block in the downsampling layers has no sigmoid, as in the official code (its hard-sigmoid is
  commented out): two (or, in down2, one) Linear + PReLU layers on the globally pooled vector scale the
  channels directly. Kept for the trained weights to mean what they meant.
- The confidence gate is broadcast instead of expanded; channel shuffle uses unflatten/transpose/flatten.
- Initialisation: PyTorch defaults, as the official code sets none.

Input: the authors read images with OpenCV (BGR) and feed (x - MEAN_BGR) / STD_BGR / 255 with x in 0-255
(data/CVTransforms.py Normalize then ToTensor's div(255); etc/Visualize_video.py does the same).

Parity: tests/fixtures/parity/sinet.json was recorded from the official Dnc_SINet(classes=2, p=2, q=8,
chnn=1) @ 9bc1bad; `convert_official_sinet` loads its state_dict strictly and our logits equal the official
ones (relative difference below 1e-6 at 128x192, identical argmax).
"""

from __future__ import annotations

import re
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.evaluation import Preprocess
from zoo.layers import ConvBNAct
from zoo.registry import register_model

# The authors' dataset statistics, BGR order, pixel values 0-255 (etc/Visualize_video.py, Test_model.py).
MEAN_BGR = (107.304565, 115.69884, 132.35703)
STD_BGR = (63.97182, 65.1337, 68.29726)

_BN = partial(nn.BatchNorm2d, eps=1e-3)

# (kernel, pool) of the two S2 blocks of each S2 module: stage 2 uses the first p rows, stage 3 the next q.
S2_CONFIG = (
    ((3, 1), (5, 1)),
    ((3, 1), (3, 1)),
    ((3, 1), (5, 1)),
    ((3, 1), (3, 1)),
    ((5, 1), (3, 2)),
    ((5, 2), (3, 4)),
    ((3, 1), (3, 1)),
    ((5, 1), (5, 1)),
    ((3, 2), (3, 4)),
    ((3, 1), (5, 2)),
)


def _up(x: torch.Tensor, size) -> torch.Tensor:
    # nn.UpsamplingBilinear2d semantics (align_corners=True), to an explicit size.
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def conv_bn_prelu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
) -> ConvBNAct:
    block = ConvBNAct(
        in_channels, out_channels, kernel_size, stride, groups=groups, norm_layer=_BN, act_layer=None
    )
    block.act = nn.PReLU(out_channels)  # one slope per channel, which ConvBNAct's act_layer() cannot build
    return block


class BNPReLU(nn.Sequential):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = _BN(channels)
        self.act = nn.PReLU(channels)


class ChannelScale(nn.Module):
    """The official SE-style block: global average pool -> Linear/PReLU layers -> x * scale (no sigmoid)."""

    def __init__(self, channels: int, divide: int):
        super().__init__()
        if divide > 1:
            mid = channels // divide
            layers = [nn.Linear(channels, mid), nn.PReLU(mid), nn.Linear(mid, channels), nn.PReLU(channels)]
        else:
            layers = [nn.Linear(channels, channels), nn.PReLU(channels)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mlp(x.mean((2, 3)))[:, :, None, None]


class Downsample(nn.Module):
    """Stride-2 depthwise 3x3 conv -> channel scaling -> 1x1 conv-BN-PReLU (official `SEseparableCBR`)."""

    def __init__(self, in_channels: int, out_channels: int, divide: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False)
        self.squeeze = ChannelScale(in_channels, divide)
        self.pointwise = conv_bn_prelu(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.squeeze(self.depthwise(x)))


class S2Block(nn.Module):
    """Spatial squeeze block: avg pool by `pool`, depthwise conv-BN-PReLU, 1x1 conv, upsample back, BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pool: int):
        super().__init__()
        self.pool = nn.AvgPool2d(pool, pool) if pool > 1 else nn.Identity()
        self.depthwise = conv_bn_prelu(in_channels, in_channels, kernel_size, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = _BN(out_channels)
        self.resample = pool > 1  # fixed at construction: tracing sees a single path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(self.pool(x)))
        if self.resample:
            y = _up(y, x.shape[-2:])
        return self.bn(y)


class S2Module(nn.Module):
    """Grouped 1x1 reduce -> channel shuffle -> two parallel S2 blocks -> concat (+ input) -> BN + PReLU."""

    def __init__(self, in_channels: int, out_channels: int, config, residual: bool = True):
        super().__init__()
        groups = len(config)
        width = out_channels // groups
        extra = out_channels - groups * width  # the first branch takes any remainder (none for SINet)
        self.groups = groups
        self.residual = residual
        self.reduce = nn.Conv2d(in_channels, width, 1, groups=groups, bias=False)
        self.branches = nn.ModuleList(
            S2Block(width, width + (extra if i == 0 else 0), k, s) for i, (k, s) in enumerate(config)
        )
        self.norm = BNPReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        y = y.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)  # channel shuffle
        y = torch.cat([branch(y) for branch in self.branches], dim=1)
        return self.norm(x + y if self.residual else y)


class SINetEncoder(nn.Module):
    """Returns (stage-2 feature at 1/4, coarse logits at 1/8)."""

    def __init__(self, num_classes: int, p: int = 2, q: int = 8, widths=(16, 48, 96)):
        super().__init__()
        c1, c2, c3 = widths
        self.stem = conv_bn_prelu(3, 12, 3, stride=2)
        self.down2 = Downsample(12, c1, divide=1)
        self.stage2 = nn.Sequential(
            *(S2Module(c1 if i == 0 else c2, c2, S2_CONFIG[i], residual=i > 0) for i in range(p))
        )
        self.stage2_norm = BNPReLU(c1 + c2)
        self.down3 = Downsample(c1 + c2, c2, divide=2)
        self.stage3 = nn.Sequential(
            *(S2Module(c2 if i == 0 else c3, c3, S2_CONFIG[2 + i], residual=i > 0) for i in range(q))
        )
        self.stage3_norm = BNPReLU(c2 + c3)
        self.classifier = nn.Conv2d(c2 + c3, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d2 = self.down2(self.stem(x))
        s2 = self.stage2(d2)
        d3 = self.down3(self.stage2_norm(torch.cat([d2, s2], dim=1)))
        s3 = self.stage3(d3)
        return s2, self.classifier(self.stage3_norm(torch.cat([d3, s3], dim=1)))


class InformationBlockingDecoder(nn.Module):
    """Adds the high-resolution prediction only where the low-resolution one is unsure (1 - confidence)."""

    def __init__(self, skip_channels: int, num_classes: int):
        super().__init__()
        self.coarse_bn = _BN(num_classes)
        self.skip_classifier = conv_bn_prelu(skip_channels, num_classes, 1)
        self.fine_bn = _BN(num_classes)
        self.final_conv = nn.Conv2d(num_classes, num_classes, 3, padding=1, bias=False)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor, half_size, out_size) -> torch.Tensor:
        coarse = self.coarse_bn(_up(coarse, skip.shape[-2:]))
        gate = 1 - torch.softmax(coarse, dim=1).amax(dim=1, keepdim=True)
        fine = self.fine_bn(_up(self.skip_classifier(skip) * gate + coarse, half_size))
        return self.final_conv(_up(fine, out_size))


class SINet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W] (in train and eval mode: no aux heads)."""

    def __init__(self, num_classes: int = 2, p: int = 2, q: int = 8):
        super().__init__()
        self.encoder = SINetEncoder(num_classes, p, q)
        self.decoder = InformationBlockingDecoder(48, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The stem's k3 s2 p1 conv gives ceil(n / 2): the half-resolution size the decoder returns to.
        half = ((x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2)
        skip, coarse = self.encoder(x)
        return self.decoder(skip, coarse, half, x.shape[-2:])


# Official key prefix -> ours, in order (first match wins); the inner rules then rename inside the blocks.
_KEY_RULES = [
    (r"^encoder\.level1\.", "encoder.stem."),
    (r"^encoder\.level2_0\.", "encoder.down2."),
    (r"^encoder\.level3_0\.", "encoder.down3."),
    (r"^encoder\.level([23])\.(\d+)\.", r"encoder.stage\1.\2."),
    (r"^encoder\.BR([23])\.", r"encoder.stage\1_norm."),
    (r"^encoder\.classifier\.conv\.", "encoder.classifier."),
    (r"^bn_3\.", "decoder.coarse_bn."),
    (r"^level2_C\.", "decoder.skip_classifier."),
    (r"^bn_2\.", "decoder.fine_bn."),
    (r"^classifier\.1\.", "decoder.final_conv."),
]
_INNER_RULES = [
    (r"\.(down[23])\.conv\.0\.", r".\1.depthwise."),
    (r"\.(down[23])\.conv\.1\.dense\.", r".\1.squeeze.mlp."),
    (r"\.(down[23])\.conv\.2\.", r".\1.pointwise.conv."),
    (r"\.(down[23])\.(bn|act)\.", r".\1.pointwise.\2."),
    (r"\.c1\.conv\.", ".reduce."),
    (r"\.d([12])\.", lambda m: f".branches.{int(m.group(1)) - 1}."),
    (r"\.conv\.0\.", ".depthwise.conv."),
    (r"\.conv\.1\.", ".depthwise.bn."),
    (r"\.act_conv1x1\.0\.", ".depthwise.act."),
    (r"\.act_conv1x1\.1\.", ".pointwise."),
    (r"\.BR\.", ".norm."),
]


def _official_to_ours(key: str) -> str:
    for pattern, repl in _KEY_RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            key = new
            break
    for pattern, repl in _INNER_RULES:
        key = re.sub(pattern, repl, key)
    return key


def convert_official_sinet(state_dict) -> dict[str, torch.Tensor]:
    """Rename an official `Dnc_SINet` state_dict to ours. Tensors are unchanged; a key no rule covers keeps
    its name, so `check_fits` reports it as unexpected rather than it being dropped silently."""
    return {_official_to_ours(k): v for k, v in state_dict.items()}


_REPO = "clovaai/ext_portrait_segmentation"
_README = f"{_REPO}@9bc1bada1cb7bd17a3a80a2964980f4b4befef5b:README.md"

CARD = ModelCard(
    group="portrait",
    paper=Paper(
        title="SINet: Extreme Lightweight Portrait Segmentation Networks with Spatial Squeeze Modules and "
        "Information Blocking Decoder",
        venue="WACV",
        year=2020,
        arxiv="1911.09099",
    ),
    official_code=f"https://github.com/{_REPO}/blob/9bc1bada1cb7bd17a3a80a2964980f4b4befef5b/models/SINet.py",
    implementation="segbench",
    num_classes=2,
    input_hw=(224, 224),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            "params",
            0.0869,
            "paper abstract",
            note="'86.9K'. The official Dnc_SINet(classes=2, p=2, q=8, chnn=1) has 86,910 parameters, "
            "as does ours; no training-only heads exist.",
        ),
        Reported("params", 0.087, _README, note="'Param : 0.087 M'"),
        Reported(
            "flops",
            0.064,
            _README,
            input_hw=(224, 224),
            convention="multiply-adds",
            note="'Flop : 0.064 G'. The repo's etc/flops_counter.py counts 2 x multiply-adds per conv "
            "(+1 per bias add, +1 per BN per image) and its flops_to_string halves that and prints 'GMac', "
            "so the figure is conv multiply-adds; Linear, pooling, upsampling, softmax are not counted. "
            "Input 224x224 from setting/SINet.json (w = h = 224), which main.py feeds to the counter. "
            "Our recount in that convention: 63,866,237 (conv multiply-adds 63,866,208); fvcore, which also "
            "counts BN and upsampling, gives 71,531,696.",
        ),
        Reported(
            "fps",
            100.6,
            "paper abstract",
            device="a real mobile device (not named in the abstract)",
            note="Input size, backend and precision are not stated in the abstract; the paper's speed table "
            "could not be retrieved.",
        ),
        Reported(
            "miou",
            95.2,
            _README,
            input_hw=(224, 224),
            dataset="EG1800",
            split="not stated in the README (Test_model.py scores its data loader's validation list)",
            protocol="single-scale 224x224; person-class IoU averaged over images (etc/lovasz_losses.py "
            "iou_binary, as val_edge reports it)",
            note="README 'IoU : 95.2'.",
        ),
    ),
    notes=(
        "Preprocessing of the authors' checkpoint (result/SINet/SINet.pth, 2 classes, EG1800): BGR channel "
        "order, (x - mean) / std / 255 with x in 0-255, mean = "
        f"{list(MEAN_BGR)}, std = {list(STD_BGR)} (BGR, 0-255 units; MEAN_BGR / STD_BGR in "
        "zoo/models/sinet.py); "
        "224x224 input; argmax over (background, person). Load it with load_weights(model, path, 'sinet'). "
        "Params: ours 86,910 = the official count. The paper's full text (tables) could not be retrieved: "
        "every number here is from the abstract or the official README; left out: the paper's per-table "
        "mIoU / speed comparisons, its Cityscapes results, and the device behind the 100.6 FPS."
    ),
)


# clovaai/ext_portrait_segmentation: etc/Visualize_video.py and Test_model.py read images with OpenCV (BGR),
# subtract the dataset mean and divide by the std per channel (0-255 values), then divide by 255, at 224x224.
PREPROCESS = Preprocess(
    mean=MEAN_BGR,
    std=STD_BGR,
    channel_order="BGR",
    pre_scale=1.0,
    post_scale=1 / 255,
    resize_hw=(224, 224),
    source="clovaai/ext_portrait_segmentation (BGR, (x - mean) / std / 255, 224x224)",
)


@register_model(card=CARD, converter=convert_official_sinet, preprocess=PREPROCESS)
def sinet(num_classes: int = 2, **kwargs) -> nn.Module:
    """SINet as the authors trained it (p=2, q=8). It has no training-only heads; kwargs are accepted and
    ignored, except p and q (S2 modules in stages 2 and 3)."""
    return SINet(num_classes=num_classes, p=kwargs.get("p", 2), q=kwargs.get("q", 8))
