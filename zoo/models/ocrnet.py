"""OCRNet (Yuan, Chen, Wang, "Object-Contextual Representations for Semantic Segmentation", ECCV 2020,
arXiv 1909.11065) on HRNetV2-W48 and on a dilated ResNet-101.

Official code: HRNet/HRNet-Semantic-Segmentation, branch HRNet-OCR @ 0bbb288 (lib/models/seg_hrnet_ocr.py,
lib/config/default.py, experiments/cityscapes/seg_hrnet_ocr_w48_*.yaml) for HRNet + OCR, and
openseg-group/openseg.pytorch @ aefc755 (lib/models/nets/ocrnet.py `SpatialOCRNet`,
lib/models/modules/spatial_ocr_block.py, configs/cityscapes/R_101_D_8.json,
scripts/cityscapes/ocrnet/run_r_101_d_8_ocrnet_train.sh) for ResNet-101 + OCR.

The OCR head (paper Sec. 3.2-3.3, Fig. 3), in both official forms:
- soft object regions: a classifier predicts K class maps (a coarse segmentation). Its supervision (weight
  0.4) is training-only, but the maps are needed at inference (they pool the regions), so this head is part
  of the eval model. HRNet: 1x1 conv (with bias) + BN + ReLU + 1x1 classifier on the 720-channel HRNetV2
  representation; ResNet-101: 3x3 conv (with bias, 1024 -> 512) + BN + ReLU + dropout + 1x1 classifier on
  layer3 (the FCN auxiliary head, here used at inference);
- pixel representations: a 3x3 conv (with bias) + BN + ReLU to 512 channels (on the HRNetV2 representation,
  or on layer4);
- object region representations f_k: each region's spatially softmaxed map weights a sum of the pixel
  representations (Eq. 1; a batched matrix product);
- pixel-region relation: softmax over regions of phi(x_i)^T psi(f_k) / sqrt(256), phi and psi two 1x1
  ConvBNReLU each (Eq. 2); object-contextual representation y_i: the relation-weighted sum of delta(f_k),
  lifted by rho back to 512 channels (Eq. 3; delta, rho one 1x1 ConvBNReLU each);
- augmented representation: concat(y_i, x_i) -> 1x1 ConvBNReLU to 512 (Eq. 4), dropout 0.05, and a 1x1
  classifier; logits upsampled to the input size.

Trunks: HRNetV2-W48 from zoo.backbones.hrnet (the official seg trunk, bilinear exchange units,
align_corners=True as the HRNet-OCR config sets). ResNet-101: `ResNetFeatures(101, output_stride=8,
deep_stem=True)`, matching openseg's `deepbase_resnet101_dilated8` (three 3x3 stem convs 64-64-128,
layer3 dilation 2, layer4 dilation 4 with its first unit at 2: multi_grid [1, 1, 1]), and its max pooling
set to ceil_mode=True as openseg's trunk has it (at 1024x2048 the stride-8 maps are 129x257, not 128x256).

Deviations and why:
- openseg's ResNet-101 run (its Cityscapes config and script, which trained the released model) uses
  in-place activated BN (`bn_type` inplace_abn), whose "BNReLU" applies a leaky ReLU (slope 0.01) in the
  head: `ocrnet_r101` does too (BN + LeakyReLU(0.01) in the region head and the OCR head; the trunk's BNs are
  identity-activation ABNs followed by ReLU, i.e. BN + ReLU), so the released checkpoint computes the same
  function; the paper and the HRNet-OCR code use ReLU (no parameter or cost difference). In-Place ABN scales
  by |weight| + eps: `convert_resnet_ocr` stores that as the BN weight. Parity with both official codes is
  tested (tests/fixtures/parity/ocrnet_*.json).
- The 1x1 convs of phi, psi, delta, rho and of the fusion conv have no bias in the HRNet-OCR code and a bias
  in openseg's; each variant follows its own code (`conv_bias`), so both parameter counts are the official
  ones exactly.
- The training-only part is only the region maps' loss; `aux_heads` holds a parameter-free identity so that
  train mode returns (logits, [region logits upsampled]) per the zoo contract.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from zoo.backbones import HRNetTrunk, ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, resize_to
from zoo.models.hrnetv2 import convert_official as _convert_hrnet_trunk
from zoo.registry import register_model
from zoo.weights import inplace_abn_to_bn


class ObjectContext(nn.Module):
    """Object region representations, pixel-region relation and the object-contextual representation."""

    def __init__(
        self,
        channels: int = 512,
        key_channels: int = 256,
        conv_bias: bool = False,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()

        def proj(cin: int, cout: int) -> ConvBNAct:
            return ConvBNAct(cin, cout, 1, bias=conv_bias, act_layer=act_layer)

        self.f_pixel = nn.Sequential(proj(channels, key_channels), proj(key_channels, key_channels))
        self.f_object = nn.Sequential(proj(channels, key_channels), proj(key_channels, key_channels))
        self.f_down = proj(channels, key_channels)
        self.f_up = proj(key_channels, channels)
        self.scale = key_channels**-0.5

    def forward(self, feats: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
        n, _, h, w = feats.shape
        pixels = feats.flatten(2)  # N, C, HW
        # Eq. 1: f_k = sum_i softmax_i(m_ki) x_i, as an (N, C, K, 1) map so the 1x1 convs apply to it.
        weights = region_logits.flatten(2).softmax(dim=2)  # N, K, HW
        regions = torch.bmm(pixels, weights.transpose(1, 2)).unsqueeze(-1)  # N, C, K, 1
        query = self.f_pixel(feats).flatten(2).transpose(1, 2)  # N, HW, Ck
        key = self.f_object(regions).flatten(2)  # N, Ck, K
        value = self.f_down(regions).flatten(2).transpose(1, 2)  # N, K, Ck
        relation = (torch.bmm(query, key) * self.scale).softmax(dim=-1)  # Eq. 2: N, HW, K
        context = torch.bmm(relation, value).transpose(1, 2).reshape(n, -1, h, w)  # Eq. 3
        return self.f_up(context)


class OCRHead(nn.Module):
    """3x3 ConvBNAct to `mid` channels -> object context -> concat + 1x1 ConvBNAct (Eq. 4) -> classifier."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        mid_channels: int = 512,
        key_channels: int = 256,
        conv_bias: bool = False,
        dropout: float = 0.05,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        self.conv = ConvBNAct(in_channels, mid_channels, 3, bias=True, act_layer=act_layer)
        self.context = ObjectContext(mid_channels, key_channels, conv_bias, act_layer)
        self.fuse = ConvBNAct(2 * mid_channels, mid_channels, 1, bias=conv_bias, act_layer=act_layer)
        self.drop = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(mid_channels, num_classes, 1)

    def forward(self, feats: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
        x = self.conv(feats)
        x = self.fuse(torch.cat([self.context(x, region_logits), x], dim=1))
        return self.cls(self.drop(x))


class OCRNet(nn.Module):
    """Trunk -> soft object regions (`region_head`) and OCR head -> logits upsampled (align_corners=True,
    as both official codes). forward(x) -> logits in eval; (logits, [region logits]) in train mode."""

    def __init__(self, backbone: nn.Module, region_head: nn.Module, ocr: OCRHead, aux_heads: bool = True):
        super().__init__()
        self.backbone = backbone
        self.region_head = region_head
        self.ocr = ocr
        # The region maps are the auxiliary output; their head runs at inference too (see module docstring).
        self.aux_heads = nn.ModuleList([nn.Identity()]) if aux_heads else None

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input of the region head, input of the OCR head)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        region_in, feats = self.features(x)
        region_logits = self.region_head(region_in)
        logits = resize_to(self.ocr(feats, region_logits), x, align_corners=True)
        if self.training and self.aux_heads is not None:
            return logits, [resize_to(self.aux_heads[0](region_logits), x, align_corners=True)]
        return logits


class HRNetOCR(OCRNet):
    """HRNetV2-W48 representation (720 channels at stride 4) feeds both the region head and the OCR head."""

    def __init__(self, num_classes: int = 19, aux_heads: bool = True):
        trunk = HRNetTrunk("hrnet_w48", align_corners=True)
        channels = sum(trunk.out_channels)
        region_head = nn.Sequential(
            ConvBNAct(channels, channels, 1, bias=True), nn.Conv2d(channels, num_classes, 1)
        )
        super().__init__(trunk, region_head, OCRHead(channels, num_classes, conv_bias=False), aux_heads)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone.concat_streams(self.backbone(x))
        return feats, feats


class ResNetOCR(OCRNet):
    """Dilated deep-stem ResNet-101 at output stride 8: regions from layer3, OCR head on layer4."""

    def __init__(self, num_classes: int = 19, aux_heads: bool = True, depth: int = 101):
        # openseg's BNReLU with bn_type inplace_abn (its Cityscapes run): BN + leaky ReLU 0.01.
        act = nn.LeakyReLU
        region_head = nn.Sequential(
            ConvBNAct(1024, 512, 3, bias=True, act_layer=act),
            nn.Dropout2d(0.05),
            nn.Conv2d(512, num_classes, 1),
        )
        trunk = ResNetFeatures(depth, output_stride=8, deep_stem=True)
        trunk.maxpool.ceil_mode = True  # openseg's trunk pools with ceil_mode=True
        ocr = OCRHead(2048, num_classes, conv_bias=True, act_layer=act)
        super().__init__(trunk, region_head, ocr, aux_heads)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, c4, c5 = self.backbone(x)
        return c4, c5


# Official state-dict names -> ours. openseg's BN-ReLU is nn.Sequential(BN, ReLU) with torch BN ('.1.0.')
# and a single in-place ABN module in its released checkpoints ('.1.'); both map to our `.bn`.
_OCR_BLOCK = {
    "f_pixel.0.": "f_pixel.0.conv.",
    "f_pixel.1.": "f_pixel.0.bn.",
    "f_pixel.2.": "f_pixel.1.conv.",
    "f_pixel.3.": "f_pixel.1.bn.",
    "f_object.0.": "f_object.0.conv.",
    "f_object.1.": "f_object.0.bn.",
    "f_object.2.": "f_object.1.conv.",
    "f_object.3.": "f_object.1.bn.",
    "f_down.0.": "f_down.conv.",
    "f_down.1.": "f_down.bn.",
    "f_up.0.": "f_up.conv.",
    "f_up.1.": "f_up.bn.",
}


def _rename(state: dict[str, torch.Tensor], table: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for old, new in table.items():
            if key.startswith(old):
                rest = key[len(old) :].removeprefix("0.")  # nn.Sequential(BN, ReLU) -> BN
                key = new + rest
                break
        out[key] = value
    return out


def _ocr_table(official_head: str, conv3x3: str, cls: str) -> dict[str, str]:
    block = f"{official_head}.object_context_block."
    table = {block + old: "ocr.context." + new for old, new in _OCR_BLOCK.items()}
    table.update(
        {
            f"{official_head}.conv_bn_dropout.0.": "ocr.fuse.conv.",
            f"{official_head}.conv_bn_dropout.1.": "ocr.fuse.bn.",
            f"{conv3x3}.0.": "ocr.conv.conv.",
            f"{conv3x3}.1.": "ocr.conv.bn.",
            f"{cls}.": "ocr.cls.",
        }
    )
    return table


_HRNET_TRUNK = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "transition", "stage")


def convert_hrnet_ocr(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """seg_hrnet_ocr.py checkpoint ('model.' prefix as released) -> ours."""
    table = _ocr_table("ocr_distri_head", "conv3x3_ocr", "cls_head")
    table.update(
        {
            "aux_head.0.": "region_head.0.conv.",
            "aux_head.1.": "region_head.0.bn.",
            "aux_head.3.": "region_head.1.",
        }
    )
    state = {k.removeprefix("model."): v for k, v in state.items() if not k.startswith("loss.")}
    head = _rename({k: v for k, v in state.items() if not k.startswith(_HRNET_TRUNK)}, table)
    trunk = _convert_hrnet_trunk({k: v for k, v in state.items() if k.startswith(_HRNET_TRUNK)})
    return {**trunk, **head}


def convert_resnet_ocr(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """openseg SpatialOCRNet (deepbase_resnet101_dilated8, bn_type inplace_abn) checkpoint -> ours; its
    In-Place ABN scales |weight| + eps become BN weights."""
    table = _ocr_table("spatial_ocr_head", "conv_3x3", "head")
    table.update(
        {
            "dsn_head.0.": "region_head.0.conv.",
            "dsn_head.1.": "region_head.0.bn.",
            "dsn_head.3.": "region_head.2.",
            "backbone.resinit.conv1.": "backbone.conv1.0.",
            "backbone.resinit.bn1.": "backbone.conv1.1.",
            "backbone.resinit.conv2.": "backbone.conv1.3.",
            "backbone.resinit.bn2.": "backbone.conv1.4.",
            "backbone.resinit.conv3.": "backbone.conv1.6.",
            "backbone.resinit.bn3.": "backbone.bn1.",
        }
    )
    return inplace_abn_to_bn(_rename(state, table))


_PAPER = Paper(
    title="Object-Contextual Representations for Semantic Segmentation",
    venue="ECCV",
    year=2020,
    arxiv="1909.11065",
)
_CS_HW = (1024, 2048)
_HRNET_OCR = "HRNet/HRNet-Semantic-Segmentation@0bbb2880446ddff2d78f8dd7e8c4c610151d5a51"
_OPENSEG = "openseg-group/openseg.pytorch@aefc75517b09068d7131a69420bc5f66cb41f0ee"
_NOT_RETRIEVED = (
    "The paper's tables (its Cityscapes results and its complexity table of the OCR module alone) were not "
    "retrieved here, so the card holds the official repos' numbers only; neither repo reports params or "
    "FLOPs, hence the official code's parameter count (built with 19 classes, counted by us). "
)


@register_model(
    card=ModelCard(
        group="semantic",
        paper=_PAPER,
        official_code="https://github.com/HRNet/HRNet-Semantic-Segmentation/tree/HRNet-OCR",
        implementation=f"segbench (timm {timm.__version__} HighResolutionNet trunk)",
        num_classes=19,
        input_hw=_CS_HW,
        reported=(
            Reported(
                "params",
                70.37,
                source=f"{_HRNET_OCR}:lib/models/seg_hrnet_ocr.py",
                note="Official code's count: 70,372,678 (seg_hrnet_ocr.py with the Cityscapes W48 OCR "
                "config, 19 classes, region head included as it runs at inference); ours match exactly.",
            ),
            Reported(
                "miou",
                81.6,
                source=f"{_HRNET_OCR}:README.md",
                input_hw=_CS_HW,
                dataset="Cityscapes",
                split="val",
                protocol="single-scale, no flip, whole image",
                note="Table 1 'HRNetV2-W48 + OCR', trained on train at 512x1024, no OHEM.",
            ),
            Reported(
                "miou",
                82.3,
                source=f"{_HRNET_OCR}:README.md",
                input_hw=_CS_HW,
                dataset="Cityscapes",
                split="test",
                protocol="ms (0.5 to 1.75) + flip",
                variant="trained on train + val",
                note="Table 1, trained on train + val, no OHEM.",
            ),
        ),
        notes=_NOT_RETRIEVED + "Trunk and head follow the HRNet-OCR branch (align_corners=True throughout).",
    ),
    converter=convert_hrnet_ocr,
)
def ocrnet_hrnetv2_w48(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return HRNetOCR(num_classes=num_classes, aux_heads=aux_heads, **kwargs)


@register_model(
    card=ModelCard(
        group="semantic",
        paper=_PAPER,
        official_code="https://github.com/openseg-group/openseg.pytorch",
        implementation="segbench (torchvision 0.29 ResNet-101 trunk, deep stem)",
        num_classes=19,
        input_hw=_CS_HW,
        reported=(
            Reported(
                "params",
                57.99,
                source=f"{_OPENSEG}:lib/models/nets/ocrnet.py",
                note="Official code's count: 57,988,838 (SpatialOCRNet, deepbase_resnet101_dilated8, "
                "multi_grid [1, 1, 1], torch BN, 19 classes; the layer3 region head included as it runs at "
                "inference); ours match exactly.",
            ),
            Reported(
                "miou",
                79.63,
                source=f"{_OPENSEG}:MODEL_ZOO.md",
                input_hw=_CS_HW,
                dataset="Cityscapes",
                split="val",
                protocol="single-scale, no flip, whole image",
                note="'OCR | ResNet-101' row: trained on train, 40K iterations, batch 8, no OHEM, without "
                "SegFix (80.68 with it).",
            ),
        ),
        notes=_NOT_RETRIEVED
        + "Trunk: openseg's deep-stem ('deepbase') dilated ResNet-101 at output stride 8 (its Cityscapes "
        "config R_101_D_8.json), so `deep_stem=True`.",
    ),
    converter=convert_resnet_ocr,
)
def ocrnet_r101(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return ResNetOCR(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
