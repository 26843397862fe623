"""Writing a converted model folder atomically: everything goes to a temporary folder next to the target, is reloaded
and compared, and only then renamed into place, so that a failed conversion leaves nothing behind."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..modeling_unicl import UniCLModel
from ..processing_unicl import UniCLProcessor
from .errors import ConversionError

__all__ = ["check_output_dir", "write_model_folder"]

logger = logging.getLogger(__name__)

# What a loadable remote-code folder cannot do without (save_pretrained writes them; checked, not assumed).
_REQUIRED_FILES = ("model.safetensors", "config.json", "modeling_unicl.py", "configuration_unicl.py")


def check_output_dir(out: Path, overwrite: bool) -> None:
    """`out` must be absent, or an empty folder, or any folder when `overwrite`; never a symbolic link."""
    if out.is_symlink():
        raise ConversionError(f"output_dir {out}: is a symbolic link; pass the folder it points to.", "output_dir")
    if out.exists():
        if not out.is_dir():
            raise ConversionError(f"output_dir {out}: exists and is not a directory.", "output_dir")
        if any(out.iterdir()) and not overwrite:
            raise ConversionError(
                f"output_dir {out}: exists and is not empty, and overwriting was not requested.", "output_dir"
            )


def _apply_umask(folder: Path) -> None:
    """mkdtemp (and some writers) create owner-only entries; give the folder the permissions of a normal mkdir."""
    umask = None
    try:  # Linux: read it without changing it (os.umask is process-wide)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except OSError:
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _verify_reloaded(folder: Path, model: UniCLModel) -> None:
    """Reloads the written folder and checks that every weight came back equal (catches a silently dropped key)."""
    reloaded, info = UniCLModel.from_pretrained(folder, output_loading_info=True)
    problems = [f"{kind}: {sorted(keys)}" for kind, keys in info.items() if keys and kind != "error_msgs"]
    problems += [str(e) for e in info.get("error_msgs", [])]
    original, again = model.state_dict(), reloaded.state_dict()
    if set(original) != set(again):
        problems.append(f"keys differ: {sorted(set(original) ^ set(again))}")
    problems += [f"{k} differs after reloading" for k in original if k in again and not torch.equal(original[k], again[k])]
    if problems:
        raise ConversionError(f"The written folder {folder} does not reload to the converted weights: " + "; ".join(problems))


def _write_into(folder: Path, model: UniCLModel, processor: UniCLProcessor, readme: str) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    _apply_umask(folder)
    for required in _REQUIRED_FILES:
        if not (folder / required).is_file():
            raise ConversionError(f"save_pretrained did not write {required} into {folder}")
    _verify_reloaded(folder, model)


def write_model_folder(out: Path, model: UniCLModel, processor: UniCLProcessor, readme: str, overwrite: bool) -> None:
    """Writes the model, processor and model card (`readme`) to `out` (absolute): into a temporary folder next to
    it, verified by reloading, then renamed into place. A replaced folder is kept aside until the rename succeeded
    and restored if it did not; on any failure nothing is left at `out` that was not there before."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    backup: Path | None = None
    try:
        _write_into(tmp, model, processor, readme)
        check_output_dir(out, overwrite)  # the folder may have appeared meanwhile
        if out.exists() and any(out.iterdir()):
            backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, backup / out.name)
        os.replace(tmp, out)  # atomic; replaces an empty directory
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if backup is not None and (backup / out.name).exists() and not out.exists():
            os.replace(backup / out.name, out)
        raise
    finally:
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    logger.info("wrote %s", out)
