"""Conversion of original UniCL checkpoints (modeling_unicl/conversion/, scripts/convert_unicl_original_to_hf.py).

Parity against the outputs of the original implementation on the fixtures in ../shared/fixtures/unicl_original
(fp32, eval mode). Tolerance: max |diff| <= 1e-4 on every compared tensor (the fixtures' README: equivalent fp32
kernels differ by <= 1.4e-6; the smallest real defect it lists moves the logits by 1.3e-4).
"""

import ast
import json
import math
import re
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from modeling_unicl import UniCLModel
from modeling_unicl.conversion import (
    PRESETS,
    ConversionError,
    WeightHyperparameters,
    build_unicl_config,
    convert_original_model,
    convert_original_state_dict,
    convert_unicl_checkpoint,
    infer_hyperparameters,
    load_original_checkpoint,
    load_original_config,
    normalize_original_state_dict,
    original_node_from_preset,
    swin_attention_mask,
    swin_relative_position_index,
)
from modeling_unicl.presets import MODEL_PRESETS

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "unicl_original"
SCRIPT = REPO_ROOT / "scripts" / "convert_unicl_original_to_hf.py"
FIXTURE_NAMES = ("tiny", "focal_tiny")
TOL = 1e-4  # max abs diff against the original implementation's outputs

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixtures not found at {FIXTURES}")


class FakeCfgNode(dict):
    """Stands in for the yacs CfgNode that the original training loop pickles into its checkpoints."""


def _fixture(name):
    return FIXTURES / name


def _original_state_dict(name):
    return torch.load(_fixture(name) / "checkpoint.pth", map_location="cpu", weights_only=True)["model"]


def _max_diff(a, b):
    return (a.detach().float() - b.float()).abs().max().item()


def _subprocess_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "hf_modules")
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each fixture converted once, with the full pipeline, to a folder; name -> folder."""
    root = tmp_path_factory.mktemp("converted")
    return {
        name: convert_unicl_checkpoint(_fixture(name) / "checkpoint.pth", _fixture(name) / "config.yaml", root / name)
        for name in FIXTURE_NAMES
    }


@pytest.fixture(scope="module")
def reference_weights():
    """The converted weights of each fixture (in memory), the baseline of the layout tests."""
    out = {}
    for name in FIXTURE_NAMES:
        node = load_original_config(_fixture(name) / "config.yaml")
        out[name] = (node, convert_original_state_dict(_original_state_dict(name), node))
    return out


def _run_model(model, inputs):
    """Everything expected.safetensors holds, computed by the converted model."""
    res = {}
    with torch.no_grad():
        vision = model.vision_model(pixel_values=inputs["pixel_values"])
        res["image_pooled"] = vision.pooler_output
        for suffix, ids in (("", inputs["input_ids"]), ("_eot_padded", inputs["input_ids_eot_padded"])):
            text = model.text_model(input_ids=ids)  # all positions, no padding mask (as the original)
            res["text_last_hidden_state" + suffix] = text.last_hidden_state
            res["text_pooled" + suffix] = text.pooler_output
            out = model(input_ids=ids, pixel_values=inputs["pixel_values"], attention_mask=inputs["attention_mask"])
            res["image_embeds_unnormalized"] = out.vision_model_output.pooler_output
            res["image_embeds"] = out.image_embeds
            res["text_embeds_unnormalized" + suffix] = out.text_model_output.pooler_output
            res["text_embeds" + suffix] = out.text_embeds
            res["logits_per_image" + suffix] = out.logits_per_image
            res["logits_per_text" + suffix] = out.logits_per_text
            res["logit_scale_exp"] = out.logit_scale
    return res


# --------------------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_parity_with_original(converted, name):
    model = UniCLModel.from_pretrained(converted[name]).eval()
    inputs = load_file(_fixture(name) / "inputs.safetensors")
    expected = load_file(_fixture(name) / "expected.safetensors")
    got = _run_model(model, inputs)
    assert model.logit_scale.item() == expected["logit_scale"].item()
    diffs = {key: _max_diff(value, expected[key]) for key, value in got.items()}
    print(f"\n{name}: " + json.dumps({k: float(f"{v:.3g}") for k, v in diffs.items()}))
    assert set(got) == set(expected) - {"logit_scale"}
    bad = {k: v for k, v in diffs.items() if not v <= TOL}
    assert not bad, f"{name}: max abs diff above {TOL}: {bad}"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_intermediates_match(converted, name):
    """Per-stage / per-layer hidden states (where a parity failure would be located)."""
    model = UniCLModel.from_pretrained(converted[name]).eval()
    inputs = load_file(_fixture(name) / "inputs.safetensors")
    inter = load_file(_fixture(name) / "intermediates.safetensors")
    with torch.no_grad():
        vision = model.vision_model(pixel_values=inputs["pixel_values"], output_hidden_states=True)
        text = model.text_model(input_ids=inputs["input_ids"], output_hidden_states=True)
    hs = vision.hidden_states
    pairs = {"image.patch_embed": hs[0], "image.stage0": hs[1], "image.stage1": hs[2]}
    pairs.update({"text.embeddings": text.hidden_states[0], "text.layer0": text.hidden_states[1], "text.layer1": text.hidden_states[2]})
    for key, value in pairs.items():
        assert _max_diff(value, inter[key]) <= TOL, key


def test_fixture_logit_scale_keeps_default_clamp(converted):
    for name in FIXTURE_NAMES:
        config = json.loads((converted[name] / "config.json").read_text())
        assert config["logit_scale_max"] == 100.0


def test_output_folder_contents(converted):
    folder = converted["tiny"]
    names = {p.name for p in folder.iterdir()}
    for required in ("model.safetensors", "config.json", "configuration_unicl.py", "modeling_unicl.py",
                     "processing_unicl.py", "processor_config.json", "tokenizer.json", "README.md"):
        assert required in names, required
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_unicl.UniCLModel"
    assert config["text_config"]["layer_norm_eps"] == 1e-12
    assert config["text_config"]["hidden_act"] == "quick_gelu"
    assert config["vision_config"]["use_absolute_embeddings"] is False
    processor = json.loads((folder / "processor_config.json").read_text())["image_processor"]
    assert processor["crop_size"] == {"height": 64, "width": 64}
    assert processor["size"] == {"shortest_edge": round(64 * 256 / 224)}
    assert "UniCL" in (folder / "README.md").read_text()
    # no temporary folders left next to the output
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted(FIXTURE_NAMES)


def test_focalnet_config(converted):
    vision = json.loads((converted["focal_tiny"] / "config.json").read_text())["vision_config"]
    assert vision["model_type"] == "focalnet"
    assert vision["hidden_sizes"] == [64, 64]
    assert vision["focal_levels"] == [2, 2] and vision["focal_windows"] == [3, 3]
    assert vision["use_conv_embed"] is False and vision["use_layerscale"] is False
    assert vision["use_post_layernorm"] is False and vision["use_post_layernorm_in_modulation"] is False
    assert vision["normalize_modulator"] is False


# ------------------------------------------------------------------------------------------------------- layouts
def _variants(sd):
    def old_layout(sd):
        out = {}
        for k, v in sd.items():
            if k.startswith("image_encoder."):
                k = "visual." + k[len("image_encoder."):]
            elif k.startswith("text_encoder."):
                k = "text." + k[len("text_encoder."):]
            elif k == "image_projection":
                k = "vision_projection"
            out[k] = v
        return out

    return {
        "model_dict": {"model": sd},
        "bare": dict(sd),
        "training_checkpoint": {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3, "max_accuracy": 81.0},
        "old_layout": old_layout(sd),
        "lang_encoder": {k.replace("text_encoder.", "lang_encoder.", 1): v for k, v in sd.items()},
        "ddp_module_prefix": {"model": {"module." + k: v for k, v in sd.items()}},
        "ddp_old_layout": {"module." + k: v for k, v in old_layout(sd).items()},
    }


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_layout_converts_to_the_same_weights(tmp_path, reference_weights, name):
    node, reference = reference_weights[name]
    for variant, obj in _variants(_original_state_dict(name)).items():
        path = tmp_path / f"{variant}.pth"
        torch.save(obj, path)
        converted = convert_original_state_dict(load_original_checkpoint(path), node)
        assert converted.keys() == reference.keys(), variant
        assert all(torch.equal(converted[k], reference[k]) for k in reference), variant


def test_unknown_key_is_listed(reference_weights):
    node, _ = reference_weights["tiny"]
    sd = _original_state_dict("tiny")
    sd["image_encoder.head.weight"] = torch.zeros(10, 64)
    sd["text_encoder.extra_thing"] = torch.zeros(3)
    with pytest.raises(ValueError, match="cannot map") as err:
        convert_original_state_dict(sd, node)
    assert "image_encoder.head.weight" in str(err.value) and "text_encoder.extra_thing" in str(err.value)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_missing_key_is_listed(reference_weights, name):
    node, _ = reference_weights[name]
    sd = _original_state_dict(name)
    removed = ["text_encoder.ln_final.bias", "image_encoder.layers.0.blocks.1.norm2.weight", "image_projection"]
    for key in removed:
        del sd[key]
    with pytest.raises(ValueError, match="missing from the checkpoint") as err:
        convert_original_model(sd, node)
    for key in removed:
        assert key in str(err.value)


def test_wrong_shape_is_listed(reference_weights):
    node, _ = reference_weights["tiny"]
    sd = _original_state_dict("tiny")
    sd["image_encoder.layers.1.blocks.0.mlp.fc2.bias"] = torch.zeros(5)
    with pytest.raises(ValueError, match="image_encoder.layers.1.blocks.0.mlp.fc2.bias"):
        convert_original_state_dict(sd, node)


def test_wrong_deterministic_buffer_is_rejected(reference_weights):
    node, _ = reference_weights["tiny"]
    sd = _original_state_dict("tiny")
    sd["image_encoder.layers.0.blocks.1.attn_mask"] = torch.zeros_like(sd["image_encoder.layers.0.blocks.1.attn_mask"])
    with pytest.raises(ValueError, match="attn_mask"):
        convert_original_state_dict(sd, node)
    sd = _original_state_dict("tiny")
    sd["image_encoder.layers.0.blocks.0.attn.relative_position_index"] = sd[
        "image_encoder.layers.0.blocks.0.attn.relative_position_index"
    ].flip(0)
    with pytest.raises(ValueError, match="relative_position_index"):
        convert_original_state_dict(sd, node)


def test_buffer_formulas_match_the_fixture():
    sd = _original_state_dict("tiny")
    assert torch.equal(sd["image_encoder.layers.0.blocks.0.attn.relative_position_index"], swin_relative_position_index(4))
    assert torch.equal(sd["image_encoder.layers.0.blocks.1.attn_mask"], swin_attention_mask(16, 16, 4, 2))
    assert torch.equal(sd["image_encoder.layers.1.blocks.1.attn_mask"], swin_attention_mask(8, 8, 4, 2))


@pytest.mark.parametrize(
    ("name", "field", "value", "checkpoint_value"),
    [
        ("tiny", "IMAGE_ENCODER.SWIN.DEPTHS", [2, 3], "[2, 2]"),
        ("tiny", "IMAGE_ENCODER.SWIN.WINDOW_SIZE", 7, "4"),
        ("tiny", "IMAGE_ENCODER.SWIN.EMBED_DIM", 48, "32"),
        ("tiny", "IMAGE_ENCODER.SWIN.NUM_HEADS", [4, 8], "[2, 4]"),
        ("tiny", "IMAGE_ENCODER.IMG_SIZE", 128, "64"),
        ("tiny", "TEXT_ENCODER.LAYERS", 3, "2"),
        ("tiny", "DIM_PROJECTION", 64, "48"),
        ("focal_tiny", "IMAGE_ENCODER.FOCAL.FOCAL_LEVELS", [3, 3], "[2, 2]"),
        ("focal_tiny", "IMAGE_ENCODER.FOCAL.FOCAL_WINDOWS", [5, 5], "[3, 3]"),
        ("focal_tiny", "IMAGE_ENCODER.FOCAL.DEPTHS", [3, 2], "[2, 2]"),
        ("focal_tiny", "TEXT_ENCODER.WIDTH", 32, "16"),
    ],
)
def test_config_mismatch_names_the_field(name, field, value, checkpoint_value):
    raw = yaml.safe_load((_fixture(name) / "config.yaml").read_text())
    node = raw["MODEL"]
    *parents, leaf = field.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ValueError) as err:
        convert_original_model(_original_state_dict(name), load_original_config(raw))
    message = str(err.value)
    assert f"MODEL.{field}" in message
    assert f"config value {value!r}" in message
    assert f"checkpoint value {checkpoint_value}" in message


def test_image_type_mismatch(reference_weights):
    node, _ = reference_weights["tiny"]
    with pytest.raises(ValueError, match="MODEL.IMAGE_ENCODER.TYPE"):
        convert_original_state_dict(_original_state_dict("focal_tiny"), node)


def test_unsafe_pickle_fails_clearly(tmp_path):
    path = tmp_path / "ckpt_epoch_31.pth"
    torch.save({"model": _original_state_dict("tiny"), "config": FakeCfgNode(MODEL={}), "epoch": 31}, path)
    with pytest.raises(ConversionError) as err:
        load_original_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "weights_only=True" in message and "'model'" in message


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConversionError, match="not a readable torch checkpoint"):
        load_original_checkpoint(path)
    with pytest.raises(ConversionError, match="not a UniCL state dict"):
        normalize_original_state_dict({"model": {"a": 1}})


def test_large_logit_scale_raises_the_clamp(reference_weights):
    node, _ = reference_weights["tiny"]
    sd = _original_state_dict("tiny")
    sd["logit_scale"] = torch.tensor(5.0)  # exp(5) = 148.4 > 100
    model = convert_original_model(sd, node)
    assert model.config.logit_scale_max > 148.41
    assert torch.equal(model.get_logit_scale(), torch.tensor(5.0).exp())


def test_logit_scale_below_zero_is_kept_without_a_warning(reference_weights, caplog):
    """The clamp of UniCLModel is an upper bound only: a multiplier below 1 converts as it is, and logits match."""
    node, _ = reference_weights["tiny"]
    sd = _original_state_dict("tiny")
    sd["logit_scale"] = torch.tensor(-0.5)
    with caplog.at_level("WARNING"):
        model = convert_original_model(sd, node)
    assert not [r for r in caplog.records if r.levelno >= 30], [r.getMessage() for r in caplog.records]
    assert model.config.logit_scale_max == 100.0
    assert torch.equal(model.get_logit_scale(), torch.tensor(-0.5).exp())
    inputs = load_file(_fixture("tiny") / "inputs.safetensors")
    expected = load_file(_fixture("tiny") / "expected.safetensors")
    rescale = math.exp(-0.5) / expected["logit_scale_exp"].item()  # the original's logits are exp(logit_scale) * cos
    with torch.no_grad():
        out = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"])
    assert _max_diff(out.logits_per_image, expected["logits_per_image"] * rescale) <= TOL
    assert _max_diff(out.logits_per_text, expected["logits_per_text"] * rescale) <= TOL


def test_weights_are_checked_against_the_config_once(reference_weights, monkeypatch):
    from modeling_unicl.conversion import weights

    calls = []
    real = weights.check_config_against_weights
    monkeypatch.setattr(weights, "check_config_against_weights", lambda *a, **k: calls.append(1) or real(*a, **k))
    node, _ = reference_weights["tiny"]
    convert_original_model(_original_state_dict("tiny"), node)
    assert len(calls) == 1


def test_inferred_hyperparameters_are_typed():
    found = infer_hyperparameters(_original_state_dict("tiny"))
    assert isinstance(found, WeightHyperparameters)
    assert found.image_type.value == "swin" and found.vocab_size.value == 49408
    assert found.swin_stage_windows.value == [4, 4] and found.absolute_position_embedding is None
    assert found.fields["IMAGE_ENCODER.SWIN.DEPTHS"].value == [2, 2]
    assert all(not name.startswith("_") and name != "IMAGE_ENCODER.TYPE" for name in found.fields)
    focal = infer_hyperparameters(_original_state_dict("focal_tiny"))
    assert focal.image_type.value == "focal" and focal.focal_kernels.value == [[3, 5], [3, 5]]


# ------------------------------------------------------------------------------------------------------- configs
def test_presets_and_yaml_defaults(tmp_path):
    tiny = load_original_config("swin-tiny")
    assert tiny["IMAGE_ENCODER"]["SWIN"]["DEPTHS"] == [2, 2, 6, 2] and tiny["IMAGE_ENCODER"]["IMG_SIZE"] == 224
    assert tiny["TEXT_ENCODER"]["WIDTH"] == 512 and tiny["DIM_PROJECTION"] == 512
    base = load_original_config("swin-base")
    assert base["IMAGE_ENCODER"]["SWIN"]["EMBED_DIM"] == 128 and base["IMAGE_ENCODER"]["SWIN"]["NUM_HEADS"] == [4, 8, 16, 32]
    # the original configs/unicl_swin_tiny.yaml, with a BASE file
    (tmp_path / "base.yaml").write_text("MODEL:\n  IMAGE_ENCODER:\n    IMG_SIZE: 384\n")
    (tmp_path / "tiny.yaml").write_text(textwrap.dedent("""\
        BASE: ['base.yaml']
        MODEL:
          NAME: unicl_swin_tiny
          DIM_PROJECTION: 512
          IMAGE_ENCODER:
            TYPE: swin
            DROP_PATH_RATE: 0.2
            SWIN:
              EMBED_DIM: 96
              DEPTHS: [ 2, 2, 6, 2 ]
              NUM_HEADS: [ 3, 6, 12, 24 ]
              WINDOW_SIZE: 7
          TEXT_ENCODER:
            NAME: 'transformer'
            WIDTH: 512
            HEADS: 8
            LAYERS: 12
        """))
    node = load_original_config(tmp_path / "tiny.yaml")
    assert node["IMAGE_ENCODER"]["IMG_SIZE"] == 384 and node["TEXT_ENCODER"]["CONTEXT_LENGTH"] == 77
    assert node["IMAGE_ENCODER"]["SWIN"]["PATCH_SIZE"] == 4
    assert set(PRESETS) == {"swin-tiny", "swin-base"}


# The original configs/unicl_swin_tiny.yaml and configs/unicl_swin_base.yaml (the MODEL fields they set).
ORIGINAL_PRESET_NODES = {
    name: {
        "NAME": f"unicl_{name.replace('-', '_')}",
        "DIM_PROJECTION": 512,
        "IMAGE_ENCODER": {
            "TYPE": "swin", "IMG_SIZE": 224, "DROP_PATH_RATE": drop_path_rate,
            "SWIN": {"EMBED_DIM": embed_dim, "DEPTHS": depths, "NUM_HEADS": num_heads, "WINDOW_SIZE": 7},
        },
        "TEXT_ENCODER": {"NAME": "transformer", "WIDTH": 512, "HEADS": 8, "LAYERS": 12, "CONTEXT_LENGTH": 77},
    }
    for name, embed_dim, depths, num_heads, drop_path_rate in (
        ("swin-tiny", 96, [2, 2, 6, 2], [3, 6, 12, 24], 0.2),
        ("swin-base", 128, [2, 2, 18, 2], [4, 8, 16, 32], 0.5),
    )
}


def test_presets_come_from_the_registry():
    assert dict(PRESETS) == ORIGINAL_PRESET_NODES
    assert set(PRESETS) == {name for name, preset in MODEL_PRESETS.items() if preset.original_config_file}
    for name in PRESETS:
        assert original_node_from_preset(MODEL_PRESETS[name]) == ORIGINAL_PRESET_NODES[name]
        # the converter's config of the preset's original node is the registry's config of the preset
        converted, registry = build_unicl_config(load_original_config(name)), MODEL_PRESETS[name].config()
        for tower in ("vision_config", "text_config"):
            ours, theirs = getattr(converted, tower).to_dict(), getattr(registry, tower).to_dict()
            keys = ("model_type", "image_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size",
                    "mlp_ratio", "qkv_bias", "drop_path_rate", "hidden_act", "layer_norm_eps", "hidden_size",
                    "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings",
                    "vocab_size", "eos_token_id")
            assert {k: ours.get(k) for k in keys} == {k: theirs.get(k) for k in keys}, (name, tower)
        assert converted.projection_dim == registry.projection_dim
    with pytest.raises(ConversionError, match="'animals-small': a preset that reproduces no original config"):
        load_original_config("animals-small")


def test_bad_configs(tmp_path):
    with pytest.raises(ConversionError, match="swin-tiny, swin-base"):
        load_original_config("swin-huge")
    path = tmp_path / "partial.yaml"
    path.write_text("MODEL:\n  DIM_PROJECTION: 512\n  IMAGE_ENCODER:\n    TYPE: swin\n")
    with pytest.raises(ConversionError, match=r"partial.yaml.*MODEL.TEXT_ENCODER.WIDTH.*MODEL.IMAGE_ENCODER.SWIN.DEPTHS"):
        load_original_config(path)
    raw = yaml.safe_load((_fixture("tiny") / "config.yaml").read_text())
    raw["MODEL"]["TEXT_ENCODER"]["AUTOGRESSIVE"] = False
    with pytest.raises(ConversionError, match="AUTOGRESSIVE"):
        load_original_config(raw)
    with pytest.raises(ConversionError, match="no such file"):
        load_original_config(tmp_path / "absent.yaml")


# ------------------------------------------------------------------------------------------------ output folder
def test_failed_conversion_leaves_nothing(tmp_path):
    sd = _original_state_dict("tiny")
    del sd["text_encoder.ln_final.weight"]
    ckpt = tmp_path / "broken.pth"
    torch.save({"model": sd}, ckpt)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="text_encoder.ln_final.weight"):
        convert_unicl_checkpoint(ckpt, _fixture("tiny") / "config.yaml", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pth"]


def test_failure_after_writing_removes_the_temporary_folder(tmp_path, monkeypatch):
    from modeling_unicl.conversion import writing

    def fail(folder, model):
        assert folder.parent == tmp_path and folder.name.startswith(".out.tmp-")  # next to OUT
        raise ConversionError("simulated reload mismatch")

    monkeypatch.setattr(writing, "_verify_reloaded", fail)
    with pytest.raises(ConversionError, match="simulated"):
        convert_unicl_checkpoint(_fixture("tiny") / "checkpoint.pth", _fixture("tiny") / "config.yaml", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_dir(tmp_path, converted):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ConversionError, match="not empty, and overwriting was not requested"):
        convert_unicl_checkpoint(_fixture("tiny") / "checkpoint.pth", _fixture("tiny") / "config.yaml", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # an empty folder is fine, and --overwrite replaces a non-empty one
    empty = tmp_path / "empty"
    empty.mkdir()
    convert_unicl_checkpoint(_fixture("tiny") / "checkpoint.pth", _fixture("tiny") / "config.yaml", empty)
    convert_unicl_checkpoint(_fixture("tiny") / "checkpoint.pth", _fixture("tiny") / "config.yaml", out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]
    assert (out / "model.safetensors").read_bytes() == (converted["tiny"] / "model.safetensors").read_bytes()


def test_model_card_choice(tmp_path):
    """A released checkpoint's file name selects its card; --card overrides; an unknown --card fails early."""
    ckpt = tmp_path / "in1k.pth"
    ckpt.symlink_to(_fixture("tiny") / "checkpoint.pth")
    out = convert_unicl_checkpoint(ckpt, _fixture("tiny") / "config.yaml", tmp_path / "a")
    assert "`in1k`" in (out / "README.md").read_text()
    out = convert_unicl_checkpoint(_fixture("tiny") / "checkpoint.pth", _fixture("tiny") / "config.yaml", tmp_path / "b",
                                   card_name="yfcc14m")
    assert "`yfcc14m`" in (out / "README.md").read_text()
    with pytest.raises(ConversionError, match="card_name 'not-a-release'"):
        convert_unicl_checkpoint(_fixture("tiny") / "checkpoint.pth", _fixture("tiny") / "config.yaml", tmp_path / "c",
                                 card_name="not-a-release")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        (dict(checkpoint="/nonexistent/in1k.pth"), "checkpoint"),
        (dict(config="swin-huge"), "config"),
        (dict(config="/nonexistent/config.yaml"), "config"),
        (dict(output_dir=FIXTURES / "tiny"), "output_dir"),
        (dict(card_name="not-a-release"), "card_name"),
        (dict(repo_id="a/b/c"), "repo_id"),
    ],
)
def test_errors_name_the_argument_at_fault(tmp_path, kwargs, argument):
    args = {"checkpoint": _fixture("tiny") / "checkpoint.pth", "config": _fixture("tiny") / "config.yaml",
            "output_dir": tmp_path / "out", **kwargs}
    with pytest.raises(ConversionError) as err:
        convert_unicl_checkpoint(args.pop("checkpoint"), args.pop("config"), args.pop("output_dir"), **args)
    message = str(err.value)
    assert err.value.argument == argument
    assert message.startswith(f"{argument} ") and str(kwargs[argument]) in message.splitlines()[0], message
    assert not (tmp_path / "out").exists()


def test_library_messages_name_no_command_line_flags():
    """The library says what is wrong; only the script knows its flags (it puts them in front of the messages)."""
    package = REPO_ROOT / "modeling_unicl" / "conversion"
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.search(r"(?<![\w-])--[a-z]", node.value), f"{path.name}: {node.value!r}"


# ------------------------------------------------------------------------------------------------------- script
def test_script_converts_a_fixture(tmp_path):
    out = tmp_path / "focal"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--checkpoint", str(_fixture("focal_tiny") / "checkpoint.pth"),
         "--config", str(_fixture("focal_tiny") / "config.yaml"), "--output-dir", str(out)],  # the old spelling
        capture_output=True, text=True, cwd=tmp_path, env=_subprocess_env(tmp_path), timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--checkpoint", "/nonexistent/in1k.pth", "--config", "swin-tiny"], "--checkpoint /nonexistent/in1k.pth: no such file"),
        (["--config", "swin-huge"], "--config 'swin-huge': neither a YAML file nor a known preset (known presets: swin-tiny, swin-base)"),
        (["--config", "swin-tiny", "--repo_id", "no-namespace"], "--repo_id 'no-namespace': must be 'namespace/name'"),
        (["--config", "swin-tiny"], "MODEL.TEXT_ENCODER.WIDTH: config value 512, checkpoint value 16"),
    ],
)
def test_script_bad_input_exits_2(tmp_path, args, expected):
    if "--checkpoint" not in args:
        args = ["--checkpoint", str(_fixture("tiny") / "checkpoint.pth"), *args]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, env=_subprocess_env(tmp_path), timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ remote code, fresh process
FRESH_PROCESS = r"""
import importlib.machinery, importlib.util, json, os, sys
repo_root = sys.argv[1]
# no repo root (nor cwd) on sys.path ...
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != repo_root and not os.path.abspath(p).startswith(repo_root + os.sep)]
# ... and no import hook of an editable install (`pip install -e .` in CI) that would still find the package
standard = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter, importlib.machinery.PathFinder)
def _finds_package(finder):
    try:
        return finder.find_spec("modeling_unicl", None) is not None
    except Exception:
        return False
sys.meta_path[:] = [f for f in sys.meta_path if f in standard or not _finds_package(f)]
importlib.invalidate_caches()
assert importlib.util.find_spec("modeling_unicl") is None, "modeling_unicl must not be importable here"
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor
reports = {}
for name, folder, fixture in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    inputs = load_file(os.path.join(fixture, "inputs.safetensors"))
    expected = load_file(os.path.join(fixture, "expected.safetensors"))
    diffs = {}
    with torch.no_grad():
        for suffix, ids in (("", inputs["input_ids"]), ("_eot_padded", inputs["input_ids_eot_padded"])):
            out = model(input_ids=ids, pixel_values=inputs["pixel_values"], attention_mask=inputs["attention_mask"])
            for key in ("logits_per_image", "logits_per_text", "text_embeds"):
                diffs[key + suffix] = (getattr(out, key) - expected[key + suffix]).abs().max().item()
        diffs["image_embeds"] = (out.image_embeds - expected["image_embeds"]).abs().max().item()
    reports[name] = {
        "diffs": diffs,
        "model_module": type(model).__module__,
        "processor": type(processor).__name__,
        "image_processor": type(processor.image_processor).__name__,
        "crop_size": [processor.image_processor.crop_size.height, processor.image_processor.crop_size.width],
        "ids": processor(text=["a photo of a cat"], return_tensors="pt")["input_ids"][0].tolist(),
    }
print(json.dumps(reports))
"""


def test_fresh_process_loads_with_remote_code(tmp_path, converted):
    """A process where modeling_unicl is not importable loads the folders through trust_remote_code alone."""
    args = [str(x) for name in FIXTURE_NAMES for x in (name, converted[name], _fixture(name))]
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(REPO_ROOT), *args],
        capture_output=True, text=True, cwd=tmp_path, env=_subprocess_env(tmp_path), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(reports) == set(FIXTURE_NAMES)
    for name, report in reports.items():
        assert report["model_module"].startswith("transformers_modules."), report
        assert report["processor"] == "UniCLProcessor" and report["image_processor"] == "UniCLImageProcessor"
        assert report["crop_size"] == [64, 64]
        assert report["ids"][0] == 49406 and report["ids"][-1] == 49407
        assert all(v <= TOL for v in report["diffs"].values()), (name, report["diffs"])
