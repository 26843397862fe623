"""Linear probe: a multinomial logistic regression on frozen, L2-normalised UniCL image embeddings.

The paper's linear-probe protocol (as CLIP's) fits a logistic regression on frozen features and picks the L2
regularisation strength on a validation split. Here the regression is fitted with full-batch L-BFGS in torch (no
scikit-learn dependency); features are the projected image embeddings, normalised as in zero-shot classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from .loading import ExampleBatch

DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@torch.no_grad()  # not inference_mode: the probe trains on these tensors with autograd
def extract_image_embeddings(
    model, processor, dataset, image_column: str = "image", batch_size: int = 64
) -> torch.Tensor:
    """L2-normalised image embeddings (N, projection_dim) of every row of an image dataset, in row order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    try:
        for start in range(0, len(dataset), batch_size):
            images = dataset[start : start + batch_size][image_column]
            pixel_values = processor.image_processor(images, return_tensors="pt")["pixel_values"].to(device)
            features = model.get_image_features(pixel_values=pixel_values).pooler_output
            chunks.append(nn.functional.normalize(features.float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks)


@torch.no_grad()
def embed_batches(model, batches: Iterable[ExampleBatch]) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """L2-normalised image embeddings and labels of `ExampleBatch`es (e.g. a CLIP_benchmark split through
    `make_loader`), and the (name, reason) of every image skipped as unreadable."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    features, labels, skipped = [], [], []
    try:
        for batch in batches:
            skipped += batch.skipped
            if batch.names:
                output = model.get_image_features(pixel_values=batch.pixel_values.to(device)).pooler_output
                features.append(nn.functional.normalize(output.float(), dim=-1).cpu())
                labels.append(batch.labels)
    finally:
        model.train(was_training)
    if not features:
        raise ValueError(f"No image could be embedded ({len(skipped)} unreadable, e.g. {skipped[:1]}).")
    return torch.cat(features), torch.cat(labels), skipped


def split_validation(features: torch.Tensor, labels: torch.Tensor, fraction: float, seed: int = 0):
    """A seeded random `fraction` of the rows held out for choosing the L2 strength: (train_x, train_y, val_x,
    val_y)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}.")
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
    held_out = max(1, min(len(features) - 1, round(fraction * len(features))))
    validation, train = order[:held_out], order[held_out:]
    return features[train], labels[train], features[validation], labels[validation]


def _fit_logistic_regression(features, labels, num_classes: int, l2: float, max_iter: int) -> nn.Linear:
    torch.manual_seed(0)
    classifier = nn.Linear(features.shape[1], num_classes)
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.LBFGS(classifier.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(classifier(features), labels) + l2 * classifier.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return classifier


def accuracy(classifier: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (classifier(features).argmax(-1) == labels).float().mean().item()


@dataclass
class LinearProbeResult:
    l2: float
    validation_accuracy: float
    test_accuracy: float | None
    sweep: dict[float, float]  # l2 -> validation accuracy
    classifier: nn.Linear


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    validation_features: torch.Tensor,
    validation_labels: torch.Tensor,
    test_features: torch.Tensor | None = None,
    test_labels: torch.Tensor | None = None,
    num_classes: int | None = None,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
) -> LinearProbeResult:
    """Fits one logistic regression per L2 strength, keeps the best on the validation split, refits it on
    train + validation and reports test top-1 (when a test split is given)."""
    if len(train_features) == 0 or len(validation_features) == 0:
        raise ValueError("linear_probe needs non-empty train and validation splits.")
    if not l2_grid:
        raise ValueError("l2_grid must hold at least one regularisation strength.")
    num_classes = num_classes or int(max(train_labels.max(), validation_labels.max()).item()) + 1
    sweep = {}
    for l2 in l2_grid:
        classifier = _fit_logistic_regression(train_features, train_labels, num_classes, l2, max_iter)
        sweep[float(l2)] = accuracy(classifier, validation_features, validation_labels)
    best_l2 = max(sweep, key=lambda l2: (sweep[l2], l2))  # ties -> the stronger regularisation
    classifier = _fit_logistic_regression(
        torch.cat([train_features, validation_features]), torch.cat([train_labels, validation_labels]),
        num_classes, best_l2, max_iter,
    )
    test_accuracy = None
    if test_features is not None and test_labels is not None:
        test_accuracy = accuracy(classifier, test_features, test_labels)
    return LinearProbeResult(best_l2, sweep[best_l2], test_accuracy, sweep, classifier)


__all__ = [
    "DEFAULT_L2_GRID",
    "LinearProbeResult",
    "embed_batches",
    "extract_image_embeddings",
    "linear_probe",
    "split_validation",
]
