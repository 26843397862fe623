"""Evaluation: class embeddings built once, zero-shot classification and top-k accuracy, and the linear probe on
frozen image embeddings. Inference code: it never imports the training data or the trainer (nor `datasets`)."""

from .linear_probe import DEFAULT_L2_GRID, LinearProbeResult, extract_image_embeddings, linear_probe
from .zero_shot import ZeroShotClassifier, build_class_embeddings, evaluate_zero_shot, topk_accuracy

__all__ = [
    "DEFAULT_L2_GRID",
    "LinearProbeResult",
    "ZeroShotClassifier",
    "build_class_embeddings",
    "evaluate_zero_shot",
    "extract_image_embeddings",
    "linear_probe",
    "topk_accuracy",
]
