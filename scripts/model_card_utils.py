#!/usr/bin/env python
"""Model cards for converted UniCL checkpoints.

The card text lives in ``model_cards/TEMPLATE.md`` (a Jinja2 template, rendered with
``huggingface_hub.ModelCard.from_template``); the facts about the 12 checkpoints of the original
release (GitHub release v1.0 of microsoft/UniCL) live in ``model_cards/checkpoints.json``.

Public API:

- ``render_model_card(checkpoint_name, repo_id=None) -> ModelCard``: the card of a released checkpoint.
- ``card_name_for_checkpoint(path_or_name) -> str | None``: ``"/x/in1k_yfcc14m.pth"`` -> ``"in1k_yfcc14m"``.
- ``generic_model_card(config_summary, repo_id=None) -> ModelCard``: a card for any other checkpoint.
- ``known_checkpoints() -> list[str]``: the names of the released checkpoints.

Run ``python scripts/model_card_utils.py`` to regenerate every ``model_cards/<name>.md`` (committed), or
``python scripts/model_card_utils.py --check`` to only verify that they are up to date.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

MODEL_CARDS_DIR = Path(__file__).resolve().parent.parent / "model_cards"
TEMPLATE_PATH = MODEL_CARDS_DIR / "TEMPLATE.md"
CHECKPOINTS_PATH = MODEL_CARDS_DIR / "checkpoints.json"

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

__all__ = [
    "MODEL_CARDS_DIR",
    "card_name_for_checkpoint",
    "generic_model_card",
    "known_checkpoints",
    "load_checkpoint_facts",
    "render_model_card",
    "main",
]


def load_checkpoint_facts() -> dict[str, Any]:
    """The parsed ``model_cards/checkpoints.json``."""
    with CHECKPOINTS_PATH.open(encoding="utf-8") as f:
        return json.load(f)


def known_checkpoints() -> list[str]:
    """Names of the released checkpoints, in the order of ``checkpoints.json``."""
    return list(load_checkpoint_facts()["checkpoints"])


def _check_repo_id(repo_id: str) -> str:
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(f"Invalid repo_id {repo_id!r}: {e}") from e
    return repo_id


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
        checkpoint_name: the release name, e.g. ``"in1k_yfcc14m"`` (see ``known_checkpoints()``).
        repo_id: the Hub repo the card is for (used in the usage snippets). Defaults to
            ``<default_namespace>/<repo_name>`` from ``checkpoints.json``.

    Raises:
        ValueError: for an unknown ``checkpoint_name`` (the message lists the known ones) or a malformed ``repo_id``.
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
    _check_repo_id(repo_id)

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
    """Name of the released checkpoint a file (or name) refers to, or ``None`` if it is not one of them.

    ``"/x/in1k_yfcc14m.pth"`` -> ``"in1k_yfcc14m"``; ``"IN1K-GCC3M.pt"`` -> ``"in1k_gcc3m"``;
    the Hub repo name works too: ``"unicl/unicl-swin-tiny-in1k"`` -> ``"in1k"``; ``"mine.pth"`` -> ``None``.
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
    """First value found for one of ``keys``, at the top level or one level down (e.g. ``vision_config``)."""
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

    ``config_summary`` is any JSON-like dict describing the conversion; it is shown as a table (nested dicts
    are flattened to dotted keys). Keys used specially when present: ``repo_id``, ``checkpoint`` (the original
    file), ``config`` (the converter's ``--config`` value), ``image_size`` and ``context_length`` /
    ``max_position_embeddings`` (also looked up one level down, e.g. in ``vision_config``).
    The card has the same Hub metadata as the released ones but no datasets and no reported numbers.
    """
    summary = dict(config_summary or {})
    repo_id = repo_id or summary.get("repo_id") or "your-namespace/your-unicl-model"
    _check_repo_id(repo_id)
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


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or with ``--check`` verify) every ``model_cards/<name>.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that the committed cards are up to date (exit 1 if not)"
    )
    args = parser.parse_args(argv)

    names = known_checkpoints()
    stale = []
    for name in names:
        path = MODEL_CARDS_DIR / f"{name}.md"
        content = str(render_model_card(name))
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == content:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(content, encoding="utf-8", newline="")
            print(f"wrote {path}")
    strays = sorted(
        p.name for p in MODEL_CARDS_DIR.glob("*.md") if p.stem not in names and p.name not in ("TEMPLATE.md", "README.md")
    )
    if strays:
        print(f"warning: cards with no entry in checkpoints.json: {', '.join(strays)}", file=sys.stderr)
    if args.check:
        if stale:
            print("out of date (run `python scripts/model_card_utils.py`): " + ", ".join(p.name for p in stale))
            return 1
        print(f"all {len(names)} model cards are up to date")
    elif not stale:
        print(f"all {len(names)} model cards were already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
