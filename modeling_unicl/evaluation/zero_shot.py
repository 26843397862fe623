"""Zero-shot classification with a UniCL model: class names x prompt templates -> one text embedding per class.

The class matrix is computed once (`build_class_embeddings`: every prompt embedded and L2-normalised, the mean
over a class's templates renormalised, as CLIP's and UniCL's prompt ensembles); classifying a batch of images is
then one image forward and one matmul, scaled by the model's (clamped) logit scale.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from ..processing_unicl import context_length
from ..prompts import IMAGENET_TEMPLATES, check_templates
from ..utils.checks import validate_image_label_dataset
from .loading import DatasetRows, ExampleBatch, iterate_with_progress, make_loader
from .metrics import ClassificationCounts, _topk_correct, topk_accuracy

__all__ = [
    "ZeroShotClassifier",
    "build_class_embeddings",
    "classify_batches",
    "evaluate_zero_shot",
    "topk_accuracy",
]


def _tokenizer_of(processor_or_tokenizer):
    return getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


class _EvalMode:
    """Puts a module in eval mode for the block and restores its previous mode."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def build_class_embeddings(
    model,
    tokenizer,
    class_names: Sequence[str],
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    batch_size: int = 256,
) -> torch.Tensor:
    """(num_classes, projection_dim) L2-normalised class embeddings from prompt ensembles.

    All `len(class_names) * len(templates)` prompts go through the text tower in batches of `batch_size` under
    `torch.inference_mode` (model in eval mode); each prompt embedding is L2-normalised, averaged over the templates
    of its class and the mean is renormalised. `tokenizer` may be a processor with a `.tokenizer`.

    Prompts are batched in order of token length, so a batch is padded to about its own length rather than to the
    longest template of its classes (80 templates run 3 to 13 words); the embeddings come back in prompt order."""
    class_names = list(class_names)
    if not class_names:
        raise ValueError("class_names is empty: zero-shot classification needs at least one class.")
    bad = [name for name in class_names if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ValueError(f"Class names must be non-empty strings, got {bad[:5]!r}.")
    templates = check_templates(templates)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
    tokenizer = _tokenizer_of(tokenizer)
    prompts = [template.format(name) for name in class_names for template in templates]
    tokens = tokenizer(prompts, truncation=True, max_length=context_length(tokenizer))
    order = sorted(range(len(prompts)), key=lambda i: len(tokens["input_ids"][i]))  # stable: ties keep prompt order
    device = _model_device(model)
    chunks = []
    with _EvalMode(model), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad(
                {key: [tokens[key][i] for i in rows] for key in ("input_ids", "attention_mask")},
                padding="longest",
                return_tensors="pt",
            )
            features = model.get_text_features(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).pooler_output
            chunks.append(F.normalize(features.float(), dim=-1))
    back_to_prompt_order = torch.tensor(order, device=chunks[0].device).argsort()
    prompt_embeddings = torch.cat(chunks)[back_to_prompt_order]
    embeddings = prompt_embeddings.reshape(len(class_names), len(templates), -1).mean(dim=1)
    return F.normalize(embeddings, dim=-1)


class ZeroShotClassifier:
    """Zero-shot classifier over `class_names`: the text side is computed once, at construction (or given as
    `class_embeddings`, e.g. from a `ClassEmbeddingCache`, and then not computed at all).

    `logits(pixel_values)` = `logit_scale * normalize(image_features) @ class_embeddings.T`, shape
    (batch, num_classes); one image forward, no text forward."""

    def __init__(
        self,
        model,
        processor,
        class_names: Sequence[str],
        templates: Sequence[str] = IMAGENET_TEMPLATES,
        batch_size: int = 256,
        class_embeddings: torch.Tensor | None = None,
    ):
        self.model = model
        self.processor = processor
        self.class_names = list(class_names)
        self.templates = check_templates(templates)
        if class_embeddings is None:
            class_embeddings = build_class_embeddings(model, processor, self.class_names, self.templates, batch_size)
        elif class_embeddings.ndim != 2 or class_embeddings.shape[0] != len(self.class_names):
            raise ValueError(
                f"class_embeddings must be ({len(self.class_names)}, projection_dim), one row per class name; got "
                f"shape {tuple(class_embeddings.shape)}."
            )
        self.class_embeddings = class_embeddings

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        model = self.model
        device = _model_device(model)
        with _EvalMode(model), torch.inference_mode():
            features = model.get_image_features(pixel_values=pixel_values.to(device)).pooler_output
            image_embeds = F.normalize(features.float(), dim=-1)
            scale = model.get_logit_scale().float() if hasattr(model, "get_logit_scale") else 1.0
            class_embeddings = self.class_embeddings.to(image_embeds.device)
            return scale * image_embeds @ class_embeddings.t()

    __call__ = logits

    def predict(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class index per image."""
        return self.logits(pixel_values).argmax(dim=-1)

    def pixel_values(self, images) -> torch.Tensor:
        """Images (PIL, any mode, paths, bytes) -> pixel_values with the processor's evaluation transform."""
        return self.processor.image_processor(list(images), return_tensors="pt")["pixel_values"]


def classify_batches(
    classifier: ZeroShotClassifier, batches: Iterable[ExampleBatch]
) -> tuple[ClassificationCounts, list[tuple[str, str]]]:
    """Counts of the classifier's predictions over `ExampleBatch`es, and the (name, reason) of every image skipped
    as unreadable."""
    counts, skipped = ClassificationCounts(classifier.num_classes), []
    for batch in batches:
        skipped += batch.skipped
        if batch.names:
            counts.update(classifier.logits(batch.pixel_values), batch.labels)
    return counts, skipped


def zero_shot_counts(
    classifier: ZeroShotClassifier,
    dataset,
    image_column: str = "image",
    label_column: str = "label",
    batch_size: int = 64,
    ks: Sequence[int] = (1, 5),
) -> tuple[dict[int, int], int]:
    """Correct predictions per k and the number of samples of `dataset` (decoded batch by batch, never all at once)."""
    totals = {int(k): 0 for k in ks}
    num_samples = 0
    columns = dataset.select_columns([image_column, label_column]).with_format(None)
    for start in range(0, len(columns), batch_size):
        batch = columns[start : start + batch_size]
        pixel_values = classifier.pixel_values(batch[image_column])
        labels = torch.as_tensor(batch[label_column], dtype=torch.long)
        logits = classifier.logits(pixel_values)
        for k, value in _topk_correct(logits, labels, ks).items():
            totals[k] += value
        num_samples += labels.shape[0]
    return totals, num_samples


def evaluate_zero_shot(
    model,
    processor,
    dataset,
    image_column: str = "image",
    label_column: str = "label",
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    batch_size: int = 64,
    text_batch_size: int = 256,
    num_workers: int = 0,
    class_embeddings: torch.Tensor | None = None,
) -> dict:
    """Zero-shot top-1 / top-5 accuracy and mean per-class recall of `model` on an image-label `datasets.Dataset`.

    Class names come from the label column's `ClassLabel` feature unless `class_names` is given. Images are decoded
    and preprocessed in `num_workers` DataLoader workers; an unreadable image is skipped and reported. Returns
    `{"top1", "top5", "mean_per_class_recall", "num_samples", "skipped"}` (top-5 with k clipped to the number of
    classes, as `topk_accuracy`; `skipped`: (name, reason) pairs)."""
    names = validate_image_label_dataset(dataset, image_column, label_column, class_names)
    classifier = ZeroShotClassifier(
        model, processor, names, templates, batch_size=text_batch_size, class_embeddings=class_embeddings
    )
    rows = DatasetRows(dataset, image_column, label_column, processor.image_processor)
    batches = iterate_with_progress(make_loader(rows, batch_size, num_workers), "zero-shot")
    counts, skipped = classify_batches(classifier, batches)
    if counts.num_samples == 0:
        raise ValueError(f"No image of the dataset could be read ({len(skipped)} skipped, e.g. {skipped[:1]}).")
    return {
        "top1": counts.correct[1] / counts.num_samples,
        "top5": counts.correct[5] / counts.num_samples,
        "mean_per_class_recall": counts.mean_per_class_recall(),
        "num_samples": counts.num_samples,
        "skipped": skipped,
    }
