"""Classification metrics: top-k accuracy and mean per-class recall, as running counts over batches.

Mean per-class recall is CLIP_benchmark's `mean_per_class_recall` (scikit-learn's `balanced_accuracy_score` on the
argmax): the mean over the classes that occur among the labels of the fraction of their images predicted right.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["ClassificationCounts", "topk_accuracy"]


def _topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> dict[int, int]:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (num_samples, num_classes), got shape {tuple(logits.shape)}.")
    labels = torch.as_tensor(labels, device=logits.device).long().reshape(-1)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits but {labels.shape[0]} labels.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"labels must lie in 0..{logits.shape[1] - 1} (the logits have {logits.shape[1]} classes), got "
            f"{int(labels.min())}..{int(labels.max())}."
        )
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"k must be >= 1, got {ks}.")
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=-1).indices  # (N, max_k), sorted by score
    hits = top == labels[:, None]
    return {k: int(hits[:, : min(k, logits.shape[1])].any(dim=-1).sum()) for k in ks}


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """`{"top1": ..., "top5": ...}`: the mean over samples of "the label is among the k highest logits" (for k=1
    the accuracy of `evaluate`'s "accuracy" metric on the argmax). k larger than the number of classes is clipped
    to it (so it is 1.0)."""
    if logits.shape[0] == 0:
        raise ValueError("topk_accuracy got no samples.")
    correct = _topk_correct(logits, labels, ks)
    return {f"top{k}": correct[k] / logits.shape[0] for k in correct}


class ClassificationCounts:
    """Counts of a classifier's predictions, updated batch by batch: top-1 / top-5 hits and per-class recall."""

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        self.num_classes = num_classes
        self.num_samples = 0
        self.correct = {1: 0, 5: 0}
        self.images_per_class = torch.zeros(num_classes, dtype=torch.long)
        self.top1_per_class = torch.zeros(num_classes, dtype=torch.long)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        labels = torch.as_tensor(labels).long().reshape(-1).cpu()
        for k, hits in _topk_correct(logits, labels, ks=tuple(self.correct)).items():
            self.correct[k] += hits
        right = logits.argmax(dim=-1).cpu() == labels
        self.images_per_class += torch.bincount(labels, minlength=self.num_classes)
        self.top1_per_class += torch.bincount(labels[right], minlength=self.num_classes)
        self.num_samples += labels.numel()

    def mean_per_class_recall(self) -> float:
        present = self.images_per_class > 0
        recall = self.top1_per_class[present].double() / self.images_per_class[present].double()
        return float(recall.mean())

    def metrics(self) -> dict:
        """CLIP_benchmark's report: `top1`, `top5` (None with fewer than 5 classes, where CLIP_benchmark reports
        NaN), `mean_per_class_recall`, plus `num_samples` and `num_classes`."""
        if self.num_samples == 0:
            raise ValueError("No image was classified (the dataset is empty or every image was unreadable).")
        return {
            "top1": self.correct[1] / self.num_samples,
            "top5": self.correct[5] / self.num_samples if self.num_classes >= 5 else None,
            "mean_per_class_recall": self.mean_per_class_recall(),
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
        }
