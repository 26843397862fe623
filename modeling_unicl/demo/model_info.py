"""What the page says about the model before anyone trusts its answers: what it is, where its weights come from, and
what it cannot do (a tiny or randomly initialised model says so)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..presets import get_preset

# The main job's architecture (scripts/train.py with no arguments). The same preset can train on other data, so the
# folder must also show the main job's evaluation: its zero-shot results score the held-out classes (a split named
# "held-out ...", which only the embedded default has), or its model card says it is the embedded default.
EMBEDDED_PRESET = "animals-small"
EMBEDDED_RESULTS_SPLIT = "held-out"
EMBEDDED_CARD_PHRASE = "embedded default"
# Below this the image tower sees thumbnails, and below this many parameters it is a test-size model; either way
# it is no real-world classifier (the paper's Swin-T model is 224 px and about 150 M parameters).
TINY_INPUT_PIXELS = 64
TINY_PARAMETERS = 20_000_000
# What a training run leaves beside its weights (the Trainer's files, train.py's zero-shot results).
TRAINING_RECORDS = ("zero_shot_results.json", "trainer_state.json", "training_args.bin")
ANIMAL_CLASSES_NOTE = "bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra"
TOWER_NAMES = {
    "swin": "Swin", "focalnet": "FocalNet", "resnet": "ResNet", "vit": "ViT",
    "clip_text_model": "CLIP", "bert": "BERT", "roberta": "RoBERTa",
}


@dataclass(frozen=True)
class ModelFacts:
    name: str
    architecture: str
    provenance: str
    cautions: tuple[str, ...]

    def markdown(self) -> str:
        lines = [f"**Model: `{self.name}`**: {self.provenance}", "", f"Architecture: {self.architecture}."]
        lines += [f"\n> **Caution:** {caution}" for caution in self.cautions]
        return "\n".join(lines)


def model_file(name_or_path: str, filename: str) -> Path | None:
    """A file of a local folder or of a Hub repo (downloaded, or from the cache when offline); None when absent."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(name_or_path, filename))
    except (EntryNotFoundError, OSError):  # no such file, offline, or no such repo: nothing to report from it
        return None


def _card_title(card: str) -> str | None:
    body = card.split("---", 2)[-1] if card.startswith("---") else card  # skip the YAML front matter
    return next((line[2:].strip() for line in body.splitlines() if line.startswith("# ")), None)


def _is_embedded_preset(config) -> bool:
    preset = get_preset(EMBEDDED_PRESET)
    same_vision = all(
        getattr(config.vision_config, key, None) == value
        for key, value in preset.vision_config.items()
        if key != "drop_path_rate"  # a training-time setting, not the architecture
    )
    same_text = all(getattr(config.text_config, key, None) == value for key, value in preset.text_config.items())
    return same_vision and same_text and config.projection_dim == preset.projection_dim


def _read_results(results_file: Path | None) -> dict:
    """train.py's zero_shot_results.json ({split: {"top1": ...}}), or {} when absent or unreadable."""
    if results_file is None:
        return {}
    try:
        results = json.loads(results_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {split: entry for split, entry in results.items() if isinstance(entry, dict) and "top1" in entry}


def _is_embedded_run(name: str, config, results: dict) -> bool:
    if not _is_embedded_preset(config):
        return False
    if any(split.startswith(EMBEDDED_RESULTS_SPLIT) for split in results):
        return True
    card_file = model_file(name, "README.md")
    return card_file is not None and EMBEDDED_CARD_PHRASE in card_file.read_text(encoding="utf-8", errors="replace")


def _results_line(results: dict) -> str:
    scores = ", ".join(f"{split}: {entry['top1']:.1%}" for split, entry in results.items())
    return f" Zero-shot top-1 on the silhouettes' test split (zero_shot_results.json): {scores}." if scores else ""


def _temperature_untouched(model) -> bool:
    """Training moves the learned temperature; a model saved right after initialisation still has its initial value."""
    logit_scale = getattr(model, "logit_scale", None)
    return logit_scale is not None and abs(float(logit_scale.detach()) - model.config.logit_scale_init_value) < 1e-6


def _provenance(name: str, model) -> tuple[str, list[str]]:
    """(one sentence on where the weights come from, cautions)."""
    results = _read_results(model_file(name, "zero_shot_results.json"))
    if _is_embedded_run(name, model.config, results):
        return (
            "the main job's model, trained by `python scripts/train.py` on the package's 28x28 animal silhouettes "
            f"({ANIMAL_CLASSES_NOTE}), white on black." + _results_line(results),
            [
                "It has only ever seen animal silhouettes: it will not recognise real photos. For those, convert a "
                "released UniCL checkpoint (scripts/convert_unicl_original_to_hf.py, see the README)."
            ],
        )
    card_file = model_file(name, "README.md")
    if card_file is not None:
        card = card_file.read_text(encoding="utf-8", errors="replace")
        title = _card_title(card) or card_file.name
        if "converted from" in card:
            return f"a UniCL checkpoint converted from the original microsoft/UniCL release (model card: {title}).", []
        return f"see its model card ({title}).", []
    if any(model_file(name, record) is not None for record in TRAINING_RECORDS):
        return "trained (the folder holds a training run's records), on data no model card names.", []
    if _temperature_untouched(model):
        return "no model card or training record.", [
            "Randomly initialised: its temperature still has the initial value, so these weights were never "
            "trained. Its rankings are noise."
        ]
    return "no model card or training record: where its weights come from is unknown.", []


def _tower_name(tower_config) -> str:
    return TOWER_NAMES.get(tower_config.model_type, tower_config.model_type)


def describe_model(name: str, model, processor) -> ModelFacts:
    """The facts shown at the top of the page, from the config, the weights and the files beside them."""
    config = model.config
    input_pixels = int(processor.image_processor.crop_size["height"])
    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    architecture = (
        f"{_tower_name(config.vision_config)} image tower at {input_pixels} px, "
        f"{config.text_config.num_hidden_layers}-layer {_tower_name(config.text_config)} text tower, "
        f"{num_parameters / 1e6:.1f} M parameters"
    )
    provenance, cautions = _provenance(name, model)
    if input_pixels < TINY_INPUT_PIXELS or num_parameters < TINY_PARAMETERS:
        cautions.append(
            f"A tiny model ({input_pixels} px input, {num_parameters / 1e6:.1f} M parameters): a toy for trying the "
            "demo, not a general image classifier."
        )
    shown_name = Path(name).resolve().name if Path(name).is_dir() else name
    return ModelFacts(shown_name, architecture, provenance, tuple(cautions))
