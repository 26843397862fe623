"""CLIP_benchmark's webdataset layout (generated here), many datasets in one run with one table, the on-disk class
matrix cache (a second run does no text forward), unreadable images and bad labels, and the linear probe on the
same layout."""

import io
import json
import sys

import numpy as np
import pytest
import torch
import webdataset
from conftest import REPO_ROOT, tiny_config, tiny_processor
from PIL import Image

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import linear_probe  # noqa: E402
import zero_shot_eval  # noqa: E402

from modeling_unicl import UniCLModel  # noqa: E402
from modeling_unicl.evaluation import build_class_embeddings, topk_accuracy  # noqa: E402
from modeling_unicl.evaluation.class_cache import ClassEmbeddingCache, text_side_fingerprint  # noqa: E402
from modeling_unicl.evaluation.clip_benchmark import hub_repo_id, read_wds_folder, resolve_wds  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow", "purple", "white"]
RGB = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 20), (150, 40, 160), (240, 240, 240)]
FORMATS = [("webp", "WEBP"), ("jpg", "JPEG"), ("png", "PNG")]


def _square(label, rng):
    canvas = np.full((int(rng.integers(36, 56)), int(rng.integers(36, 56)), 3), 110, dtype=np.uint8)
    x, y = rng.integers(0, 16, size=2)
    canvas[y : y + 20, x : x + 20] = RGB[label]
    return Image.fromarray(canvas)


def make_wds(root, num_classes=6, per_class=3, splits=("test",), shards=2, templates=True, seed=0):
    """A CLIP_benchmark folder: SPLIT/0.tar ... with KEY.webp|jpg|png + KEY.cls, classnames.txt, templates.
    Returns {split: [(image, label), ...]} as written (decoded again, so lossy formats compare exactly)."""
    rng, written = np.random.default_rng(seed), {}
    root.mkdir(parents=True)
    (root / "classnames.txt").write_text("\n".join(COLOURS[:num_classes]) + "\n")
    if templates:
        (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c} square.\na {c} thing.\n")
    for split in splits:
        (root / split).mkdir()
        samples = [(label, i) for i in range(per_class) for label in range(num_classes)]
        written[split] = []
        for shard in range(shards):
            with webdataset.TarWriter(str(root / split / f"{shard}.tar")) as sink:
                for index, (label, _) in enumerate(samples[shard::shards]):
                    key, (extension, pil_format) = f"s{shard}_{index:05d}", FORMATS[index % 3]
                    buffer = io.BytesIO()
                    _square(label, rng).save(buffer, format=pil_format)
                    sink.write({"__key__": key, extension: buffer.getvalue(), "cls": str(label).encode()})
                    written[split].append((Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), label))
    (root / "test" / "nshards.txt").write_text(f"{shards}\n")
    return written


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    UniCLModel(tiny_config()).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def miniature_benchmark(tmp_path_factory):
    """Two CLIP_benchmark folders (6 and 3 classes) and a list file naming them."""
    root = tmp_path_factory.mktemp("benchmark")
    written = {"colours": make_wds(root / "wds_colours")["test"],
               "primaries": make_wds(root / "data" / "wds_primaries", num_classes=3, seed=1)["test"]}
    (root / "datasets.txt").write_text(f"# the miniature benchmark\nwds_colours\n\n{root / 'data' / 'wds_primaries'}  # 3 classes\n")
    return root, written


def expected_scores(model_folder, images_and_labels, num_classes):
    model, processor = UniCLModel.from_pretrained(model_folder).eval(), tiny_processor()
    names = COLOURS[:num_classes]
    embeddings = build_class_embeddings(model, processor, names, ("a photo of a {} square.", "a {} thing."))
    pixels = processor.image_processor([image for image, _ in images_and_labels], return_tensors="pt")
    with torch.no_grad():
        logits = torch.nn.functional.normalize(model.get_image_features(**pixels).pooler_output, dim=-1) @ embeddings.T
    labels = torch.tensor([label for _, label in images_and_labels])
    predictions = logits.argmax(-1)
    recall = [(predictions[labels == c] == c).float().mean().item() for c in labels.unique()]
    return {**topk_accuracy(logits, labels), "mean_per_class_recall": sum(recall) / len(recall)}


def test_the_layout_is_read_as_clip_benchmark_writes_it(tmp_path):
    make_wds(tmp_path / "wds_cars", shards=3)
    shard_folder = tmp_path / "wds_cars" / "test"
    (shard_folder / "10.tar").write_bytes((shard_folder / "0.tar").read_bytes())
    wds = read_wds_folder(tmp_path / "wds_cars")
    assert wds.name == "cars" and wds.class_names == COLOURS
    assert wds.templates == ("a photo of a {} square.", "a {} thing.")  # CLIP_benchmark's {c} placeholder
    assert wds.shards == [str(shard_folder / f"{n}.tar") for n in (0, 1, 2, 10)]  # by number, not as strings
    with pytest.raises(ValueError, match=r"train has no \.tar shards"):
        read_wds_folder(tmp_path / "wds_cars", "train")
    (tmp_path / "wds_cars" / "classnames.txt").unlink()
    with pytest.raises(ValueError, match=r"wds_cars/classnames.txt is missing"):
        read_wds_folder(tmp_path / "wds_cars")


def test_hub_names(tmp_path, monkeypatch):
    assert hub_repo_id("wds/cars") == "clip-benchmark/wds_cars"
    assert hub_repo_id("wds/vtab/cifar10") == "clip-benchmark/wds_vtab-cifar10"
    assert hub_repo_id("clip-benchmark/wds_imagenet1k") == "clip-benchmark/wds_imagenet1k"
    with pytest.raises(ValueError, match="neither a local folder nor a Hub dataset"):
        hub_repo_id("cars")
    import huggingface_hub

    make_wds(tmp_path / "snapshot")
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kwargs: calls.append((repo_id, kwargs)) or str(tmp_path / "snapshot"))
    wds = resolve_wds("wds/vtab/cifar10")
    assert wds.name == "vtab-cifar10" and len(wds.shards) == 2
    assert calls == [("clip-benchmark/wds_vtab-cifar10", {"repo_type": "dataset", "allow_patterns": [
        "test/*", "classnames.txt", "zeroshot_classification_templates.txt"]})]


def test_an_unreachable_hub_dataset_is_one_line_and_exit_2(model_folder, monkeypatch, capsys):
    import huggingface_hub

    def offline(repo_id, **kwargs):
        raise OSError("We could not connect.\nCheck your connection.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert zero_shot_eval.main([str(model_folder), "--wds", "clip-benchmark/wds_cars"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "clip-benchmark/wds_cars" in err and "We could not connect. Check" in err


def test_wds_scores_are_clip_benchmarks(model_folder, miniature_benchmark, tmp_path, capsys):
    root, written = miniature_benchmark
    json_path = tmp_path / "one.json"
    argv = [str(model_folder), "--wds", str(root / "wds_colours"), "--workers", "2", "--cache_dir",
            str(tmp_path / "cache"), "--json", str(json_path)]
    assert zero_shot_eval.main(argv) == 0
    result = json.loads(json_path.read_text())["results"]["colours"]
    expected = expected_scores(model_folder, written["colours"], 6)
    assert result["num_samples"] == 18 and result["num_classes"] == 6 and result["templates"] == 2
    for metric in ("top1", "top5", "mean_per_class_recall"):
        assert result[metric] == pytest.approx(expected[metric]), metric
    assert "| colours | 6 | 18 | 0 |" in capsys.readouterr().out


def test_many_datasets_one_table_and_a_second_run_without_text_forward(model_folder, miniature_benchmark, tmp_path, monkeypatch,
                                                                       capsys):
    root, written = miniature_benchmark
    text_forwards = []
    original = UniCLModel.get_text_features
    monkeypatch.setattr(UniCLModel, "get_text_features",
                        lambda self, *a, **k: text_forwards.append(1) or original(self, *a, **k))
    reports = []
    for run in range(2):
        json_path = tmp_path / f"run{run}.json"
        argv = [str(model_folder), "--benchmark", str(root / "datasets.txt"), "--workers", "0",
                "--cache_dir", str(tmp_path / "cache"), "--json", str(json_path)]
        assert zero_shot_eval.main(argv) == 0
        reports.append(json.loads(json_path.read_text()))
        if run == 0:
            assert text_forwards, "the first run builds the class matrices"
            text_forwards.clear()
    assert text_forwards == []  # the second run read both class matrices from the cache
    assert reports[0] == reports[1]  # the same numbers every run
    results, average = reports[1]["results"], reports[1]["average"]
    assert list(results) == ["colours", "primaries"]
    assert results["primaries"]["top5"] is None  # 3 classes: CLIP_benchmark reports no top-5
    expected = expected_scores(model_folder, written["primaries"], 3)
    assert results["primaries"]["top1"] == pytest.approx(expected["top1"])
    assert average["top1"] == pytest.approx((results["colours"]["top1"] + results["primaries"]["top1"]) / 2)
    assert average["top5"] == pytest.approx(results["colours"]["top5"])  # over the datasets that have one
    table = capsys.readouterr().out
    assert "| primaries | 3 | 9 | 0 |" in table and "| n/a |" in table and "| **average** (2 datasets) |" in table
    cache_files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cache_files) == 2 and all(name.endswith(".safetensors") for name in cache_files)  # no temporary left


def test_the_cache_key_follows_the_text_side_only(model_folder, tmp_path):
    model, processor = UniCLModel.from_pretrained(model_folder).eval(), tiny_processor()
    cache = ClassEmbeddingCache(model, processor, tmp_path)
    names, templates = ["red", "green"], ("a {} square.",)
    first = cache.class_embeddings(names, templates)
    assert cache.text_forwards == 1
    torch.testing.assert_close(cache.class_embeddings(names, templates), first)
    assert cache.text_forwards == 1
    assert cache.path(names, templates) != cache.path(names[::-1], templates) != cache.path(names, ("a {}.",))
    fingerprint = text_side_fingerprint(model, processor)
    with torch.no_grad():
        model.visual_projection.weight.add_(1.0)
    assert text_side_fingerprint(model, processor) == fingerprint  # the image side does not change the matrix
    with torch.no_grad():
        model.text_projection.weight[0, 0] += 1e-3
    assert text_side_fingerprint(model, processor) != fingerprint
    cache.path(names, templates).write_bytes(b"half a file")  # unreadable: built again and replaced
    torch.testing.assert_close(ClassEmbeddingCache(model, processor, tmp_path).class_embeddings(names, templates)
                               .shape, first.shape)


def test_an_unreadable_image_is_skipped_and_named(model_folder, tmp_path, capsys):
    make_wds(tmp_path / "wds_broken", num_classes=3, per_class=2, shards=1)
    with webdataset.TarWriter(str(tmp_path / "wds_broken" / "test" / "1.tar")) as sink:
        sink.write({"__key__": "corrupt", "jpg": b"\xff\xd8\xff not really a jpeg", "cls": b"1"})
    json_path = tmp_path / "broken.json"
    argv = [str(model_folder), "--wds", str(tmp_path / "wds_broken"), "--workers", "2", "--no_cache",
            "--json", str(json_path)]
    assert zero_shot_eval.main(argv) == 0
    result = json.loads(json_path.read_text())["results"]["broken"]
    assert result["num_samples"] == 6
    assert [entry["name"] for entry in result["skipped"]] == [f"{tmp_path / 'wds_broken' / 'test' / '1.tar'}:corrupt"]
    captured = capsys.readouterr()
    assert "| broken | 3 | 6 | 1 |" in captured.out and "1.tar:corrupt" in captured.err


def test_a_class_id_beyond_the_class_names_exits_2_naming_the_file(model_folder, tmp_path, capsys):
    make_wds(tmp_path / "wds_bad", num_classes=3, per_class=1, shards=1)
    with webdataset.TarWriter(str(tmp_path / "wds_bad" / "test" / "1.tar")) as sink:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 40)).save(buffer, format="PNG")
        sink.write({"__key__": "stray", "png": buffer.getvalue(), "cls": b"7"})
    argv = [str(model_folder), "--wds", str(tmp_path / "wds_bad"), "--workers", "0", "--no_cache"]
    assert zero_shot_eval.main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # one line (above it: transformers' loading bar)
    assert error.startswith(f"error: {tmp_path / 'wds_bad' / 'test' / '1.tar'}: sample 'stray' has class id '7'")
    assert f"{tmp_path / 'wds_bad' / 'classnames.txt'} lists 3 classes" in error


def test_a_truncated_shard_exits_2_naming_it(model_folder, tmp_path, capsys):
    make_wds(tmp_path / "wds_cut", num_classes=3, per_class=2, shards=2)
    shard = tmp_path / "wds_cut" / "test" / "1.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    assert zero_shot_eval.main([str(model_folder), "--wds", str(tmp_path / "wds_cut"), "--workers", "2", "--no_cache"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {shard}: not a readable tar shard")


def test_bad_arguments_exit_2_before_loading_the_model(model_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(zero_shot_eval, "load_model", lambda args: pytest.fail("the model was loaded"))
    make_wds(tmp_path / "wds_plain", num_classes=2, per_class=1, templates=False)
    cases = [
        (["--wds", str(tmp_path / "wds_plain")], "has no zeroshot_classification_templates.txt"),
        (["--wds", str(tmp_path / "missing")], "does not exist"),
        (["--benchmark", str(tmp_path / "missing.txt")], "benchmark list"),
        (["--wds", str(tmp_path / "wds_plain"), "--workers", "-1"], "--workers must be 0 or more"),
        (["--imagenet_val", str(tmp_path / "wds_plain")], "is not an ImageNet validation folder"),
    ]
    for args, message in cases:
        assert zero_shot_eval.main([str(model_folder), *args]) == 2, args
        assert message in capsys.readouterr().err


def test_linear_probe_on_train_and_test_shards(model_folder, tmp_path):
    make_wds(tmp_path / "wds_probe", num_classes=3, per_class=6, splits=("train", "test"))
    json_path = tmp_path / "probe.json"
    argv = [str(model_folder), "--wds", str(tmp_path / "wds_probe"), "--l2", "1e-3", "1e-1", "--workers", "2",
            "--json", str(json_path)]
    assert linear_probe.main(argv) == 0
    result = json.loads(json_path.read_text())
    assert result["test_images"] == 18 and set(map(float, result["sweep"])) == {1e-3, 1e-1}
    assert 0.0 <= result["test_top1"] <= 1.0
    assert linear_probe.main([str(model_folder), "--wds", str(tmp_path / "wds_probe"), "--train_split", "val"]) == 2


def test_the_evaluation_imports_datasets_and_webdataset_only_inside_functions():
    import ast

    for path in sorted((REPO_ROOT / "modeling_unicl" / "evaluation").glob("*.py")):
        module_level = [node for node in ast.parse(path.read_text()).body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = {alias.name for node in module_level if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in module_level if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name.split(".")[0] for name in names} & {"datasets", "webdataset"}, path.name
