"""The demo's zero-shot classifier: one model and processor, loaded once, and the class matrices of recent label
sets, so asking again with the same labels costs one image forward and no text forward."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import torch
from PIL import Image as PILImage

from ..evaluation import ZeroShotClassifier
from ..processing_unicl import context_length, to_rgb
from ..prompts import SIMPLE_TEMPLATE, UNICL_IMAGENET_TEMPLATES
from .images import read_image_bounded
from .labels import check_prompt_budget, parse_labels

# The page's template choice: UniCL's evaluation ensemble (CLIP's 80 ImageNet prompts and the bare "{}.") or one.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"ensemble": UNICL_IMAGENET_TEMPLATES, "single": (SIMPLE_TEMPLATE,)}
DEFAULT_TEMPLATE_SET = "ensemble"


@dataclass(frozen=True)
class Ranking:
    """Labels sorted by probability (highest first), what was changed in the request, and where the time went."""

    labels: tuple[str, ...]
    probabilities: tuple[float, ...]
    notes: tuple[str, ...]
    num_templates: int
    text_seconds: float | None  # None: the class matrix came from the cache
    image_seconds: float

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.probabilities))


def _template_set(key: str) -> tuple[str, ...]:
    if key not in TEMPLATE_SETS:
        raise ValueError(f"Unknown template choice {key!r}; expected one of {sorted(TEMPLATE_SETS)}.")
    return TEMPLATE_SETS[key]


def labels_cut_by_context(tokenizer, labels, templates) -> list[str]:
    """The labels whose prompt, with some template, has more tokens than the text tower takes (they get truncated)."""
    limit = context_length(tokenizer)
    prompts = [template.format(label) for label in labels for template in templates]
    # one token over the limit is enough to tell, and asking for it keeps transformers' "too long" warning quiet
    lengths = [len(ids) for ids in tokenizer(prompts, truncation=True, max_length=limit + 1)["input_ids"]]
    per_label = len(templates)
    return [label for i, label in enumerate(labels) if max(lengths[i * per_label : (i + 1) * per_label]) > limit]


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class DemoClassifier:
    """Zero-shot classification of one image against free-text labels, with an LRU cache of class matrices keyed by
    (labels, template choice)."""

    def __init__(self, model, processor, cache_size: int = 16):
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size!r}.")
        self.model = model.eval()
        self.processor = processor
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, tuple[ZeroShotClassifier, tuple[str, ...]]] = OrderedDict()

    @classmethod
    def from_pretrained(cls, name_or_path: str, trust_remote_code: bool = False, **kwargs) -> "DemoClassifier":
        """A saved or converted UniCL folder, or a Hub id (`trust_remote_code=True` where `modeling_unicl` is not the
        model's code, e.g. on a Space)."""
        from transformers import AutoModel, AutoProcessor

        model = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        processor = AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        return cls(model, processor, **kwargs)

    def _class_matrix(self, labels: tuple[str, ...], template_key: str):
        """(ZeroShotClassifier, truncation notes, seconds spent on the text side or None on a cache hit)."""
        key = (labels, template_key)
        if key in self._cache:
            self._cache.move_to_end(key)
            classifier, notes = self._cache[key]
            return classifier, notes, None
        templates = _template_set(template_key)
        start = time.perf_counter()
        classifier = ZeroShotClassifier(self.model, self.processor, labels, templates)
        seconds = time.perf_counter() - start
        notes = tuple(
            f"{_shorten(label)!r} is longer than the text tower's {context_length(self.processor.tokenizer)} "
            "tokens (with the template): its end was cut off."
            for label in labels_cut_by_context(self.processor.tokenizer, labels, templates)
        )
        self._cache[key] = (classifier, notes)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return classifier, notes, seconds

    def classify(self, image, labels_text: str, template_key: str = DEFAULT_TEMPLATE_SET) -> Ranking:
        """`image`: a file path (decoded with a size bound) or a PIL image; `labels_text`: comma- or line-separated.

        Raises `ValueError` (with a message for the page) for a missing or unreadable image, too few or too many
        labels, or an unknown template choice."""
        if image is None:
            raise ValueError("No image: upload one, paste one, take one with the webcam, or pick an example below.")
        parsed = parse_labels(labels_text)
        check_prompt_budget(len(parsed.labels), len(_template_set(template_key)))
        rgb = to_rgb(image) if isinstance(image, PILImage.Image) else read_image_bounded(image)
        classifier, truncation_notes, text_seconds = self._class_matrix(parsed.labels, template_key)
        start = time.perf_counter()
        probabilities = classifier.logits(classifier.pixel_values([rgb]))[0].softmax(-1)
        image_seconds = time.perf_counter() - start
        order = torch.argsort(probabilities, descending=True, stable=True).tolist()
        return Ranking(
            labels=tuple(parsed.labels[i] for i in order),
            probabilities=tuple(float(probabilities[i]) for i in order),
            notes=parsed.notes + truncation_notes,
            num_templates=len(classifier.templates),
            text_seconds=text_seconds,
            image_seconds=image_seconds,
        )
