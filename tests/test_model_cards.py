"""Model cards of the released UniCL checkpoints: modeling_unicl.conversion.model_card (template and facts as
package data), the committed model_cards/<name>.md and scripts/model_card_utils.py, which regenerates them. Offline."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, ModelCardData

from modeling_unicl.conversion import model_card as mcu

ROOT = Path(__file__).resolve().parent.parent
CARDS_DIR = ROOT / "model_cards"


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"_unicl_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "scripts"))  # as when the script runs: its folder is on sys.path (cli_utils)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return module


regenerate = _load_script("model_card_utils")

# The numbers of the original README / paper (first: IN-1K top-1, second: zero-shot average over 14 datasets).
# Kept here by hand, independently of checkpoints.json, so that a typo there is caught.
EXPECTED = {
    "in1k": ("swin-tiny", 79.9, 30.2),
    "in1k_gcc3m": ("swin-tiny", 80.2, 39.0),
    "in1k_yfcc14m": ("swin-tiny", 81.1, 40.0),
    "in1k_gcc15m": ("swin-tiny", 81.8, 45.1),
    "yfcc14m": ("swin-tiny", 30.1, 36.3),
    "in21k": ("swin-tiny", 28.5, 37.8),
    "in22k": ("swin-tiny", 66.8, 38.9),
    "in21k_yfcc14m_half": ("swin-tiny", 36.4, 45.5),
    "in21k_yfcc14m": ("swin-tiny", 40.5, 49.1),
    "in21k_swin_base": ("swin-base", 29.9, 42.4),
    "in21k_yfcc14m_half_swin_base": ("swin-base", 41.1, 48.5),
    "in21k_yfcc14m_swin_base": ("swin-base", 44.3, 52.2),
}
SUPERVISED_IN1K = {"in1k", "in1k_gcc3m", "in1k_yfcc14m", "in1k_gcc15m"}


def _facts():
    return json.loads(mcu.CHECKPOINTS_PATH.read_text(encoding="utf-8"))


def _filled_cards():
    return sorted(CARDS_DIR.glob("*.md"))


def test_template_and_facts_are_package_data():
    package = ROOT / "modeling_unicl" / "conversion"
    assert mcu.TEMPLATE_PATH == package / "model_card_template.md" and mcu.TEMPLATE_PATH.is_file()
    assert mcu.CHECKPOINTS_PATH == package / "released_checkpoints.json" and mcu.CHECKPOINTS_PATH.is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    line = next(line for line in pyproject.splitlines() if line.startswith('"modeling_unicl.conversion" = '))
    assert mcu.TEMPLATE_PATH.name in line and mcu.CHECKPOINTS_PATH.name in line


def test_exactly_the_12_released_checkpoints_have_cards():
    names = {p.stem for p in _filled_cards()}
    assert len(names) == 12
    assert names == set(_facts()["checkpoints"]) == set(EXPECTED)
    assert mcu.known_checkpoints() == list(_facts()["checkpoints"])


def test_checkpoints_json_matches_the_reported_numbers():
    facts = _facts()
    for name, (arch, first, second) in EXPECTED.items():
        ckpt = facts["checkpoints"][name]
        assert ckpt["architecture"] == arch
        assert ckpt["filename"] == f"{name}.pth"
        first_key = "in1k_top1" if name in SUPERVISED_IN1K else "in1k_zeroshot_top1"
        assert ckpt["results"] == {first_key: first, "zeroshot_14_avg": second}
        assert set(ckpt["training_data"]) <= set(facts["datasets"])
    tiny, base = facts["architectures"]["swin-tiny"], facts["architectures"]["swin-base"]
    assert (tiny["embed_dim"], tiny["depths"], tiny["num_heads"]) == (96, [2, 2, 6, 2], [3, 6, 12, 24])
    assert (base["embed_dim"], base["depths"], base["num_heads"]) == (128, [2, 2, 18, 2], [4, 8, 16, 32])
    for arch in (tiny, base):
        assert (arch["window_size"], arch["image_size"], arch["projection_dim"]) == (7, 224, 512)
        assert (arch["text_width"], arch["text_heads"], arch["text_layers"]) == (512, 8, 12)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_filled_card_loads_with_valid_metadata(name):
    path = CARDS_DIR / f"{name}.md"
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "zero-shot-image-classification"
    assert data.license == "mit"
    for tag in ("unicl", "clip", "zero-shot-image-classification", "swin", "vision", "custom_code"):
        assert tag in data.tags
    assert data.datasets, "every released checkpoint names its training data"
    if name.startswith("in1k"):
        assert "imagenet-1k" in data.datasets
    # the metadata round-trips through ModelCardData
    as_dict = data.to_dict()
    assert ModelCardData(**as_dict).to_dict() == as_dict

    arch, first, second = EXPECTED[name]
    text = card.text
    assert f"| {first:.1f} |" in text and f"| {second:.1f} |" in text
    if name in SUPERVISED_IN1K:
        assert "ImageNet-1K top-1 accuracy (%), ImageNet-1K labels used in training (classes seen)" in text
    else:
        assert "Zero-shot ImageNet-1K top-1 accuracy (%)" in text
    assert "Zero-shot accuracy (%), average over 14 datasets" in text
    assert "not re-measured" in text
    assert ("Swin-T" if arch == "swin-tiny" else "Swin-B") in text
    repo_id = f"{_facts()['default_namespace']}/{_facts()['checkpoints'][name]['repo_name']}"
    assert f'pipeline("zero-shot-image-classification", model="{repo_id}", trust_remote_code=True)' in text
    assert f'AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)' in text
    assert "AutoProcessor.from_pretrained" in text
    assert (
        f"python scripts/convert_unicl_original_to_hf.py --checkpoint {name}.pth --config {arch} --output_dir OUT"
        in text
    )
    assert f"python scripts/push_to_hub.py OUT --repo_id {repo_id}" in text
    assert "@inproceedings{yang2022unified," in text
    assert "{{" not in text and "{%" not in text, "unrendered template syntax"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_card_is_the_rendered_template(name):
    committed = (CARDS_DIR / f"{name}.md").read_text(encoding="utf-8")
    assert committed == str(mcu.render_model_card(name)), (
        f"model_cards/{name}.md differs from the template: run `python scripts/model_card_utils.py`"
    )


def test_main_check_reports_up_to_date(capsys):
    assert regenerate.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_template_has_the_sections():
    template = mcu.TEMPLATE_PATH.read_text(encoding="utf-8")
    assert template.startswith("---\n{{ card_data }}\n---\n")
    for heading in (
        "## Model description",
        "## Training data",
        "## Reported results",
        "## Intended use",
        "## How to use",
        "## Limitations and biases",
        "## Conversion",
        "## License",
        "## Citation",
    ):
        assert heading in template


def test_render_with_custom_repo_id():
    card = mcu.render_model_card("in21k_yfcc14m_swin_base", repo_id="my-org/unicl-b")
    assert 'model="my-org/unicl-b"' in card.text
    assert "--config swin-base" in card.text
    assert card.data.datasets == ["imagenet-21k", "yfcc100m"]


@pytest.mark.parametrize("bad", ["no-namespace", "a/b/c", "org/bad--name", ""])
def test_render_rejects_malformed_repo_id(bad):
    with pytest.raises(ValueError):
        mcu.render_model_card("in1k", repo_id=bad)


def test_render_unknown_checkpoint_lists_known_names():
    with pytest.raises(ValueError) as excinfo:
        mcu.render_model_card("nope")
    message = str(excinfo.value)
    assert "'nope'" in message
    for name in EXPECTED:
        assert name in message


@pytest.mark.parametrize(
    "path_or_name, expected",
    [
        ("/x/in1k_yfcc14m.pth", "in1k_yfcc14m"),
        ("in1k_yfcc14m", "in1k_yfcc14m"),
        (Path("/data/ckpts/in21k_yfcc14m_half_swin_base.pth"), "in21k_yfcc14m_half_swin_base"),
        ("relative/dir/in1k.pt", "in1k"),
        ("IN22K.PTH", "in22k"),
        ("in1k-gcc3m.pth", "in1k_gcc3m"),
        ("unicl/unicl-swin-base-in21k", "in21k_swin_base"),
        ("/x/my_finetune.pth", None),
        ("in1k_yfcc14m_extra.pth", None),
        ("/x/.pth", None),
        ("", None),
    ],
)
def test_card_name_for_checkpoint(path_or_name, expected):
    assert mcu.card_name_for_checkpoint(path_or_name) == expected


def test_generic_model_card_for_an_unknown_checkpoint():
    summary = {
        "checkpoint": "/home/someone/private/my_unicl.pth",
        "config": "swin-tiny",
        "projection_dim": 512,
        "vision_config": {"model_type": "swin", "image_size": 384, "depths": [2, 2, 6, 2]},
        "text_config": {"max_position_embeddings": 77},
        "note": "pipes | are escaped",
    }
    card = mcu.generic_model_card(summary)
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.license) == (
        "transformers",
        "zero-shot-image-classification",
        "mit",
    )
    assert "custom_code" in data.tags and "swin" in data.tags
    assert data.datasets is None
    as_dict = data.to_dict()
    assert ModelCardData(**as_dict).to_dict() == as_dict
    reloaded = ModelCard(str(card))  # what ModelCard.load would parse from the saved README.md
    assert reloaded.data.to_dict() == as_dict
    text = card.text
    assert "/home/someone" not in text and "my_unicl.pth" in text
    assert "| vision_config.image_size | 384 |" in text
    assert "| vision_config.depths | [2, 2, 6, 2] |" in text
    assert "pipes \\| are escaped" in text
    assert "384x384 px" in text
    assert "--checkpoint my_unicl.pth --config swin-tiny" in text
    assert "Reported results" in text and "not re-measured" not in text
    assert "{{" not in text and "{%" not in text


def test_generic_model_card_minimal_and_repo_id():
    card = mcu.generic_model_card({"config": "focalnet-tiny"}, repo_id="org/focal-unicl")
    assert 'model="org/focal-unicl"' in card.text
    assert "swin" not in card.data.tags  # do not claim a Swin tower the summary does not mention
    assert mcu.generic_model_card({}).data.license == "mit"
    with pytest.raises(ValueError):
        mcu.generic_model_card({}, repo_id="not a repo")
