import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

from modeling_unicl import UniCLImageProcessor, UniCLProcessor, build_clip_tokenizer


def _openai_reference_tokenizer():
    """OpenAI's own `SimpleTokenizer` (from the clip-anytorch wheel, installed with --no-deps by .ci/run), loaded
    from its file so that the package `__init__` (which needs torchvision) is not imported."""
    spec = importlib.util.find_spec("clip")
    assert spec is not None, "install the reference: pip install --no-deps clip-anytorch==2.6.0 ftfy regex"
    path = Path(spec.submodule_search_locations[0]) / "simple_tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_openai_simple_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def reference():
    return _openai_reference_tokenizer()


# Strings on which OpenAI's text cleaning (ftfy, html.unescape, whitespace) is a no-op, so ids must be identical.
MATCHING_STRINGS = [
    "a photo of a tench.",
    "A Photo Of A CAT!!",
    "",
    "   leading and trailing   spaces   ",
    "numbers 1234567 and 3.14159, dates 2022-06-19",
    "punctuation: (brackets) [square] {curly} <angle> ?!;:'\"",
    "it's a dog's life, isn't it? we'll see",
    "unicode: café naïve Zürich São Paulo",
    "emoji 🐶🐱 and symbols ©®™ €",
    "日本語のテキスト 中文 한국어",
    "Ελληνικά и русский текст",
    "hyphen-ated words and under_scores and CamelCaseWords",
    "tabs\tand\nnewlines",
    "a very " + "long " * 100 + "caption",
]


@pytest.mark.parametrize("text", MATCHING_STRINGS)
def test_tokenization_matches_openai_reference(tokenizer, reference, text):
    expected = [49406] + reference.encode(text)[:75] + [49407]  # OpenAI's `clip.tokenize` truncation
    ids = tokenizer(text, truncation=True, max_length=77)["input_ids"]
    assert ids == expected


def test_truncation_keeps_the_end_token(tokenizer):
    ids = tokenizer("word " * 200, truncation=True)["input_ids"]
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407


def test_padding_token_is_end_of_text(tokenizer):
    batch = tokenizer(["a cat", "a much longer caption of a dog"], padding=True)
    assert tokenizer.pad_token_id == 49407
    short = batch["input_ids"][0]
    assert short[-1] == 49407 and batch["attention_mask"][0][-1] == 0
    assert tokenizer.model_max_length == 77


def test_documented_cleaning_difference(tokenizer, reference):
    # OpenAI's reference unescapes HTML (and runs ftfy); the transformers tokenizer does not (README: Tokenizer).
    text = "fish &amp; chips"
    assert [49406] + reference.encode(text) + [49407] != tokenizer(text)["input_ids"]
    assert [49406] + reference.encode("fish & chips") + [49407] == tokenizer("fish & chips")["input_ids"]


def test_vocabulary_size(tokenizer):
    assert len(tokenizer) == 49408
    assert tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [49406, 49407]


def test_image_processor_defaults_are_unicl_evaluation():
    processor = UniCLImageProcessor()
    assert processor.size == {"shortest_edge": 256}
    assert processor.crop_size == {"height": 224, "width": 224}
    assert list(processor.image_mean) == [0.485, 0.456, 0.406]
    assert list(processor.image_std) == [0.229, 0.224, 0.225]
    assert int(processor.resample) == 3  # bicubic


def test_image_processor_numerics():
    # a flat grey image: after resize/crop every pixel is (v/255 - mean) / std
    image = Image.new("RGB", (300, 260), (128, 64, 200))
    pixel_values = UniCLImageProcessor()(image, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 224, 224)
    expected = (torch.tensor([128, 64, 200]) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor(
        [0.229, 0.224, 0.225]
    )
    torch.testing.assert_close(pixel_values[0, :, 100, 100], expected, atol=1e-5, rtol=1e-5)


def test_processor_needs_no_arguments_and_no_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    processor = UniCLProcessor()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    batch = processor(images=[image, image], text=["a cat", "two dogs on grass"], return_tensors="pt")
    assert batch["pixel_values"].shape == (2, 3, 224, 224)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[0] == 2


def test_processor_without_inputs_is_a_clear_error():
    with pytest.raises(ValueError, match="needs `images`, `text` or both"):
        UniCLProcessor()()


def test_processor_round_trip_keeps_pil_backend(tmp_path):
    processor = UniCLProcessor()
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, UniCLProcessor)
    assert type(reloaded.image_processor) is UniCLImageProcessor
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is UniCLImageProcessor
    assert AutoTokenizer.from_pretrained(tmp_path)("a photo of a cat.")["input_ids"] == processor.tokenizer(
        "a photo of a cat."
    )["input_ids"]
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    torch.testing.assert_close(
        reloaded(images=image, return_tensors="pt")["pixel_values"],
        processor(images=image, return_tensors="pt")["pixel_values"],
        atol=0,
        rtol=0,
    )
