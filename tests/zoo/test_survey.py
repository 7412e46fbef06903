"""The survey's models (../shared/SURVEY.md) are registered under the ids the issues name, in their groups.

A hand-kept list on purpose: it is the contract with users' scripts. Per-model tests are registry-driven.
"""

import pytest

import zoo

SURVEY_IDS = {
    "backbone": [
        "hrnet_w18_small", "hrnet_w18", "hrnet_w48", "mobilenetv2", "mobilenetv3_large",
        "mobilenetv3_small", "xception", "shufflenet_g3", "shufflenetv2",
    ],
    "realtime": [
        "enet", "erfnet", "shelfnet", "contextnet", "fastscnn", "swiftnet", "dfanet_a", "dfanet_b", "msfnet",
        "cgnet", "sfnet_r18", "fanet", "regseg", "stdc1_seg", "stdc2_seg", "bisenet_xception39",
        "bisenet_r18", "icnet", "bisenetv2",
    ],
}  # fmt: skip


@pytest.mark.parametrize("group", sorted(SURVEY_IDS))
def test_survey_ids_are_registered_in_their_group(group):
    missing = sorted(set(SURVEY_IDS[group]) - set(zoo.list_models(group)))
    assert not missing, f"{group}: not registered: {missing}"


@pytest.mark.parametrize("group, classes", [("backbone", 1000), ("realtime", 19)])
def test_default_class_counts(group, classes):
    for name in SURVEY_IDS[group]:
        assert zoo.get_card(name).num_classes == classes, name


def test_survey_models_are_the_zoos_own_and_leave_out_what_a_plugin_registered():
    from tests.bench import faulty_models  # noqa: F401 - registers fault_tiny, fault_flaky, ... in this process

    assert "fault_tiny" in zoo.list_models()
    survey = zoo.survey_models()
    assert "fault_tiny" not in survey and len(survey) == 58
    assert all(set(SURVEY_IDS[group]) <= set(survey) for group in SURVEY_IDS)
