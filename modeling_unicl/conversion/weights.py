"""An original state dict -> `UniCLModel` weights, with every problem of the checkpoint listed in one error."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..modeling_unicl import UniCLModel
from .buffers import check_transformers_relative_position_index, verify_swin_buffers
from .config_builder import build_unicl_config
from .errors import ConversionError
from .hyperparameters import check_config_against_weights
from .key_mapping import expected_original_keys, map_original_key

__all__ = ["convert_original_model", "convert_original_state_dict"]


def convert_original_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    node: dict,
    reference: Mapping[str, torch.Tensor] | None = None,
    context: str = "",
) -> dict[str, torch.Tensor]:
    """Maps an original state dict (names as `normalize_original_state_dict` returns them) onto `UniCLModel` names.

    `reference` is the `state_dict()` of the target `UniCLModel` (built from `build_unicl_config` when omitted).
    Raises one `ConversionError` listing every config field the weights contradict, or else every key it cannot map,
    every expected key the checkpoint lacks, every shape mismatch, every wrong deterministic buffer and every target
    weight that would stay uninitialised. `context` (e.g. "checkpoint X with config Y") starts the message."""
    check_config_against_weights(node, state_dict, context)
    if reference is None:
        reference = UniCLModel(build_unicl_config(node, state_dict)).state_dict()
    return _map_checked_state_dict(state_dict, node, reference, context)


def convert_original_model(state_dict: Mapping[str, torch.Tensor], node: dict, context: str = "") -> UniCLModel:
    """A `UniCLModel` (eval mode, fp32) holding the converted weights, loaded with strict checking."""
    check_config_against_weights(node, state_dict, context)
    model = UniCLModel(build_unicl_config(node, state_dict))
    converted = _map_checked_state_dict(state_dict, node, model.state_dict(), context)
    check_transformers_relative_position_index(model, node)
    model.load_state_dict(converted, strict=True)
    model.eval()
    _check_logit_scale_kept(model, state_dict)
    return model


def _check_logit_scale_kept(model: UniCLModel, state_dict: Mapping[str, torch.Tensor]) -> None:
    """The clamp of the forward pass (an upper bound, `logit_scale_max`) must leave the stored multiplier as it is."""
    if "logit_scale" not in state_dict:
        return
    stored = state_dict["logit_scale"].float().reshape(())
    if not torch.equal(model.get_logit_scale().detach(), stored.exp()):
        raise ConversionError(
            f"logit_scale {float(stored):.6f}: exp = {float(stored.exp()):.4f} is changed by UniCLModel's clamp to at "
            f"most logit_scale_max={model.config.logit_scale_max}."
        )


def _map_checked_state_dict(
    state_dict: Mapping[str, torch.Tensor], node: dict, reference: Mapping[str, torch.Tensor], context: str
) -> dict[str, torch.Tensor]:
    """The mapping itself, for a state dict whose hyper-parameters already match `node`."""
    required, optional = expected_original_keys(node)
    present = set(state_dict)
    problems = verify_swin_buffers(state_dict, node) if node["IMAGE_ENCODER"]["TYPE"] == "swin" else []
    converted: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    unmappable = []
    for key in sorted(present & required):
        try:
            mapped = map_original_key(key, state_dict[key], node["IMAGE_ENCODER"]["TYPE"], reference)
        except ConversionError as e:  # a tensor that has the right name but cannot be mapped
            problems.append(f"{key}: {e}")
            continue
        if mapped is None:
            unmappable.append(key)
            continue
        for target, tensor in mapped.items():
            if target in converted:
                problems.append(f"{key} and {source_of[target]} both map to {target}")
            converted[target] = tensor.detach().clone().contiguous()
            source_of[target] = key

    shape_problems = [
        f"{source_of[target]} -> {target}: checkpoint shape {tuple(tensor.shape)}, model expects "
        f"{tuple(reference[target].shape)}"
        for target, tensor in converted.items()
        if target in reference and tuple(reference[target].shape) != tuple(tensor.shape)
    ]
    sections = [
        ("keys the converter cannot map (not part of a UniCL model with this config)",
         sorted(present - required - optional) + unmappable),
        ("keys missing from the checkpoint", sorted(required - present)),
        ("shape mismatches", shape_problems),
        ("other problems", problems),
        ("converted names the model does not have",
         [f"{source_of[t]} -> {t}" for t in sorted(t for t in converted if t not in reference)]),
        ("UniCLModel weights left uninitialised", sorted(t for t in reference if t not in converted)),
    ]
    sections = [(title, items) for title, items in sections if items]
    if sections:
        lines = [f"{context}: cannot convert the checkpoint:" if context else "Cannot convert the checkpoint:"]
        for title, items in sections:
            lines.append(f"  {title} ({len(items)}):")
            lines += [f"    {item}" for item in items]
        raise ConversionError("\n".join(lines))
    return converted
