"""Fine-tuning a UniCL model as an image classifier with the plain transformers `Trainer`.

The classifier (`UniCLForImageClassification`) starts from the class-name text embeddings, so step 0 is zero-shot
classification; training then moves the image tower and the head with cross-entropy. Images are preprocessed on the
fly by `ImageClassificationTransform` (the processor's evaluation transform, no augmentation), which is why the
Trainer needs `remove_unused_columns=False`: the transform reads the image column the model does not take.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..evaluation.zero_shot import build_class_embeddings
from ..modeling_unicl import UniCLForImageClassification, UniCLModel
from ..processing_unicl import to_rgb
from ..prompts import IMAGENET_TEMPLATES

__all__ = ["ImageClassificationTransform", "accuracy_metric", "classifier_from_unicl_model"]


def classifier_from_unicl_model(
    model: UniCLModel, processor, class_names: Sequence[str], templates: Sequence[str] = IMAGENET_TEMPLATES
) -> UniCLForImageClassification:
    """A classifier over `class_names` with `model`'s image tower, its head set to the class embeddings (prompt
    ensembles over `templates`): before any training it predicts what zero-shot classification predicts."""
    embeddings = build_class_embeddings(model, processor, list(class_names), templates)
    return UniCLForImageClassification.from_unicl_model(model, embeddings, list(class_names))


class ImageClassificationTransform:
    """`dataset.with_transform(ImageClassificationTransform(processor))`: rows -> `pixel_values` + `labels`, decoded
    and preprocessed when the Trainer reads them (any image the package reads: PIL, paths, bytes, arrays)."""

    def __init__(self, processor, image_column: str = "image", label_column: str = "label"):
        self.image_processor = getattr(processor, "image_processor", processor)
        self.image_column, self.label_column = image_column, label_column

    def __call__(self, batch: dict) -> dict:
        images = [to_rgb(image) for image in batch[self.image_column]]
        pixel_values = self.image_processor(images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values, "labels": torch.as_tensor(batch[self.label_column], dtype=torch.long)}


def accuracy_metric(prediction) -> dict[str, float]:
    """`compute_metrics` of the Trainer: top-1 accuracy of an `EvalPrediction`."""
    logits, labels = prediction.predictions, prediction.label_ids
    return {"top1": float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())}
