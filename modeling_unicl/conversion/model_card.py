"""Model cards of converted UniCL checkpoints.

The card text is a Jinja2 template (`model_card_template.md`, rendered with huggingface_hub's
`ModelCard.from_template`); the facts about the 12 checkpoints of the original release (GitHub release v1.0 of
microsoft/UniCL) are in `released_checkpoints.json`. Both ship with the package, so an installed converter writes
the same cards as a checkout.

- `render_model_card(checkpoint_name, repo_id=None)`: the card of a released checkpoint.
- `generic_model_card(config_summary, repo_id=None)`: a card for any other checkpoint.
- `conversion_model_card(...)`: the card the converter writes (one of the two above).
- `card_name_for_checkpoint(path_or_name)`: `"/x/in1k_yfcc14m.pth"` -> `"in1k_yfcc14m"`.
- `known_checkpoints()`, `load_checkpoint_facts()`, `check_repo_id(repo_id)`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..configuration_unicl import UniCLConfig

__all__ = [
    "CHECKPOINTS_PATH",
    "TEMPLATE_PATH",
    "card_name_for_checkpoint",
    "check_repo_id",
    "conversion_model_card",
    "generic_model_card",
    "known_checkpoints",
    "load_checkpoint_facts",
    "render_model_card",
]

TEMPLATE_PATH = Path(__file__).resolve().with_name("model_card_template.md")
CHECKPOINTS_PATH = Path(__file__).resolve().with_name("released_checkpoints.json")

LIBRARY_NAME = "transformers"
PIPELINE_TAG = "zero-shot-image-classification"
LICENSE = "mit"
TAGS = ["unicl", "clip", "zero-shot-image-classification", "swin", "vision", "custom_code"]

# Suffixes stripped by `card_name_for_checkpoint`, longest first.
_CHECKPOINT_SUFFIXES = (".pth.tar", ".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar")

_README_SECTIONS = {
    True: "listed in the original README under \"Image-label training augmented by image-text pairs\"",
    False: "listed in the original README under \"Image-text learning augmented by image-label data\"",
}


def load_checkpoint_facts() -> dict[str, Any]:
    """The parsed `released_checkpoints.json`."""
    with CHECKPOINTS_PATH.open(encoding="utf-8") as f:
        return json.load(f)


def known_checkpoints() -> list[str]:
    """Names of the released checkpoints, in the order of `released_checkpoints.json`."""
    return list(load_checkpoint_facts()["checkpoints"])


def check_repo_id(repo_id: str) -> None:
    """Raises a `ValueError` starting with `repo_id <value>:` unless `repo_id` is a valid Hub id `namespace/name`."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id {repo_id!r}: must be 'namespace/name'.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"repo_id {repo_id!r}: {e}") from e


def _card_data(datasets: list[str] | None, tags: list[str] | None = None) -> ModelCardData:
    return ModelCardData(
        language="en",
        license=LICENSE,
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        tags=list(TAGS if tags is None else tags),
        datasets=datasets or None,
        metrics=["accuracy"] if datasets else None,
    )


def _from_template(card_data: ModelCardData, **template_kwargs: Any) -> ModelCard:
    card = ModelCard.from_template(card_data, template_path=str(TEMPLATE_PATH), **template_kwargs)
    if not card.text.endswith("\n"):  # Jinja drops the template's final newline
        card.text += "\n"
    return card


def render_model_card(checkpoint_name: str, repo_id: str | None = None) -> ModelCard:
    """Model card of one of the released UniCL checkpoints.

    Args:
        checkpoint_name: the release name, e.g. `"in1k_yfcc14m"` (see `known_checkpoints()`).
        repo_id: the Hub repo the card is for (used in the usage snippets). Defaults to
            `<default_namespace>/<repo_name>` from `released_checkpoints.json`.

    Raises:
        ValueError: for an unknown `checkpoint_name` (the message lists the known ones) or a malformed `repo_id`.
    """
    facts = load_checkpoint_facts()
    checkpoints = facts["checkpoints"]
    if checkpoint_name not in checkpoints:
        raise ValueError(
            f"Unknown UniCL checkpoint {checkpoint_name!r}; known checkpoints: {', '.join(checkpoints)}."
        )
    ckpt = checkpoints[checkpoint_name]
    arch = facts["architectures"][ckpt["architecture"]]
    if repo_id is None:
        repo_id = f"{facts['default_namespace']}/{ckpt['repo_name']}"
    check_repo_id(repo_id)

    datasets = [facts["datasets"][key] for key in ckpt["training_data"]]
    hub_ids = list(dict.fromkeys(d["hub_id"] for d in datasets))
    results = [
        {"key": key, "label": facts["metrics"][key], "value": f"{value:.1f}"}
        for key, value in ckpt["results"].items()
    ]
    supervised_in1k = "in1k_top1" in ckpt["results"]
    return _from_template(
        _card_data(hub_ids),
        known=True,
        title=f"UniCL {arch['display_name']}: {ckpt['training_set']}",
        repo_id=repo_id,
        checkpoint_name=checkpoint_name,
        filename=ckpt["filename"],
        arch=arch,
        config_flag=ckpt["architecture"],
        training_set=ckpt["training_set"],
        training_data=datasets,
        readme_section=_README_SECTIONS[supervised_in1k],
        results=results,
        results_by_key=ckpt["results"],
        note=ckpt.get("note"),
        image_size=arch["image_size"],
        context_length=arch["context_length"],
        source=facts["source"],
    )


def card_name_for_checkpoint(path_or_name: str | Path) -> str | None:
    """Name of the released checkpoint a file (or name) refers to, or `None` if it is not one of them.

    `"/x/in1k_yfcc14m.pth"` -> `"in1k_yfcc14m"`; `"IN1K-GCC3M.pt"` -> `"in1k_gcc3m"`;
    the Hub repo name works too: `"unicl/unicl-swin-tiny-in1k"` -> `"in1k"`; `"mine.pth"` -> `None`.
    """
    if path_or_name is None:
        return None
    name = Path(str(path_or_name)).name.strip().lower()
    for suffix in _CHECKPOINT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    checkpoints = load_checkpoint_facts()["checkpoints"]
    normalized = name.replace("-", "_")
    if normalized in checkpoints:
        return normalized
    for ckpt_name, ckpt in checkpoints.items():
        if name == ckpt["repo_name"].lower():
            return ckpt_name
    return None


def _flatten(summary: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        full_key = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_flatten(value, prefix=f"{full_key}."))
            continue
        if isinstance(value, (list, tuple)):
            text = json.dumps(list(value), default=str)
        else:
            text = str(value)
        rows.append((full_key, text))
    return rows


def _table_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _find(summary: Mapping[str, Any], *keys: str) -> Any:
    """First value found for one of `keys`, at the top level or one level down (e.g. `vision_config`)."""
    for key in keys:
        if summary.get(key) is not None:
            return summary[key]
    for value in summary.values():
        if isinstance(value, Mapping):
            for key in keys:
                if value.get(key) is not None:
                    return value[key]
    return None


def generic_model_card(config_summary: Mapping[str, Any], repo_id: str | None = None) -> ModelCard:
    """Model card for a converted UniCL checkpoint that is not one of the released ones.

    `config_summary` is any JSON-like dict describing the conversion; it is shown as a table (nested dicts
    are flattened to dotted keys). Keys used specially when present: `repo_id`, `checkpoint` (the original
    file), `config` (the converter's config: a preset name or a YAML file name), `image_size` and `context_length` /
    `max_position_embeddings` (also looked up one level down, e.g. in `vision_config`).
    The card has the same Hub metadata as the released ones but no datasets and no reported numbers.
    """
    summary = dict(config_summary or {})
    repo_id = repo_id or summary.get("repo_id") or "your-namespace/your-unicl-model"
    check_repo_id(repo_id)
    checkpoint = summary.get("checkpoint")
    filename = Path(str(checkpoint)).name if checkpoint else "CHECKPOINT.pth"
    if checkpoint:
        summary["checkpoint"] = filename  # no local paths in a public card
    rows = [(_table_cell(k), _table_cell(v)) for k, v in _flatten(summary) if k != "repo_id"]
    # Other image towers (FocalNet, ResNet, ViT) are possible: only claim Swin when the summary says so.
    is_swin = "swin" in json.dumps(summary, default=str).lower()
    tags = [t for t in TAGS if t != "swin" or is_swin]
    facts = load_checkpoint_facts()
    return _from_template(
        _card_data(None, tags),
        known=False,
        title="UniCL (converted checkpoint)",
        repo_id=repo_id,
        filename=filename,
        config_flag=summary.get("config") or "CONFIG",
        config_rows=rows,
        image_size=_find(summary, "image_size"),
        context_length=_find(summary, "context_length", "max_position_embeddings"),
        source=facts["source"],
    )


def _conversion_summary(
    node: dict, config: UniCLConfig, checkpoint: str, config_label: str, repo_id: str | None
) -> dict:
    """What a generic card shows of a conversion: the original config's architecture fields."""
    enc = node["IMAGE_ENCODER"]
    is_swin = enc["TYPE"] == "swin"
    sub = enc["SWIN" if is_swin else "FOCAL"]
    tower_names = ("NUM_HEADS", "WINDOW_SIZE") if is_swin else ("FOCAL_LEVELS", "FOCAL_WINDOWS")
    names = ("PATCH_SIZE", "EMBED_DIM", "DEPTHS", *tower_names)
    vision = {"type": "swin" if is_swin else "focalnet", "image_size": enc["IMG_SIZE"]}
    vision.update({name.lower(): sub[name] for name in names})
    text = node["TEXT_ENCODER"]
    summary = {
        "checkpoint": checkpoint,
        "config": config_label,
        "vision_config": vision,
        "text_config": {
            "width": text["WIDTH"], "heads": text["HEADS"], "layers": text["LAYERS"],
            "context_length": text["CONTEXT_LENGTH"], "tokenizer": "clip",
        },
        "projection_dim": node["DIM_PROJECTION"],
        "logit_scale_max": config.logit_scale_max,
    }
    if repo_id:
        summary["repo_id"] = repo_id
    return summary


def conversion_model_card(
    checkpoint: str | Path,
    node: dict,
    config: UniCLConfig,
    config_label: str,
    card_name: str | None = None,
    repo_id: str | None = None,
) -> ModelCard:
    """The card the converter writes: `card_name`'s (a released checkpoint), else that of the released checkpoint the
    file name of `checkpoint` refers to, else a generic card showing the original config (`node`) of the conversion.
    `config_label` is how the card names the config (a preset name or the YAML file's name)."""
    name = card_name or card_name_for_checkpoint(checkpoint)
    if name:
        return render_model_card(name, repo_id=repo_id)
    summary = _conversion_summary(node, config, str(checkpoint), config_label, repo_id)
    return generic_model_card(summary, repo_id=repo_id)
