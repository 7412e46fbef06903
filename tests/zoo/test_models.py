"""Every registered model, parametrized over the registry (never a hand-kept list)."""

import pytest
import torch

import zoo
from bench.measure.flops import count_macs
from bench.measure.params import count_params

MODELS = zoo.survey_models()
# One size that is not a multiple of 32 (CamVid's), one that is not a multiple of 16 on one side.
SIZES = [(360, 480), (200, 328)]


def _expected_shape(card, batch, hw):
    return (batch, card.num_classes) if card.group == "backbone" else (batch, card.num_classes, *hw)


@pytest.fixture(scope="module", params=MODELS)
def model_and_card(request):
    torch.manual_seed(0)
    return zoo.create_inference_model(request.param), zoo.get_card(request.param)


def test_output_shape_and_determinism(model_and_card):
    model, card = model_and_card
    with torch.inference_mode():
        for hw in SIZES:
            x = torch.randn(1, 3, *hw)
            first = model(x)
            assert tuple(first.shape) == _expected_shape(card, 1, hw), f"{card.name} at {hw}"
            assert torch.isfinite(first).all()
            assert torch.equal(first, model(x)), f"{card.name}: eval output is not deterministic"


def test_params_match_card(model_and_card):
    model, card = model_and_card
    reported = card.reported_params
    if reported is None:
        assert "param" in card.notes.lower(), f"{card.name}: no reported params and no note saying why"
        pytest.skip(f"{card.name}: the paper and official code report no parameter count")
    ours = count_params(model, include_aux=card.params_counts_aux_heads)
    delta = ours / (reported.value * 1e6) - 1
    assert abs(delta) <= card.params_rtol, (
        f"{card.name}: {ours:,} params vs reported {reported.value}M "
        f"({delta:+.1%}, tolerance {card.params_rtol:.0%})"
    )


def test_fvcore_traces(model_and_card):
    model, card = model_and_card
    macs, unsupported = count_macs(model, torch.randn(1, 3, 128, 256))
    assert macs > 0
    assert all(isinstance(n, int) and n > 0 for n in unsupported.values())


def test_training_only_heads_run_in_train_mode_only(model_and_card):
    _, card = model_and_card
    if card.group == "backbone":
        pytest.skip("classifiers have no training-only heads")
    model = zoo.create_model(card.name).train()
    x = torch.randn(2, 3, 128, 160)
    with torch.no_grad():
        out = model(x)
        if getattr(model, "aux_heads", None):
            logits, aux = out
            assert aux and all(a.shape[0] == 2 for a in aux)
        else:
            logits = out
        assert tuple(logits.shape) == (2, card.num_classes, 128, 160)
        assert isinstance(model.eval()(x), torch.Tensor)


def test_mobilenetv2_has_the_standard_parameter_count():
    assert count_params(zoo.create_model("mobilenetv2")) == 3_504_872
