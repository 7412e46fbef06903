"""SINet: the authors' EG1800 checkpoint loads through the converter and segments real portraits."""

import re

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import SHARED
from zoo.models.sinet import MEAN_BGR, STD_BGR, convert_official_sinet
from zoo.weights import CheckpointError, check_fits, load_weights

CHECKPOINT = SHARED / "weights" / "sinet_eg1800" / "SINet.pth"
HUMANSEG = SHARED / "data" / "humanseg_mini"
# Head-and-shoulders portraits (EG1800-like) whose masks are clearly one person. Person IoU seen at 224x224:
# 4 -> 0.967, 6 -> 0.965, 10 -> 0.942 (also 1: 0.914, 3: 0.923, 5: 0.930, 9: 0.939, 24: 0.944); the same model
# with random weights scores 0.34-0.60 on these, and without the authors' /255 scaling 0.09-0.48.
PORTRAITS = ("4", "6", "10")
MIN_IOU = 0.85

# Ours -> official key names, written independently of the converter's rules (applied in order).
_TO_OFFICIAL = [
    (r"^encoder\.stem\.", "encoder.level1."),
    (r"^encoder\.down(\d)\.depthwise\.", r"encoder.level\1_0.conv.0."),
    (r"^encoder\.down(\d)\.squeeze\.mlp\.", r"encoder.level\1_0.conv.1.dense."),
    (r"^encoder\.down(\d)\.pointwise\.conv\.", r"encoder.level\1_0.conv.2."),
    (r"^encoder\.down(\d)\.pointwise\.", r"encoder.level\1_0."),
    (r"^encoder\.stage(\d)_norm\.", r"encoder.BR\1."),
    (r"^encoder\.stage(\d)\.(\d+)\.reduce\.", r"encoder.level\1.\2.c1.conv."),
    (r"^encoder\.stage(\d)\.(\d+)\.norm\.", r"encoder.level\1.\2.BR."),
    (r"\.branches\.0\.", ".d1."),
    (r"\.branches\.1\.", ".d2."),
    (r"\.depthwise\.conv\.", ".conv.0."),
    (r"\.depthwise\.bn\.", ".conv.1."),
    (r"\.depthwise\.act\.", ".act_conv1x1.0."),
    (r"(\.d\d)\.pointwise\.", r"\1.act_conv1x1.1."),
    (r"^encoder\.stage(\d)\.", r"encoder.level\1."),
    (r"^encoder\.classifier\.", "encoder.classifier.conv."),
    (r"^decoder\.coarse_bn\.", "bn_3."),
    (r"^decoder\.skip_classifier\.", "level2_C."),
    (r"^decoder\.fine_bn\.", "bn_2."),
    (r"^decoder\.final_conv\.", "classifier.1."),
]


def _to_official(key: str) -> str:
    for pattern, repl in _TO_OFFICIAL:
        key = re.sub(pattern, repl, key)
    return key


def test_converter_maps_official_names_onto_ours():
    model = zoo.create_model("sinet")
    ours = model.state_dict()
    official = {_to_official(k): v for k, v in ours.items()}
    assert len(official) == len(ours) == 393  # as many tensors as the authors' checkpoint
    converted = convert_official_sinet(official)
    assert list(converted) == list(ours)
    check_fits(model, converted)
    spot = {
        "encoder.level1.act.weight": "encoder.stem.act.weight",
        "encoder.level2_0.conv.1.dense.0.weight": "encoder.down2.squeeze.mlp.0.weight",
        "encoder.level3_0.bn.running_var": "encoder.down3.pointwise.bn.running_var",
        "encoder.level3.5.d2.act_conv1x1.1.weight": "encoder.stage3.5.branches.1.pointwise.weight",
        "encoder.level2.1.d1.conv.1.bias": "encoder.stage2.1.branches.0.depthwise.bn.bias",
        "encoder.BR3.act.weight": "encoder.stage3_norm.act.weight",
        "level2_C.conv.weight": "decoder.skip_classifier.conv.weight",
        "classifier.1.weight": "decoder.final_conv.weight",
    }
    for official_key, our_key in spot.items():
        assert official_key in official
        assert convert_official_sinet({official_key: torch.zeros(1)}) == {our_key: torch.zeros(1)}


def _need_checkpoint():
    if not CHECKPOINT.is_file():
        pytest.skip(f"needs the authors' SINet checkpoint at {CHECKPOINT}, which is absent")


def _load_bgr_224(stem: str) -> tuple[torch.Tensor, np.ndarray]:
    from PIL import Image

    image = Image.open(HUMANSEG / "Training_Images" / f"{stem}.jpg").convert("RGB")
    rgb = np.asarray(image.resize((224, 224), Image.BILINEAR), dtype=np.float32)
    x = torch.from_numpy(rgb[:, :, ::-1].copy()).permute(2, 0, 1)  # BGR, as the authors' OpenCV pipeline
    x = (x - torch.tensor(MEAN_BGR).view(3, 1, 1)) / torch.tensor(STD_BGR).view(3, 1, 1) / 255
    mask = Image.open(HUMANSEG / "Ground_Truth" / f"{stem}.png").convert("L")
    person = np.asarray(mask.resize((224, 224), Image.NEAREST)) > 127
    return x[None], person


@pytest.mark.data
def test_official_checkpoint_loads_and_segments_portraits():
    _need_checkpoint()
    model = load_weights(zoo.create_model("sinet"), CHECKPOINT, "sinet").eval()
    for stem in PORTRAITS:
        x, person = _load_bgr_224(stem)
        with torch.inference_mode():
            logits = model(x)
        assert logits.shape == (1, 2, 224, 224)
        pred = (logits.argmax(1)[0] == 1).numpy()
        iou = (pred & person).sum() / (pred | person).sum()
        assert iou > MIN_IOU, f"image {stem}: person IoU {iou:.3f} <= {MIN_IOU}"


@pytest.mark.data
@pytest.mark.parametrize(
    ("corrupt", "named"),
    [
        (
            lambda sd: sd.update(
                {"encoder.level3.4.d2.conv.0.weights": sd.pop("encoder.level3.4.d2.conv.0.weight")}
            ),
            "encoder.stage3.4.branches.1.depthwise.conv.weight",
        ),
        (
            lambda sd: sd.update({"classifier.1.weight": sd["classifier.1.weight"].reshape(2, 2, 9, 1)}),
            "decoder.final_conv.weight",
        ),
    ],
    ids=["renamed-key", "reshaped-tensor"],
)
def test_corrupted_checkpoint_fails_naming_the_key(tmp_path, corrupt, named):
    _need_checkpoint()
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    corrupt(state)
    path = tmp_path / "corrupt.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=re.escape(named)):
        load_weights(zoo.create_model("sinet"), path, "sinet")
