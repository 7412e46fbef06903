"""Checkpoints behind one interface: torch and safetensors files, converters, mismatches listed."""

import pytest
import torch
from torch import nn

from bench.store import save_checkpoint
from zoo.registry import list_converters
from zoo.weights import CheckpointError, convert_state_dict, load_weights, read_state_dict


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_in_both_formats(tmp_path, suffix):
    source = net()
    path = save_checkpoint(source.state_dict(), tmp_path / f"m{suffix}")
    assert not list(tmp_path.glob("*.tmp"))
    target = load_weights(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), path)
    for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_corrupt_safetensors_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*bad.safetensors"):
        read_state_dict(bad)


def test_mismatch_in_safetensors_lists_keys(tmp_path):
    state = net().state_dict()
    state["0.weight"] = torch.zeros(4, 3, 1, 1)
    path = save_checkpoint(state, tmp_path / "m.safetensors")
    with pytest.raises(
        CheckpointError, match=r"0\.weight: checkpoint \(4, 3, 1, 1\) vs model \(4, 3, 3, 3\)"
    ):
        load_weights(net(), path)


def test_one_interface_for_converters():
    import zoo  # noqa: F401  (registers the models with their converters)

    assert "sinet" in list_converters()
    state = {"a": torch.zeros(1)}
    assert convert_state_dict("enet", state) == state  # no converter: unchanged
    assert convert_state_dict(None, state) == state
    assert list(convert_state_dict("sinet", {"classifier.1.weight": torch.zeros(1)})) == [
        "decoder.final_conv.weight"
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s: {**s, "0.weight": s["0.weight"].to(torch.int64)},
            r"dtype mismatch \(1\): 0\.weight: checkpoint",
        ),
        (lambda s: {**s, "1.weight": torch.ones(4, dtype=torch.bool)}, "dtype mismatch"),
        (
            lambda s: {**s, "0.weight": torch.full_like(s["0.weight"], float("nan"))},
            r"non-finite values \(1\)",
        ),
        (lambda s: {**s, "1.bias": torch.full_like(s["1.bias"], float("inf"))}, "non-finite values"),
    ],
)
def test_wrongly_typed_or_non_finite_weights_are_refused_by_name(tmp_path, change, message):
    path = save_checkpoint(change(net().state_dict()), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=message):
        load_weights(net(), path)


def test_half_precision_weights_still_load_into_a_float_model(tmp_path):
    state = {k: v.half() if v.is_floating_point() else v for k, v in net().state_dict().items()}
    load_weights(net(), save_checkpoint(state, tmp_path / "m.pt"))


def test_a_checkpoint_whose_keys_are_not_names_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({0: torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="keys that are not names"):
        read_state_dict(path)
