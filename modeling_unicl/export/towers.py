"""The two towers as the graphs compute them: `UniCLModel.get_image_features` / `get_text_features` followed by
the L2 normalisation, so that an exported graph hands out the embeddings that `UniCLModel.forward` compares.

Both are built in eval mode and stay there: `torch.onnx.export` restores the mode of the module it was given on every
submodule afterwards, so a wrapper in train mode (`nn.Module`'s default) would leave the model training (drop path
and dropout on) after the export."""

from __future__ import annotations

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """pixel_values (batch, channels, H, W) -> L2-normalised image embeddings (batch, projection_dim)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.model.get_image_features(pixel_values=pixel_values).pooler_output
        return nn.functional.normalize(features, dim=-1)


class TextEncoder(nn.Module):
    """input_ids, attention_mask (batch, length) -> L2-normalised text embeddings (batch, projection_dim).

    The `get_text_features` path, on the tokens as given: `UniCLModel.forward` cuts the padding after the batch's
    last end-of-text token first (`trim_text_padding`), which never changes the pooled feature, so the graph need not."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return nn.functional.normalize(features, dim=-1)
