"""CCNet: Huang, Wang, Wei, Huang, Shi, Liu, Huang, "CCNet: Criss-Cross Attention for Semantic Segmentation",
ICCV 2019 / TPAMI 2020 (arXiv 1811.11721).

Official code: speedinghzl/CCNet @ 1fae6c67229c3863232494762b0afd9a8d7ff309 (master, the plain-PyTorch
"pure-python" version: networks/ccnet.py, cc_attention/functions.py; earlier branches use a CUDA op with the
same maths).

Dilated ResNet (deep 3x3 stem, output stride 8) -> RCCA head -> dropout + 1x1 classifier -> bilinear
upsampling; an auxiliary FCN head on layer3 (training only). RCCA head (official RCCAModule): 3x3 conv
2048 -> 512 + BN + act ("conva"), criss-cross attention applied R = 2 times with shared weights, 3x3 conv
512 -> 512 + BN + act ("convb"), concatenation with the 2048-channel input, 3x3 conv 2560 -> 512 + BN + act
("bottleneck"), dropout 0.1, 1x1 conv to the classes.

Criss-cross attention: 1x1 convs (with bias) give query and key (C/8 = 64 channels) and value (512); each
position attends to the H + W - 1 positions of its row and column: one softmax over the column energies
(its own position masked with -inf, so it is counted once) concatenated with the row energies; out =
gamma * (column context + row context) + input, gamma a learnt scalar initialised to 0. Written with
`torch.matmul`, which fvcore counts.

Choices and deviations:
- Activation: the official head's InPlaceABNSync defaults to leaky ReLU (slope 0.01), so every head BN is
  followed by LeakyReLU(0.01) here; the trunk's BNs are identity-activation ABNs followed by ReLU, i.e.
  torchvision's BN + ReLU. InPlaceABN's kernel scales by |weight| + eps (for invertibility) where BN scales
  by weight: `convert_official_ccnet` stores that effective scale, so official checkpoints compute the same
  function (parity tested against the official code: tests/fixtures/parity/ccnet_r*.json).
- Trunk: torchvision Bottleneck ResNet with the deep 3x3 stem (the official "conv1-3" stem, same
  parameters); every unit of layer3 has rate 2 and every unit of layer4 rate 4 (official dilation=2/4 with
  multi_grid (1, 1, 1)); torchvision would keep rate 1 / 2 in each stage's first unit. Rates change no
  parameter or MAC. The max-pool uses ceil_mode=True as the official trunk, which makes the stride-4 map one
  pixel larger on even sides: a 512 x 1024 input gives 65 x 129 features (torchvision's floor mode: 64 x 128).
- The official network returns stride-8 logits; its evaluation (evaluate.py) upsamples them bilinearly with
  align_corners=True, which our forward does inside the model.
- The official Seg_Model builds ResNet-101 only; `ccnet_r50` is the same model on ResNet-50 ([3, 4, 6, 3]),
  as the survey asks. The paper reports ResNet-101 results only.
- Auxiliary head (official "dsn"): 3x3 conv 1024 -> 512 with bias + BN + LeakyReLU(0.01), dropout 0.1,
  1x1 conv.
- The TPAMI version's category-consistent loss is a training loss only; it changes no layer.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model
from zoo.weights import inplace_abn_to_bn


class CrissCrossAttention(nn.Module):
    """forward(x[N, C, H, W]) -> x + gamma * (context from each position's row and column)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        # Column energies (N, W, H, H') and row energies (N, H, W, W').
        energy_col = torch.matmul(q.permute(0, 3, 2, 1), k.permute(0, 3, 1, 2))
        energy_row = torch.matmul(q.permute(0, 2, 3, 1), k.permute(0, 2, 1, 3))
        self_position = torch.eye(height, dtype=torch.bool, device=x.device)
        energy_col = energy_col.masked_fill(self_position, float("-inf")).permute(0, 2, 1, 3)
        attention = torch.softmax(torch.cat([energy_col, energy_row], dim=3), dim=3)  # (N, H, W, H' + W')
        att_col, att_row = attention[..., :height], attention[..., height:]
        # out[n, c, h, w] = sum_h' att_col[n, h, w, h'] v[n, c, h', w]
        #                 + sum_w' att_row[n, h, w, w'] v[n, c, h, w']
        out_col = torch.matmul(v.permute(0, 3, 1, 2), att_col.permute(0, 2, 3, 1)).permute(0, 2, 3, 1)
        out_row = torch.matmul(v.permute(0, 2, 1, 3), att_row.transpose(2, 3)).permute(0, 2, 1, 3)
        return self.gamma * (out_col + out_row) + x


class RCCAHead(nn.Module):
    """Official RCCAModule up to (not including) its dropout and classifier, which the frame adds."""

    def __init__(self, in_channels: int = 2048, channels: int = 512, recurrence: int = 2):
        super().__init__()
        self.recurrence = recurrence
        self.reduce = ConvBNAct(in_channels, channels, 3, act_layer=nn.LeakyReLU)
        self.cca = CrissCrossAttention(channels)
        self.post = ConvBNAct(channels, channels, 3, act_layer=nn.LeakyReLU)
        self.fuse = ConvBNAct(in_channels + channels, channels, 3, act_layer=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        for _ in range(self.recurrence):  # the same module (shared weights) each loop
            y = self.cca(y)
        return self.fuse(torch.cat([x, self.post(y)], dim=1))


def _ccnet(depth: int, num_classes: int, aux_heads: bool, recurrence: int = 2) -> DilatedResNetSegmenter:
    model = DilatedResNetSegmenter(
        RCCAHead(2048, 512, recurrence),
        512,
        num_classes,
        depth=depth,
        output_stride=8,
        deep_stem=True,
        multi_grid=(1, 1, 1),
        dropout=0.1,
        aux_heads=aux_heads,
        align_corners=True,  # official evaluate.py upsamples the logits with align_corners=True
    )
    conv = model.backbone.layer3[0].conv2  # official: rate 2 in layer3's first unit too
    conv.dilation = conv.padding = (2, 2)
    model.backbone.maxpool.ceil_mode = True  # the official trunk's
    if aux_heads:
        model.aux_heads = nn.ModuleList(
            [
                nn.Sequential(
                    ConvBNAct(1024, 512, 3, act_layer=nn.LeakyReLU, bias=True),
                    nn.Dropout2d(0.1),
                    nn.Conv2d(512, num_classes, 1),
                )
            ]
        )
    return model


_REPO = "speedinghzl/CCNet"
_COMMIT = "1fae6c67229c3863232494762b0afd9a8d7ff309"
_README = f"{_REPO}@{_COMMIT}:README.md"
_PAPER = Paper(
    title="CCNet: Criss-Cross Attention for Semantic Segmentation",
    venue="ICCV",
    year=2019,
    arxiv="1811.11721",
)
_ABSTRACT = (
    "ResNet-101 with R = 2 is the paper's final model (not stated in the abstract itself; the paper's "
    "tables could not be retrieved to check the training data and protocol). "
)
_NOTES = (
    "Neither paper version gives a parameter count; the card's params are the official code's: "
    "networks/ccnet.py ResNet(Bottleneck, {layers}, num_classes=19, recurrence=2) built from {repo}@{commit} "
    "(InPlaceABNSync counted as BN: the same two affine parameters per channel), without the training-only "
    "`dsn` head (4,729,875 parameters). Ours matches it exactly.{r50} The abstracts' '85% fewer FLOPs' and "
    "'11x less GPU memory' compare the RCCA module with a non-local block, not whole models, so they are not "
    "recorded; the papers' module GFLOPs tables could not be retrieved. Every mIoU is ResNet-101, R = 2."
)


def _miou(value: float, source: str, split: str, protocol: str, note: str) -> Reported:
    return Reported(
        "miou",
        value,
        source,
        input_hw=(1024, 2048),
        dataset="Cityscapes",
        split=split,
        protocol=protocol,
        note=note,
    )


_MIOUS = (
    _miou(81.4, "paper abstract (ICCV 2019)", "test", "not stated in the abstract", _ABSTRACT),
    _miou(
        81.9,
        "TPAMI abstract (DOI 10.1109/TPAMI.2020.3007032)",
        "test",
        "not stated in the abstract",
        _ABSTRACT + "TPAMI version, trained with the category-consistent loss.",
    ),
    _miou(
        79.74,
        _README,
        "val",
        "single-scale (README); evaluate.py at this commit slides 769x769 crops, no flip",
        "Official code, ResNet-101, R = 2, fine train set only, crop 769; best of three runs (79.74, "
        "79.22, 78.40).",
    ),
    _miou(
        79.01,
        _README,
        "test",
        "single-scale, whole image",
        "ResNet-101, R = 2: the same 79.74 val model on the test server ('about 79.01').",
    ),
)


def _card(depth: int, params: int, r50: str = "") -> ModelCard:
    layers = [3, 4, 6, 3] if depth == 50 else [3, 4, 23, 3]
    return ModelCard(
        group="semantic",
        paper=_PAPER,
        official_code=f"https://github.com/{_REPO}/blob/{_COMMIT}/networks/ccnet.py",
        implementation="segbench (torchvision 0.29 ResNet trunk with deep stem)",
        num_classes=19,
        input_hw=(1024, 2048),
        reported=(
            Reported(
                "params",
                params / 1e6,
                f"{_REPO}@{_COMMIT}:networks/ccnet.py",
                note=f"Counted by us from the official definition ({params:,}; without the dsn head), "
                "19 classes; the papers and README state no count.",
            ),
            *(_MIOUS if depth == 101 else ()),
        ),
        notes=_NOTES.format(layers=layers, repo=_REPO, commit=_COMMIT[:7], r50=r50),
    )


_R50_NOTE = (
    " The official Seg_Model hard-codes ResNet-101; the R50 count swaps in [3, 4, 6, 3]. The papers "
    "report no ResNet-50 result, so this card has no mIoU."
)


_STEM = {"conv1": "conv1.0", "bn1": "conv1.1", "conv2": "conv1.3", "bn2": "conv1.4", "conv3": "conv1.6"}
_STEM["bn3"] = "bn1"
_HEAD = {"conva.0": "reduce.conv", "conva.1": "reduce.bn", "convb.0": "post.conv", "convb.1": "post.bn"}
_HEAD |= {"bottleneck.0": "fuse.conv", "bottleneck.1": "fuse.bn"}
_HEAD |= {f"cca.{n}_conv": f"cca.{n}" for n in ("query", "key", "value")}


def _official_key(key: str) -> str:
    """Our name for an official key; a key no rule covers keeps its name (check_fits then reports it)."""
    module, _, param = key.rpartition(".")
    prefix, _, rest = module.partition(".")
    if module in _STEM:
        return f"backbone.{_STEM[module]}.{param}"
    if prefix in ("layer1", "layer2", "layer3", "layer4"):
        return f"backbone.{key}"
    if key == "head.cca.gamma":
        return key
    if prefix == "head" and rest in _HEAD:
        return f"head.{_HEAD[rest]}.{param}"
    tail = {"head.bottleneck.3": "classifier.1", "dsn.0": "aux_heads.0.0.conv", "dsn.1": "aux_heads.0.0.bn"}
    tail["dsn.3"] = "aux_heads.0.2"
    return f"{tail[module]}.{param}" if module in tail else key


def convert_official_ccnet(state_dict) -> dict[str, torch.Tensor]:
    """Rename an official CCNet state_dict to ours. Every norm layer of the official model is an
    InPlaceABNSync (inplace_abn 1.x, eps 1e-5), whose scale |weight| + eps becomes our BN weight."""
    return inplace_abn_to_bn({_official_key(k): v for k, v in state_dict.items()})


@register_model(card=_card(50, 47_565_908, _R50_NOTE), converter=convert_official_ccnet)
def ccnet_r50(num_classes: int = 19, aux_heads: bool = True, recurrence: int = 2, **kwargs) -> nn.Module:
    return _ccnet(50, num_classes, aux_heads, recurrence)


@register_model(card=_card(101, 66_558_036), converter=convert_official_ccnet)
def ccnet_r101(num_classes: int = 19, aux_heads: bool = True, recurrence: int = 2, **kwargs) -> nn.Module:
    return _ccnet(101, num_classes, aux_heads, recurrence)
