"""How far the runtimes agree: zero-shot predictions and embeddings of the same images through several models of the
same weights (PyTorch, ONNX Runtime fp32, ONNX Runtime int8), against a reference one.

The figures the README's Deployment section reports: top-1 agreement (the share of images whose predicted class is
the reference's), zero-shot top-1 of each when labels are given, the largest cosine distance between an embedding
and the reference's (images, and the class matrix), and how close the classes are (the top-1 margin)."""

from __future__ import annotations

import time
from typing import Sequence

import torch
import torch.nn.functional as F

from ..evaluation.zero_shot import ZeroShotClassifier
from ..prompts import IMAGENET_TEMPLATES

__all__ = ["compare_backends"]


def _image_embeddings(model, pixel_values: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return F.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output.float(), dim=-1)


def _max_cosine_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((1 - (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)).max())


def compare_backends(
    models: dict,
    processor,
    images: Sequence,
    class_names: Sequence[str],
    labels: Sequence[int] | None = None,
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    batch_size: int = 64,
    reference: str | None = None,
) -> dict:
    """Zero-shot classification of `images` over `class_names` by every model of `models` (name -> model, all of
    the same weights), each with its own class matrix, and every model against `reference` (default: the first).

    Returns `{"num_images", "num_classes", "num_templates", "reference", "models": {name: {"top1"?,
    "class_matrix_s", "median_top1_margin"}}, "vs_reference": {name: {"top1_agreement", "max_cosine_distance_image",
    "max_cosine_distance_class", "max_abs_logit_diff", "top1_difference_points"?}}}`. The margin (median gap between
    the two highest logits) says how much a logit may move before a prediction flips: on random weights the classes
    are nearly tied, so agreement there measures the ties more than the runtime."""
    if not models:
        raise ValueError("compare_backends needs at least one model.")
    reference = next(iter(models)) if reference is None else reference
    if reference not in models:
        raise ValueError(f"reference {reference!r} is not one of the models {list(models)}.")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    classifiers, class_matrix_s = {}, {}
    for name, model in models.items():
        start = time.perf_counter()
        classifiers[name] = ZeroShotClassifier(model, processor, class_names, templates)
        class_matrix_s[name] = time.perf_counter() - start
    embeddings = {name: [] for name in models}
    for start in range(0, len(images), batch_size):
        pixel_values = classifiers[reference].pixel_values(images[start : start + batch_size])  # one preprocessing
        for name, model in models.items():
            embeddings[name].append(_image_embeddings(model, pixel_values))
    logits = {}
    for name, classifier in classifiers.items():
        embeddings[name] = torch.cat(embeddings[name])
        scale = classifier.model.get_logit_scale().float()
        logits[name] = scale * embeddings[name] @ classifier.class_embeddings.t()  # as ZeroShotClassifier.logits
    predictions = {name: value.argmax(-1) for name, value in logits.items()}
    results = {"num_images": len(images), "num_classes": len(class_names), "num_templates": len(templates),
               "reference": reference, "models": {}, "vs_reference": {}}
    for name in models:
        top_two = logits[name].topk(min(2, len(class_names)), dim=-1).values
        results["models"][name] = {"class_matrix_s": class_matrix_s[name],
                                   "median_top1_margin": (top_two[:, 0] - top_two[:, -1]).median().item()}
        if labels is not None:
            correct = predictions[name] == torch.as_tensor(list(labels))
            results["models"][name]["top1"] = correct.float().mean().item()
    for name in models:
        if name == reference:
            continue
        pair = {
            "top1_agreement": (predictions[name] == predictions[reference]).float().mean().item(),
            "max_cosine_distance_image": _max_cosine_distance(embeddings[name], embeddings[reference]),
            "max_cosine_distance_class": _max_cosine_distance(classifiers[name].class_embeddings,
                                                              classifiers[reference].class_embeddings),
            "max_abs_logit_diff": (logits[name] - logits[reference]).abs().max().item(),
        }
        if labels is not None:
            pair["top1_difference_points"] = 100 * (results["models"][name]["top1"]
                                                    - results["models"][reference]["top1"])
        results["vs_reference"][name] = pair
    return results
