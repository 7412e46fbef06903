import pytest
import torch
from torch import nn

from zoo.weights import (
    CheckpointError,
    add_bn_counters,
    check_fits,
    inplace_abn_to_bn,
    load_weights,
    read_state_dict,
)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_round_trip_with_wrappers_and_ddp_prefix(tmp_path):
    source = net()
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    load_weights(target, path)
    for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_mismatches_are_listed_by_key(tmp_path):
    state = net().state_dict()
    state["0.weight"] = torch.zeros(4, 3, 5, 5)
    state["extra.bias"] = torch.zeros(1)
    del state["1.running_mean"]
    with pytest.raises(CheckpointError) as info:
        check_fits(net(), state)
    message = str(info.value)
    assert "missing (1): 1.running_mean" in message
    assert "unexpected (1): extra.bias" in message
    assert "0.weight: checkpoint (4, 3, 5, 5) vs model (4, 3, 3, 3)" in message


def test_bn_counters_are_added_where_a_norm_kept_none():
    state = {k: v for k, v in net().state_dict().items() if not k.endswith("num_batches_tracked")}
    state["2.running_mean"], state["2.num_batches_tracked"] = torch.zeros(4), torch.tensor(7)
    out = add_bn_counters(state)
    assert out["1.num_batches_tracked"].dtype == torch.long and int(out["1.num_batches_tracked"]) == 0
    assert int(out["2.num_batches_tracked"]) == 7  # an existing counter is kept
    assert set(out) - set(state) == {"1.num_batches_tracked"}
    check_fits(net(), {k: v for k, v in out.items() if not k.startswith("2.")})


def test_pickled_code_is_refused_and_bad_files_are_clear_errors(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": print}, evil)  # a callable needs full unpickling
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_state_dict(evil)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pth")
    tensors_only = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], tensors_only)
    with pytest.raises(CheckpointError, match="no state_dict"):
        read_state_dict(tensors_only)


def test_inplace_abn_scales_become_batchnorm_weights():
    state = {
        "bn.weight": torch.tensor([-2.0, 0.0, 3.0]),
        "bn.bias": torch.zeros(3),
        "bn.running_mean": torch.zeros(3),
        "bn.running_var": torch.ones(3),
        "conv.weight": torch.full((3, 3, 1, 1), -1.0),
    }
    out = inplace_abn_to_bn(state, eps=1e-5)
    assert torch.equal(out["bn.weight"], torch.tensor([2.0, 0.0, 3.0]) + 1e-5)
    assert torch.equal(out["conv.weight"], state["conv.weight"])  # not a norm layer
    assert out["bn.num_batches_tracked"] == 0
    bn = nn.BatchNorm2d(3)
    bn.load_state_dict({k.removeprefix("bn."): v for k, v in out.items() if k.startswith("bn.")})
