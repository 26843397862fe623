"""Shards: where streamed samples come from, and what one raw sample holds.

Shard lists
    A pattern is a local path or any fsspec URL (`s3://`, `gs://`, `hf://`, `https://`, ...; `pipe:CMD` goes through
    webdataset's `gopen`) with brace ranges (`cc3m/{00000..00331}.tar`, expanded by `braceexpand`) and, optionally,
    glob wildcards (`in1k/*.tar`). Several patterns of one data type form one list, in the order given. Local paths
    are made absolute, so a resumed run started from another directory names every sample the same way.

The webdataset layout (what img2dataset and `scripts/make_shards.py` write)
    `KEY.jpg` / `.jpeg` / `.png` / `.webp`   the image (encoded bytes; decoded in the loader workers)
    `KEY.txt`, or `KEY.json` with a caption field   an image-text sample's caption
    `KEY.cls`, or `KEY.json` with a label field     an image-label sample's class id (line i of the class-name file)
    Tars are read with `webdataset`'s tar iterators (one shard at a time, so that a damaged shard costs only itself).

Datasets streamed by `datasets` (`load_dataset(..., streaming=True)`) are read through the same interface: their
`n_shards` file shards are the shards, a row's key is `"{shard}:{row}"`.

Sample ids
    `sample_uid(source, key)` is a 63-bit id hashed (BLAKE2b) from the shard's URL and the sample key: the same on
    every rank, worker and epoch, unique across shards and datasets. An image-text pair's label is `-(1 + uid)`, a
    class id is >= 0, so they never collide.

Problems (`SampleProblem.kind`, counted per kind by the streaming dataset)
    a sample without image / caption / class id, a class id outside the class-name file, image bytes that do not
    decode, a truncated tar, an unreadable shard (missing, no permission, not a tar).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "HubShards",
    "RawSample",
    "SampleProblem",
    "ShardReadError",
    "TarShards",
    "expand_shard_patterns",
    "sample_uid",
    "worker_shards",
]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")  # the first one a sample has is its image

# problem kinds, as counted and reported
MISSING_IMAGE = "sample without image"
MISSING_CAPTION = "sample without caption"
MISSING_CLASS = "sample without class id"
BAD_CLASS_ID = "class id outside the class-name file"
UNREADABLE_IMAGE = "unreadable image"
TRUNCATED_TAR = "truncated tar"
UNREADABLE_SHARD = "unreadable shard"

_SHARD_ORDER_KEY = 2_000_003  # seeds the per-epoch shard orders apart from every other generator of the run


class SampleProblem(ValueError):
    """A sample that cannot be used: `kind` is one of the problem kinds above, the message says why."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class ShardReadError(RuntimeError):
    """Reading a shard failed after `samples_read` samples (0: the shard could not be read at all)."""

    def __init__(self, shard: str, samples_read: int, error: Exception):
        self.shard, self.samples_read, self.error = shard, samples_read, error
        self.kind = TRUNCATED_TAR if samples_read else UNREADABLE_SHARD
        super().__init__(f"{self.kind} {shard} after {samples_read} sample(s): {type(error).__name__}: {error}")


@dataclass
class RawSample:
    """One sample as read from a shard, not yet decoded. `image` holds encoded bytes (None when the sample has
    none); `caption` / `class_id` are None when absent. `problem` is set when the sample cannot be used."""

    key: str
    shard: str
    image: bytes | None
    caption: str | None = None
    class_id: int | None = None
    problem: SampleProblem | None = None


def sample_uid(source: str, key: str) -> int:
    """A 63-bit id of the sample `key` of `source` (a shard URL): stable across processes and runs."""
    digest = hashlib.blake2b(f"{source}\0{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


# ------------------------------------------------------------------------------------------------ patterns
def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def expand_shard_patterns(patterns: Sequence[str] | str, name: str = "shards") -> list[str]:
    """Every shard named by `patterns` (brace ranges, glob wildcards), in order. A pattern that matches no existing
    shard is a ValueError naming it (`name` is the argument's keyword). For a remote pattern without wildcards only
    its first shard is checked (one request), the others are trusted until read."""
    import braceexpand

    if isinstance(patterns, str):
        patterns = [patterns]
    urls: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValueError(f"{name}: expected shard patterns (paths or URLs), got {pattern!r}.")
        expanded = [_absolute(url) for url in braceexpand.braceexpand(pattern)]
        if any(_has_wildcard(url) for url in expanded):
            expanded = [match for url in expanded for match in _glob(url)]
            existing = expanded
        elif all(_is_local(url) for url in expanded):
            existing = [url for url in expanded if os.path.isfile(url)]
        else:
            existing = expanded if _exists(expanded[0]) else []
        if not existing:
            raise ValueError(f"{name}: the shard pattern {pattern!r} matches no existing file.")
        missing = len(expanded) - len(existing)
        if missing and _is_local(expanded[0]):
            # kept in the list: read as unreadable shards (counted, logged), so the epoch layout stays the same
            # when they reappear
            first = next(url for url in expanded if not os.path.isfile(url))
            logger.warning(
                f"{name}: {missing} of the {len(expanded)} shards of {pattern!r} do not exist (first: {first}); "
                "they will be skipped as unreadable shards."
            )
        urls += expanded
    return urls


def _absolute(url: str) -> str:
    return os.path.abspath(os.path.expanduser(url)) if _is_local(url) else url


def _has_wildcard(url: str) -> bool:
    return any(c in url for c in "*?[")


def _glob(url: str) -> list[str]:
    import fsspec

    fs, _, _ = fsspec.core.get_fs_token_paths(url)
    matches = sorted(fs.glob(url))
    return [m if _is_local(url) else fs.unstrip_protocol(m) for m in matches]


def _exists(url: str) -> bool:
    if url.startswith("pipe:"):
        return True
    import fsspec

    try:
        fs, _, paths = fsspec.core.get_fs_token_paths(url)
        return fs.exists(paths[0])
    except Exception:  # noqa: BLE001 - no credentials, no network, unknown protocol: all "cannot be read"
        return False


def open_shard(url: str):
    """A binary stream of the shard: local files with `open`, `pipe:` through webdataset, the rest with fsspec."""
    if _is_local(url):
        return open(url, "rb")
    if url.startswith("pipe:"):
        from webdataset.gopen import gopen

        return gopen(url, "rb")
    import fsspec

    return fsspec.open(url, "rb").open()


# ------------------------------------------------------------------------------------------ shard sources
class TarShards:
    """Tar shards of one data type in the webdataset layout (see the module docstring).

    Args:
        urls: the shards (`expand_shard_patterns`).
        is_label: image-label shards (a class id per sample) or image-text shards (a caption per sample).
        caption_field, label_field: the field of `KEY.json` that holds the caption / class id, when the sample has
            no `KEY.txt` / `KEY.cls`.
    """

    def __init__(self, urls: Sequence[str], is_label: bool, caption_field: str = "caption", label_field: str = "label"):
        self.urls, self.is_label = list(urls), bool(is_label)
        self.caption_field, self.label_field = caption_field, label_field

    @property
    def num_shards(self) -> int:
        return len(self.urls)

    def shard_name(self, index: int) -> str:
        return self.urls[index]

    def samples(self, index: int) -> Iterator[dict]:
        """The raw samples (member suffix -> bytes, plus `__key__`) of shard `index`, in tar order; a read error
        ends the shard with a `ShardReadError`."""
        from webdataset.handlers import reraise_exception
        from webdataset.tariterators import group_by_keys, tar_file_iterator

        url, read = self.urls[index], 0
        try:
            stream = open_shard(url)
        except Exception as error:  # noqa: BLE001 - missing, no permission, no network: the shard is unreadable
            raise ShardReadError(url, 0, error) from error
        try:
            files = ({**member, "__url__": url} for member in tar_file_iterator(stream, handler=reraise_exception))
            for sample in group_by_keys(files, handler=reraise_exception):
                read += 1
                yield sample
        except Exception as error:  # noqa: BLE001 - tarfile.ReadError, OSError, a duplicate member...
            raise ShardReadError(url, read, error) from error
        finally:
            stream.close()

    def parse(self, index: int, raw: dict) -> RawSample:
        """The sample's image bytes and its caption or class id; `problem` says what is missing or wrong."""
        url, key = self.urls[index], raw["__key__"]
        image = next((raw[ext] for ext in IMAGE_EXTENSIONS if raw.get(ext)), None)
        sample = RawSample(key=key, shard=url, image=image)
        if image is None:
            members = sorted(k for k in raw if not k.startswith("__"))
            expected = "/".join(IMAGE_EXTENSIONS)
            sample.problem = SampleProblem(MISSING_IMAGE, f"no image member ({expected}) among {members}")
            return sample
        try:
            if self.is_label:
                sample.class_id = self._class_id(raw)
            else:
                sample.caption = self._caption(raw)
        except SampleProblem as problem:
            sample.problem = problem
        return sample

    def _json(self, raw: dict) -> dict:
        if "json" not in raw:
            return {}
        try:
            value = json.loads(raw["json"])
        except (ValueError, UnicodeDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def _caption(self, raw: dict) -> str:
        text = None
        if raw.get("txt") is not None:
            text = raw["txt"].decode("utf-8", errors="replace")
        else:
            text = self._json(raw).get(self.caption_field)
        if not isinstance(text, str) or not text.strip():
            raise SampleProblem(MISSING_CAPTION, f"no caption (.txt, or {self.caption_field!r} in .json)")
        return text.strip()

    def _class_id(self, raw: dict) -> int:
        value = None
        if raw.get("cls") is not None:
            value = raw["cls"].decode("utf-8", errors="replace").strip()
        else:
            value = self._json(raw).get(self.label_field)
        try:
            return _as_class_id(value)
        except ValueError:
            raise SampleProblem(
                MISSING_CLASS, f"no class id (.cls, or {self.label_field!r} in .json), got {value!r}"
            ) from None


def _as_class_id(value) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(value)


class HubShards:
    """A `datasets.IterableDataset` (Hub or local, `streaming=True`) read as shards: its `n_shards` file shards.

    Args:
        dataset: the iterable dataset.
        name: names its samples (`sample_uid(f"{name}/{shard}", row)`): the Hub id or path it was loaded from.
        is_label: image-label rows (`label_column`: class ids) or image-text rows (`caption_column`: captions).
    """

    def __init__(self, dataset, name: str, is_label: bool, image_column: str = "image", caption_column: str = "caption",
                 label_column: str = "label"):
        import datasets

        if not isinstance(dataset, datasets.IterableDataset):
            raise ValueError(f"HubShards takes a datasets.IterableDataset, got {type(dataset).__name__}.")
        features = dataset.features
        wanted = [image_column, label_column if is_label else caption_column]
        if features is not None:
            missing = [c for c in wanted if c not in features]
            if missing:
                raise ValueError(
                    f"Streamed dataset {name!r} has no column(s) {missing}; its columns are {list(features)}."
                )
            if isinstance(features[image_column], datasets.Image):
                dataset = dataset.cast_column(image_column, datasets.Image(decode=False))  # decoded by the workers
        self.dataset, self.name, self.is_label = dataset.select_columns(wanted), str(name), bool(is_label)
        self.image_column, self.caption_column, self.label_column = image_column, caption_column, label_column

    @property
    def num_shards(self) -> int:
        return int(self.dataset.n_shards)

    def shard_name(self, index: int) -> str:
        return f"{self.name}/{index}"

    def samples(self, index: int) -> Iterator[dict]:
        shard = self.dataset.shard(num_shards=self.num_shards, index=index, contiguous=True)
        read = 0
        try:
            # `iter` (not `__iter__`, which in a dataloader worker reads only that worker's part of the shards): the
            # reader slots already decide who reads which shard
            for batch in shard.iter(batch_size=64):
                columns = list(batch)
                for values in zip(*(batch[column] for column in columns)):
                    yield {"__key__": str(read), **dict(zip(columns, values))}
                    read += 1
        except Exception as error:  # noqa: BLE001 - a broken file of the dataset: the rest of the shard is skipped
            raise ShardReadError(self.shard_name(index), read, error) from error

    def parse(self, index: int, raw: dict) -> RawSample:
        image = _image_bytes(raw.get(self.image_column))
        sample = RawSample(key=raw["__key__"], shard=self.shard_name(index), image=image)
        if image is None:
            sample.problem = SampleProblem(MISSING_IMAGE, f"no image in column {self.image_column!r}")
        elif self.is_label:
            try:
                sample.class_id = _as_class_id(raw.get(self.label_column))
            except ValueError:
                sample.problem = SampleProblem(MISSING_CLASS, f"no class id in column {self.label_column!r}")
        else:
            caption = raw.get(self.caption_column)
            if not isinstance(caption, str) or not caption.strip():
                sample.problem = SampleProblem(MISSING_CAPTION, f"no caption in column {self.caption_column!r}")
            else:
                sample.caption = caption.strip()
        return sample


def _image_bytes(value) -> bytes | None:
    """Encoded bytes of an undecoded `datasets` image entry ({"bytes", "path"}), raw bytes, or a PIL image."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        path = value.get("path")
        if path and os.path.isfile(path):
            with open(path, "rb") as file:
                return file.read()
        return None
    if hasattr(value, "save"):  # a decoded PIL image (an IterableDataset that decodes): encode it losslessly
        import io

        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    return None


# ------------------------------------------------------------------------------------------- worker shares
def worker_shards(
    num_shards: int, slot: int, num_slots: int, seed: int, group: int, epoch: int
) -> list[tuple[int, int, int]]:
    """The shards that reader `slot` (of `num_slots` = ranks x dataloader workers) reads in `epoch`, as
    (shard index, stride, phase): it takes the samples whose index in the shard is `phase` modulo `stride`.

    The shards are shuffled per (seed, group, epoch). With at least as many shards as readers, reader s takes every
    `num_slots`-th shard of that order from position s (stride 1). With fewer shards, several readers share a shard
    and split its samples by index. Either way the readers' shares partition the samples: each is read exactly once
    per epoch."""
    order = np.random.default_rng([int(seed), _SHARD_ORDER_KEY, int(group), int(epoch)]).permutation(num_shards)
    if num_shards >= num_slots:
        return [(int(order[j]), 1, 0) for j in range(slot, num_shards, num_slots)]
    position = slot % num_shards
    sharing = len(range(position, num_slots, num_shards))
    return [(int(order[position]), sharing, slot // num_shards)]
