"""scripts/reproduce_comparison.py end to end with a tiny setting (2 steps per run, 64 training samples): every regime
and both studies train, are scored and reach the report; the cross-entropy baseline is the same tower plus a linear
classifier; the digits are a fixed 10-class split."""

import json
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import reproduce_comparison  # noqa: E402


def test_the_comparison_runs_every_regime_and_study(tmp_path):
    pytest.importorskip("sklearn")
    code = reproduce_comparison.main([
        "--seeds", "0", "--epochs", "1", "--digits_epochs", "1", "--num_train", "64", "--batch_size", "16",
        "--output_dir", str(tmp_path), "--towers", "swin", "resnet", "--jobs", "1",
    ])
    assert code == 0
    saved = json.loads((tmp_path / "comparison.json").read_text())
    union = {r["regime"]: r for r in saved["runs"] if r["study"] == "union"}
    assert set(union) == set(reproduce_comparison.REGIMES)
    # (b)'s step budget, computed before (b) runs, is what the Trainer did: 64 captions / 16 per batch
    assert union["unicl@clip-steps"]["steps"] == union["clip"]["steps"] == 4 and union["unicl"]["steps"] == 8
    assert set(union["ce"]) >= {"zero_shot_seen", "linear_probe_all"} and "zero_shot_all" not in union["ce"]
    for regime, run in union.items():
        assert run["cpu_s"] > 0 and all(0.0 <= run[m] <= 1.0 for m in reproduce_comparison.METRICS if m in run), regime
    pure = {(r["tower"], r["dataset"], r["objective"]) for r in saved["runs"] if r["study"] == "pure_label"}
    assert pure == {(t, d, o) for t in ("swin", "resnet") for d in ("silhouettes", "digits") for o in ("unicl", "ce")}
    report = (tmp_path / "comparison.md").read_text()
    assert "(d) UniCL, union, captions linked" in report and "| resnet | digits |" in report
    assert (tmp_path / "comparison.png").is_file()


def test_runs_in_parallel_processes_give_the_same_numbers(tmp_path):
    common = ["--seeds", "0", "1", "--studies", "union", "--regimes", "supervised", "clip", "--max_steps", "2",
              "--num_train", "32", "--batch_size", "16"]
    rows = {}
    for jobs in ("1", "2"):
        assert reproduce_comparison.main(common + ["--jobs", jobs, "--output_dir", str(tmp_path / jobs)]) == 0
        saved = json.loads((tmp_path / jobs / "comparison.json").read_text())["runs"]
        rows[jobs] = [{k: v for k, v in run.items() if k not in ("wall_s", "cpu_s")} for run in saved]
    assert len(rows["1"]) == 4 and rows["1"] == rows["2"]


def test_the_cross_entropy_baseline_is_the_same_tower_and_a_linear_classifier():
    from modeling_unicl import UniCLModel

    config = reproduce_comparison.model_config("swin", 32)
    assert config.vision_config.model_type == "swin" and config.vision_config.image_size == 32
    data = reproduce_comparison.load_data("silhouettes", 0, num_train=8)
    args = reproduce_comparison.parse_args(["--batch_size", "4"])
    training_args = reproduce_comparison.training_arguments(args, 0, "/tmp/unused", 1.0, 1)
    classifier, processor, steps = reproduce_comparison.train_cross_entropy(
        reproduce_comparison.model_config("resnet", 48), data.label_train, 0, training_args)
    assert steps == 1 and classifier.classifier.out_features == 7
    reference = UniCLModel(reproduce_comparison.model_config("resnet", 48))
    tower_keys = {k for k in classifier.state_dict() if k.startswith(("vision_model.", "visual_projection."))}
    assert tower_keys == {k for k in reference.state_dict() if k.startswith(("vision_model.", "visual_projection."))}
    side = reproduce_comparison.image_side(classifier, reproduce_comparison.model_config("resnet", 48))
    key = next(iter(sorted(tower_keys)))
    assert side.state_dict()[key].equal(classifier.state_dict()[key])
    assert 0.0 <= reproduce_comparison.classifier_top1(classifier, processor, data.eval_seen.select(range(20))) <= 1.0


def test_digits_are_a_fixed_stratified_split():
    pytest.importorskip("sklearn")
    a, b = reproduce_comparison.load_digits_data(32), reproduce_comparison.load_digits_data(32)
    assert (len(a.label_train), len(a.eval_seen)) == (1297, 500)
    assert a.eval_seen["label"] == b.eval_seen["label"] and sorted(set(a.eval_seen["label"])) == list(range(10))
    assert a.eval_seen.features["label"].names[3] == "three" and a.eval_seen[0]["image"].size == (32, 32)
