"""Reading a card's free-text conditions into the condition model, or saying that they leave one open."""

import pytest

from bench import cards
from bench.comparability import READERS, claim_conditions
from bench.conditions import (
    ClaimBackend,
    EvalProtocol,
    FlopConvention,
    NoEquivalent,
    NotStated,
    UnreadableCondition,
    claim_backend,
    claim_dataset,
    claim_device,
    claim_flop_convention,
    claim_precision,
    claim_protocol,
    claim_split,
    device_tokens,
    is_open,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fp16 (torch.cuda.amp autocast)", "fp16"),
        ("fp32", "fp32"),
        ("FP16", "fp16"),
        ("bfloat16", "bf16"),
    ],
)
def test_precision(text, expected):
    assert claim_precision(text) == expected


@pytest.mark.parametrize("text", [None, "", "not stated", "fp16 or fp32"])
def test_precision_open(text):
    assert isinstance(claim_precision(text), NotStated)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("TensorRT 5.1.5", ClaimBackend("tensorrt", "5.1.5")),
        ("TensorRT 5.1.5 (CUDA 9.0, cuDNN 7.0)", ClaimBackend("tensorrt", "5.1.5")),
        ("PyTorch", ClaimBackend("pytorch")),
        ("PyTorch 0.5 (pre-release), CUDA 8.0", ClaimBackend("pytorch", "0.5")),
        ("TensorFlow (CUDA 9.0, cuDNN v7)", ClaimBackend("tensorflow")),  # CUDA's version is not TF's
        ("TFLite", ClaimBackend("tflite")),
        ("Paddle.js (graph optimized by its converter)", ClaimBackend("paddle.js")),
        ("PaddleLite", ClaimBackend("paddlelite")),
    ],
)
def test_backend(text, expected):
    assert claim_backend(text) == expected


def test_backend_maps_to_segbench_only_where_segbench_runs_it():
    assert claim_backend("PyTorch 1.0").segbench == "eager"
    assert claim_backend("TensorRT 5.1.5").segbench is None
    assert isinstance(claim_backend("not stated"), NotStated)
    with pytest.raises(UnreadableCondition):
        claim_backend("MyEngine 2")


def test_device_tokens_ignore_vendor_memory_and_form_factor():
    assert (
        device_tokens("NVIDIA GeForce GTX 1080 Ti") == device_tokens("GTX 1080 Ti") == {"gtx", "1080", "ti"}
    )
    assert device_tokens("Tesla V100-SXM2-16GB") == device_tokens("V100")
    assert device_tokens("NVIDIA H100 80GB HBM3") == {"h100"}
    assert device_tokens("Titan X") != device_tokens("NVIDIA TITAN Xp")
    assert device_tokens("Nvidia Titan X (Maxwell)") != device_tokens("NVIDIA TITAN X (Pascal)")


def test_device():
    gpu = claim_device("GTX 1080 Ti")
    assert gpu.kind == "cuda" and gpu.matches("NVIDIA GeForce GTX 1080 Ti") and not gpu.matches("AMD EPYC")
    assert claim_device("T4").matches("Tesla T4") and not claim_device("T4").matches("NVIDIA L4")
    phone = claim_device("Snapdragon 855 ARM CPU (Xiaomi 9), 1 thread")
    assert phone.kind == "other" and phone.threads == 1 and "thread" not in phone.name
    assert claim_device("iPhone 7").kind == "other"
    assert claim_device("AMD EPYC 7B13, 2 threads").kind == "cpu"
    for text in (None, "not stated in the abstract", "a real mobile device (not named in the abstract)"):
        assert isinstance(claim_device(text), NotStated), text


def test_dataset_and_split():
    assert claim_dataset("PASCAL VOC 2012") == "voc2012" and claim_dataset("Cityscapes") == "cityscapes"
    assert claim_split("test (289 images per the official README)") == "test"
    assert claim_split("val") == "val"
    assert isinstance(claim_split("not stated (compared with test-set entries)"), NotStated)
    assert isinstance(claim_dataset(None), NotStated)
    with pytest.raises(UnreadableCondition):
        claim_split("the hard ones")


MS3 = EvalProtocol("msflip", scales=(0.75, 1.0, 1.25), flip=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("single-scale, no flip, whole image (1024x2048)", EvalProtocol("whole")),
        ("single-scale, whole 1024x2048 image, no test-time augmentation", EvalProtocol("whole")),
        ("Non-real-time setting (full resolution), single scale", EvalProtocol("whole")),
        ("ms (0.75, 1, 1.25) + flip, output stride 8", MS3),
        (
            "ms (0.5 to 1.75, step 0.25) + flip, output stride 8",
            EvalProtocol("msflip", scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), flip=True),
        ),
        ("sliding 512x512 crops at stride 341, no flip", EvalProtocol("slide", (512, 512), (341, 341))),
        ("single-scale, 713x713 crops (stride 2/3 crop)", EvalProtocol("slide", (713, 713), (475, 475))),
    ],
)  # fmt: skip
def test_protocol(text, expected):
    assert claim_protocol(text) == expected


@pytest.mark.parametrize(
    "text, kind",
    [
        (None, NotStated),
        ("not stated in the abstract", NotStated),
        ("ms (0.75 to 2, 6 scales), output stride 4; flip not stated", NotStated),
        ("single-scale, output stride 8", NotStated),  # whole image or window: not said
        ("multi-scale + flip, output stride 16", NotStated),  # scales: not said
        ("ms (0.5 to 1.75) + flip", NotStated),  # the step: not said (never assumed to be 0.25)
        ("single-scale, 768x768 sliding window (--base-size 2048 --crop-size 768)", NotStated),  # stride
        ("single-scale at 1024x512 (2048x1024 resized down, logits resized back), no flip", NoEquivalent),
        ("single-scale, sliding 713x713 crops (stride 2/3 crop) + flip, per the official code", NoEquivalent),
        ("ms (0.5 to 1.75, step 0.25), sliding 713x713 crops (stride 2/3 crop) + flip", NoEquivalent),
    ],
)
def test_protocol_open(text, kind):
    assert isinstance(claim_protocol(text), kind)


def test_protocol_single_and_multi_scale_are_told_apart():
    single, multi = (
        claim_protocol("single-scale, whole image, no flip"),
        claim_protocol("ms (0.75, 1, 1.25) + flip"),
    )
    assert single != multi and multi.multi_scale and not single.multi_scale
    with pytest.raises(UnreadableCondition):
        claim_protocol("the usual")


def test_flop_convention():
    assert claim_flop_convention("flops", "2 x multiply-adds") == FlopConvention(per_mac=2)
    assert claim_flop_convention("flops", "multiply-adds") == FlopConvention()
    assert claim_flop_convention("macs", None) == FlopConvention()  # the card schema's unit for `macs`
    hrnet = claim_flop_convention("flops", "multiply-adds / 2^30 (conv and linear layers only)")
    assert hrnet == FlopConvention(giga=2**30, scope="conv+linear")
    assert hrnet.to_gmacs(1.0) == pytest.approx(1.073741824)
    assert FlopConvention(per_mac=2).to_gmacs(10.0) == 5.0
    for text in (None, "not stated by the paper (see card notes)"):
        assert isinstance(claim_flop_convention("flops", text), NotStated)  # unknown: not comparable
    with pytest.raises(UnreadableCondition):
        claim_flop_convention("flops", "GPU-hours")


def test_every_committed_claim_parses_or_is_explicitly_open():
    """No silent fall-through: each condition a rule reads, of every claim on every committed card, is
    read into the condition model or recognised as open. A new wording needs a new rule."""
    read = 0
    for name, card in sorted(cards.read().items()):
        for claim in card.reported:
            conditions = claim_conditions(claim, strict=True)  # raises UnreadableCondition, naming it
            assert set(conditions) == set(READERS.get(claim.metric, {})), (name, claim.metric)
            read += len(conditions)
            for value in conditions.values():
                assert is_open(value) or value is not None
    assert read > 300  # every mIoU, speed and MACs claim was read
