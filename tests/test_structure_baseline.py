"""CI's structural gate: every registered model's params, MACs, output shape and card against the committed
baseline (results/baselines/structure.json, bench.baseline), exactly.

A difference fails with the model and the fields that changed. If the change is intended, update the
baseline with `nox -s baseline` (or `segbench baseline --update`) and commit it with the change. Latency is
not gated here; `nox -s regress` reports it.
"""

import pytest
import torch

import zoo
from bench import baseline
from bench.baseline import (
    STRUCTURE_INPUT_HW,
    UPDATE_COMMAND,
    diff_structure,
    find_structure_baseline,
    model_structure,
    read_structure,
)

PATH = find_structure_baseline()
COMMITTED = read_structure(PATH) if PATH else None
NAMES = sorted(set(zoo.survey_models()) | set((COMMITTED or {}).get("models", {})))
SHOWN = PATH.relative_to(baseline.BASELINES_DIR.parent.parent) if PATH else None
HINT = f"if intended, run `{UPDATE_COMMAND}` and commit {SHOWN}"


def test_a_baseline_is_committed_for_the_current_input():
    assert COMMITTED is not None, (
        f"no structural baseline under {baseline.BASELINES_DIR}: run `{UPDATE_COMMAND}`"
    )
    assert COMMITTED["input_hw"] == list(STRUCTURE_INPUT_HW), f"{SHOWN} was counted at another input; {HINT}"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_structure_matches_the_committed_baseline(name):
    if COMMITTED is None:
        pytest.fail(f"no structural baseline under {baseline.BASELINES_DIR}: run `{UPDATE_COMMAND}`")
    committed = COMMITTED["models"]
    assert name in zoo.survey_models(), f"{name}: in {SHOWN} but no longer registered; {HINT}"
    assert name in committed, f"{name}: registered but not in {SHOWN}; {HINT}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        current = model_structure(name)
    finally:
        torch.set_num_threads(threads)
    changes = diff_structure({"models": {name: committed[name]}}, {"models": {name: current}})
    note = ""
    fvcore = baseline.fvcore_version()
    if changes and COMMITTED.get("fvcore") != fvcore:
        note = f" (the baseline counted with fvcore {COMMITTED.get('fvcore')}, this is {fvcore})"
    assert not changes, f"structural change against {SHOWN}: {changes[0]}{note}; {HINT}"


def _doc(**models):
    return {"structure_version": 1, "input_hw": [64, 96], "macs_counter": "fvcore", "models": models}


def _model(**overrides):
    fields = {
        "params": 10,
        "params_total": 12,
        "macs": 100,
        "output_shape": [1, 19, 64, 96],
        "card_digest": "ab",
    }
    return {**fields, **overrides}


def test_identical_structures_have_no_difference():
    assert diff_structure(_doc(a=_model(), b=_model()), _doc(a=_model(), b=_model())) == []


@pytest.mark.parametrize(
    "field,value",
    [
        ("params", 11),
        ("params_total", 13),
        ("macs", 101),
        ("output_shape", [1, 19, 32, 48]),
        ("card_digest", "cd"),
    ],
)
def test_each_changed_field_names_the_model_and_the_values(field, value):
    (line,) = diff_structure(_doc(a=_model(), b=_model()), _doc(a=_model(), b=_model(**{field: value})))
    assert line.startswith("b: ") and field in line and repr(value) in line


def test_new_and_removed_models_are_differences():
    lines = diff_structure(_doc(a=_model()), _doc(b=_model()))
    assert lines == ["a: removed from the registry", "b: new model, not in the baseline"]


def test_the_card_digest_follows_the_card():
    import dataclasses

    card = zoo.get_card("bisenetv2")
    assert baseline.card_digest(card) == baseline.card_digest(dataclasses.replace(card))
    assert baseline.card_digest(card) != baseline.card_digest(
        dataclasses.replace(card, notes=card.notes + ".")
    )


def test_segbench_baseline_checks_and_updates(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    current = _doc(a=_model())
    monkeypatch.setattr(baseline, "compute_structure", lambda progress=None: current)
    path = tmp_path / "m" / "structure.json"
    assert main(["baseline", "--file", str(path)]) == 2  # nothing to check against: bad input
    assert main(["baseline", "--update", "--file", str(path)]) == 0
    assert read_structure(path) == current
    assert main(["baseline", "--file", str(path)]) == 0
    current = _doc(a=_model(params=11))
    capsys.readouterr()
    assert main(["baseline", "--file", str(path)]) == 1
    assert "a: params 10 -> 11" in capsys.readouterr().out
