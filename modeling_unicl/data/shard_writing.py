"""Writing webdataset shards of the layout `StreamingTrainingDataset` reads (`scripts/make_shards.py` is the front).

    OUT/00000.tar, 00001.tar, ...   samples KEY.jpg|png|webp + KEY.txt (image-text) or KEY.cls (image-label)
    OUT/classes.txt                 image-label: line i names class id i
    OUT/manifest.json               kind, counts per shard, total, number of classes

Shards are written with webdataset's `ShardWriter` and bounded by a number of samples and a number of bytes (a
shard is closed once it holds `max_samples` samples or at least `max_bytes` bytes, so it may pass `max_bytes` by
one sample). Keys are the sample's running number (`000000042`), unique across the shards. Images keep their
encoded bytes when they are JPEG, PNG or WebP; anything else is re-encoded as PNG (lossless).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from PIL import Image as PILImage

__all__ = ["encoded_image", "samples_from_caption_folder", "samples_from_dataset", "write_shards"]

KEPT_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
IMAGE_FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def encoded_image(value) -> tuple[bytes, str]:
    """(encoded bytes, extension) of an image: raw bytes, a path, a `datasets` entry ({"bytes", "path"}) or a PIL
    image. Raises `UnreadableImageError` (a ValueError) for what is not an image."""
    from ..processing_unicl import UnreadableImageError, load_image

    data = None
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, (str, os.PathLike)):
        data = Path(value).read_bytes()
    elif isinstance(value, dict):
        data = value.get("bytes") or (Path(value["path"]).read_bytes() if value.get("path") else None)
    if data is not None:
        try:
            image_format = PILImage.open(io.BytesIO(data)).format
        except (OSError, SyntaxError, ValueError) as error:
            raise UnreadableImageError(f"Not a readable image ({len(data)} bytes): {error}") from error
        if image_format in KEPT_FORMATS:
            return data, KEPT_FORMATS[image_format]
        value = data
    image = load_image(value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "png"


def samples_from_dataset(dataset, image_column: str = "image", label_column: str | None = "label",
                         caption_column: str | None = None) -> Iterator[dict]:
    """Samples of a `datasets.Dataset` (or IterableDataset): image + class id (`label_column`) or image + caption
    (`caption_column`, when given). Images are read undecoded where the column is an `Image` feature."""
    import datasets

    features = dataset.features or {}
    if isinstance(features.get(image_column), datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    for row in dataset:
        image, extension = encoded_image(row[image_column])
        sample = {extension: image}
        if caption_column is not None:
            sample["txt"] = str(row[caption_column])
        else:
            sample["cls"] = int(row[label_column])
        yield sample


def samples_from_caption_folder(folder: str | os.PathLike) -> Iterator[dict]:
    """Samples of a folder of images with captions beside them (`a.jpg` + `a.txt`), sorted by path; images without
    a caption file are passed over (counted by the caller from what is written)."""
    folder = Path(folder)
    for image_path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_FILE_SUFFIXES):
        caption_path = image_path.with_suffix(".txt")
        if not caption_path.is_file():
            continue
        image, extension = encoded_image(image_path)
        yield {extension: image, "txt": caption_path.read_text(encoding="utf-8").strip()}


def write_shards(
    samples: Iterable[dict],
    output_dir: str | os.PathLike,
    *,
    kind: str,
    max_samples: int = 10_000,
    max_bytes: float = 1e9,
    class_names: Sequence[str] | None = None,
    source: str | None = None,
) -> dict:
    """Writes `samples` (dicts of member extension -> content, e.g. {"jpg": bytes, "txt": str}) as shards into
    `output_dir` with `classes.txt` (image-label) and `manifest.json`; returns the manifest.

    Args:
        kind: "image-text" or "image-label".
        max_samples, max_bytes: bounds of a shard (see the module docstring).
        class_names: image-label: the names of class ids 0, 1, ... (written to classes.txt).
        source: where the samples came from, recorded in the manifest.
    """
    import webdataset as wds

    if kind not in ("image-text", "image-label"):
        raise ValueError(f"kind must be 'image-text' or 'image-label', got {kind!r}.")
    if int(max_samples) < 1 or not max_bytes > 0:
        raise ValueError(f"max_samples and max_bytes must be positive, got {max_samples!r} and {max_bytes!r}.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = []
    num_classes = 0

    def finished(path: str) -> None:  # ShardWriter's hook, called as each shard is closed
        for shard in shards:
            if shard["file"] == os.path.basename(path):
                shard["num_bytes"] = os.path.getsize(path)

    with wds.ShardWriter(str(output_dir / "%05d.tar"), maxcount=int(max_samples), maxsize=float(max_bytes),
                         post=finished, verbose=0) as writer:
        for number, sample in enumerate(samples):
            if not shards or writer.count >= writer.maxcount or writer.size >= writer.maxsize:
                shards.append({"file": f"{writer.shard if shards else 0:05d}.tar", "num_samples": 0})
            if "cls" in sample:
                num_classes = max(num_classes, int(sample["cls"]) + 1)
            writer.write({"__key__": f"{number:09d}", **sample})
            shards[-1]["num_samples"] += 1
    if not shards:
        (output_dir / "00000.tar").unlink(missing_ok=True)  # the writer opens its first shard before any sample
        raise ValueError(f"No samples to write into {output_dir}.")
    manifest = {
        "format": "webdataset",
        "kind": kind,
        "num_samples": sum(shard["num_samples"] for shard in shards),
        "shards": shards,
        "created_by": "modeling_unicl.data.write_shards",
    }
    if source is not None:
        manifest["source"] = source
    if kind == "image-label":
        if class_names is None:
            raise ValueError("Image-label shards need their class names (class_names=[...]).")
        if num_classes > len(class_names):
            raise ValueError(f"Class id {num_classes - 1} is outside the {len(class_names)} class names.")
        (output_dir / "classes.txt").write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
        manifest.update(num_classes=len(class_names), class_names_file="classes.txt")
    (output_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
