"""The command-line scripts end to end on tiny data, and their bad inputs (exit code 2, nothing written)."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_config
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image as ImageFeature, Value
from PIL import Image

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import linear_probe  # noqa: E402
import train  # noqa: E402
import zero_shot_eval  # noqa: E402

from modeling_unicl import UniCLModel  # noqa: E402

CLASSES = ["red", "green", "blue"]
COLORS = [(220, 30, 30), (30, 200, 30), (30, 30, 220)]


def _image(label, rng):
    canvas = np.full((32, 32, 3), 128, dtype=np.uint8)
    x, y = rng.integers(0, 16, size=2)
    canvas[y : y + 16, x : x + 16] = COLORS[label]
    return Image.fromarray(canvas)


def _label_dataset(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = [i % 3 for i in range(n)]
    return Dataset.from_dict(
        {"image": [_image(l, rng) for l in labels], "label": labels},
        features=Features({"image": ImageFeature(), "label": ClassLabel(names=CLASSES)}),
    )


def _caption_dataset(n, seed=1):
    rng = np.random.default_rng(seed)
    labels = [i % 3 for i in range(n)]
    return Dataset.from_dict(
        {"image": [_image(l, rng) for l in labels], "caption": [f"a {CLASSES[l]} square on grey" for l in labels]},
        features=Features({"image": ImageFeature(), "caption": Value("string")}),
    )


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _label_dataset(24).save_to_disk(root / "labels")
    _caption_dataset(24).save_to_disk(root / "captions")
    DatasetDict({"train": _label_dataset(30, 2), "test": _label_dataset(15, 3)}).save_to_disk(root / "probe")
    no_label = _label_dataset(6).remove_columns("label")
    no_label.save_to_disk(root / "no_label")
    ints = _label_dataset(6).cast_column("label", Value("int64"))
    ints.save_to_disk(root / "int_labels")
    config_file = root / "tiny_config.json"
    tiny_config().to_json_file(config_file)
    return root


@pytest.fixture(scope="module")
def trained_folder(data_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    code = train.main([
        "--config_name", str(data_dirs / "tiny_config.json"),
        "--image_label_datasets", str(data_dirs / "labels"),
        "--image_text_datasets", str(data_dirs / "captions"),
        "--zero_shot_eval_dataset", str(data_dirs / "labels"), "--zero_shot_eval_split", "train",
        "--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "8",
        "--report_to", "none", "--use_cpu", "--save_strategy", "no", "--logging_steps", "1",
    ])
    assert code == 0
    return out


def test_train_saves_a_loadable_folder_with_results(trained_folder):
    from transformers import pipeline

    model = UniCLModel.from_pretrained(trained_folder)
    assert model.config.vision_config.image_size == 32
    results = json.loads((trained_folder / "zero_shot_results.json").read_text())
    assert 0.0 <= results["zero-shot eval"]["top1"] <= 1.0
    classifier = pipeline("zero-shot-image-classification", model=str(trained_folder))
    out = classifier(_image(0, np.random.default_rng(0)), candidate_labels=CLASSES)
    assert {r["label"] for r in out} == set(CLASSES)


def test_zero_shot_eval_script(trained_folder, data_dirs, tmp_path, capsys):
    json_path = tmp_path / "zs.json"
    code = zero_shot_eval.main([str(trained_folder), "--dataset", str(data_dirs / "probe"), "--split", "test",
                                "--templates", "single", "--json", str(json_path)])
    assert code == 0
    result = json.loads(json_path.read_text())["results"][str(data_dirs / "probe")]
    assert result["num_samples"] == 15 and result["templates"] == 1
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert "| top-1 |" in capsys.readouterr().out


def test_linear_probe_script(trained_folder, data_dirs, tmp_path):
    json_path = tmp_path / "probe.json"
    code = linear_probe.main([str(trained_folder), "--dataset", str(data_dirs / "probe"), "--l2", "1e-4", "1e-2",
                              "--json", str(json_path)])
    assert code == 0
    result = json.loads(json_path.read_text())
    assert set(map(float, result["sweep"])) == {1e-4, 1e-2}
    assert 0.0 <= result["test_top1"] <= 1.0


def test_linear_probe_learns_separable_features():
    from modeling_unicl.evaluation.linear_probe import linear_probe as fit

    generator = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 8, generator=generator) * 3
    labels = torch.arange(90) % 3
    features = centers[labels] + 0.3 * torch.randn(90, 8, generator=generator)
    result = fit(features[:60], labels[:60], features[60:75], labels[60:75], features[75:], labels[75:])
    assert result.test_accuracy == 1.0 and result.l2 in result.sweep


# ------------------------------------------------------------------------------------------------ bad input
def _train_argv(out, *extra):
    return ["--config_name", "animals-small", "--output_dir", str(out), "--max_steps", "1", "--report_to", "none",
            "--use_cpu", *extra]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image_label_datasets", "./does/not/exist"], "--image_label_datasets: dataset path './does/not/exist' does not exist"),
        (["--image_text_datasets", "/nope/captions"], "--image_text_datasets: dataset path '/nope/captions' does not exist"),
        (["--image_label_datasets", "{no_label}"], "label"),
        (["--image_label_datasets", "{int_labels}"], "ClassLabel"),
        (["--image_text_datasets", "{labels}"], "caption"),
        (["--image_label_datasets", "{labels}", "--config_name", "no-such-preset"], "--config_name"),
        (["--image_label_datasets", "{labels}", "--mixing", "sometimes"], "mixing"),
    ],
)
def test_train_bad_inputs_exit_2_and_write_nothing(data_dirs, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    extra = [e.format(**{p.name: p for p in data_dirs.iterdir()}) for e in extra]
    argv = _train_argv(out, *extra)
    if "--config_name" in extra:  # the test's own preset replaces the default one
        first = argv.index("--config_name")
        del argv[first : first + 2]
    assert train.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_train_rejects_a_folder_that_is_not_unicl(data_dirs, tmp_path, capsys):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    out = tmp_path / "out"
    code = train.main(["--model_name_or_path", str(folder), "--image_label_datasets", str(data_dirs / "labels"),
                       "--output_dir", str(out), "--report_to", "none", "--use_cpu"])
    assert code == 2
    assert "'bert' model, not a UniCL model" in capsys.readouterr().err
    assert not out.exists()


def test_eval_scripts_reject_bad_inputs(trained_folder, data_dirs, tmp_path, capsys):
    assert zero_shot_eval.main([str(tmp_path / "missing"), "--dataset", str(data_dirs / "labels")]) == 2
    assert "MODEL" in capsys.readouterr().err
    assert zero_shot_eval.main([str(trained_folder), "--dataset", str(data_dirs / "labels"), "--templates", "oops"]) == 2
    assert "--templates" in capsys.readouterr().err
    assert zero_shot_eval.main([str(trained_folder), "--dataset", str(data_dirs / "no_label"), "--split", "train"]) == 2
    assert "label" in capsys.readouterr().err
    assert linear_probe.main([str(trained_folder), "--dataset", str(tmp_path / "nope")]) == 2
    assert "--dataset" in capsys.readouterr().err


def test_zero_shot_eval_on_the_embedded_data(trained_folder, tmp_path):
    json_path = tmp_path / "embedded.json"
    assert zero_shot_eval.main([str(trained_folder), "--embedded", "--templates", "single", "--json", str(json_path)]) == 0
    results = json.loads(json_path.read_text())["results"]
    assert {name: r["num_samples"] for name, r in results.items()} == {
        "all": 1000, "seen": 700, "held_out": 300,
    }


def test_train_links_captions_and_shows_a_supervised_reference(data_dirs, tmp_path, monkeypatch, capsys):
    import modeling_unicl.data

    built = []
    original = modeling_unicl.data.build_training_dataset

    def recording(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(modeling_unicl.data, "build_training_dataset", recording)
    out = tmp_path / "out"
    assert train.main([
        "--config_name", str(data_dirs / "tiny_config.json"), "--image_label_datasets", str(data_dirs / "labels"),
        "--image_text_datasets", str(data_dirs / "captions"), "--link_captions_to_classes",
        "--supervised_reference", "True", "--zero_shot_eval_dataset", str(data_dirs / "labels"),
        "--zero_shot_eval_split", "train", "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "8", "--report_to", "none", "--use_cpu", "--save_strategy", "no",
    ]) == 0
    main_data, reference_data = built
    # every caption ("a red square on grey") names one class: linked to it; the reference sees the labels alone
    caption_ids = [main_data.hf_dataset[i]["label"] for i in range(24, 48)]
    assert caption_ids == [i % 3 for i in range(24)] and main_data.options.link_captions_to_classes
    assert reference_data.num_caption_rows == 0 and len(reference_data) == 24
    results = json.loads((out / "zero_shot_results.json").read_text())
    assert 0.0 <= results["zero-shot eval"]["supervised_reference_top1"] <= 1.0
    assert "| supervised reference top-1 |" in capsys.readouterr().out
    assert not (out / "supervised-reference").exists()


def test_comparison_report_table_json_and_plot(tmp_path):
    import argparse

    import reproduce_comparison

    runs = [
        {"study": "union", "regime": regime, "seed": seed, "steps": 10 * (i + 1), "zero_shot_seen": 0.5 + 0.01 * seed,
         "zero_shot_held_out": 0.4, "zero_shot_all": 0.3 + 0.02 * seed + 0.1 * (regime == "unicl"),
         "linear_probe_all": 0.6}
        for i, regime in enumerate(r for r in reproduce_comparison.REGIMES if r != "ce") for seed in (0, 1)
    ]
    runs += [{"study": "union", "regime": "ce", "seed": seed, "steps": 10, "zero_shot_seen": 0.9,
              "linear_probe_all": 0.7} for seed in (0, 1)]
    runs += [{"study": "pure_label", "tower": "swin", "dataset": "digits", "objective": objective, "seed": seed,
              "steps": 5, "top1": top1} for objective, top1 in (("unicl", 0.8), ("ce", 0.9)) for seed in (0, 1)]
    args = argparse.Namespace(seeds=[0, 1], epochs=2.0, digits_epochs=4.0, batch_size=8, threads=1,
                              regimes=list(reproduce_comparison.REGIMES))
    table, note = reproduce_comparison.write_report(runs, args, tmp_path, seconds=60.0, cpu_seconds=90.0)
    assert "| (a) image-label only, UniCL loss | 10 | 50.5 ± 0.5 | 40.0 ± 0.0 | 31.0 ± 1.0 | 60.0 ± 0.0 |" in table
    assert "| (a') image-label only, cross-entropy | 10 | 90.0 ± 0.0 | - | - | 70.0 ± 0.0 |" in table
    assert "| swin | digits | 80.0 ± 0.0 | 90.0 ± 0.0 |" in table
    # verdicts only beyond the spread: +10 points with a spread of 2 holds; 0 points is within noise
    assert "| UniCL (c) beats CLIP-style (b) | zero shot all | +10.0 (spread 2.0) | holds |" in table
    assert "| UniCL (c) beats CLIP-style (b) | linear probe all | +0.0 (spread 0.0) | within noise |" in table
    assert "| pure labels: UniCL rivals cross-entropy (swin, digits) | top-1 | -10.0 (spread 0.0) | does not hold |" in table
    assert "seeds [0, 1]" in note and "1.5 CPU-min" in note
    assert (tmp_path / "comparison.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["summary"]["union"]["unicl"]["steps"] == 30 and saved["summary"]["union"]["ce"]["zero_shot_all"] is None
    assert saved["summary"]["pure_label"]["swin/digits"]["ce"] == [0.9, 0.0]


def test_comparison_verdicts_count_only_beyond_the_spread():
    from reproduce_comparison import verdict

    assert verdict((0.60, 0.01), (0.50, 0.02)) == "holds"
    assert verdict((0.52, 0.02), (0.50, 0.02)) == "within noise"
    assert verdict((0.40, 0.01), (0.50, 0.01)) == "does not hold"
    assert verdict((0.48, 0.02), (0.50, 0.01), "rivals") == "holds"  # behind, but within the spread
    assert verdict((0.40, 0.02), (0.50, 0.01), "rivals") == "does not hold"


def test_same_seed_same_model(data_dirs, tmp_path):
    """The seed fixes the initial weights too (the model is built before the Trainer seeds anything)."""
    from safetensors.torch import load_file

    weights = []
    for run in ("a", "b"):
        torch.manual_seed(int(run == "b"))  # a different global RNG state before each run
        out = tmp_path / run
        assert train.main([
            "--config_name", str(data_dirs / "tiny_config.json"),
            "--image_label_datasets", str(data_dirs / "labels"), "--image_text_datasets", str(data_dirs / "captions"),
            "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "8", "--seed", "3",
            "--report_to", "none", "--use_cpu", "--save_strategy", "no",
        ]) == 0
        weights.append(load_file(str(out / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_flags_without_datasets_override_the_embedded_preset():
    """`train.py --num_train_epochs 2` is the embedded default with 2 epochs, not TrainingArguments' defaults."""
    preset = train.parse_arguments([])
    model_args, data_args, training_args, embedded = train.parse_arguments(
        ["--num_train_epochs", "2", "--no_keep_freed_memory", "--output_dir", "elsewhere"])
    assert embedded and preset[3]
    assert training_args.num_train_epochs == 2 and preset[2].num_train_epochs == 10
    assert training_args.output_dir == "elsewhere" and preset[2].output_dir == train.EMBEDDED_OUTPUT_DIR
    assert model_args.keep_freed_memory is False and preset[0].keep_freed_memory is True
    for name in ("learning_rate", "per_device_train_batch_size", "seed", "lr_scheduler_type", "warmup_steps"):
        assert getattr(training_args, name) == getattr(preset[2], name), name
    assert training_args.learning_rate == 1e-3 and model_args.config_name == "animals-small"
    assert (data_args.crop_scale_min, data_args.flip_prob) == (0.6, 0.0)
    assert model_args.supervised_reference and not data_args.link_captions_to_classes


def test_preset_gives_way_to_a_starting_model_and_is_absent_with_datasets(data_dirs):
    model_args, _, training_args, embedded = train.parse_arguments(["--model_name_or_path", "some/folder"])
    assert embedded and model_args.config_name is None and training_args.learning_rate == 1e-3
    model_args, data_args, training_args, embedded = train.parse_arguments(
        ["--image_label_datasets", str(data_dirs / "labels"), "--output_dir", "out"])
    assert not embedded and model_args.config_name is None and not model_args.supervised_reference
    assert training_args.learning_rate == 5e-5 and data_args.flip_prob == 0.5  # the library's / the script's defaults


@pytest.mark.parametrize("script", ["zero_shot_eval", "linear_probe"])
def test_eval_scripts_keep_freed_memory_unless_told_not_to(script, trained_folder, data_dirs, monkeypatch):
    from modeling_unicl.utils import runtime

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(1) or True)
    module = {"zero_shot_eval": zero_shot_eval, "linear_probe": linear_probe}[script]
    argv = [str(trained_folder), "--dataset", str(data_dirs / "probe")]
    argv += ["--split", "test", "--templates", "single"] if script == "zero_shot_eval" else ["--l2", "1e-2"]
    assert module.main(argv) == 0 and calls == [1]
    assert module.main(argv + ["--no_keep_freed_memory"]) == 0 and calls == [1]
    assert module.main([str(trained_folder), "--dataset", str(data_dirs / "missing")]) == 2 and calls == [1]
