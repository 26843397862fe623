"""`UniCLCollator`: training examples -> a batch for `UniCLModel`."""

from __future__ import annotations

from typing import Sequence

import torch

from ..processing_unicl import context_length, to_rgb

__all__ = ["UniCLCollator"]


class UniCLCollator:
    """Samples -> a batch for `UniCLModel`: `pixel_values` (B, 3, H, W) float, `input_ids` / `attention_mask`
    (B, L) padded to the longest text of the batch (CLIP's text tower pools at the first end-of-text token, so the
    pad length does not change the result), `labels` (B,) int64.

    A sample has `pixel_values` (or a PIL `image`, run through the image processor), `text` (or `input_ids`) and
    `labels` (or `label`). Either every sample of a batch has a label or none has (then there are no `labels` and
    the model's loss is CLIP's: each pair its own positive).

    Args:
        processor: a `UniCLProcessor` (or a tokenizer alone, for samples that carry `pixel_values`).
        max_length: texts are cut to this many tokens; default the tokenizer's `model_max_length`, or 77.
    """

    def __init__(self, processor, max_length: int | None = None):
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.image_processor = getattr(processor, "image_processor", None)
        self.max_length = context_length(self.tokenizer) if max_length is None else int(max_length)

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("UniCLCollator got an empty batch.")
        batch = {"pixel_values": self._pixel_values(features), **self._tokens(features)}
        labels = self._labels(features)
        if labels is not None:
            batch["labels"] = labels
        return batch

    def _pixel_values(self, features: Sequence[dict]) -> torch.Tensor:
        if all("pixel_values" in f for f in features):
            return torch.stack([torch.as_tensor(f["pixel_values"], dtype=torch.float32) for f in features])
        if all("image" in f for f in features):
            if self.image_processor is None:
                raise ValueError("Samples carry images but the collator has no image processor: pass a UniCLProcessor.")
            images = [to_rgb(f["image"]) for f in features]
            return self.image_processor(images, return_tensors="pt")["pixel_values"]
        raise ValueError(f"Every sample needs 'pixel_values' (or 'image'); got keys {sorted(features[0])}.")

    def _tokens(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if all("text" in f for f in features):
            texts = [f["text"] for f in features]
            bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
            if bad:
                raise ValueError(f"Samples {bad[:10]} of the batch have no text (None or empty).")
            tokens = self.tokenizer(
                texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
            )
        elif all("input_ids" in f for f in features):
            tokens = self.tokenizer.pad(
                {"input_ids": [list(f["input_ids"]) for f in features]}, padding="longest", return_tensors="pt"
            )
        else:
            raise ValueError(f"Every sample needs 'text' (or 'input_ids'); got keys {sorted(features[0])}.")
        return {"input_ids": tokens["input_ids"].long(), "attention_mask": tokens["attention_mask"].long()}

    @staticmethod
    def _labels(features: Sequence[dict]) -> torch.Tensor | None:
        labels = [f.get("labels", f.get("label")) for f in features]
        missing = [i for i, label in enumerate(labels) if label is None]
        if missing and len(missing) < len(labels):
            raise ValueError(
                f"{len(missing)} of the {len(labels)} samples in this batch have no label (None), at positions "
                f"{missing[:10]}: give every sample a label (class id >= 0, or a unique negative id for an "
                "image-text pair) or none of them."
            )
        return None if missing else torch.as_tensor([int(label) for label in labels], dtype=torch.int64)
