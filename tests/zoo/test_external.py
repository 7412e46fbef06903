"""Library models by name (zoo.external): built with random weights and nothing downloaded, under the zoo's
forward contract, and one clear error for a bad spec or a missing library."""

import socket
import sys

import pytest
import torch

import zoo
from bench.measure.params import count_params
from zoo import external
from zoo.layers.pad import PadToMultiple


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: building must download nothing."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model build tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# One model of each library, at an input no library's divisor divides (so padding is exercised too).
@pytest.mark.parametrize(
    "name, classes",
    [
        ("smp:Unet:resnet18", 19),
        ("smp:DeepLabV3Plus:efficientnet-b0", 19),
        ("torchvision:lraspp_mobilenet_v3_large", 19),
        ("hf:segformer-b0", 19),
        ("timm:resnet18", 1000),
    ],
)
def test_each_library_builds_logits_at_the_input_size(no_network, name, classes):
    torch.manual_seed(0)
    model = zoo.create_inference_model(name)
    assert not model.training
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 60, 70))
    expected = (2, classes) if name.startswith("timm:") else (2, classes, 60, 70)
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all()
    assert zoo.model_group(name) == "external" and zoo.find_card(name) is None


def test_num_classes_and_library_arguments_reach_the_builder():
    model = zoo.create_model(
        "smp:Unet:resnet18", num_classes=3, encoder_depth=4, decoder_channels=(8, 8, 8, 8)
    )
    with torch.inference_mode():
        assert tuple(model.eval()(torch.randn(1, 3, 64, 64)).shape) == (1, 3, 64, 64)
    assert model.model.encoder._depth == 4


def test_quarter_resolution_logits_are_upsampled_inside_the_model():
    model = zoo.create_model("hf:segformer-b0", num_classes=5).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        raw = model.model(x).logits
        out = model(x)
    assert tuple(raw.shape) == (1, 5, 16, 24)  # SegFormer's decoder works at 1/4
    assert tuple(out.shape) == (1, 5, 64, 96)
    assert torch.allclose(out, torch.nn.functional.interpolate(raw, size=(64, 96), mode="bilinear"))


def test_padding_follows_the_divisor_the_architecture_declares():
    deeplab = zoo.create_inference_model("smp:DeepLabV3Plus:resnet18")  # output stride 16
    assert isinstance(deeplab, PadToMultiple) and deeplab.divisor == 16
    unet = zoo.create_inference_model("smp:Unet:resnet18")  # smp's Unet declares it takes any size
    assert not isinstance(unet, PadToMultiple)
    assert not isinstance(zoo.create_inference_model("torchvision:lraspp_mobilenet_v3_large"), PadToMultiple)


def test_training_only_auxiliary_heads_are_not_built():
    fcn = zoo.create_model("torchvision:fcn_resnet50")
    assert fcn.model.aux_classifier is None
    upernet = zoo.create_model("hf:upernet-convnext-tiny")
    assert upernet.model.auxiliary_head is None


# SegFormer paper (arXiv 2105.15203) Table 1: total params in millions with the ADE20K head (150 classes).
SEGFORMER_PAPER_PARAMS_M = {"b0": 3.8, "b1": 13.7, "b2": 27.5, "b3": 47.3, "b4": 64.1, "b5": 84.7}


@pytest.mark.parametrize("size", SEGFORMER_PAPER_PARAMS_M)
def test_segformer_sizes_match_the_paper_params(size):
    model = zoo.create_model(f"hf:segformer-{size}", num_classes=150)
    assert count_params(model) / 1e6 == pytest.approx(SEGFORMER_PAPER_PARAMS_M[size], abs=0.06)


def test_default_input_sizes_are_the_libraries():
    assert zoo.default_input_hw("smp:Unet:resnet34") == (512, 512)
    assert zoo.default_input_hw("hf:segformer-b5") == (640, 640)  # its ADE20K config's crop
    assert zoo.default_input_hw("timm:vit_base_patch16_384") == (384, 384)  # timm's pretrained config
    assert zoo.default_input_hw("bisenetv2") == tuple(zoo.get_card("bisenetv2").input_hw)


@pytest.mark.parametrize(
    "name, message",
    [
        ("foo:bar", "unknown model library 'foo' in 'foo:bar' (expected one of smp:<Arch>:<encoder>, "),
        ("smp:Nope:resnet34", "unknown smp architecture 'Nope' (expected one of Unet, "),
        ("smp:Unet:resnet35", "unknown smp encoder 'resnet35' (expected one of resnet18, "),
        ("smp:Unet:tu-nonet", "unknown smp encoder 'tu-nonet': 'nonet' is not a timm model"),
        ("smp:Unet", "malformed smp model 'smp:Unet': expected smp:<Arch>:<encoder>"),
        ("torchvision:deeplabv4", "unknown torchvision segmentation builder 'deeplabv4' (expected one of "),
        ("hf:segformer-b9", "unknown hf model 'segformer-b9' (expected one of segformer-b0, "),
        ("timm:resnet19", "unknown timm model 'resnet19'"),
        ("no_such_model", "unknown model 'no_such_model' (`segbench list` shows the"),
    ],
)
def test_a_bad_spec_is_one_clear_line(name, message):
    with pytest.raises(zoo.UnknownModelError) as info:
        zoo.check_model(name)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not zoo.is_known(name)
    with pytest.raises(zoo.UnknownModelError):
        zoo.create_model(name)


def test_a_missing_library_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # its import now fails
    with pytest.raises(zoo.MissingLibraryError) as info:
        zoo.check_model("smp:Unet:resnet34")
    assert str(info.value) == (
        "model 'smp:Unet:resnet34' needs segmentation-models-pytorch: pip install 'segbench[external]'"
    )
    assert not zoo.is_known("smp:Unet:resnet34")
    # What a report or a record needs is answered without the library.
    assert zoo.model_group("smp:Unet:resnet34") == "external"
    assert zoo.find_card("smp:Unet:resnet34") is None


def test_the_uniform_interface_answers_for_zoo_models_too():
    assert zoo.is_known("bisenetv2") and zoo.is_known("smp:Unet:resnet34")
    assert zoo.model_group("bisenetv2") == zoo.get_card("bisenetv2").group
    assert zoo.find_card("bisenetv2") is zoo.get_card("bisenetv2")
    assert zoo.find_card("no_such_model") is None
    with pytest.raises(zoo.UnknownModelError, match="has no card"):
        zoo.get_card("smp:Unet:resnet34")
    assert set(external.PROVIDERS) == {"smp", "torchvision", "hf", "timm"}
