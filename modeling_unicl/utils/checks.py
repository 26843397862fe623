"""The checks that more than one room makes, in one place: is a name a local path or a Hub id, is a folder a saved
UniCL model, does a dataset have the columns and labels a UniCL job needs.

Errors are `ValueError`s (`OSError` for a missing folder) that say what is wrong with which value; they never name a
command-line flag (the scripts add that). Nothing here imports training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "check_unicl_folder",
    "looks_like_local_path",
    "resolve_class_names",
    "validate_image_label_dataset",
    "validate_image_text_dataset",
]


def looks_like_local_path(name: str) -> bool:
    """Whether `name` can only mean a local path (it exists, starts with `.`, `/` or `~`, or has more than one `/`),
    not a Hub id (`owner/name`)."""
    return Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def check_unicl_folder(name_or_path: str) -> None:
    """Fails early when a local folder is not a saved UniCL model, or when a name that is no folder here cannot be a
    Hub id that loads: a path that does not exist, offline mode without a cached copy, or a Hub that cannot be
    reached within a few seconds (instead of transformers' retries). Hub ids are otherwise left to `from_pretrained`."""
    from ..modeling_unicl import missing_folder_problem

    path = Path(name_or_path).expanduser()
    if not path.exists():
        problem = missing_folder_problem(name_or_path)
        if problem is None:
            problem = _unreachable_hub_problem(name_or_path)
        if problem is not None:
            raise OSError(problem + ".")
        return
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{name_or_path!r} has no config.json; it is not a saved model folder.")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file} is not valid JSON ({error}).") from error
    if model_type != "unicl":
        raise ValueError(f"{name_or_path!r} is a {model_type!r} model, not a UniCL model.")


def _unreachable_hub_problem(name: str, timeout: float = 3.0) -> str | None:
    """Why the Hub id `name` cannot load, when the Hub's host does not answer within `timeout` seconds and the Hub
    cache has no copy; None when it answers (or the copy is cached)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    from ..modeling_unicl import did_you_mean

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return None
    except Exception:  # noqa: BLE001 - not a valid Hub id: from_pretrained will say so
        return None
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError as error:
        return f"no folder {name!r} here{did_you_mean(name)}; as a Hub id it could not be reached ({endpoint.hostname}: {error})"
    return None


# ------------------------------------------------------------------------------------------------- datasets
def check_dataset(dataset, what: str) -> None:
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        raise ValueError(
            f"The {what} dataset is a datasets.IterableDataset; UniCL's data pipeline needs a map-style "
            "datasets.Dataset (load without streaming=True)."
        )
    if not isinstance(dataset, datasets.Dataset):
        raise ValueError(f"The {what} dataset must be a datasets.Dataset, got {type(dataset).__name__}.")
    if len(dataset) == 0:
        raise ValueError(f"The {what} dataset is empty (0 rows); there is nothing to train or evaluate on.")


def check_column(dataset, column: str, role: str, what: str) -> None:
    if column not in dataset.column_names:
        raise ValueError(
            f"The {what} dataset has no {role} column {column!r}; its columns are {dataset.column_names}. "
            f"Pass {role}_column=<name> to say which column holds the {role}s."
        )


def check_image_column(dataset, column: str, what: str) -> None:
    import datasets
    from datasets import Value

    check_column(dataset, column, "image", what)
    feature = dataset.features[column]
    if isinstance(feature, datasets.Image):
        return
    if isinstance(feature, Value) and feature.dtype in ("string", "large_string", "binary", "large_binary"):
        return  # file paths or encoded bytes: cast to an Image feature, decoded lazily
    raise ValueError(
        f"The image column {column!r} of the {what} dataset holds {feature}, not images. Expected a datasets.Image "
        "feature (or file paths / encoded bytes)."
    )


def column_array(dataset, column: str):
    """One column as a pyarrow ChunkedArray, with the dataset's indices mapping applied (reads only that column)."""
    return dataset.select_columns([column]).with_format("arrow")[:].column(column)


def resolve_class_names(dataset, label_column: str = "label", class_names: Sequence[str] | None = None) -> list[str]:
    """The class names of an image-label dataset: `class_names` if given, else the `ClassLabel` feature's names."""
    from datasets import ClassLabel, Value

    feature = dataset.features[label_column]
    if isinstance(feature, ClassLabel):
        names = list(feature.names) if class_names is None else list(class_names)
        if class_names is not None and len(names) != feature.num_classes:
            raise ValueError(
                f"class_names has {len(names)} names but the ClassLabel column {label_column!r} has "
                f"{feature.num_classes} classes."
            )
    elif isinstance(feature, Value) and feature.dtype.startswith(("int", "uint")):
        if class_names is None:
            raise ValueError(
                f"The label column {label_column!r} is {feature}, not a ClassLabel, and no class_names were given: "
                f"pass class_names=[...] (one name per label id) or cast the column, e.g. "
                f"dataset.cast_column({label_column!r}, ClassLabel(names=[...]))."
            )
        names = list(class_names)
    else:
        raise ValueError(
            f"The label column {label_column!r} is {feature}; expected a ClassLabel or integer label ids "
            f"(for string labels use dataset.class_encode_column({label_column!r}))."
        )
    if not names:
        raise ValueError(f"The label column {label_column!r} has no classes (empty class_names).")
    bad = [name for name in names if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ValueError(f"Class names must be non-empty strings, got {bad[:5]!r}.")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"Class names must be unique within one dataset; repeated: {duplicates[:10]!r}.")
    return names


def label_ids(dataset, label_column: str) -> np.ndarray:
    column = column_array(dataset, label_column)
    if column.null_count:
        raise ValueError(f"The label column {label_column!r} has {column.null_count} missing labels (None).")
    return np.asarray(column.to_numpy(), dtype=np.int64)


def validate_image_label_dataset(
    dataset, image_column: str = "image", label_column: str = "label", class_names: Sequence[str] | None = None
) -> list[str]:
    """Check an image-label dataset before training; returns its class names. Raises ValueError with what is wrong:
    missing column, empty dataset, no class names, labels outside 0..num_classes-1."""
    check_dataset(dataset, "image-label")
    check_image_column(dataset, image_column, "image-label")
    check_column(dataset, label_column, "label", "image-label")
    names = resolve_class_names(dataset, label_column, class_names)
    labels = label_ids(dataset, label_column)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= len(names):
        raise ValueError(
            f"Labels out of range: the label column {label_column!r} holds ids from {low} to {high}, but there are "
            f"{len(names)} classes (valid ids 0..{len(names) - 1}). Negative ids such as -1 usually mark "
            "unlabelled rows (e.g. a test split): filter them out first."
        )
    return names


def validate_image_text_dataset(dataset, image_column: str = "image", caption_column: str = "caption") -> None:
    """Check an image-text dataset before training: columns exist, captions are non-empty strings."""
    from datasets import Value

    check_dataset(dataset, "image-text")
    check_image_column(dataset, image_column, "image-text")
    check_column(dataset, caption_column, "caption", "image-text")
    if image_column == caption_column:
        raise ValueError(f"image_column and caption_column are both {image_column!r}.")
    feature = dataset.features[caption_column]
    if not (isinstance(feature, Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(f"The caption column {caption_column!r} is {feature}; expected strings (Value('string')).")
    import pyarrow.compute as pc

    column = column_array(dataset, caption_column)
    empty = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0), True)
    num_bad = pc.sum(empty).as_py() or 0
    if num_bad:
        first = int(np.flatnonzero(np.asarray(empty.to_numpy(zero_copy_only=False)))[0])
        raise ValueError(
            f"The caption column {caption_column!r} has {num_bad} missing or empty captions (first at row {first})."
        )


