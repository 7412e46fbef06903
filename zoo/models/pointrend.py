"""PointRend for semantic segmentation: Kirillov, Wu, He, Girshick, "PointRend: Image Segmentation as
Rendering", CVPR 2020 (arXiv 1912.08193v2, Sec 3 and 5, Appendix B).

Official code: https://github.com/facebookresearch/detectron2/tree/main/projects/PointRend, read at
facebookresearch/detectron2@02b5c4e (point_rend/semantic_seg.py, point_head.py, point_features.py,
configs/SemanticSegmentation/*.yaml) and the SemanticFPN head in modeling/meta_arch/semantic_seg.py.
The authors released SemanticFPN + PointRend only; DeepLabV3 + PointRend follows the paper (a maintainer:
"no plans at the moment to provide deeplabv3+pointrend models", facebookresearch/detectron2#1606).

A coarse predictor gives K-class logits on a regular grid; PointRend refines them. At each point it
concatenates fine-grained features (bilinearly sampled from a stride-4 map: P2 for SemanticFPN, res2 for
DeepLabV3) with the coarse logits sampled at the same point, and an MLP (three 1x1 conv1d layers of 256 with
ReLU, then a K-class 1x1 conv1d) predicts the point's logits; the paper's MLP appends the K coarse features
to every layer's input (Sec 4, "the same PointRend architecture" in Sec 5). Inference (adaptive subdivision,
part of the eval forward): repeatedly upsample the current logits 2x bilinearly, pick the N most uncertain
cells (uncertainty = -(top1 - top2) logit gap), re-predict them with the point head and write them back,
until the input resolution: 2 steps from SemanticFPN's stride 4, 4 from DeepLabV3-OS-16. N = 8192, the cells
of a stride-16 map of a 1024x2048 image (detectron2's SUBDIVISION_NUM_POINTS; the paper's "N=8096" is a typo
for that count). At 1024x2048 DeepLabV3 + PointRend thus predicts 4 x 8192 = 32k points (paper: "32k").

- `pointrend_semfpn_r50`: Semantic FPN (Panoptic FPN's semantic branch): FPN P2-P5 (256 channels, no norm,
  nearest top-down); per level 3x3 conv (128) + GroupNorm(32) + ReLU stages with 2x bilinear upsampling down
  to stride 4, summed, 1x1 classifier at stride 4.
- `pointrend_deeplabv3_r101`: DeepLabV3 at output stride 16 (Table 6's "DeeplabV3-OS-16 + PointRend") on
  the paper's ResNet-103 (ResNet-101 with three 3x3 stem convs, `deep_stem=True`), multi-grid (1, 2, 4) in
  res5, ASPP (6, 12, 18) + image pooling (`zoo.layers.ASPP`), 1x1 classifier.

Deviations and why:
- Backbones: the survey asks for SemanticFPN on ResNet-50; the paper and detectron2 report ResNet-101 only
  (the cards' mIoU are ResNet-101 numbers). The SemanticFPN trunk is detectron2's MSRA-style ResNet (stride
  on each stage's first 1x1 conv, STRIDE_IN_1X1=True: `stride_in_1x1=True`), torchvision's modules
  otherwise. Its BN is frozen (FrozenBN: affine as buffers); ours are BN layers, equal in eval.
  `convert_official` maps a detectron2 state_dict of this model (parity with detectron2 is tested:
  tests/fixtures/parity/pointrend_semfpn_r50.json). detectron2's model-zoo files are pickles of numpy
  arrays, which are never unpickled here: load such a file with detectron2 (or numpy) and save its
  tensors with torch.save or safetensors first. Its input is BGR 0-255 minus the mean (PIXEL_MEAN, std 1),
  which detectron2 applies inside its model: preprocessing here. The DeepLabV3 variant has no official
  code to compare with (see above).
- DeepLabV3 details the paper leaves open: multi-grid (1, 2, 4) is DeepLabV3's final design and what
  detectron2's DeepLab project uses for the same ResNet-103 recipe (deeplab_v3_R_103_os16_mg124); ASPP
  follows the DeepLabV3 paper (BN in the pooling branch, global pooling). Built from zoo parts rather than
  `zoo.models.deeplabv3.DeepLabV3`, whose forward hides res2 and the pre-upsampling logits and has no deep
  stem; the module names (backbone, aspp, classifier) are the same.
- Coarse features at every MLP layer (paper). detectron2 sets COARSE_PRED_EACH_LAYER=False for semantic
  segmentation since commit 81d5a87 ("much more stable" training, 78.9 vs 78.6 mIoU); pass
  `coarse_pred_each_layer=False` to build that (9,728 + 361 fewer parameters).
- Sizes that are not multiples of the output stride: detectron2 pads the input to a multiple of 32 and
  crops; we resize to explicit sizes instead (FPN top-down to each lateral's size; subdivision step i to
  ceil(input / 2**(steps - i)), the last step exactly the input size). At 1024x2048 both are the official
  2x steps. detectron2's unused P6 (a parameter-free max pool) is left out.
- Training: forward in train mode returns the coarse logits upsampled to the input (the coarse loss);
  `forward_points(x)` also returns point logits at training points sampled as in the paper (k=3 oversampling,
  beta=0.75 importance; 2048 points for SemanticFPN, 2304 for DeepLabV3, Sec 5). The point head is used at
  inference, so it is not an `aux_heads` module; there is no training-only head.
"""

from __future__ import annotations

import math
import re
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ASPP, ConvBNAct, resize_to
from zoo.registry import register_model
from zoo.weights import add_bn_counters

SUBDIVISION_POINTS = 8192  # detectron2 SUBDIVISION_NUM_POINTS (Cityscapes config)
_OVERSAMPLE, _IMPORTANCE = 3, 0.75  # paper Sec 3.1 / 5: k and beta


def point_sample(features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """features[N, C, H, W] bilinearly sampled at coords[N, P, 2] ((x, y) in [0, 1]) -> [N, C, P]."""
    grid = 2.0 * coords.unsqueeze(2) - 1.0
    return F.grid_sample(features, grid, mode="bilinear", align_corners=False).squeeze(3)


def uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """-(top1 - top2) logit gap over dim 1 (the official code's measure): highest where least certain."""
    top2 = logits.topk(2, dim=1).values
    return top2[:, 1] - top2[:, 0]


class PointHead(nn.Module):
    """MLP on point features: `num_fc` conv1d(1x1) + ReLU layers, then a K-class conv1d.

    detectron2's StandardPointHead: our fcs.i is its fc{i+1}; predictor is predictor.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        fc_dim: int = 256,
        num_fc: int = 3,
        coarse_pred_each_layer: bool = True,
    ):
        super().__init__()
        self.coarse_pred_each_layer = coarse_pred_each_layer
        extra = num_classes if coarse_pred_each_layer else 0
        dims = [in_channels + num_classes] + [fc_dim + extra] * num_fc
        self.fcs = nn.ModuleList(nn.Conv1d(dims[i], fc_dim, 1) for i in range(num_fc))
        self.predictor = nn.Conv1d(dims[-1], num_classes, 1)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        x = torch.cat([fine, coarse], dim=1)
        for fc in self.fcs:
            x = F.relu(fc(x))
            if self.coarse_pred_each_layer:
                x = torch.cat([x, coarse], dim=1)
        return self.predictor(x)


class PointRend(nn.Module):
    """Base: subclasses set `coarse_stride` and `train_points` and define `coarse_and_fine(x)` ->
    (coarse logits[N, K, H/s, W/s], fine features[N, C, H/4, W/4]).

    forward(x[N, 3, H, W]) -> logits[N, K, H, W]: subdivision-refined in eval, the coarse logits upsampled
    to the input in train mode.
    """

    coarse_stride: int
    train_points: int

    def __init__(self, fine_channels: int, num_classes: int, coarse_pred_each_layer: bool, num_points: int):
        super().__init__()
        self.num_points = num_points
        self.point_head = PointHead(fine_channels, num_classes, coarse_pred_each_layer=coarse_pred_each_layer)

    def coarse_and_fine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse, fine = self.coarse_and_fine(x)
        if self.training:
            return resize_to(coarse, x)
        return self.subdivide(coarse, fine, tuple(x.shape[-2:]))

    def subdivide(self, coarse: torch.Tensor, fine: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        """Adaptive subdivision (paper Sec 3.1): the step count and sizes depend on shapes only."""
        steps = int(math.log2(self.coarse_stride))
        logits = coarse
        for i in range(steps - 1, -1, -1):
            size = (math.ceil(out_hw[0] / 2**i), math.ceil(out_hw[1] / 2**i))
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            n, c, h, w = logits.shape
            num_points = min(self.num_points, h * w)
            idx = uncertainty(logits).flatten(1).topk(num_points, dim=1).indices  # [N, P]
            # Cell centres of the current grid, in [0, 1] image coordinates.
            coords = torch.stack([(idx % w + 0.5) / w, (idx // w + 0.5) / h], dim=2).to(logits.dtype)
            # Coarse features come from the original coarse prediction, as in the official code.
            point_logits = self.point_head(point_sample(fine, coords), point_sample(coarse, coords))
            index = idx.unsqueeze(1).expand(-1, c, -1)
            logits = logits.flatten(2).scatter(2, index, point_logits).view(n, c, h, w)
        return logits

    @torch.no_grad()
    def sample_training_points(self, coarse: torch.Tensor) -> torch.Tensor:
        """Paper Sec 3.1: k*N uniform candidates, the beta*N most uncertain of them, (1-beta)*N uniform."""
        n, num = coarse.shape[0], self.train_points
        candidates = torch.rand(n, num * _OVERSAMPLE, 2, device=coarse.device, dtype=coarse.dtype)
        num_uncertain = int(_IMPORTANCE * num)
        idx = uncertainty(point_sample(coarse, candidates)).topk(num_uncertain, dim=1).indices
        chosen = torch.gather(candidates, 1, idx.unsqueeze(2).expand(-1, -1, 2))
        uniform = torch.rand(n, num - num_uncertain, 2, device=coarse.device, dtype=coarse.dtype)
        return torch.cat([chosen, uniform], dim=1)

    def forward_points(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training outputs: (coarse logits at input size, point logits[N, K, P], point coords[N, P, 2]).

        The point loss is cross-entropy against the labels sampled (nearest) at the coords.
        """
        coarse, fine = self.coarse_and_fine(x)
        coords = self.sample_training_points(coarse)
        point_logits = self.point_head(point_sample(fine, coords), point_sample(coarse, coords))
        return resize_to(coarse, x), point_logits, coords


class FPN(nn.Module):
    """Lin et al.'s feature pyramid: 1x1 laterals, nearest top-down sums, 3x3 output convs (no norm)."""

    def __init__(self, in_channels: list[int], out_channels: int = 256):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.lateral[-1](features[-1])
        outs = [self.output[-1](x)]
        for i in range(len(features) - 2, -1, -1):
            x = self.lateral[i](features[i]) + resize_to(x, features[i], mode="nearest")
            outs.insert(0, self.output[i](x))
        return outs


class SemanticFPNHead(nn.Module):
    """Panoptic FPN's semantic branch: P_i -> max(1, log2(s_i / 4)) x [3x3 conv + GN + ReLU (+ 2x up)], summed
    at stride 4, 1x1 classifier. Upsampling goes to the next finer level's size (2x when sides divide)."""

    def __init__(self, num_classes: int, in_channels: int = 256, channels: int = 128, num_levels: int = 4):
        super().__init__()
        norm = partial(nn.GroupNorm, 32)
        self.scale_heads = nn.ModuleList(
            nn.ModuleList(
                ConvBNAct(in_channels if k == 0 else channels, channels, 3, norm_layer=norm)
                for k in range(max(1, level))
            )
            for level in range(num_levels)
        )
        self.predictor = nn.Conv2d(channels, num_classes, 1)

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        out = 0
        for level, convs in enumerate(self.scale_heads):
            x = pyramid[level]
            for k, conv in enumerate(convs):
                x = conv(x)
                if level > 0:
                    x = resize_to(x, pyramid[level - 1 - k])
            out = out + x
        return self.predictor(out)


class PointRendSemanticFPN(PointRend):
    coarse_stride = 4
    train_points = 2048  # a stride-16 map of the 512x1024 training crop (paper Sec 5, detectron2 config)

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 50,
        coarse_pred_each_layer: bool = True,
        num_points: int = SUBDIVISION_POINTS,
    ):
        super().__init__(256, num_classes, coarse_pred_each_layer, num_points)
        self.backbone = ResNetFeatures(depth, stride_in_1x1=True)  # detectron2's MSRA-style trunk
        self.fpn = FPN([info["channels"] for info in self.backbone.feature_info])
        self.sem_head = SemanticFPNHead(num_classes)

    def coarse_and_fine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pyramid = self.fpn(self.backbone(x))
        return self.sem_head(pyramid), pyramid[0]


class PointRendDeepLabV3(PointRend):
    train_points = 2304  # a stride-16 map of the 768x768 training crop (paper Sec 5)

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 101,
        output_stride: int = 16,
        multi_grid: tuple[int, ...] = (1, 2, 4),
        deep_stem: bool = True,
        coarse_pred_each_layer: bool = True,
        num_points: int = SUBDIVISION_POINTS,
    ):
        super().__init__(256, num_classes, coarse_pred_each_layer, num_points)
        self.coarse_stride = output_stride
        self.backbone = ResNetFeatures(depth, output_stride, multi_grid, deep_stem=deep_stem)
        rates = tuple(r * 16 // output_stride for r in (6, 12, 18))
        self.aspp = ASPP(2048, 256, rates=rates)
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def coarse_and_fine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c2, _, _, c5 = self.backbone(x)
        return self.classifier(self.aspp(c5)), c2


_PAPER = Paper(
    title="PointRend: Image Segmentation as Rendering", venue="CVPR", year=2020, arxiv="1912.08193"
)
_CODE = "https://github.com/facebookresearch/detectron2/tree/main/projects/PointRend"
_D2 = "facebookresearch/detectron2@"
_CS_HW = (1024, 2048)
_PROTOCOL = "single-scale, whole 1024x2048 image, no test-time augmentation"
_TABLES = (
    "Paper Tables 6-7 and Sec 5 were read from an image and transcription of arXiv v2 "
    "(jonychoi/Computer-Vision-Paper-Reviews@b4ac5ae, Segmentation/PointRend*); the paper reports no "
    "parameters or FLOPs for its semantic models (its Table 2 FLOPs are for instance mask heads). "
)


def _miou(value: float, source: str, note: str, variant: str | None = None) -> Reported:
    return Reported(
        "miou",
        value,
        source=source,
        input_hw=_CS_HW,
        dataset="Cityscapes",
        split="val",
        protocol=_PROTOCOL,
        variant=variant,
        note=note,
    )


_FPN_TRAIN = "Trained on train fine (2975 images), 512x1024 crops, 32 images/batch, 65k iterations. "
CARD_SEMFPN = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code=_CODE,
    implementation="segbench (torchvision 0.29 ResNet-50 modules, stride in the 1x1 convs as detectron2)",
    num_classes=19,
    input_hw=_CS_HW,
    reported=(
        Reported(
            "params",
            28.642767,
            source=_D2 + "02b5c4e:projects/PointRend/configs/SemanticSegmentation/"
            "pointrend_semantic_R_101_FPN_1x_cityscapes.yaml",
            note="Official code's count, not a paper number: detectron2's model built from this config with "
            "RESNETS.DEPTH=50 and POINT_HEAD.COARSE_PRED_EACH_LAYER=True (the paper's head), 28,642,767 "
            "parameters; its frozen trunk BN keeps 53,120 affine values as buffers, which we count.",
        ),
        _miou(
            78.6,
            "paper Table 7",
            "SemanticFPN P2-P5 + PointRend on ResNet-101 (not ResNet-50); median of 5 trials. " + _FPN_TRAIN,
            variant="ResNet-101 backbone",
        ),
        _miou(
            78.6,
            _D2 + "04958b9:projects/PointRend/README.md",
            "Released model 186480235, R101-FPN, the paper's head (coarse features at every MLP layer).",
            variant="ResNet-101 backbone",
        ),
        _miou(
            78.9,
            _D2 + "02b5c4e:projects/PointRend/README.md",
            "Released model 202576688, R101-FPN, coarse features at the MLP input only "
            "(COARSE_PRED_EACH_LAYER=False since commit 81d5a87).",
            variant="ResNet-101 backbone; coarse features at the point head's input only",
        ),
    ),
    notes=_TABLES
    + "The paper and detectron2 give SemanticFPN + PointRend on ResNet-101 only; this is the survey's "
    "ResNet-50 variant. For comparison (official code's counts): the R101 config has 47,572,582 "
    "parameters as released (47,582,671 with coarse features at every layer), plus 105,344 FrozenBN "
    "affine buffers.",
)

CARD_DEEPLAB = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code=_CODE,
    implementation="segbench (torchvision 0.29 ResNet-101 trunk with a 3x3 deep stem: ResNet-103)",
    num_classes=19,
    input_hw=_CS_HW,
    reported=(
        _miou(
            78.4,
            "paper Table 6",
            "DeeplabV3-OS-16 + PointRend on ResNet-103 (Sec 5); median of 5 trials. Trained on train fine, "
            "768x768 crops, 16 images/batch, 90k iterations (Appendix B).",
        ),
    ),
    notes=_TABLES
    + "No parameter count is reported: the paper gives none and the authors released no DeepLabV3 + "
    "PointRend code (detectron2#1606), so there is no official count to compare with.",
)


# detectron2 (SemanticSegmentor + PointRendSemSegHead, FPN on an MSRA ResNet) -> ours, first match wins.
_D2_RULES = (
    (r"^backbone\.bottom_up\.stem\.conv1\.norm\.", "backbone.bn1."),
    (r"^backbone\.bottom_up\.stem\.conv1\.", "backbone.conv1."),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.",
        lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.1.",
    ),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.",
        lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.0.",
    ),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.",
        lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.",
    ),
    (
        r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.",
        lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.",
    ),
    (r"^backbone\.fpn_lateral(\d)\.", lambda m: f"fpn.lateral.{int(m[1]) - 2}."),
    (r"^backbone\.fpn_output(\d)\.", lambda m: f"fpn.output.{int(m[1]) - 2}."),
    (
        r"^sem_seg_head\.coarse_sem_seg_head\.p(\d)\.(\d+)\.norm\.",
        lambda m: f"sem_head.scale_heads.{int(m[1]) - 2}.{int(m[2]) // 2}.bn.",
    ),
    (
        r"^sem_seg_head\.coarse_sem_seg_head\.p(\d)\.(\d+)\.",
        lambda m: f"sem_head.scale_heads.{int(m[1]) - 2}.{int(m[2]) // 2}.conv.",
    ),
    (r"^sem_seg_head\.coarse_sem_seg_head\.predictor\.", "sem_head.predictor."),
    (r"^sem_seg_head\.point_head\.fc(\d)\.", lambda m: f"point_head.fcs.{int(m[1]) - 1}."),
    (r"^sem_seg_head\.point_head\.predictor\.", "point_head.predictor."),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a detectron2 PointRend SemanticFPN state_dict (its module names; the model-zoo file's tensors
    saved as torch or safetensors) onto `pointrend_semfpn_r*`. FrozenBN keeps no `num_batches_tracked`:
    filled with zeros. Scale-head indices skip detectron2's parameter-free upsampling modules."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _D2_RULES:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value
    return add_bn_counters(out)


@register_model(card=CARD_SEMFPN, converter=convert_official)
def pointrend_semfpn_r50(num_classes: int = 19, **kwargs) -> nn.Module:
    return PointRendSemanticFPN(num_classes, 50, **kwargs)


@register_model(card=CARD_DEEPLAB)
def pointrend_deeplabv3_r101(num_classes: int = 19, **kwargs) -> nn.Module:
    return PointRendDeepLabV3(num_classes, 101, **kwargs)
