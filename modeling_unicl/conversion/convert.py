"""The whole conversion of an original UniCL checkpoint file into a transformers folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from .checkpoint import load_original_checkpoint
from .config_builder import build_processor
from .errors import ConversionError
from .model_card import check_repo_id, conversion_model_card, known_checkpoints
from .original_config import PRESETS, load_original_config
from .weights import convert_original_model
from .writing import check_output_dir, write_model_folder

__all__ = ["convert_unicl_checkpoint"]

logger = logging.getLogger(__name__)


def _config_label(config: str | os.PathLike | Mapping) -> str:
    """How messages and the model card name the config: the preset name, the YAML file's name, or "dict"."""
    if isinstance(config, Mapping):
        return "dict"
    return config if isinstance(config, str) and config in PRESETS else Path(os.fspath(config)).name


def _check_card_arguments(card_name: str | None, repo_id: str | None) -> None:
    if repo_id is not None:
        try:
            check_repo_id(repo_id)
        except ValueError as e:
            raise ConversionError(str(e), "repo_id") from None
    if card_name is not None and card_name not in known_checkpoints():
        raise ConversionError(
            f"card_name {card_name!r}: not a released checkpoint; known: {', '.join(known_checkpoints())}.",
            "card_name",
        )


def convert_unicl_checkpoint(
    checkpoint: str | os.PathLike,
    config: str | os.PathLike | Mapping,
    output_dir: str | os.PathLike,
    *,
    card_name: str | None = None,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Converts an original UniCL checkpoint into a complete transformers folder at `output_dir`.

    `config` is a preset name (`PRESETS`), an original YAML file or a MODEL node dict. The folder holds
    model.safetensors, config.json (with `auto_map`), the remote-code files, the processor files and README.md (the
    card of `card_name`, or of the released checkpoint the file name refers to, else a generic card; `repo_id` goes
    into its usage snippets). It is written to a temporary folder next to `output_dir`, reloaded and compared, and
    only then renamed into place: a failed conversion leaves nothing at `output_dir`.

    Raises `ConversionError` on bad input, naming the argument at fault (`ConversionError.argument`); the cheap
    checks (output folder, config, card, repo id) run before the checkpoint is read. `output_dir` must be absent or
    empty unless `overwrite=True`."""
    out = Path(output_dir).absolute()
    check_output_dir(out, overwrite)
    node = load_original_config(config)
    config_label = _config_label(config)
    _check_card_arguments(card_name, repo_id)

    state_dict = load_original_checkpoint(checkpoint)
    logger.info("read %d tensors from %s", len(state_dict), checkpoint)
    model = convert_original_model(state_dict, node, context=f"checkpoint {checkpoint} with config {config_label}")
    del state_dict
    card = conversion_model_card(Path(checkpoint), node, model.config, config_label, card_name, repo_id)
    write_model_folder(out, model, build_processor(node), str(card), overwrite)
    return out
