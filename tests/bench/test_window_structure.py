"""A GPU window reads params and MACs from committed structure records (bench.window_structure), checked
against this machine's build of each model even where its library versions differ."""

import torch
from torch import nn

from bench import window_structure
from bench.records import from_dict
from bench.store import Layout, append_record
from bench.structure import library_versions, measure_structure, structure_digest
from tests.bench import faulty_models  # noqa: F401 - registers fault_tiny and fault_flaky


def test_a_digest_can_be_computed_with_another_machines_library_versions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    here = library_versions()
    assert structure_digest(model, here) == structure_digest(model)  # the default is this machine's
    elsewhere = {**here, "torch": "2.11.0", "timm": None}
    assert structure_digest(model, elsewhere) != structure_digest(model)


def test_a_count_records_the_library_versions_of_its_digest():
    record = measure_structure("fault_tiny", (16, 16))
    assert record.get("digest_versions") == library_versions()


def _commit(results, model, hw, versions_change=None, digest=None):
    record = measure_structure(model, hw).to_dict()
    if versions_change:  # as counted on a machine with other library versions
        torch.manual_seed(0)
        import zoo

        versions = {**record["digest_versions"], **versions_change}
        record["digest_versions"] = versions
        record["digest"] = structure_digest(zoo.create_inference_model(model), versions)
    if digest:
        record["digest"] = digest
    append_record(Layout(results).structure(model), from_dict(record))
    return record


def test_a_record_counted_with_other_library_versions_is_used_when_the_model_is_the_same(tmp_path):
    counted = _commit(tmp_path, "fault_tiny", (32, 32), versions_change={"torch": "9.9.9"})
    _commit(tmp_path, "fault_flaky", (32, 32), digest="0123456789abcdef")  # the model changed since
    wanted = window_structure.candidates(tmp_path, ["fault_tiny", "fault_flaky", "fault_raises"])
    assert wanted["fault_raises"] == [] and wanted["fault_tiny"] == [
        (counted["digest"], counted["digest_versions"])
    ]
    checked = window_structure.check_models(wanted)
    assert checked["fault_tiny"]["matches"] == [counted["digest"]] and checked["fault_flaky"]["matches"] == []

    record, why = window_structure.for_cell(tmp_path, checked, "fault_tiny", (32, 32), 1)
    assert record.digest == counted["digest"] and record.macs == counted["macs"]
    assert "torch 9.9.9" in why
    record, why = window_structure.for_cell(tmp_path, checked, "fault_flaky", (32, 32), 1)
    assert record is None and "changed" in why
    record, why = window_structure.for_cell(tmp_path, checked, "fault_tiny", (64, 64), 1)
    assert record is None and "no structure record at 64x64 b1" in why
    record, why = window_structure.for_cell(tmp_path, {}, "fault_tiny", (32, 32), 1)
    assert record is None and "not checked" in why


def test_facts_prefer_a_structure_record_and_else_scale_the_baseline(tmp_path):
    import json

    entry = {"macs": 1_000_000, "params": 100, "params_total": 120}
    baseline = {"input_hw": [64, 96], "models": {"fault_tiny": entry}}
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "structure.json").write_text(json.dumps(baseline))
    facts = window_structure.StructureFacts(tmp_path)
    f = facts.of("fault_tiny", (128, 192), 8)
    assert f.macs == 1_000_000 * 4 * 8 and f.params == 120 and f.source.startswith("baseline 64x96")
    counted = _commit(tmp_path, "fault_tiny", (32, 32))
    f = window_structure.StructureFacts(tmp_path).of("fault_tiny", (32, 32), 1)
    assert f.macs == counted["macs"] and f.source == "structure record 32x32 b1"
