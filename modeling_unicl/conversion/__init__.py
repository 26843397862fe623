"""Conversion of original UniCL checkpoints (microsoft/UniCL) to the transformers-native `UniCLModel`.

The original model is `UniCLModel` of microsoft/UniCL: `image_encoder` (its own Swin Transformer, or its FocalNet
class), `text_encoder` (CLIP-style causal transformer), `image_projection` / `text_projection` (`[in, out]` matrices)
and `logit_scale`. This package maps every tensor of such a checkpoint onto `UniCLModel` (SwinModel / FocalNetModel +
CLIPTextModel + two bias-free `nn.Linear`), checks that nothing is left over or left uninitialised, and writes a
complete, loadable folder (weights, config with `auto_map`, remote code, processor, model card) atomically.

One module per job, in the order the conversion runs:

- `original_config`: `load_original_config(config)`: a preset name (`PRESETS`, derived from `modeling_unicl.presets`
  by `original_node_from_preset`), an original (yacs) YAML file or a dict -> the validated `MODEL` node.
- `checkpoint`: `load_original_checkpoint(path)` (`weights_only=True`, every layout the original reads) and
  `normalize_original_state_dict(obj)` for an object already in memory.
- `hyperparameters`: `infer_hyperparameters(state_dict)` (a `WeightHyperparameters`) and
  `check_config_against_weights(node, state_dict)`.
- `buffers`: the Swin relative position index and attention mask formulas the stored buffers are checked against.
- `key_mapping`: the table of original names -> `UniCLModel` names, and `expected_original_keys(node)`.
- `config_builder`: `build_unicl_config(node, state_dict=None)` and `build_processor(node)`.
- `weights`: `convert_original_state_dict(state_dict, node)` and `convert_original_model(state_dict, node)`.
- `model_card`: the model cards (template and released-checkpoint facts ship as package data).
- `writing`: the atomic folder write and its reload check.
- `convert`: `convert_unicl_checkpoint(checkpoint, config, output_dir, ...)`, the whole conversion, as
  `scripts/convert_unicl_original_to_hf.py` runs it.

Every failure caused by the input is a `ConversionError` (a `ValueError`) with a message naming the culprit.
"""

from .buffers import swin_attention_mask, swin_relative_position_index
from .checkpoint import load_original_checkpoint, normalize_original_state_dict
from .config_builder import build_processor, build_unicl_config
from .convert import convert_unicl_checkpoint
from .errors import ConversionError
from .hyperparameters import Finding, WeightHyperparameters, check_config_against_weights, infer_hyperparameters
from .key_mapping import expected_original_keys
from .original_config import PRESETS, load_original_config, original_node_from_preset
from .weights import convert_original_model, convert_original_state_dict

__all__ = [
    "ConversionError",
    "Finding",
    "PRESETS",
    "WeightHyperparameters",
    "build_processor",
    "build_unicl_config",
    "check_config_against_weights",
    "convert_original_model",
    "convert_original_state_dict",
    "convert_unicl_checkpoint",
    "expected_original_keys",
    "infer_hyperparameters",
    "load_original_checkpoint",
    "load_original_config",
    "normalize_original_state_dict",
    "original_node_from_preset",
    "swin_attention_mask",
    "swin_relative_position_index",
]
