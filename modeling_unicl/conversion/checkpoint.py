"""Reading an original checkpoint file: `torch.load(weights_only=True)` only, and every layout the original reads."""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import ConversionError

__all__ = ["load_original_checkpoint", "normalize_original_state_dict"]

logger = logging.getLogger(__name__)

_UNSAFE_PICKLE_HINT = (
    "it holds pickled Python objects besides tensors ({name}; e.g. a training checkpoint whose 'config' entry is a "
    "yacs CfgNode), so it cannot be read with torch.load(weights_only=True), and the converter never unpickles "
    "arbitrary objects. Extract the weights in an environment you "
    "trust: torch.save({{'model': torch.load({path!r}, map_location='cpu', weights_only=False)['model']}}, "
    "'model_only.pth'), and convert model_only.pth."
)

# Prefix renames of older layouts, as the original `_convert_old_weights` does (`lang_encoder.` is how that function
# spells the text tower; the original `UniCLModel` itself calls it `text_encoder.`).
_PREFIX_RENAMES = (("visual.", "image_encoder."), ("text.", "text_encoder."), ("lang_encoder.", "text_encoder."))
_KEY_RENAMES = {"vision_projection": "image_projection"}


def load_original_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Reads an original checkpoint with `torch.load(weights_only=True)` (never unpickling arbitrary objects) and
    returns its state dict with original key names (see `normalize_original_state_dict`)."""
    path = Path(path)
    where = f"checkpoint {path}"
    if not path.is_file():
        raise ConversionError(f"{where}: no such file.", "checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", message)
        if unsafe:
            hint = _UNSAFE_PICKLE_HINT.format(path=str(path), name=unsafe.group(1))
            raise ConversionError(f"{where}: {hint}", "checkpoint") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
        reason = detail.group(1).strip() if detail else (message.splitlines() or ["unpickling failed"])[0]
        raise ConversionError(f"{where}: not a readable torch checkpoint ({reason}).", "checkpoint") from None
    except Exception as e:  # noqa: BLE001 - corrupt / foreign files fail in many ways inside torch.load
        reason = (str(e).splitlines() or [""])[0] or type(e).__name__
        raise ConversionError(f"{where}: not a readable torch checkpoint ({reason}).", "checkpoint") from None
    return normalize_original_state_dict(obj, path)


def _is_tensor_mapping(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _original_name(key: str) -> str:
    while key.startswith("module."):  # DistributedDataParallel
        key = key[len("module.") :]
    for old, new in _PREFIX_RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    return _KEY_RENAMES.get(key, key)


def normalize_original_state_dict(obj: Any, path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The state dict of an original checkpoint object (read from `path`, named in messages), with the names of the
    original `UniCLModel`.

    Accepts `{"model": state_dict, ...}` (what the original evaluation reads; other entries such as optimizer state
    are ignored) and a bare state dict. Renames like the original `_convert_old_weights` (`visual.` ->
    `image_encoder.`, `text.` -> `text_encoder.`, `vision_projection` -> `image_projection`), treats `lang_encoder.`
    as an alias of `text_encoder.` and strips `module.` prefixes left by DistributedDataParallel."""
    where = "checkpoint" if path is None else f"checkpoint {path}"
    if isinstance(obj, Mapping) and "model" in obj and not isinstance(obj["model"], torch.Tensor):
        extra = sorted(str(k) for k in obj if k != "model")
        if extra:
            logger.info("%s: using its 'model' entry; ignoring %s", where, ", ".join(extra))
        obj = obj["model"]
    if not _is_tensor_mapping(obj):
        if isinstance(obj, Mapping):
            bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)][:10]
            raise ConversionError(
                f"{where}: not a UniCL state dict: expected {{'model': state_dict}} or a mapping of names to tensors; "
                f"entries that are not tensors: {bad or 'none (empty mapping)'}.",
                "checkpoint",
            )
        raise ConversionError(f"{where}: not a UniCL state dict (got a {type(obj).__name__}).", "checkpoint")

    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        new = _original_name(key)
        if new in out:
            raise ConversionError(f"{where}: keys {key!r} and another key both map to {new!r}.", "checkpoint")
        out[new] = value
    return out
