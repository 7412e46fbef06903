"""DANet: Fu, Liu, Tian, Li, Bao, Fang, Lu, "Dual Attention Network for Scene Segmentation", CVPR 2019,
arXiv 1809.02983.

Official code: https://github.com/junfu1115/DANet, read at HEAD b0a0fa00 (encoding/models/sseg/danet.py,
encoding/nn/da_att.py, encoding/models/backbone/resnet.py, README.md) and at the original release 97f0c422
(Sep 2018: encoding/models/danet.py, encoding/nn/attention.py, encoding/nn/customize.py).

The model: a dilated ResNet at output stride 8, then two parallel branches on its 2048-channel output, each
a 3x3 conv (2048 -> 512) + BN + ReLU, an attention module and a 3x3 conv (512 -> 512) + BN + ReLU:
- position attention (PAM): 1x1 convs to query and key (C/8 = 64 channels) and value (512); an N x N
  affinity (N = H x W) softmax-normalised over the attended positions; out = x + gamma * (value @ attn^T);
- channel attention (CAM): a C x C affinity of the features with themselves, no convs;
  out = x + beta * (attn @ x).
The two branch outputs are summed, then dropout + 1x1 classifier and bilinear upsampling to the input size.
gamma and beta are learnable scalars initialised to 0. In training, each branch also has its own
dropout + 1x1 classifier (the official code trains with the three losses summed, equally weighted); both
live under `aux_heads` and do not run in eval. In train mode forward returns
(logits, [PAM-branch logits, CAM-branch logits]), all at the input size.

Choices and deviations:
- CAM normalisation as the official code: softmax(max_j(E) - E) over each row of the C x C affinity E,
  i.e. softmax(-E), whereas the paper's Sec. 3.3 writes softmax(E). The authors keep it "to prevent loss
  divergence during training" and found E - max(E) worse (CASIA-IVA-Lab/DANet issues #9, #48, #106).
- Trunk: torchvision's ResNet with a 7x7 stem, as the official release (its trunk had no deep stem in 2018;
  the current README runs the released DANet-101 with --no-deepstem). Layer4 uses multi-grid rates
  (4, 8, 16), as the released model (--multi-grid --multi-dilation 4 8 16 --os 8); pass multi_grid=None
  for torchvision's (2, 4, 4). Dilation changes neither parameters nor MACs.
- No FCN auxiliary head on layer3: neither the paper nor the official code has one.
- The matrix products are torch.bmm, so fvcore counts them. At 512x1024 the PAM affinity is
  8192 x 8192 floats (256 MiB, twice with its softmax).
- Upsampling uses align_corners=True, as the official code (`up_kwargs`).
- `convert_official` maps official checkpoints; parity with the official code (the README's Cityscapes
  command) is tested for both depths (tests/fixtures/parity/danet_r*.json).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model
from zoo.weights import add_bn_counters


class PositionAttention(nn.Module):
    """PAM (paper Sec. 3.2): each position aggregates the values of all positions, weighted by softmax
    query-key similarity."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.query(x).flatten(2)  # (B, C', N)
        key = self.key(x).flatten(2)
        value = self.value(x).flatten(2)  # (B, C, N)
        attn = torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)  # (B, N, N), row i sums to 1
        return x + self.gamma * torch.bmm(value, attn.transpose(1, 2)).reshape(x.shape)


class ChannelAttention(nn.Module):
    """CAM (paper Sec. 3.3): each channel aggregates all channels, weighted by their affinity."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = x.flatten(2)  # (B, C, N)
        energy = torch.bmm(feats, feats.transpose(1, 2))  # (B, C, C)
        # The official "max minus" form (see the module docstring): it favours dissimilar channels.
        attn = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
        return x + self.gamma * torch.bmm(attn, feats).reshape(x.shape)


class DualAttentionHead(nn.Module):
    """Two branches, 3x3 ConvBNAct -> attention -> 3x3 ConvBNAct; forward -> (PAM feats, CAM feats)."""

    def __init__(self, in_channels: int = 2048, channels: int = 512):
        super().__init__()
        self.pam_in = ConvBNAct(in_channels, channels, 3)
        self.pam = PositionAttention(channels)
        self.pam_out = ConvBNAct(channels, channels, 3)
        self.cam_in = ConvBNAct(in_channels, channels, 3)
        self.cam = ChannelAttention()
        self.cam_out = ConvBNAct(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pam_out(self.pam(self.pam_in(x))), self.cam_out(self.cam(self.cam_in(x)))


def _classifier(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1))


class DANet(DilatedResNetSegmenter):
    """forward(x[N, 3, H, W]) -> logits[N, num_classes, H, W] in eval; in train mode with aux heads,
    (logits, [PAM-branch logits, CAM-branch logits])."""

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 50,
        multi_grid: tuple[int, ...] | None = (1, 2, 4),
        aux_heads: bool = True,
        **kwargs,
    ):
        head = DualAttentionHead(2048, 512)
        super().__init__(
            head,
            512,
            num_classes,
            depth=depth,
            multi_grid=multi_grid,
            aux_heads=False,
            align_corners=True,  # the official up_kwargs
            **kwargs,
        )
        if aux_heads:
            self.aux_heads = nn.ModuleList([_classifier(512, num_classes), _classifier(512, num_classes)])

    def forward(self, x: torch.Tensor):
        pam, cam = self.head(self.backbone(x)[-1])
        logits = self.upsample(self.classifier(pam + cam), x)
        if self.training and self.aux_heads is not None:
            return logits, [
                self.upsample(head(f), x) for head, f in zip(self.aux_heads, (pam, cam), strict=True)
            ]
        return logits


# Official (junfu1115/DANet) state_dict names -> ours. The trunk keys match torchvision's after the prefix.
_RENAMES = (
    ("pretrained.", "backbone."),
    ("head.conv5a.0.", "head.pam_in.conv."),
    ("head.conv5a.1.", "head.pam_in.bn."),
    ("head.conv5c.0.", "head.cam_in.conv."),
    ("head.conv5c.1.", "head.cam_in.bn."),
    ("head.conv51.0.", "head.pam_out.conv."),
    ("head.conv51.1.", "head.pam_out.bn."),
    ("head.conv52.0.", "head.cam_out.conv."),
    ("head.conv52.1.", "head.cam_out.bn."),
    ("head.sa.query_conv.", "head.pam.query."),
    ("head.sa.key_conv.", "head.pam.key."),
    ("head.sa.value_conv.", "head.pam.value."),
    ("head.sa.gamma", "head.pam.gamma"),
    ("head.sc.gamma", "head.cam.gamma"),
    ("head.conv8.", "classifier."),
    ("head.conv6.", "aux_heads.0."),
    ("head.conv7.", "aux_heads.1."),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a junfu1115/DANet checkpoint (e.g. the released DANet101.pth.tar) onto `danet_r*`.

    Checkpoints saved before PyTorch 0.4.1 lack BN's num_batches_tracked; it is filled with zeros.
    """
    out = {}
    for key, value in state.items():
        for old, new in _RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return add_bn_counters(out)


_PAPER = Paper(
    title="Dual Attention Network for Scene Segmentation", venue="CVPR", year=2019, arxiv="1809.02983"
)
_CODE = "https://github.com/junfu1115/DANet"
_PARAMS_NOTE = (
    "Neither the paper nor the official repo states a parameter count; this is the count of the official "
    "definition (encoding/models/sseg/danet.py with its ResNet-{} built --no-deepstem --multi-grid, 19 "
    "classes), built in a scratch folder and counted, without the two training-only branch classifiers "
    "(conv6, conv7)."
)
_NOTES = (
    "The paper reports no parameter count and no FLOPs; the params figure is the official code's count (see "
    "its note). input_hw: the official test script evaluates Cityscapes with 768x768 sliding windows over "
    "the 1024x2048 image (--base-size 2048 --crop-size 768), so each forward is 768x768; a whole-image "
    "forward at 1024x2048 would need a 32768 x 32768 PAM affinity (4 GiB in fp32). The paper's ablation and "
    "PASCAL-Context / COCO-Stuff tables could not be read here, so their numbers (including any DANet-50 "
    "result) are not recorded; Cityscapes test 81.5 is read from the paper's Table 3 as the official repo's "
    "first commit shows it (img/tab3.png), and the abstract."
)
_R101 = (
    ("miou", 81.5, "paper Table 3", "test", "not stated in Table 3", "Trained on fine annotations only."),
    (
        "miou",
        79.93,
        "junfu1115/DANet@b0a0fa008148f102321cdaa7ca38fb0ddd0239d1:README.md",
        "val",
        "single-scale, 768x768 sliding window (--base-size 2048 --crop-size 768)",
        "The released DANet101 model (multi-grid 4, 8, 16; output stride 8; no deep stem); pixAcc 95.97%.",
    ),
)


def _card(depth: int, params_m: float, reported: tuple[Reported, ...] = ()) -> ModelCard:
    return ModelCard(
        group="semantic",
        paper=_PAPER,
        official_code=_CODE,
        implementation=f"segbench (torchvision 0.29 ResNet-{depth} trunk)",
        num_classes=19,
        input_hw=(768, 768),
        reported=(
            Reported(
                "params",
                params_m,
                source="junfu1115/DANet@b0a0fa008148f102321cdaa7ca38fb0ddd0239d1:encoding/models/sseg/danet.py",
                note=_PARAMS_NOTE.format(depth),
            ),
        )
        + reported,
        notes=_NOTES,
    )


CARD_R50 = _card(50, 47.443157)
CARD_R101 = _card(
    101,
    66.435285,
    tuple(
        Reported(
            m,
            v,
            source=src,
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split=split,
            protocol=proto,
            note=note,
        )
        for m, v, src, split, proto, note in _R101
    ),
)


@register_model(card=CARD_R50, converter=convert_official)
def danet_r50(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return DANet(num_classes=num_classes, depth=50, aux_heads=aux_heads, **kwargs)


@register_model(card=CARD_R101, converter=convert_official)
def danet_r101(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return DANet(num_classes=num_classes, depth=101, aux_heads=aux_heads, **kwargs)
