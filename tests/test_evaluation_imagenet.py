"""ImageNet-1K as the original evaluates it: the shipped class names and synsets, the validation folder in both
common layouts (generated here with real synset ids), and `zero_shot_eval.py --imagenet_val` end to end, also on a
checkpoint converted from the original layout."""

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT, SHARED_FIXTURES, tiny_config, tiny_processor
from PIL import Image

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import zero_shot_eval  # noqa: E402

import modeling_unicl  # noqa: E402
from modeling_unicl import UniCLModel  # noqa: E402
from modeling_unicl.evaluation.benchmark import imagenet_source  # noqa: E402
from modeling_unicl.evaluation.imagenet import IMAGENET_CLASSES, IMAGENET_SYNSETS, imagenet_val_files  # noqa: E402
from modeling_unicl.prompts import UNICL_IMAGENET_TEMPLATES  # noqa: E402

# (index, synset, UniCL's name): the ends, the two names UniCL renamed from CLIP's duplicates, and a few between
KNOWN = [
    (0, "n01440764", "tench"), (1, "n01443537", "goldfish"), (2, "n01484850", "great white shark"),
    (207, "n02099601", "Golden Retriever"), (281, "n02123045", "tabby cat"), (657, "n03773504", "missile"),
    (744, "n04008634", "projectile"), (836, "n04355933", "sunglasses"), (837, "n04356056", "dark glasses"),
    (954, "n07753592", "banana"), (999, "n15075141", "toilet paper"),
]
SYNSETS = [synset for _, synset, _ in KNOWN[:6]]  # the miniature validation set's classes


def test_the_shipped_class_names_are_unicls():
    assert len(IMAGENET_CLASSES) == 1000 == len(set(IMAGENET_CLASSES))  # UniCL's list has no duplicate
    assert all(name == name.strip() and name for name in IMAGENET_CLASSES)
    for index, _, name in KNOWN:
        assert IMAGENET_CLASSES[index] == name
    assert modeling_unicl.IMAGENET_CLASSES is IMAGENET_CLASSES
    assert modeling_unicl.UNICL_IMAGENET_TEMPLATES == UNICL_IMAGENET_TEMPLATES and len(UNICL_IMAGENET_TEMPLATES) == 81


def test_the_shipped_synsets_define_the_standard_index():
    assert len(IMAGENET_SYNSETS) == 1000 == len(set(IMAGENET_SYNSETS))
    assert list(IMAGENET_SYNSETS) == sorted(IMAGENET_SYNSETS)  # ImageFolder's order is the class index
    assert IMAGENET_SYNSETS[0] == "n01440764" and IMAGENET_SYNSETS[-1] == "n15075141"
    for index, synset, _ in KNOWN:
        assert IMAGENET_SYNSETS[index] == synset


def test_the_package_data_is_declared_for_installation():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"modeling_unicl.evaluation" = ["*.txt"]' in pyproject
    folder = REPO_ROOT / "modeling_unicl" / "evaluation"
    assert {"imagenet_classes.txt", "imagenet_synsets.txt", "LICENSE_IMAGENET_METADATA.txt"} <= {
        p.name for p in folder.iterdir()}
    assert "MIT License" in (folder / "LICENSE_IMAGENET_METADATA.txt").read_text()


def _photo(rng, label):
    """A noise image tinted by its class, of a random size (so crops differ)."""
    height, width = rng.integers(36, 60, size=2)
    array = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    array[..., label % 3] += 120
    return Image.fromarray(array)


def make_synset_folders(root, per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    for synset in SYNSETS:
        (root / synset).mkdir(parents=True)
        for i in range(per_class):
            _photo(rng, IMAGENET_SYNSETS.index(synset)).save(root / synset / f"ILSVRC2012_val_{synset}_{i}.JPEG")
    return root


def make_kaggle_layout(root, per_class=2, seed=0):
    """Kaggle's layout: flat files in ILSVRC/Data/CLS-LOC/val, the labels in LOC_val_solution.csv at the root."""
    rng = np.random.default_rng(seed)
    val = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True)
    rows, number = ["ImageId,PredictionString"], 0
    for synset in SYNSETS:
        for _ in range(per_class):
            number += 1
            image_id = f"ILSVRC2012_val_{number:08d}"
            _photo(rng, IMAGENET_SYNSETS.index(synset)).save(val / f"{image_id}.JPEG")
            rows.append(f"{image_id},{synset} 10 12 30 33 {synset} 1 2 20 22 ")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return val


def test_both_layouts_read_the_same_labels(tmp_path):
    files, labels = imagenet_val_files(make_synset_folders(tmp_path / "folders"))
    assert [f.parent.name for f in files] == [s for s in SYNSETS for _ in range(2)]
    assert labels == [IMAGENET_SYNSETS.index(s) for s in SYNSETS for _ in range(2)]
    flat_files, flat_labels = imagenet_val_files(make_kaggle_layout(tmp_path / "kaggle"))
    assert [f.name for f in flat_files] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 13)]
    assert flat_labels == labels
    (tmp_path / "flat").mkdir()  # the csv beside the files
    Image.new("RGB", (40, 40)).save(tmp_path / "flat" / "ILSVRC2012_val_00000007.JPEG")
    (tmp_path / "flat" / "LOC_val_solution.csv").write_text("ImageId,PredictionString\nILSVRC2012_val_00000007,n15075141 1 2 3 4\n")
    assert imagenet_val_files(tmp_path / "flat")[1] == [999]


def test_bad_folders_are_named(tmp_path):
    (tmp_path / "n99999999").mkdir()
    with pytest.raises(ValueError, match=r"\['n99999999'\] are not ImageNet-1K synsets"):
        imagenet_val_files(tmp_path)
    with pytest.raises(ValueError, match="is not an ImageNet validation folder"):
        imagenet_val_files(tmp_path / "n99999999")
    with pytest.raises(OSError, match="does not exist"):
        imagenet_val_files(tmp_path / "missing")
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (40, 40)).save(flat / "unlabelled.JPEG")
    (flat / "LOC_val_solution.csv").write_text("ImageId,PredictionString\nother,n01440764 1 2 3 4\n")
    with pytest.raises(ValueError, match=r"LOC_val_solution.csv has no label for 1 image\(s\).*unlabelled.JPEG"):
        imagenet_val_files(flat)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    UniCLModel(tiny_config()).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


def expected_imagenet_top1(model, processor, files, labels):
    """The original's protocol written out: 1000 class embeddings (one template here), argmax per image."""
    tokens = processor.tokenizer([f"a photo of a {name}." for name in IMAGENET_CLASSES], padding=True, return_tensors="pt")
    with torch.no_grad():
        text = F.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
        pixels = processor.image_processor([Image.open(f).convert("RGB") for f in files], return_tensors="pt")
        image = F.normalize(model.get_image_features(**pixels).pooler_output, dim=-1)
    return ((image @ text.T).argmax(-1) == torch.tensor(labels)).float().mean().item()


def test_imagenet_val_script_end_to_end(model_folder, tmp_path, capsys):
    val = make_kaggle_layout(tmp_path / "kaggle")
    (val / "ILSVRC2012_val_00000099.JPEG").write_bytes(b"\xff\xd8 truncated")  # listed in no csv row: an error...
    assert zero_shot_eval.main([str(model_folder), "--imagenet_val", str(val), "--workers", "0"]) == 2
    assert "LOC_val_solution.csv has no label" in capsys.readouterr().err
    csv = tmp_path / "kaggle" / "LOC_val_solution.csv"
    csv.write_text(csv.read_text() + "ILSVRC2012_val_00000099,n01440764 1 2 3 4\n")  # ...labelled: skipped, named
    json_path = tmp_path / "imagenet.json"
    argv = [str(model_folder), "--imagenet_val", str(val), "--templates", "single", "--workers", "2",
            "--cache_dir", str(tmp_path / "cache"), "--json", str(json_path)]
    assert zero_shot_eval.main(argv) == 0
    captured = capsys.readouterr()
    assert "| imagenet-1k | 1000 | 12 | 1 |" in captured.out
    assert "skipped 1 unreadable image(s)" in captured.err and "ILSVRC2012_val_00000099.JPEG" in captured.err
    result = json.loads(json_path.read_text())["results"]["imagenet-1k"]
    assert result["num_classes"] == 1000 and result["num_samples"] == 12 and result["templates"] == 1
    assert [entry["name"] for entry in result["skipped"]] == [str(val / "ILSVRC2012_val_00000099.JPEG")]
    model, processor = UniCLModel.from_pretrained(model_folder).eval(), tiny_processor()
    files, labels = imagenet_val_files(make_synset_folders(tmp_path / "folders"))  # the same images, other layout
    assert result["top1"] == pytest.approx(expected_imagenet_top1(model, processor, files, labels))


def test_imagenet_defaults_to_unicls_81_templates(tmp_path):
    source = imagenet_source(make_synset_folders(tmp_path / "val", per_class=1), tiny_processor().image_processor)
    assert source.templates == UNICL_IMAGENET_TEMPLATES and source.class_names == list(IMAGENET_CLASSES)


@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="converted-checkpoint fixtures not available")
def test_a_converted_original_checkpoint_evaluates_on_imagenet_val(tmp_path, capsys):
    """The README's path in miniature: convert the original layout, then --imagenet_val (exact preprocessing)."""
    from modeling_unicl.conversion import convert_unicl_checkpoint

    fixture = SHARED_FIXTURES / "tiny"
    folder = convert_unicl_checkpoint(fixture / "checkpoint.pth", fixture / "config.yaml", tmp_path / "converted")
    processor_config = json.loads((folder / "processor_config.json").read_text())["image_processor"]
    assert processor_config["size"] == {"shortest_edge": int(256 / 224 * 64)}  # the original's int(), 73
    val = make_synset_folders(tmp_path / "val")
    json_path = tmp_path / "results.json"
    argv = [str(folder), "--imagenet_val", str(val), "--templates", "single", "--workers", "0",
            "--exact_original_preprocessing", "--cache_dir", str(tmp_path / "cache"), "--json", str(json_path)]
    assert zero_shot_eval.main(argv) == 0
    result = json.loads(json_path.read_text())["results"]["imagenet-1k"]
    assert result["num_samples"] == 12 and 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert "| imagenet-1k | 1000 | 12 | 0 |" in capsys.readouterr().out
