"""ERFNet (Romera, Alvarez, Bergasa, Arroyo, "ERFNet: Efficient Residual Factorized ConvNet for Real-Time
Semantic Segmentation", IEEE T-ITS 19(1), 2018; doi 10.1109/TITS.2017.2750080).

Layers follow the paper's Table 1 (layer disposal): an encoder of downsampler blocks (a 3x3 stride-2 conv
with in_out - in filters, concatenated with a 2x2 max-pool of the input, then BN and ReLU) to 16, 64 and 128
channels, five non-bottleneck-1D blocks at 64 channels and eight at 128 with dilations 2, 4, 8, 16 (twice);
a decoder of a 3x3 stride-2 transposed conv (+BN+ReLU) to 64, two non-bt-1D blocks, a transposed conv to 16,
two non-bt-1D blocks, and a 2x2 stride-2 transposed conv to the classes. A non-bt-1D block is 3x1 conv,
ReLU, 1x3 conv, BN, ReLU, dilated 3x1 conv, ReLU, dilated 1x3 conv, BN, dropout, residual sum and ReLU.

Official code: Eromera/erfnet_pytorch @ d4a46faf9e465286c89ebd9c44bc929b2d213fb3, train/erfnet.py (the
authors' PyTorch port; the paper's models were trained with the Torch version, Eromera/erfnet, which the
PyTorch README says differs slightly). Details taken from it: conv biases everywhere, BN eps 1e-3, dropout
0.03 in the 64-channel and 0.3 in the 128-channel encoder blocks, none in the decoder (training-only, so
inference is unaffected), transposed convs with padding 1 and output padding 1.

Deviations: none in the layers (with the official weights loaded, outputs match the official model
exactly). The official `Net` also builds the encoder-only classifier (a 1x1 conv, 128 -> classes, 2,451
parameters at 19 classes) used to pre-train the encoder; the full model never runs it, so it is left out.

Official weights: `convert_official` (registered with the builder) maps the authors' erfnet_pretrained.pth
onto our keys and drops the encoder-only classifier. Parity: tests/fixtures/parity/erfnet.json, recorded
from eval/erfnet.py at the commit above, matches through `load_weights` (tests/zoo/test_parity.py).

Input sizes: a downsampler's conv gives ceil(n/2) and its pool floor(n/2), and every transposed conv doubles
exactly, so H and W must be multiples of 8; the card's input_divisor=8 makes the harness pad other sizes. At
those sizes (360x480, 200x328 included) the logits come out at the input size, so no final resize is needed.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.registry import register_model

_BN_EPS = 1e-3  # official code


class DownsamplerBlock(nn.Module):
    """3x3 stride-2 conv (out - in filters) concatenated with a 2x2 max-pool, then BN and ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(cout, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class NonBottleneck1D(nn.Module):
    """Residual block of two factorized 3x3 convs (3x1 then 1x3); the second pair is dilated."""

    def __init__(self, channels: int, dilation: int = 1, dropout: float = 0.0):
        super().__init__()
        c, d = channels, dilation
        self.conv3x1_1 = nn.Conv2d(c, c, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(c, c, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(c, eps=_BN_EPS)
        self.conv3x1_2 = nn.Conv2d(c, c, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(c, c, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(c, eps=_BN_EPS)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1x3_1(F.relu(self.conv3x1_1(x)))))
        y = self.drop(self.bn2(self.conv1x3_2(F.relu(self.conv3x1_2(y)))))
        return F.relu(x + y)


class UpsamplerBlock(nn.Sequential):
    """3x3 stride-2 transposed conv (exact 2x), BN, ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(cout, eps=_BN_EPS),
            nn.ReLU(),
        )


class ERFNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; H and W multiples of 8."""

    def __init__(self, num_classes: int = 19):
        super().__init__()
        self.encoder = nn.Sequential(
            DownsamplerBlock(3, 16),
            DownsamplerBlock(16, 64),
            *(NonBottleneck1D(64, 1, 0.03) for _ in range(5)),
            DownsamplerBlock(64, 128),
            *(NonBottleneck1D(128, d, 0.3) for _ in range(2) for d in (2, 4, 8, 16)),
        )
        self.decoder = nn.Sequential(
            UpsamplerBlock(128, 64),
            NonBottleneck1D(64),
            NonBottleneck1D(64),
            UpsamplerBlock(64, 16),
            NonBottleneck1D(16),
            NonBottleneck1D(16),
        )
        self.classifier = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.decoder(self.encoder(x)))


_OFFICIAL = "Eromera/erfnet_pytorch@d4a46faf9e465286c89ebd9c44bc929b2d213fb3"
# The official eval script resizes images to 512 rows (bilinear) and labels likewise (nearest).
_PROTOCOL = "single-scale, images and labels resized to 1024x512 (official eval/eval_iou.py), no flip"

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="ERFNet: Efficient Residual Factorized ConvNet for Real-Time Semantic Segmentation",
        venue="IEEE T-ITS",
        year=2018,
        doi="10.1109/TITS.2017.2750080",
    ),
    official_code="https://github.com/Eromera/erfnet_pytorch",
    implementation="segbench",
    num_classes=19,
    input_hw=(512, 1024),
    params_counts_aux_heads=False,
    input_divisor=8,
    reported=(
        Reported(
            metric="params",
            value=2.066642,
            source=f"{_OFFICIAL}:train/erfnet.py",
            note="Not a paper number (see card notes): count of the official Net(num_classes=19), "
            "2,066,642, which includes the 2,451 parameters of the encoder-only classifier.",
        ),
        Reported(
            metric="fps",
            value=83.0,
            source="paper abstract",
            device="Titan X",
            note="'over 83 FPS in a single Titan X'; the abstract gives neither resolution, backend nor "
            "precision.",
        ),
        Reported(
            metric="fps",
            value=7.0,
            source="paper abstract",
            device="Jetson TX1",
            note="'7 FPS in a Jetson TX1'; the abstract gives neither resolution, backend nor precision.",
        ),
        Reported(
            metric="miou",
            value=72.1,
            source=f"{_OFFICIAL}:README.md",
            input_hw=(512, 1024),
            dataset="Cityscapes",
            split="val",
            protocol=_PROTOCOL,
            note="The PyTorch port's result ('slightly better' than the paper's Torch model).",
        ),
        Reported(
            metric="miou",
            value=69.8,
            source=f"{_OFFICIAL}:README.md",
            input_hw=(512, 1024),
            dataset="Cityscapes",
            split="test",
            protocol=_PROTOCOL,
            note="The PyTorch port's result ('slightly better' than the paper's Torch model).",
        ),
    ),
    notes="Only the abstract of the paper could be read here (the full text was not reachable), so the card "
    "carries no paper table numbers: no total parameter count could be found in what was read, and the "
    "commonly quoted 2.1M / 2.06M figures come from secondary compilations. The params figure is therefore "
    "the official PyTorch code's count; ours is 2,064,191 (-0.12%: the encoder-only classifier, unused by "
    "the full model, is left out). "
    "mIoU: the README's PyTorch-port numbers; the paper's own (Torch) val/test mIoU is left out unverified, "
    "as are its FLOPs (none was found). fvcore counts 26.7 G multiply-adds at 512x1024. The protocol "
    "of the README's numbers is inferred from the official eval script; the README does not state it.",
)


# Official decoder.layers index -> ours: upsamplers (0, 3) are Sequential(conv, bn, relu) here.
_UPSAMPLER_PARTS = {"conv": "0", "bn": "1"}


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official erfnet_pytorch checkpoint (erfnet_pretrained.pth, `module.` stripped on reading) -> ours.

    encoder.initial_block -> encoder.0, encoder.layers.i -> encoder.(i+1), decoder.layers.i -> decoder.i
    (the two upsamplers' conv/bn -> .0/.1), decoder.output_conv -> classifier; the encoder-only classifier
    (encoder.output_conv, used to pre-train the encoder, never run by the full model) is dropped."""
    out = {}
    for key, value in state.items():
        if key.startswith("encoder.output_conv."):
            continue
        key = key.replace("encoder.initial_block.", "encoder.0.", 1)
        key = re.sub(r"^encoder\.layers\.(\d+)\.", lambda m: f"encoder.{int(m[1]) + 1}.", key)
        upsampler = r"^decoder\.layers\.([03])\.(conv|bn)\."
        key = re.sub(upsampler, lambda m: f"decoder.{m[1]}.{_UPSAMPLER_PARTS[m[2]]}.", key)
        key = re.sub(r"^decoder\.layers\.(\d+)\.", r"decoder.\1.", key)
        key = key.replace("decoder.output_conv.", "classifier.", 1)
        out[key] = value
    return out


@register_model(card=CARD, converter=convert_official)
def erfnet(num_classes: int = 19, **kwargs) -> nn.Module:
    """ERFNet as in the paper's Table 1. It has no training-only heads; kwargs are accepted and ignored."""
    return ERFNet(num_classes=num_classes)
