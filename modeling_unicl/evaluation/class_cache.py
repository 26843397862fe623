"""A disk cache of zero-shot class matrices: evaluating a model again (20 datasets, or ImageNet's 1000 classes x 81
templates: 81,000 prompts) runs no text forward.

The key is a SHA-256 of everything the matrix depends on: the text tower's and text projection's weights (names,
dtypes, shapes, bytes), the text config and projection size, the tokenizer (its serialised vocabulary and merges),
the class names and the templates, in order. A file is `<cache_dir>/<key>.safetensors` (float32), written to a
temporary file and renamed into place, so an interrupted run never leaves half a matrix behind and two runs writing
the same key both leave a whole one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..prompts import check_templates
from .zero_shot import build_class_embeddings

__all__ = ["ClassEmbeddingCache", "default_cache_dir", "text_side_fingerprint"]

TEXT_SIDE_PREFIXES = ("text_model.", "text_projection.")


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/unicl/class_embeddings`, by default `~/.cache/unicl/class_embeddings`."""
    root = os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    return Path(root) / "unicl" / "class_embeddings"


def _hash_tensor(digest, name: str, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))


def _tokenizer_description(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return f"{type(tokenizer).__name__}|{getattr(tokenizer, 'model_max_length', None)}|{vocabulary}"


def text_side_fingerprint(model, tokenizer) -> str:
    """SHA-256 of the model's text side (weights under `text_model.` / `text_projection.`, or all weights of a model
    without them), its text config and projection size, and the tokenizer."""
    digest = hashlib.sha256()
    state = model.state_dict()
    text_side = {name: tensor for name, tensor in state.items() if name.startswith(TEXT_SIDE_PREFIXES)} or state
    for name in sorted(text_side):
        _hash_tensor(digest, name, text_side[name])
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None)
    text_config = text_config.to_dict() if text_config is not None else {}
    text_config.pop("transformers_version", None)  # the numbers do not change with the library's version
    described = {"text_config": text_config, "projection_dim": getattr(config, "projection_dim", None)}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    digest.update(_tokenizer_description(getattr(tokenizer, "tokenizer", tokenizer)).encode())
    return digest.hexdigest()


class ClassEmbeddingCache:
    """Class matrices of one model (fixed weights) on disk. `class_embeddings(names, templates)` loads a matrix or
    builds it with `build_class_embeddings` and stores it; `text_forwards` counts the matrices built."""

    def __init__(self, model, tokenizer, cache_dir=None, batch_size: int = 256):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.fingerprint = text_side_fingerprint(model, tokenizer)
        self.text_forwards = 0

    def path(self, class_names: Sequence[str], templates: Sequence[str]) -> Path:
        digest = hashlib.sha256(self.fingerprint.encode())
        digest.update(json.dumps([list(class_names), list(templates)]).encode())
        return self.cache_dir / f"{digest.hexdigest()}.safetensors"

    def class_embeddings(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        templates = check_templates(templates)
        path = self.path(class_names, templates)
        cached = self._load(path, len(class_names))
        if cached is not None:
            return cached
        embeddings = build_class_embeddings(self.model, self.tokenizer, class_names, templates, self.batch_size)
        self.text_forwards += 1
        self._store(path, embeddings.detach().float().cpu())
        return embeddings

    @staticmethod
    def _load(path: Path, num_classes: int) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            embeddings = load_file(path)["class_embeddings"]
        except (OSError, SafetensorError, KeyError):  # unreadable: built again and overwritten
            return None
        return embeddings if embeddings.ndim == 2 and embeddings.shape[0] == num_classes else None

    def _store(self, path: Path, embeddings: torch.Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(handle)
        try:
            save_file({"class_embeddings": embeddings.contiguous()}, temporary)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
