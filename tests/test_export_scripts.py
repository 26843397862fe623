"""The ONNX path through the command line: scripts/export_onnx.py, `--backend onnxruntime [--int8]` of
zero_shot_eval.py and linear_probe.py (same results as the PyTorch backend), scripts/onnx_agreement.py, and their bad
inputs (exit code 2, one line, nothing written)."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_config, tiny_processor

pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import export_onnx  # noqa: E402
import linear_probe  # noqa: E402
import onnx_agreement  # noqa: E402
import zero_shot_eval  # noqa: E402
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image as ImageFeature  # noqa: E402
from PIL import Image  # noqa: E402

from modeling_unicl import UniCLModel  # noqa: E402

CLASSES = ["red", "green", "blue"]
COLORS = [(220, 30, 30), (30, 200, 30), (30, 30, 220)]


def _dataset(n, seed):
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        canvas = np.full((32, 32, 3), 128, dtype=np.uint8)
        x, y = rng.integers(0, 16, size=2)
        canvas[y : y + 16, x : x + 16] = COLORS[i % 3]
        images.append(Image.fromarray(canvas))
    return Dataset.from_dict({"image": images, "label": [i % 3 for i in range(n)]},
                             features=Features({"image": ImageFeature(), "label": ClassLabel(names=CLASSES)}))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A saved tiny UniCL model, its export with --int8, its export without, and an image-label dataset."""
    root = tmp_path_factory.mktemp("export_scripts")
    torch.manual_seed(0)
    UniCLModel(tiny_config()).save_pretrained(root / "model")
    tiny_processor().save_pretrained(root / "model")
    DatasetDict({"train": _dataset(30, 1), "test": _dataset(15, 2)}).save_to_disk(root / "data")
    assert export_onnx.main([str(root / "model"), str(root / "onnx"), "--int8"]) == 0
    assert export_onnx.main([str(root / "model"), str(root / "onnx_fp32")]) == 0
    return root


def _one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_export_script_writes_both_graphs_int8_and_reports_parity(folders, capsys):
    names = {p.name for p in (folders / "onnx").iterdir()}
    assert {"image_encoder.onnx", "text_encoder.onnx", "image_encoder.int8.onnx", "export_config.json",
            "tokenizer.json"} <= names
    assert not any(".int8." in p.name for p in (folders / "onnx_fp32").iterdir())
    parity = json.loads((folders / "onnx" / "export_config.json").read_text())["parity_max_abs_diff"]
    assert max(parity.values()) <= 1e-4


@pytest.mark.parametrize("make_args, words", [
    (lambda r: [str(r / "missing"), str(r / "out")], ["MODEL", "missing"]),
    (lambda r: [str(r / "data"), str(r / "out")], ["MODEL", "data"]),
    (lambda r: [str(r / "model"), str(r / "onnx")], ["OUT", "not empty", "--overwrite"]),
    (lambda r: [str(r / "model"), str(r / "out"), "--opset", "13"], ["--opset", "17"]),
    (lambda r: [str(r / "model"), str(r / "model" / "config.json")], ["OUT", "not a folder"]),
])
def test_export_script_bad_inputs_exit_2_and_write_nothing(folders, capsys, make_args, words):
    before = sorted(p.name for p in folders.iterdir())
    assert export_onnx.main(make_args(folders)) == 2
    _one_error_line(capsys, *words)
    assert sorted(p.name for p in folders.iterdir()) == before


def _zero_shot(folder, tmp_path, *flags):
    out = tmp_path / f"zs{len(list(tmp_path.iterdir()))}.json"
    assert zero_shot_eval.main([str(folder), "--dataset", str(folder.parent / "data"), "--templates", "single",
                                "--workers", "0", "--cache_dir", str(tmp_path / "cache"), "--json", str(out),
                                *flags]) == 0
    return json.loads(out.read_text())["results"][str(folder.parent / "data")]


def test_zero_shot_eval_on_onnxruntime_equals_pytorch(folders, tmp_path):
    pytorch = _zero_shot(folders / "model", tmp_path)
    fp32 = _zero_shot(folders / "onnx", tmp_path, "--backend", "onnxruntime")
    int8 = _zero_shot(folders / "onnx", tmp_path, "--backend", "onnxruntime", "--int8")
    for key in ("top1", "top5", "num_samples"):
        assert fp32[key] == pytorch[key]
    assert int8["num_samples"] == pytorch["num_samples"] and 0 <= int8["top1"] <= 1
    # the class-matrix cache is keyed by the text side: PyTorch and ONNX differ, fp32 and int8 share the fp32 text graph
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


def test_linear_probe_on_onnxruntime_equals_pytorch(folders, tmp_path):
    results = {}
    for name, folder, flags in (("pytorch", "model", []), ("fp32", "onnx", ["--backend", "onnxruntime"]),
                                ("int8", "onnx", ["--backend", "onnxruntime", "--int8"])):
        out = tmp_path / f"{name}.json"
        assert linear_probe.main([str(folders / folder), "--dataset", str(folders / "data"), "--l2", "1e-3",
                                  "--json", str(out), *flags]) == 0
        results[name] = json.loads(out.read_text())
    assert results["fp32"]["test_top1"] == results["pytorch"]["test_top1"]
    assert 0 <= results["int8"]["test_top1"] <= 1


@pytest.mark.parametrize("script", [zero_shot_eval, linear_probe])
@pytest.mark.parametrize("folder, flags, words", [
    ("model", ["--backend", "onnxruntime"], ["MODEL", "export_config.json"]),
    ("onnx_fp32", ["--backend", "onnxruntime", "--int8"], ["MODEL", "image_encoder.int8.onnx", "without int8 graphs"]),
    ("onnx", ["--int8"], ["MODEL", "onnxruntime backend only"]),
])
def test_backend_bad_inputs_exit_2_with_one_line(folders, capsys, tmp_path, script, folder, flags, words):
    out = tmp_path / "results.json"
    argv = [str(folders / folder), "--dataset", str(folders / "data"), "--json", str(out), *flags]
    assert script.main(argv) == 2
    _one_error_line(capsys, *words)
    assert not out.exists()


def test_onnx_agreement_script_end_to_end(folders, tmp_path, monkeypatch, capsys):
    """The measurement behind the README's int8 figures, on the tiny model and a few images (no scikit-image)."""
    images = list(_dataset(12, 3)["image"])
    monkeypatch.setattr(onnx_agreement, "evaluation_inputs",
                        lambda args, model: (images, CLASSES, [i % 3 for i in range(12)]))
    out = tmp_path / "agreement.json"
    assert onnx_agreement.main([str(folders / "model"), "--embedded", "--templates", "2", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results["vs_reference"]) == {"onnxruntime fp32", "onnxruntime int8"}
    assert results["vs_reference"]["onnxruntime fp32"]["top1_agreement"] == 1.0
    assert results["vs_reference"]["onnxruntime fp32"]["max_cosine_distance_image"] < 1e-6
    assert "| onnxruntime int8 |" in capsys.readouterr().out
    assert onnx_agreement.main(["random:no-such-preset", "--photos"]) == 2
    _one_error_line(capsys, "MODEL", "no-such-preset")
