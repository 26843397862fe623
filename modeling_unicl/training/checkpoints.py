"""Checkpoints of `UniCLTrainer`: which ones are complete, and loading their weights with the key conversion.

* Completeness: a kill during a save leaves a half-written `checkpoint-N` folder. `trainer_state.json`, which
  `Trainer` writes last, must exist and parse, and every *.safetensors file must be readable (header and size).
  `resolve_resume_checkpoint(True, output_dir)` passes over incomplete folders with a warning.
* Weights: transformers 5.x saves e.g. Swin weights under their legacy names (`attention.self.query`) and converts
  them in `from_pretrained`, but the stock Trainer resumes with a plain non-strict `load_state_dict`, which silently
  skips every renamed tensor (the image tower would restart from its initialisation). `load_saved_weights` goes
  through `from_pretrained` and loads strictly.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from transformers import PreTrainedModel
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

__all__ = ["checkpoint_problem", "last_complete_checkpoint", "load_saved_weights", "resolve_resume_checkpoint"]


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why a Trainer checkpoint folder is incomplete (a save interrupted by a kill), or None when it is complete."""
    state_file = Path(folder) / TRAINER_STATE_NAME
    if not state_file.is_file():
        return f"no {TRAINER_STATE_NAME}, which is written last"
    try:
        int(json.loads(state_file.read_text(encoding="utf-8"))["global_step"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        return f"{TRAINER_STATE_NAME} is truncated or invalid ({type(error).__name__}: {error})"
    from safetensors import safe_open

    for weights in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as error:  # noqa: BLE001 - SafetensorError and OS errors alike
            return f"{weights.name} is truncated or corrupt ({error})"
    return None


def _checkpoint_folders(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, oldest step first."""
    output_dir = Path(output_dir)
    found = sorted(
        (int(match.group(1)), path)
        for path in (output_dir.iterdir() if output_dir.is_dir() else ())
        if path.is_dir() and (match := re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", path.name))
    )
    return [path for _, path in found]


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete checkpoint in `output_dir` (incomplete ones are passed over with a warning), or None."""
    for path in reversed(_checkpoint_folders(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning(f"Checkpoint {path} is incomplete ({problem}): an interrupted save? Skipping it.")
    return None


def resolve_resume_checkpoint(resume_from_checkpoint, output_dir: str | os.PathLike):
    """`resume_from_checkpoint` as `Trainer.train` should get it: True becomes the last *complete* checkpoint in
    `output_dir` (incomplete ones are passed over with a warning; a ValueError when all are incomplete); an explicit
    incomplete checkpoint folder is a ValueError saying what is missing. Anything else is returned as it is."""
    if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
        last = last_complete_checkpoint(output_dir)
        if last is not None:
            return last
        if _checkpoint_folders(output_dir):
            raise ValueError(f"No complete checkpoint in {output_dir}: every checkpoint-* folder is incomplete.")
        return resume_from_checkpoint  # none at all: the Trainer's own error
    if isinstance(resume_from_checkpoint, (str, os.PathLike)) and Path(resume_from_checkpoint).is_dir():
        problem = checkpoint_problem(resume_from_checkpoint)
        if problem is not None:
            raise ValueError(f"Checkpoint {resume_from_checkpoint} is incomplete: {problem}.")
    return resume_from_checkpoint


def load_saved_weights(model: PreTrainedModel, folder: str | os.PathLike) -> None:
    """Weights of a `save_pretrained` folder into `model`, through from_pretrained's key conversion; strict."""
    loaded = type(model).from_pretrained(folder, config=model.config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
