"""Zero-shot evaluation over many datasets in one run, reported as CLIP_benchmark reports it: per dataset top-1,
top-5 and mean per-class recall, and their average over the datasets.

A dataset is an ImageNet validation folder (the original's 1000 class names and 81 templates) or a CLIP_benchmark
webdataset (local folder or Hub name; its own class names and templates). Per dataset: the class matrix comes from
the disk cache or one text pass, then images stream through DataLoader workers in batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch.utils.data import Dataset

from ..prompts import UNICL_IMAGENET_TEMPLATES
from .class_cache import ClassEmbeddingCache
from .clip_benchmark import CLASSNAMES_FILE, WebDatasetShards, resolve_wds
from .imagenet import IMAGENET_CLASSES, imagenet_val_files, looks_like_imagenet_val
from .loading import ImageFiles, iterate_with_progress, make_loader
from .zero_shot import ZeroShotClassifier, classify_batches

__all__ = [
    "EvalSource",
    "average_results",
    "evaluate_source",
    "imagenet_source",
    "open_source",
    "read_benchmark_list",
    "results_table",
    "wds_source",
]

METRICS = ("top1", "top5", "mean_per_class_recall")


@dataclass
class EvalSource:
    name: str
    dataset: Dataset  # yields example dicts (see loading.py)
    class_names: list[str]
    templates: tuple[str, ...]


def imagenet_source(folder, image_processor, templates: Sequence[str] | None = None) -> EvalSource:
    """An ImageNet validation folder, classified over all 1000 classes with UniCL's names and (unless `templates`
    says otherwise) its 81 templates."""
    files, labels = imagenet_val_files(folder)
    templates = tuple(templates) if templates is not None else UNICL_IMAGENET_TEMPLATES
    return EvalSource("imagenet-1k", ImageFiles(files, labels, image_processor), list(IMAGENET_CLASSES), templates)


def wds_source(spec: str, image_processor, split: str = "test", templates: Sequence[str] | None = None) -> EvalSource:
    """A CLIP_benchmark webdataset (folder or Hub name) with its class names and templates (`templates` overrides)."""
    wds = resolve_wds(spec, split)
    templates = tuple(templates) if templates is not None else wds.templates
    if templates is None:
        raise ValueError(
            f"{wds.folder} has no zeroshot_classification_templates.txt; pass templates=[...] to say which to use."
        )
    return EvalSource(wds.name, WebDatasetShards(wds, image_processor), wds.class_names, templates)


def open_source(spec: str, image_processor, split: str = "test", templates: Sequence[str] | None = None) -> EvalSource:
    """One entry of a benchmark list: an ImageNet validation folder (synset folders, or images with a
    LOC_val_solution.csv), else a CLIP_benchmark webdataset folder or Hub name."""
    if looks_like_imagenet_val(spec) and not (Path(spec).expanduser() / CLASSNAMES_FILE).is_file():
        return imagenet_source(spec, image_processor, templates)
    return wds_source(spec, image_processor, split, templates)


def read_benchmark_list(path) -> list[str]:
    """Dataset entries of a benchmark list file: one per line, `#` comments and blank lines ignored. A relative path
    that exists beside the list file is taken from there (the list works from any directory); other entries (Hub
    names, paths from the working directory) stay as written."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise OSError(f"benchmark list {str(path)!r} does not exist.")
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            beside_the_list = path.parent / entry
            entries.append(str(beside_the_list) if beside_the_list.exists() else entry)
    if not entries:
        raise ValueError(f"benchmark list {path} names no dataset (only comments and blank lines).")
    return entries


def evaluate_source(
    model, processor, source: EvalSource, cache: ClassEmbeddingCache | None = None, batch_size: int = 64,
    workers: int = 0,
) -> dict:
    """Zero-shot metrics of one dataset (see `ClassificationCounts.metrics`) plus `templates` and `skipped` (the
    (name, reason) of every unreadable image)."""
    class_embeddings = cache.class_embeddings(source.class_names, source.templates) if cache is not None else None
    classifier = ZeroShotClassifier(
        model, processor, source.class_names, source.templates, class_embeddings=class_embeddings
    )
    batches = iterate_with_progress(make_loader(source.dataset, batch_size, workers), source.name)
    counts, skipped = classify_batches(classifier, batches)
    return {**counts.metrics(), "templates": len(source.templates), "skipped": sorted(skipped)}


def average_results(results: dict[str, dict]) -> dict:
    """The mean of each metric over the datasets that have it (top-5 is absent below 5 classes)."""
    average = {}
    for metric in METRICS:
        values = [result[metric] for result in results.values() if result.get(metric) is not None]
        average[metric] = sum(values) / len(values) if values else None
    return average


def results_table(results: dict[str, dict]) -> str:
    """A Markdown table: one row per dataset, then their average when there is more than one."""

    def cell(value):
        return "n/a" if value is None else f"{100 * value:.2f}"

    lines = [
        "| dataset | classes | images | skipped | top-1 (%) | top-5 (%) | mean per-class recall (%) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        scores = " | ".join(cell(result[metric]) for metric in METRICS)
        lines.append(f"| {name} | {result['num_classes']} | {result['num_samples']} | {len(result['skipped'])} | {scores} |")
    if len(results) > 1:
        scores = " | ".join(cell(value) for value in average_results(results).values())
        lines.append(f"| **average** ({len(results)} datasets) | | | | {scores} |")
    return "\n".join(lines)
