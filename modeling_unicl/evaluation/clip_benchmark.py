"""CLIP_benchmark's webdataset layout, as its datasets are published on the Hub (`clip-benchmark/wds_*`):

    DIR/test/0.tar, 1.tar, ...    samples `KEY.webp` (or .png / .jpg / .jpeg) + `KEY.cls` (the class id as text)
    DIR/train/*.tar               the same, for a linear probe
    DIR/classnames.txt            one class name per line, line i = class id i
    DIR/zeroshot_classification_templates.txt   one prompt per line, `{c}` where the class name goes

Shards are read with the `webdataset` package (a worker per shard group); images are decoded in the workers.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import IterableDataset

from ..prompts import check_templates
from ..utils.checks import looks_like_local_path
from .loading import preprocess_example

__all__ = ["WebDatasetShards", "WdsFolder", "hub_repo_id", "read_wds_folder", "resolve_wds"]

CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")  # CLIP_benchmark's order: the first one a sample has is its image
HUB_OWNER = "clip-benchmark"


@dataclass
class WdsFolder:
    name: str  # the dataset's name in reports: the folder or Hub repo without its `wds_` prefix
    folder: Path
    split: str
    shards: list[str]
    class_names: list[str]
    templates: tuple[str, ...] | None  # None when the folder has no templates file

    @property
    def classnames_file(self) -> Path:
        return self.folder / CLASSNAMES_FILE


def _shard_order(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.name)  # 2.tar before 10.tar


def _read_templates(path: Path) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:  # CLIP_benchmark writes `{c}` for the class name; `{}` is accepted too
        return check_templates([line.replace("{c}", "{}") for line in lines])
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def read_wds_folder(folder, split: str = "test", name: str | None = None) -> WdsFolder:
    """The shards, class names and templates of a local CLIP_benchmark folder; ValueError naming what is missing.
    `name` defaults to the folder's name without its `wds_` prefix."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise OSError(f"webdataset folder {str(folder)!r} does not exist (or is not a folder).")
    shards = sorted((folder / split).glob("*.tar"), key=_shard_order)
    if not shards:
        raise ValueError(f"{folder / split} has no .tar shards (a CLIP_benchmark dataset has {split}/0.tar, ...).")
    classnames_file = folder / CLASSNAMES_FILE
    if not classnames_file.is_file():
        raise ValueError(f"{classnames_file} is missing: zero-shot classification needs the class names.")
    names = [line.strip() for line in classnames_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{classnames_file} lists no class names.")
    templates = _read_templates(folder / TEMPLATES_FILE)
    name = name or folder.resolve().name.removeprefix("wds_")
    return WdsFolder(name, folder, split, [str(shard) for shard in shards], names, templates)


def hub_repo_id(name: str) -> str:
    """A Hub dataset id for a CLIP_benchmark name: `wds/cars` or `wds/vtab/cifar10` (CLIP_benchmark's spelling) ->
    `clip-benchmark/wds_cars`, `clip-benchmark/wds_vtab-cifar10`; `owner/name` stays as it is."""
    if name.startswith("wds/"):
        return f"{HUB_OWNER}/wds_{name[len('wds/'):].replace('/', '-')}"
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return name
    raise ValueError(
        f"{name!r} is neither a local folder nor a Hub dataset: give a folder, a Hub id such as "
        f"{HUB_OWNER}/wds_cars, or CLIP_benchmark's name wds/cars."
    )


def _download(repo_id: str, split: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            repo_id, repo_type="dataset", allow_patterns=[f"{split}/*", CLASSNAMES_FILE, TEMPLATES_FILE]
        ))
    except Exception as error:  # noqa: BLE001 - offline, unknown or private repo: one clear line
        reason = " ".join(str(error).split())  # one line: the Hub's messages span several
        raise ValueError(f"cannot download the dataset {repo_id!r} from the Hub ({type(error).__name__}: {reason})") from error


def resolve_wds(spec: str, split: str = "test") -> WdsFolder:
    """A local CLIP_benchmark folder, or a Hub dataset downloaded (its `split` shards and text files only) into the
    Hub cache and read from there."""
    clip_benchmark_name = spec.startswith("wds/") and not Path(spec).exists()  # wds/vtab/cifar10 is a name
    if looks_like_local_path(spec) and not clip_benchmark_name:
        return read_wds_folder(spec, split)
    repo_id = hub_repo_id(spec)
    return read_wds_folder(_download(repo_id, split), split, name=repo_id.split("/")[-1].removeprefix("wds_"))


class WebDatasetShards(IterableDataset):
    """Examples of a CLIP_benchmark split, shards split among the DataLoader workers. A sample whose `.cls` is not a
    class id of the folder's class names, and a shard that is not a readable tar file, are `fatal` problems naming
    the file; an unreadable image is a skipped example."""

    def __init__(self, wds: WdsFolder, image_processor):
        self.shards, self.num_classes = wds.shards, len(wds.class_names)
        self.classnames_file = str(wds.classnames_file)
        self.image_processor = image_processor

    def _example(self, sample: dict) -> dict:
        name = f"{sample.get('__url__')}:{sample.get('__key__')}"
        raw_label = sample.get("cls")
        text = raw_label.decode("utf-8", "replace").strip() if isinstance(raw_label, bytes) else None
        if text is None or not text.isdigit() or int(text) >= self.num_classes:
            return {"fatal": (
                f"{sample.get('__url__')}: sample {sample.get('__key__')!r} has class id {text!r}, but "
                f"{self.classnames_file} lists {self.num_classes} classes (ids 0..{self.num_classes - 1})."
            )}
        image_key = next((key for key in IMAGE_KEYS if key in sample), None)
        if image_key is None:
            return {"name": name, "label": int(text), "error": f"no image ({', '.join(IMAGE_KEYS)}) in the sample"}
        return preprocess_example(self.image_processor, sample[image_key], int(text), name)

    def __iter__(self):
        import webdataset

        pipeline = webdataset.DataPipeline(
            webdataset.SimpleShardList(self.shards), webdataset.split_by_worker, webdataset.tarfile_to_samples()
        )
        try:
            for sample in pipeline:
                yield self._example(sample)
        except (tarfile.TarError, OSError) as error:  # webdataset appends the shard's path to the error's arguments
            shard = error.args[-1] if error.args and isinstance(error.args[-1], str) else "a shard"
            yield {"fatal": f"{shard}: not a readable tar shard ({error.args[0] if error.args else error})."}
