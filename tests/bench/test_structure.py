"""Structure (params, MACs, output shape) is counted once per model, input and batch, keyed by a digest."""

import torch
from torch import nn

from bench.store import Layout
from bench.structure import StructureStore, measure_structure, structure_digest


def test_digest_follows_the_structure_not_the_weights():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    torch.manual_seed(1)
    same = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    wider = nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5))
    assert structure_digest(a) == structure_digest(same) != structure_digest(wider)


def test_a_count_is_made_once_and_then_found(tmp_path):
    store = StructureStore(Layout(tmp_path))
    first, counted = store.ensure("mobilenetv2", (64, 96))
    assert counted and first.ok and first.macs > 0 and first.get("output_shape") == [1, 1000]
    again, counted = StructureStore(Layout(tmp_path)).ensure("mobilenetv2", (64, 96))
    assert not counted and again == first
    other, counted = store.ensure("mobilenetv2", (64, 96), batch=2)
    assert counted and other.macs == 2 * first.macs


def test_a_model_that_cannot_run_at_a_size_is_an_error_record():
    record = measure_structure("mobilenetv2", (64, 96), model=nn.Conv2d(4, 4, 1))  # wrong channel count
    assert record.status == "error" and "RuntimeError" in record.error
