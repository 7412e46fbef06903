"""Fast-SCNN (Poudel, Liwicki, Cipolla, "Fast-SCNN: Fast Semantic Segmentation Network", BMVC 2019,
arXiv 1902.04502).

Four modules, per the paper's Sec. 3.2 and Tables 1-3, for a 1024x2048 input:
  learning to downsample  Conv2D 3x3 s2 (32), DSConv s2 (48), DSConv s2 (64)               -> 1/8
  global feature extractor  bottlenecks t=6: 64 x3 (first s2), 96 x3 (first s2), 128 x3   -> 1/32
                            then a pyramid pooling module (PPM) with 128 output channels
  feature fusion          low-res: upsample x4, 3x3 depthwise (dilation 4) + BN + ReLU, 1x1 conv + BN;
                          high-res: 1x1 conv + BN; add, ReLU                             -> 1/8, 128
  classifier              DSConv x2 (128), 1x1 conv to the classes; bilinear upsample to the input size.
Two auxiliary heads (training only, Sec. 4.1, loss weight 0.4) sit on the learning-to-downsample and
global-feature-extractor outputs.

The authors released no code (TensorFlow, Toshiba Research). Reference implementation read for what the
paper leaves open: open-mmlab/mmsegmentation, mmseg/models/backbones/fast_scnn.py @ 0be9e8d (and
configs/_base_/models/fast_scnn.py for the aux heads).

The blocks shared with ContextNet (same first author; Sec. 3.2.3 calls the fusions similar), the bottleneck
`InvertedResidual` (Table 2) and the fusion (Table 3), live in `zoo.layers.mobile`.

Choices and deviations:
- DSConv is depthwise 3x3 + BN, then pointwise 1x1 + BN + ReLU: Sec. 3.2.1 omits the nonlinearity between
  the depthwise and pointwise convs (mmsegmentation keeps a ReLU there). Applied to the classifier's DSConvs
  too. Parameters are unchanged either way.
- PPM: `zoo.layers.PyramidPooling` (PSPNet's: bins 1, 2, 3, 6, each a 1x1 ConvBNReLU to 128 / 4 = 32
  channels, upsampled and concatenated with the input, 256 channels), then a 1x1 ConvBNReLU to 128. The paper
  gives only "PPM, c = 128"; the 1x1 fuse follows mmsegmentation (PSPNet's own 3x3 fuse would add 0.26M
  parameters and overshoot the paper's 1.11M by 26%).
- The fusion's depthwise conv uses dilation 4 as in Table 3 (mmsegmentation: no dilation; the count is the
  same). Upsampling is bilinear, align_corners=False, to explicit sizes (`resize_to`) so that any input size
  works (every stride-2 layer is k3 p1, so the branches meet at equal sizes).
- Aux heads: the paper gives no form; we use `SegHead(c, 32, classes)` (3x3 ConvBNReLU to 32, 1x1), the
  mmsegmentation config's FCN heads (channels=32, one conv) without their dropout.
- No dropout before the classifier (the paper's is training-only). Logits, not softmax/argmax: the paper's
  "Fast-SCNN cls" replaces the final softmax by argmax; both are outside our model.

Parity: unverified. The authors released neither code nor weights, and no reimplementation read builds this
paper's network, so matching one would mean departing from the paper. mmsegmentation's fast_scnn.py (the
card's reference) changed between versions and differs from the paper in each: at 0be9e8d a full 1x1 conv
(128 x 128) replaces the fusion's depthwise conv and its DSConvs have a ReLU between depthwise and
pointwise convs (mmcv's default); at f950c44 the PPM is fused by a 3x3 conv (+0.26M parameters over the
paper's 1.11M) and the fusion's depthwise conv has no dilation; in both, the decode head's DSConvs put a
ReLU between depthwise and pointwise convs. Tramac/Fast-SCNN-pytorch likewise has that ReLU, no dilation and
align_corners=True resizes. mmsegmentation's checkpoints are for its own network, so no converter is
registered.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.evaluation import Recipe
from zoo.layers import ConvBNAct, PyramidPooling, SegHead, resize_to
from zoo.layers.init import kaiming_init_
from zoo.layers.mobile import DetailContextFusion, bottleneck_stage, dsconv
from zoo.registry import register_model


class GlobalFeatureExtractor(nn.Module):
    """Table 1: three bottleneck stages (64, 96, 128; t = 6; n = 3; s = 2, 2, 1), then PPM fused to 128."""

    def __init__(
        self, in_channels: int = 64, channels: tuple[int, int, int] = (64, 96, 128), out_channels=128
    ):
        super().__init__()
        c1, c2, c3 = channels
        self.stages = nn.Sequential(
            bottleneck_stage(in_channels, c1, 3, 2),
            bottleneck_stage(c1, c2, 3, 2),
            bottleneck_stage(c2, c3, 3, 1),
        )
        self.ppm = PyramidPooling(c3, c3 // 4, bins=(1, 2, 3, 6))
        self.fuse = ConvBNAct(self.ppm.out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.ppm(self.stages(x)))


class FastSCNN(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with aux heads,
    (logits, [aux logits from the learning-to-downsample and global-feature-extractor outputs])."""

    def __init__(self, num_classes: int = 19, aux_heads: bool = True):
        super().__init__()
        self.learning_to_downsample = nn.Sequential(
            ConvBNAct(3, 32, 3, stride=2), dsconv(32, 48, stride=2), dsconv(48, 64, stride=2)
        )
        self.global_feature_extractor = GlobalFeatureExtractor(64)
        self.feature_fusion = DetailContextFusion(64, 128, 128, dilation=4)
        self.classifier = nn.Sequential(dsconv(128, 128), dsconv(128, 128), nn.Conv2d(128, num_classes, 1))
        self.aux_heads = (
            nn.ModuleList([SegHead(64, 32, num_classes), SegHead(128, 32, num_classes)])
            if aux_heads
            else None
        )
        kaiming_init_(self)

    def forward(self, x: torch.Tensor):
        high = self.learning_to_downsample(x)
        low = self.global_feature_extractor(high)
        logits = resize_to(self.classifier(self.feature_fusion(high, low)), x)
        if self.training and self.aux_heads is not None:
            return logits, [
                resize_to(head(f), x) for head, f in zip(self.aux_heads, (high, low), strict=True)
            ]
        return logits


_PAPER_TEXT = (
    "Read in a verbatim transcription of the paper's text (the arXiv PDF itself could not be opened here); "
)

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="Fast-SCNN: Fast Semantic Segmentation Network", venue="BMVC", year=2019, arxiv="1902.04502"
    ),
    official_code="https://github.com/open-mmlab/mmsegmentation/blob/main/mmseg/models/backbones/fast_scnn.py",
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            "params",
            1.11,
            source="paper Sec. 1 and Sec. 4.1 ('we employ 1.11 million parameters')",
            note=_PAPER_TEXT + "the paper does not say whether the auxiliary heads are counted; our count "
            "without them is the closer (+2.5% vs +7.6% with them).",
        ),
        Reported(
            "miou",
            68.0,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol="single-scale, full resolution",
            note="Trained on fine annotations only, from scratch, 1,000 epochs. The split is from Sec. 4.2 "
            "('We evaluate overall performance on the withheld test set ... Fast-SCNN achieves 68.0% mIoU').",
        ),
        Reported(
            "fps",
            123.5,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            device="Nvidia Titan Xp (Pascal)",
            backend="TensorFlow (CUDA 9.0, cuDNN v7)",
            note="Device from Sec. 1, backend from Sec. 4.1: one CPU thread and one GPU, forward only, 100 "
            "burn-in frames then the mean of 100. This is 'Fast-SCNN cls' (argmax in place of the final "
            "softmax, Sec. 3.2.4). Precision is not stated.",
        ),
        Reported(
            "miou",
            62.8,
            source="paper Sec. 4.4 (Table 7)",
            input_hw=(512, 1024),
            dataset="Cityscapes",
            protocol="same model, input subsampled to half resolution",
            split="not stated (compared with test-set entries)",
        ),
        Reported(
            "fps",
            285.8,
            source="paper Sec. 4.4 (Table 7)",
            input_hw=(512, 1024),
            device="Nvidia Titan Xp (Pascal)",
            backend="TensorFlow (CUDA 9.0, cuDNN v7)",
        ),
        Reported(
            "miou",
            51.9,
            source="paper Sec. 4.4 (Table 7)",
            input_hw=(256, 512),
            dataset="Cityscapes",
            protocol="same model, input subsampled to quarter resolution",
            split="not stated (compared with test-set entries)",
        ),
        Reported(
            "fps",
            485.4,
            source="paper Sec. 4.4 (Table 7)",
            input_hw=(256, 512),
            device="Nvidia Titan Xp (Pascal)",
            backend="TensorFlow (CUDA 9.0, cuDNN v7)",
        ),
    ),
    notes="The authors released no code; official_code is the reference implementation relied on "
    "(mmsegmentation). The paper's text (abstract, Secs. 1, 3, 4) was read in a verbatim transcription; its "
    "tables were not, so the layer list follows the text plus the Table 1 rows as quoted by secondary "
    "sources and mmsegmentation. The paper reports no FLOPs. Not recorded for lack of a verifiable source: "
    "the validation mIoU (Table 6; Sec. 4.3 implies 68.62% = 69.15 - 0.53 without pre-training) and Table "
    "5's per-model FPS. Params: ours 1,137,795 without the aux heads (+2.5% vs 1.11M), 1,194,473 with them; "
    "our BatchNorm layers hold 23,680 of them (1,114,115 without, +0.4%): which convention the paper's "
    "TensorFlow count used is not stated.",
)


# Poudel et al. 2019, Sec. 4.1: SGD momentum 0.9, lr 0.045, weight decay 4e-5, poly 0.9, batch 12,
# random scale 0.5-2, crop, flip, auxiliary losses weighted 0.4 (Cityscapes; no CamVid recipe given).
RECIPE = Recipe(
    optimizer="sgd",
    lr=0.045,
    weight_decay=4e-5,
    schedule="poly",
    power=0.9,
    batch_size=12,
    crop_hw=(768, 768),
    scale_range=(0.5, 2.0),
    flip=True,
    aux_weight=0.4,
    source="Fast-SCNN paper Sec. 4.1",
)


@register_model(card=CARD, recipe=RECIPE)
def fastscnn(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """Fast-SCNN as in the paper's Table 1 (Cityscapes, 19 classes)."""
    return FastSCNN(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
