"""Card schema, for every registered model: each paper number is sourced and has the conditions it needs."""

import math

import pytest

import zoo
from zoo.card import GROUPS, METRIC_UNITS

MODELS = zoo.survey_models()


@pytest.mark.parametrize("name", MODELS)
def test_card_schema(name):
    card = zoo.get_card(name)
    assert card.name == name and card.group in GROUPS
    assert card.paper.title and card.paper.venue and 1990 < card.paper.year <= 2026
    assert card.paper.url, f"{name}: the paper needs an arXiv id or a DOI"
    assert card.implementation
    assert card.num_classes > 0 and min(card.input_hw) > 0 and card.input_divisor >= 1
    # A gap is explained on the card, never hidden by a looser tolerance.
    assert 0 < card.params_rtol <= 0.05
    for r in card.reported:
        where = f"{name}: {r.metric}={r.value}"
        assert r.metric in METRIC_UNITS, where
        assert isinstance(r.value, (int, float)) and math.isfinite(r.value) and r.value > 0, where
        assert r.source and r.source.strip(), f"{where} has no source"
        # A condition the source leaves out is written as "not stated ...", never left blank.
        if r.metric in ("flops", "macs"):
            assert r.convention, f"{where} needs its FLOPs convention"
            assert r.input_hw or "input" in r.note.lower() or "resolution" in r.note.lower(), where
        if r.metric in ("fps", "latency_ms"):
            assert r.device, f"{where} needs the device it was timed on"
        if r.metric in ("miou", "top1"):
            assert r.dataset and r.split, f"{where} needs its dataset and split"
            assert 0 < r.value <= 100, where


@pytest.mark.parametrize("name", MODELS)
def test_a_missing_params_figure_is_explained(name):
    card = zoo.get_card(name)
    if card.reported_params is None:
        assert "param" in card.notes.lower(), f"{name}: no params figure and no note saying why"


def test_groups_of_the_survey_are_populated():
    for group in GROUPS:
        assert zoo.list_models(group), f"no model in group {group}"
