"""Evaluation: class embeddings built once (and cached on disk), zero-shot classification with top-k accuracy and
mean per-class recall, ImageNet-1K as the original UniCL evaluates it, CLIP_benchmark's webdatasets, many datasets in
one run, and the linear probe on frozen image embeddings. Inference code: it never imports the training data or the
trainer, nor `datasets` or `webdataset` at import time."""

from .benchmark import EvalSource, evaluate_source, imagenet_source, open_source, results_table, wds_source
from .class_cache import ClassEmbeddingCache
from .imagenet import IMAGENET_CLASSES, IMAGENET_SYNSETS, imagenet_val_files
from .linear_probe import DEFAULT_L2_GRID, LinearProbeResult, extract_image_embeddings, linear_probe
from .metrics import ClassificationCounts
from .zero_shot import ZeroShotClassifier, build_class_embeddings, evaluate_zero_shot, topk_accuracy

__all__ = [
    "DEFAULT_L2_GRID",
    "IMAGENET_CLASSES",
    "IMAGENET_SYNSETS",
    "ClassEmbeddingCache",
    "ClassificationCounts",
    "EvalSource",
    "LinearProbeResult",
    "ZeroShotClassifier",
    "build_class_embeddings",
    "evaluate_source",
    "evaluate_zero_shot",
    "extract_image_embeddings",
    "imagenet_source",
    "imagenet_val_files",
    "linear_probe",
    "open_source",
    "results_table",
    "topk_accuracy",
    "wds_source",
]
