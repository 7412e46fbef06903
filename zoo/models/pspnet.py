"""PSPNet: Zhao, Shi, Qi, Wang, Jia, "Pyramid Scene Parsing Network", CVPR 2017 (arXiv 1612.01105).

Official code: hszhao/PSPNet (Caffe; evaluation/prototxt/pspnet101_cityscapes_713.prototxt, commit 798bdc9)
and hszhao/semseg (PyTorch re-implementation by the first author; model/pspnet.py and model/resnet.py, commit
4f274c3). Both build the same network:
- a dilated ResNet at output stride 8 with the "deep base" stem (three 3x3 convs, 64-64-128, instead of the
  7x7 conv), stride on the 3x3 conv of each bottleneck, every layer3 unit at rate 2 and every layer4 unit at
  rate 4;
- the pyramid pooling module on the 2048-channel map: average pooling to 1x1, 2x2, 3x3, 6x6 bins, each
  followed by a 1x1 conv to 2048 / 4 = 512 channels + BN + ReLU, bilinearly upsampled and concatenated with
  the input (4096 channels);
- a 3x3 conv to 512 + BN + ReLU, dropout 0.1, a 1x1 classifier, bilinear upsampling by 8;
- for training only, an auxiliary FCN head on layer3 (res4b22 for ResNet-101, paper Sec 4, loss weight 0.4):
  3x3 conv 1024 -> 256 + BN + ReLU, dropout 0.1, 1x1 classifier. It lives under `aux_heads`.
That is `zoo.models.dilated.DilatedResNetSegmenter` with `deep_stem=True`, whose aux head is this one.

Deviations and why:
- torchvision's layer builder (`ResNetFeatures`) gives layer3's first unit rate 1 and layer4's first unit
  rate 2; we set them to the official 2 and 4 (dilation changes neither parameters nor MACs).
- Upsampling (pyramid branches and logits) uses align_corners=True, as the official code. That code also
  asks for input sides of 8k + 1 (713, 473), which it upsamples to exactly the input size; we accept any
  size and resize the logits to it (the same map at 8k + 1 sides).
- The Caffe model pools with fixed kernels sized for its 90x90 map (713 input); adaptive pooling, as in the
  PyTorch code, is the same there and keeps the bins right at other sizes.

`convert_official_pspnet` maps semseg checkpoints (with their training-only `aux` head) onto ours. Parity
with the official code is tested (tests/fixtures/parity/pspnet_r*.json): the same logits at 129x193 from
the official state_dict loaded through the converter.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, PyramidPooling
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model

_SEMSEG = "hszhao/semseg@4f274c3f276778228bc14a4565822d46359f0cc8"
_CAFFE = "hszhao/PSPNet@798bdc907c8630e8c3997ebfdd0d7cae0c5ab03b:README.md"
_PAPER = Paper(title="Pyramid Scene Parsing Network", venue="CVPR", year=2017, arxiv="1612.01105")
_CS, _ADE, _VOC = "Cityscapes", "ADE20K", "PASCAL VOC 2012"
_CS_HW, _ADE_HW = (713, 713), (473, 473)
# The official evaluation: the image resized to long side `base_size` (2048 Cityscapes, 512 ADE20K/VOC),
# sliding crops of the training size with stride 2/3 of it, each crop with its left-right flip.
_SLIDE = "sliding {0}x{0} crops (stride 2/3 crop) + flip, per the official evaluation code"
_SEMSEG_MS = "ms (0.5 to 1.75, step 0.25), " + _SLIDE
_PAPER_MS = "ms (scales not stated), " + _SLIDE
_SEMSEG_NOTE = "The official PyTorch re-implementation's result, trained on {}. "


def _params(depth: int, value: float, count: str, with_aux: str) -> Reported:
    return Reported(
        "params",
        value,
        source=f"{_SEMSEG}:model/pspnet.py",
        note=f"Not printed by the paper or the repo: our count of PSPNet(layers={depth}, classes=19, "
        f"zoom_factor=8, pretrained=False) built from the official PyTorch code: {count} without the "
        f"training-only aux head ({with_aux} with it).",
    )


def _miou(value, source, dataset, split, protocol, input_hw, note="", variant=None) -> Reported:
    return Reported(
        "miou",
        value,
        source=source,
        input_hw=input_hw,
        dataset=dataset,
        split=split,
        protocol=protocol,
        variant=variant,
        note=note,
    )


def _semseg_mious(name: str, cs: tuple[float, float], ade: tuple[float, float], voc: tuple[float, float]):
    src = f"{_SEMSEG}:README.md"
    cs_note = _SEMSEG_NOTE.format("fine train (2975 images), crop 713")
    ade_note = _SEMSEG_NOTE.format("train (20,210 images), crop 473; 150 classes")
    voc_note = _SEMSEG_NOTE.format("train_aug (10,582 images), crop 473; 21 classes")
    return (
        _miou(cs[0], src, _CS, "val", "single-scale, " + _SLIDE.format(713), _CS_HW, cs_note + name),
        _miou(cs[1], src, _CS, "val", _SEMSEG_MS.format(713), _CS_HW, cs_note + name),
        _miou(ade[0], src, _ADE, "val", "single-scale, " + _SLIDE.format(473), _ADE_HW, ade_note + name),
        _miou(ade[1], src, _ADE, "val", _SEMSEG_MS.format(473), _ADE_HW, ade_note + name),
        _miou(voc[0], src, _VOC, "val", "single-scale, " + _SLIDE.format(473), _ADE_HW, voc_note + name),
        _miou(voc[1], src, _VOC, "val", _SEMSEG_MS.format(473), _ADE_HW, voc_note + name),
    )


_IMPL = "segbench (torchvision 0.29 ResNet-{} trunk with the deep 3x3 stem)"
_INPUT_NOTE = (
    "input_hw is the crop the network runs on in the official Cityscapes evaluation (713x713 sliding crops, "
    "with flip, over the 1024x2048 image: 8 crop positions x 2 flips per image); the ADE20K/VOC crop is "
    "473x473. "
)

CARD_R50 = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code="https://github.com/hszhao/semseg",
    implementation=_IMPL.format(50),
    num_classes=19,
    input_hw=_CS_HW,
    reported=(
        _params(50, 46.72, "46,715,347", "49,080,038"),
        _miou(
            41.68,
            "paper Table 3",
            _ADE,
            "val",
            "single-scale, " + _SLIDE.format(473),
            _ADE_HW,
            "PSPNet(50); also Table 1's best setting (B1236, average pooling, dimension reduction) and "
            f"{_CAFFE} (pspnet50_ADE20K). 150 classes. ",
        ),
        _miou(
            42.78,
            "paper Table 3",
            _ADE,
            "val",
            _PAPER_MS.format(473),
            _ADE_HW,
            f"PSPNet(50)+MS; also {_CAFFE}, which evaluates at scales 0.5 to 1.75. 150 classes. ",
        ),
        *_semseg_mious("PSPNet50", (77.30, 78.38), (41.89, 42.84), (77.05, 78.02)),
    ),
    notes=_INPUT_NOTE + "The paper gives no parameter count or FLOPs; the params figure is counted from the "
    "official PyTorch code (see its note) and ours matches it exactly. The paper's only ResNet-50 results "
    "are on ADE20K; its VOC and Cityscapes results are ResNet-101.",
)

CARD_R101 = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code="https://github.com/hszhao/semseg",
    implementation=_IMPL.format(101),
    num_classes=19,
    input_hw=_CS_HW,
    reported=(
        _params(101, 65.71, "65,707,475", "68,072,166"),
        _miou(
            78.4,
            "paper Table 7",
            _CS,
            "test",
            _PAPER_MS.format(713),
            _CS_HW,
            "Trained on fine data only. Table 7's value read through a transcription of the paper (the "
            "full text states only the 80.2 below). ",
        ),
        _miou(
            80.2,
            "paper Table 7",
            _CS,
            "test",
            _PAPER_MS.format(713),
            _CS_HW,
            "Trained on fine + coarse data (Sec 5.4). ",
            variant="trained on fine + coarse",
        ),
        _miou(
            79.70, _CAFFE, _CS, "val", "single-scale, " + _SLIDE.format(713), _CS_HW, "pspnet101_cityscapes."
        ),
        _miou(80.91, _CAFFE, _CS, "val", "ms (0.5 to 1.75, step 0.25), " + _SLIDE.format(713), _CS_HW),
        _miou(82.6, "paper Table 6", _VOC, "test", _PAPER_MS.format(473), _ADE_HW, "VOC 2012 data only. "),
        _miou(
            85.4,
            "paper Table 6",
            _VOC,
            "test",
            _PAPER_MS.format(473),
            _ADE_HW,
            "MS-COCO pretrained. ",
            variant="MS-COCO pretrained",
        ),
        _miou(
            41.96,
            "paper Table 3",
            _ADE,
            "val",
            "single-scale, " + _SLIDE.format(473),
            _ADE_HW,
            "PSPNet(101), read through a transcription of the table. 150 classes. ",
        ),
        _miou(
            43.29,
            "paper Table 3",
            _ADE,
            "val",
            _PAPER_MS.format(473),
            _ADE_HW,
            "PSPNet(101)+MS, read through a transcription of the table. 150 classes. ",
        ),
        *_semseg_mious("PSPNet101", (78.63, 79.29), (43.10, 44.15), (79.07, 79.63)),
    ),
    notes=_INPUT_NOTE + "The paper gives no parameter count or FLOPs; the params figure is counted from the "
    "official PyTorch code (see its note) and ours matches it exactly. The paper's Cityscapes and VOC "
    "numbers are from the authors' Caffe model (hszhao/PSPNet), the same architecture.",
)


class PSPHead(nn.Sequential):
    """Pyramid pooling (bins 1, 2, 3, 6; in_channels / 4 channels each) -> 3x3 ConvBNAct to 512 channels."""

    def __init__(
        self, in_channels: int = 2048, out_channels: int = 512, bins: tuple[int, ...] = (1, 2, 3, 6)
    ):
        super().__init__()
        self.ppm = PyramidPooling(in_channels, in_channels // len(bins), bins, align_corners=True)
        self.bottleneck = ConvBNAct(self.ppm.out_channels, out_channels, 3)


def _pspnet(
    depth: int, num_classes: int, aux_heads: bool = True, dropout: float = 0.1
) -> DilatedResNetSegmenter:
    model = DilatedResNetSegmenter(
        PSPHead(),
        512,
        num_classes,
        depth=depth,
        output_stride=8,
        deep_stem=True,
        multi_grid=(1, 1, 1),  # every layer4 unit at rate 4, as the official code
        dropout=dropout,
        aux_heads=aux_heads,
        align_corners=True,  # as the official code, in the pyramid and the final upsampling
    )
    first = model.backbone.layer3[0].conv2  # the official code dilates layer3's first unit too
    first.dilation = first.padding = (2, 2)
    return model


# hszhao/semseg key prefixes -> ours (the official checkpoints are semseg state_dicts).
_STEM = {"0": "conv1.0", "1": "conv1.1", "3": "conv1.3", "4": "conv1.4", "6": "conv1.6", "7": "bn1"}
_MODULES = {"cls.0": "head.bottleneck.conv", "cls.1": "head.bottleneck.bn", "cls.4": "classifier.1"}
_MODULES |= {"aux.0": "aux_heads.0.conv.conv", "aux.1": "aux_heads.0.conv.bn", "aux.4": "aux_heads.0.cls"}
_MODULES |= {f"ppm.features.{i}.1": f"head.ppm.stages.{i}.1.conv" for i in range(4)}
_MODULES |= {f"ppm.features.{i}.2": f"head.ppm.stages.{i}.1.bn" for i in range(4)}


def _official_key(key: str) -> str:
    """Our name for an official key; a key no rule covers keeps its name (check_fits then reports it)."""
    module, _, param = key.rpartition(".")
    prefix, _, rest = module.partition(".")
    if prefix == "layer0" and rest in _STEM:
        return f"backbone.{_STEM[rest]}.{param}"
    if prefix in ("layer1", "layer2", "layer3", "layer4"):
        return f"backbone.{key}"
    return f"{_MODULES[module]}.{param}" if module in _MODULES else key


def convert_official_pspnet(state_dict) -> dict[str, torch.Tensor]:
    """Rename an official semseg PSPNet state_dict (model/pspnet.py) to ours; tensors unchanged."""
    return {_official_key(k): v for k, v in state_dict.items()}


@register_model(card=CARD_R50, converter=convert_official_pspnet)
def pspnet_r50(num_classes: int = 19, **kwargs) -> nn.Module:
    return _pspnet(50, num_classes, **kwargs)


@register_model(card=CARD_R101, converter=convert_official_pspnet)
def pspnet_r101(num_classes: int = 19, **kwargs) -> nn.Module:
    return _pspnet(101, num_classes, **kwargs)
