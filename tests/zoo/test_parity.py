"""Each model whose authors published code computes the same function as that code.

For every manifest in tests/fixtures/parity (recorded once from the official implementation, see
`zoo.parity`): the official-layout state_dict it describes is rebuilt, saved as a checkpoint, loaded through
`zoo.weights.load_weights` (the model's converter, strict), and our logits must match the official ones.
"""

from pathlib import Path

import pytest
import torch

import zoo
from zoo.parity import (
    ATOL_REL,
    MIN_ARGMAX_AGREEMENT,
    compare_with_manifest,
    fill_tensor,
    official_state_dict,
    read_manifest,
)
from zoo.weights import load_weights

MANIFESTS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "parity").glob("*.json"))


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_matches_official_code(path, tmp_path):
    manifest = read_manifest(path)
    name = manifest["model"]
    checkpoint = tmp_path / "official.pth"
    torch.save(official_state_dict(manifest), checkpoint)
    model = load_weights(zoo.create_model(name, **manifest["build_kwargs"]), checkpoint, name)
    result = compare_with_manifest(model, manifest)
    assert result["shape_ok"], result
    assert result["rel_diff"] <= ATOL_REL, result
    assert result["argmax_agreement"] >= MIN_ARGMAX_AGREEMENT, result


def test_manifest_names_its_reference():
    for path in MANIFESTS:
        reference = read_manifest(path)["reference"]
        assert reference["repo"].count("/") == 1, path
        assert len(reference["commit"]) == 40 and int(reference["commit"], 16) >= 0, path
        assert reference["how"], path


def test_fill_is_a_function_of_name_shape_and_dtype():
    a = fill_tensor("layer1.0.conv1.weight", (8, 4, 3, 3))
    assert torch.equal(a, fill_tensor("layer1.0.conv1.weight", (8, 4, 3, 3)))
    assert not torch.equal(a, fill_tensor("layer1.0.conv2.weight", (8, 4, 3, 3)))
    assert a.abs().max() <= (3.0 / 36) ** 0.5
    var = fill_tensor("bn.running_var", (16,))
    assert var.min() >= 0.5 and var.max() < 1.5
    assert fill_tensor("bn.num_batches_tracked", (), torch.int64).dtype == torch.int64
    assert fill_tensor("bn.bias", (16,)).abs().max() <= 0.2


def test_fill_knows_keras_and_paddle_names():
    for key in ("bn_Conv1/moving_variance", "bn1._variance", "bn_Conv1/gamma"):
        value = fill_tensor(key, (16,))
        assert value.min() >= 0.5 and value.max() < 1.5, key
    assert fill_tensor("bn_Conv1/moving_mean", (16,)).abs().max() <= 0.2
    # PyTorch keys keep the PyTorch rules, whatever their leaf is called (DANet's attention scale).
    assert fill_tensor("head.pam.gamma", (1,)).abs().max() <= 0.2
    torch_kernel = fill_tensor("layer.kernel", (8, 4, 3, 3))  # output first: fan_in 36
    assert torch_kernel.abs().max() <= (3.0 / 36) ** 0.5 and torch_kernel.abs().max() > (3.0 / 96) ** 0.5
    kernel = fill_tensor("Conv1/kernel", (3, 3, 4, 8))  # Keras: (kh, kw, in, out), fan_in 36
    assert kernel.abs().max() <= (3.0 / 36) ** 0.5 and kernel.abs().max() > (3.0 / 96) ** 0.5
    depthwise = fill_tensor("block_1_depthwise/depthwise_kernel", (3, 3, 64, 1))  # fan_in 9
    assert depthwise.abs().max() <= (3.0 / 9) ** 0.5 and depthwise.abs().max() > (3.0 / 18) ** 0.5


def test_the_readme_zoo_table_says_what_the_manifests_show():
    """Every registry id has one row; "exact" rows name their manifest's repo@commit, the others a reason."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = dict(
        re.findall(
            r"^\| ([a-z0-9_]+) \| (?:backbone|portrait|realtime|semantic) \| [^|]+ \| (.+) \|$", readme, re.M
        )
    )
    assert sorted(rows) == zoo.survey_models()
    manifests = {read_manifest(p)["model"]: read_manifest(p)["reference"] for p in MANIFESTS}
    for name, parity in rows.items():
        if name in manifests:
            reference = manifests[name]
            assert (
                parity.startswith("exact") and f"{reference['repo']}@{reference['commit'][:7]}" in parity
            ), name
        else:
            assert parity.startswith("unverified: ") and len(parity) > len("unverified: ") + 10, name
