"""UniCL (Unified Contrastive Learning in Image-Text-Label Space) for transformers.

Importing the package registers UniCL with transformers' Auto classes, so `AutoModel.from_pretrained(folder)`,
`AutoProcessor.from_pretrained(folder)` and `pipeline("zero-shot-image-classification", model=folder)` work
in-process without `trust_remote_code`.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
    AutoTokenizer,
)

from .configuration_unicl import UniCLConfig
from .loss_unicl import clip_loss, gather_features, unicl_loss
from .modeling_unicl import UniCLForImageClassification, UniCLModel, UniCLOutput, UniCLPreTrainedModel
from .processing_unicl import UniCLImageProcessor, UniCLProcessor, UniCLTokenizer, build_clip_tokenizer

AutoConfig.register(UniCLConfig.model_type, UniCLConfig, exist_ok=True)
AutoModel.register(UniCLConfig, UniCLModel, exist_ok=True)
AutoModelForZeroShotImageClassification.register(UniCLConfig, UniCLModel, exist_ok=True)
AutoModelForImageClassification.register(UniCLConfig, UniCLForImageClassification, exist_ok=True)
AutoImageProcessor.register(UniCLConfig, image_processor_classes={"pil": UniCLImageProcessor}, exist_ok=True)
AutoProcessor.register(UniCLConfig, UniCLProcessor, exist_ok=True)
AutoTokenizer.register(UniCLConfig, fast_tokenizer_class=UniCLTokenizer, exist_ok=True)

# Lazily imported: they pull in transformers' Trainer / datasets, which a model-only user does not need.
_LAZY = {
    "UniCLTrainer": "training.trainer",
    "UniCLCollator": "data.collator",
    "build_training_dataset": "data.builder",
    "ZeroShotClassifier": "evaluation",
    "build_class_embeddings": "evaluation",
    "evaluate_zero_shot": "evaluation",
    "IMAGENET_TEMPLATES": "prompts",
    "UNICL_IMAGENET_TEMPLATES": "prompts",
    "IMAGENET_CLASSES": "evaluation.imagenet",
    "IMAGENET_SYNSETS": "evaluation.imagenet",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "UniCLConfig",
    "UniCLForImageClassification",
    "UniCLImageProcessor",
    "UniCLModel",
    "UniCLOutput",
    "UniCLPreTrainedModel",
    "UniCLProcessor",
    "UniCLTokenizer",
    "build_clip_tokenizer",
    "clip_loss",
    "gather_features",
    "unicl_loss",
    *_LAZY,
]
