"""The rules that decide whether a claim and a measurement may stand side by side, and the verdicts.

Each defect the ledger once printed as a comparison has a fixture here: a cross-dataset mIoU, a multi-scale
evaluation against a single-scale claim, a ResNet-101 claim on a ResNet-50 model, a TensorRT GPU FPS claim
against a CPU record, a 1024x2048 FLOPs claim against MACs counted at another size.
"""

import dataclasses

import pytest

from bench.comparability import RULES, VERDICTS, Evidence, assess
from bench.conditions import EvalProtocol
from bench.records import from_dict
from tests.reports.fixtures import bench, evaluation, structure
from zoo.card import ModelCard, Paper, Reported

PAPER = Paper("A Net", "CVPR", 2020)


def card(*reported, name="anet", aux=False, paper=PAPER) -> ModelCard:
    return ModelCard(
        group="realtime", paper=paper, official_code=None, implementation="segbench", num_classes=19,
        input_hw=(512, 1024), reported=reported, params_counts_aux_heads=aux, name=name,
    )  # fmt: skip


def evidence(*records, reference=(), reference_card=None) -> Evidence:
    typed = [from_dict(r) for r in records]
    return Evidence(
        bench=tuple(r for r in typed if r.kind == "bench"),
        evals=tuple(r for r in typed if r.kind == "eval"),
        structure=tuple(r for r in typed if r.kind == "structure"),
        reference_bench=tuple(from_dict(r) for r in reference),
        reference_card=reference_card,
    )


def verdict(claim, *records, **kw):
    c = card(claim, aux=kw.pop("aux", False))
    return assess(c.reported[0], c, evidence(*records, **kw))


MIOU = Reported(
    "miou", 75.0, "paper Table 4", input_hw=(1024, 2048), dataset="Cityscapes", split="val",
    protocol="single-scale, no flip, whole image",
)  # fmt: skip
GPU_FPS = Reported(
    "fps", 156.0, "paper abstract", input_hw=(1024, 2048), device="GTX 1080 Ti",
    backend="TensorRT 5.1.5 (CUDA 9.0, cuDNN 7.0)", precision="fp32",
)  # fmt: skip
PYTORCH_FPS = dataclasses.replace(GPU_FPS, backend="PyTorch", precision="fp16 (torch.cuda.amp autocast)")
FLOPS = Reported("flops", 21.0, "paper Table 7", input_hw=(1024, 2048), convention="2 x multiply-adds")


def test_the_rules_table_covers_every_card_metric():
    from zoo.card import METRIC_UNITS

    covered = {m for rule in RULES.values() for m in rule.metrics}
    assert covered == set(METRIC_UNITS)
    for rule in RULES.values():
        assert rule.tolerance and (rule.must_match or rule.metrics == ("top1",))


# ------------------------------------------------------------------------------------------------ mIoU


def test_cross_dataset_miou_is_not_comparable():
    v = verdict(MIOU, evaluation("anet", 33.5, dataset="camvid", split="test"))
    assert v.verdict == "not comparable" and v.delta is None
    assert (
        "dataset: ours camvid vs paper cityscapes" in v.differs
        and "split: ours test vs paper val" in v.differs
    )
    assert v.command.startswith(
        "segbench eval --model anet --dataset cityscapes --split val --protocol whole"
    )


def test_multi_scale_eval_does_not_answer_a_single_scale_claim():
    ms = EvalProtocol("msflip", scales=(0.75, 1.0, 1.25), flip=True)
    v = verdict(MIOU, evaluation("anet", 76.0, protocol=ms))
    assert v.verdict == "not comparable"
    assert v.differs == ("protocol: ours msflip(scales=0.75,1,1.25, flip) vs paper whole",)
    # ... and with the single-scale evaluation beside it, that one is compared (never the better number)
    v = verdict(MIOU, evaluation("anet", 76.0, protocol=ms), evaluation("anet", 74.2))
    assert v.verdict == "differs" and v.ours == 74.2 and v.delta == pytest.approx(-0.8)


def test_miou_within_half_a_point_is_reproduced():
    v = verdict(MIOU, evaluation("anet", 74.6))
    assert v.verdict == "reproduced" and v.delta == pytest.approx(-0.4) and v.interval is None


def test_weights_trained_here_are_never_set_against_the_paper():
    v = verdict(MIOU, evaluation("anet", 74.9, source="trained here"))
    assert v.verdict == "not measured" and v.ours is None and "trained here" in v.note


def test_an_evaluation_that_resized_the_image_differs_in_input():
    v = verdict(MIOU, evaluation("anet", 74.9, resize=(512, 1024)))
    assert v.verdict == "not comparable" and "input: ours resized to 512x1024" in v.differs[0]


def test_miou_claims_with_open_protocols():
    resized = dataclasses.replace(MIOU, protocol="single-scale at 1024x512 (2048x1024 resized down), no flip")
    v = verdict(resized, evaluation("anet", 75.0))
    assert v.verdict == "not comparable" and "no SegBench equivalent" in v.differs[0] and not v.command
    unstated = dataclasses.replace(MIOU, protocol="not stated in the abstract", split="not stated")
    v = verdict(unstated, evaluation("anet", 75.0))
    assert v.verdict == "not comparable" and len(v.differs) == 2 and all("not stated" in d for d in v.differs)


# ------------------------------------------------------------------------------------------------ variants


def test_a_claim_about_another_network_is_never_compared():
    r101 = dataclasses.replace(MIOU, value=77.82, variant="ResNet-101 backbone")
    v = verdict(r101, evaluation("anet", 77.82))  # even a measurement that would "reproduce" it
    assert v.verdict == "not comparable" and v.variant and v.ours is None and v.record is None
    assert v.differs == ("another network: ResNet-101 backbone",)


# ------------------------------------------------------------------------------------------------ speed


def test_tensorrt_gpu_fps_against_a_cpu_record_is_not_comparable():
    v = verdict(GPU_FPS, bench("anet", 330.0, hw=(1024, 2048)))
    assert v.verdict == "not comparable" and v.delta is None and v.delta_rel is None
    assert "device model: ours Test CPU vs paper GTX 1080 Ti" in v.differs
    assert "backend: ours eager vs paper tensorrt 5.1.5" in v.differs
    assert v.command == "" and v.note == (
        "segbench has no tensorrt 5.1.5 backend; the nearest it measures (PyTorch eager, not the claim): "
        "segbench run --models anet --device cuda --precision fp32 --resolutions 1024x2048 on a GTX 1080 Ti"
    )


def test_speed_on_the_claims_device_and_conditions_is_compared_with_our_interval():
    record = bench("anet", 6.25, hw=(1024, 2048), device="cuda", precision="fp16", machine="gpu-test",
                   gpu="NVIDIA GeForce GTX 1080 Ti", ci=(6.0, 6.5), n=40)  # fmt: skip
    v = verdict(PYTORCH_FPS, record)
    assert v.verdict == "reproduced" and v.ours == pytest.approx(160.0) and v.n == 40
    assert v.interval == pytest.approx((1000 / 6.5, 1000 / 6.0))
    assert v.delta_rel == pytest.approx(160 / 156 - 1) and v.record.machine == "gpu-test"


def test_speed_tolerance():
    def on_gpu(latency, ci):
        return bench("anet", latency, hw=(1024, 2048), device="cuda", precision="fp16", machine="gpu-test",
                     gpu="NVIDIA GeForce GTX 1080 Ti", ci=ci)  # fmt: skip

    assert verdict(PYTORCH_FPS, on_gpu(6.25, (6.0, 6.5))).verdict == "reproduced"  # 160 FPS, 156 inside
    assert verdict(PYTORCH_FPS, on_gpu(6.9, (6.89, 6.91))).verdict == "reproduced"  # 144.9: -7.1%
    far = verdict(PYTORCH_FPS, on_gpu(8.0, (7.9, 8.1)))  # 125 FPS: -19.9%, 156 outside 123.5..126.6
    assert far.verdict == "differs" and far.delta_rel == pytest.approx(125 / 156 - 1)


def test_speed_conditions_must_all_match():
    record = bench("anet", 6.25, hw=(512, 1024), device="cuda", precision="fp32", machine="gpu-test",
                   gpu="NVIDIA GeForce GTX 1080 Ti")  # fmt: skip
    v = verdict(PYTORCH_FPS, record)
    assert v.verdict == "not comparable"
    assert v.differs == ("precision: ours fp32 vs paper fp16", "input size: ours 512x1024 vs paper 1024x2048")
    assert v.command == "segbench run --models anet --device cuda --precision fp16 --resolutions 1024x2048"
    assert v.note == "on a GTX 1080 Ti"
    other_gpu = bench(
        "anet", 6.25, hw=(1024, 2048), device="cuda", precision="fp16", gpu="NVIDIA H100 80GB HBM3"
    )
    assert verdict(PYTORCH_FPS, other_gpu).differs == (
        "device model: ours NVIDIA H100 80GB HBM3 vs paper GTX 1080 Ti",
    )


def test_speed_claims_with_open_conditions():
    v = verdict(dataclasses.replace(GPU_FPS, device="not stated in the abstract", input_hw=None))
    assert v.verdict == "not comparable" and v.differs == (
        "device not stated (the card says 'not stated in the abstract')",
        "input size not stated",
    )
    cpu = Reported(
        "latency_ms", 30.0, "s", input_hw=(224, 224), device="AMD EPYC", backend="PyTorch", precision="fp32"
    )
    assert verdict(cpu, bench("anet", 30.0, hw=(224, 224))).differs == (
        "threads not stated (a CPU figure depends on them)",
    )


def test_cpu_latency_with_threads():
    claim = Reported("latency_ms", 30.0, "s", input_hw=(224, 224), device="Test CPU, 2 threads",
                     backend="PyTorch", precision="fp32")  # fmt: skip
    ours = bench("anet", 31.0, hw=(224, 224), conditions={"threads": 2})
    assert verdict(claim, ours).verdict == "reproduced"
    one = verdict(claim, bench("anet", 31.0, hw=(224, 224), conditions={"threads": 1}))
    assert one.differs == ("threads: ours 1 vs paper 2",)
    assert one.command.endswith("--threads 2")


def test_speed_not_measured_names_the_command():
    v = verdict(PYTORCH_FPS)
    assert v.verdict == "not measured"
    assert v.command == "segbench run --models anet --device cuda --precision fp16 --resolutions 1024x2048"


def test_across_devices_only_a_ratio_to_the_reference_in_the_same_table():
    ours = bench("anet", 20.0, hw=(1024, 2048))
    ref = bench("bisenetv2", 40.0, hw=(1024, 2048))
    same_table = Reported("fps", 78.0, "paper abstract", input_hw=(1024, 2048), device="GTX 1080 Ti",
                          backend="TensorRT 5.1.5 (CUDA 9.0, cuDNN 7.0)", precision="fp32")  # fmt: skip
    reference_card = card(same_table, name="bisenetv2")
    v = verdict(GPU_FPS, ours, reference=[ref], reference_card=reference_card)
    assert v.verdict == "not comparable" and v.delta is None
    assert v.paper_vs_ref == pytest.approx(2.0) and v.ours_vs_ref == pytest.approx(2.0)
    assert "cpu-test-2c 1024x2048" in v.ratio_condition
    other_paper = card(same_table, name="bisenetv2", paper=Paper("B Net", "ECCV", 2018))
    v = verdict(GPU_FPS, ours, reference=[ref], reference_card=other_paper)
    assert v.paper_vs_ref is None and v.ours_vs_ref is None  # another paper's table: no ratio


# ------------------------------------------------------------------------------------------------ MACs


def test_flops_at_1024x2048_are_never_compared_with_macs_at_another_size():
    at_256 = structure("anet", (256, 512), 0.66e9)
    bench_at_claim = bench("anet", 100.0, 10.6e9, hw=(1024, 2048))  # a sweep's MACs do not stand in
    v = verdict(FLOPS, at_256, bench_at_claim)
    assert v.verdict == "not comparable" and v.delta is None
    assert v.differs == ("input size: ours 256x512 vs paper 1024x2048 (MACs are never scaled)",)
    assert v.command == "segbench structure --models anet --resolutions 1024x2048"
    v = verdict(FLOPS, at_256, structure("anet", (1024, 2048), 10.6e9))
    assert v.verdict == "reproduced" and v.paper == pytest.approx(10.5) and v.ours == pytest.approx(10.6)
    assert verdict(FLOPS).verdict == "not measured"
    failed = verdict(FLOPS, at_256, structure("anet", (1024, 2048), 0, status="error"))
    assert failed.verdict == "not measured" and failed.note.endswith(
        "our count there: RuntimeError: too small"
    )


def test_flop_conventions_convert_and_an_unknown_one_is_not_comparable():
    counted = structure("anet", (1024, 2048), 10.0e9, macs_flop_counter=9.0e9)
    conv_linear = Reported("flops", 9.0 * 1e9 / 2**30, "README", input_hw=(1024, 2048),
                           convention="multiply-adds / 2^30 (conv and linear layers only)")  # fmt: skip
    v = verdict(conv_linear, counted)
    assert v.verdict == "reproduced" and v.ours == pytest.approx(9.0) and "macs_flop_counter" in v.note
    unknown = dataclasses.replace(FLOPS, convention="not stated by the paper")
    v = verdict(unknown, counted)
    assert v.verdict == "not comparable" and "FLOPs convention not stated" in v.differs[0]
    assert verdict(dataclasses.replace(FLOPS, value=25.0), counted).verdict == "differs"  # 12.5 vs 10: -20%


# ------------------------------------------------------------------------------------------------ params


def test_params_follow_the_cards_counting_convention():
    claim = Reported("params", 1.11, "paper")
    counted = structure("anet", (64, 96), 1e9, params=1_105_000, params_total=1_216_767)
    assert verdict(claim, counted).verdict == "reproduced"  # 1.105 rounds to 1.11 at the card's precision
    with_heads = verdict(claim, counted, aux=True)
    assert with_heads.verdict == "differs" and with_heads.ours == pytest.approx(1.216767)
    assert "params_total" in with_heads.note
    assert verdict(
        Reported("params", 1.1, "paper"), structure("anet", (64, 96), 1, params=1_160_000)
    ).verdict == ("differs")  # 1.16 is not 1.1 at one decimal
    assert verdict(claim).command == "segbench structure --models anet"


def test_every_verdict_is_one_of_four():
    claims = [
        MIOU,
        GPU_FPS,
        PYTORCH_FPS,
        FLOPS,
        Reported("top1", 72.0, "paper"),
        Reported("params", 1.0, "p"),
    ]
    for claim in claims:
        assert verdict(claim).verdict in VERDICTS
    assert verdict(Reported("top1", 72.0, "paper")).verdict == "not measured"
