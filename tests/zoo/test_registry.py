import pytest
from torch import nn

import zoo
from zoo import registry
from zoo.card import ModelCard, Paper
from zoo.evaluation import DEFAULT_RECIPE, IMAGENET, Preprocess, Recipe

CARD = ModelCard(
    group="backbone",
    paper=Paper("A test paper", "nowhere", 2024),
    official_code=None,
    implementation="test",
    num_classes=3,
    input_hw=(8, 8),
)


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    monkeypatch.setattr(registry, "_CARDS", dict(registry._CARDS))
    monkeypatch.setattr(registry, "_PREPROCESS", dict(registry._PREPROCESS))
    monkeypatch.setattr(registry, "_RECIPES", dict(registry._RECIPES))


def test_round_trip(clean_registry):
    @zoo.register_model(card=CARD)
    def tiny_test_net(num_classes: int = 3) -> nn.Module:
        return nn.Conv2d(3, num_classes, 1)

    assert "tiny_test_net" in zoo.list_models()
    assert "tiny_test_net" in zoo.list_models("backbone")
    assert "tiny_test_net" not in zoo.list_models("portrait")
    model = zoo.create_model("tiny_test_net", num_classes=5)
    assert model.out_channels == 5
    card = zoo.get_card("tiny_test_net")
    assert card.name == "tiny_test_net" and card.group == "backbone"


def test_preprocess_and_recipe_are_registered_with_the_builder(clean_registry):
    bgr = Preprocess(channel_order="BGR", source="test")
    adam = Recipe(optimizer="adam", source="test")

    @zoo.register_model(card=CARD, preprocess=bgr, recipe=adam)
    def tiny_eval_net() -> nn.Module:
        return nn.Identity()

    @zoo.register_model(card=CARD)
    def tiny_plain_net() -> nn.Module:
        return nn.Identity()

    assert registry.get_preprocess("tiny_eval_net") is bgr and registry.get_recipe("tiny_eval_net") is adam
    assert registry.get_preprocess("tiny_plain_net") is IMAGENET
    assert registry.get_recipe("tiny_plain_net") is DEFAULT_RECIPE
    assert registry.get_preprocess("sinet").channel_order == "BGR"  # the authors' OpenCV pipeline


def test_duplicate_name_raises(clean_registry):
    @zoo.register_model(card=CARD)
    def dup_net() -> nn.Module:
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):

        @zoo.register_model(card=CARD)
        def dup_net() -> nn.Module:  # noqa: F811
            return nn.Identity()


def test_unknown_group_raises(clean_registry):
    with pytest.raises(ValueError, match="unknown group"):
        zoo.register_model(card=ModelCard(**{**CARD.__dict__, "group": "nope"}))(lambda: nn.Identity())
    with pytest.raises(ValueError, match="unknown group"):
        zoo.list_models("nope")


def test_unknown_model_raises_clearly():
    with pytest.raises(zoo.UnknownModelError, match="unknown model 'no_such_model'"):
        zoo.create_model("no_such_model")
    with pytest.raises(zoo.UnknownModelError):
        zoo.get_card("no_such_model")


def test_skeleton_models_registered_in_their_groups():
    assert "mobilenetv2" in zoo.list_models("backbone")
    assert "pphumanseg_lite" in zoo.list_models("portrait")
    assert "bisenetv2" in zoo.list_models("realtime")
    assert "deeplabv3_r50" in zoo.list_models("semantic")
