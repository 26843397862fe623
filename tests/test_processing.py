import importlib.util
import json
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


@pytest.mark.parametrize("kwargs", [{}, {"image_mean": 0.5, "image_std": 0.25}, {"do_rescale": False},
                                    {"rescale_factor": 1 / 127.5}])
def test_rescale_and_normalize_equal_the_pil_backend_bit_for_bit(kwargs):
    """Our one-pass rescale / normalize against the arithmetic of transformers' PIL backend (CLIPImageProcessorPil's
    own methods, the same resize and crop): identical floats, for photos of every pixel value, with other scales and
    a scalar mean / std."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    class BackendArithmetic(UniCLImageProcessor):
        rescale = CLIPImageProcessorPil.rescale
        normalize = CLIPImageProcessorPil.normalize

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((256, 320), (300, 240))]
    images.append(Image.fromarray(np.arange(256 * 224 * 3, dtype=np.uint32).reshape(256, 224, 3).astype(np.uint8)))
    ours = UniCLImageProcessor()(images, return_tensors="pt", **kwargs)["pixel_values"]
    backend = BackendArithmetic()(images, return_tensors="pt", **kwargs)["pixel_values"]
    assert ours.dtype == backend.dtype == torch.float32 and torch.equal(ours, backend)
    assert ours.is_contiguous()


def test_a_mean_of_the_wrong_length_is_a_clear_error():
    image = Image.new("RGB", (64, 64))
    with pytest.raises(ValueError, match=r"image_mean must have one value or one per channel \(3\)"):
        UniCLImageProcessor()(image, image_mean=[0.5, 0.5])


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


# ------------------------------------------------------------------ the original's evaluation transform, exactly
def torchvision_eval_reference(image: Image.Image, crop: int, resize: int | None = None, floor_offsets=False):
    """The original UniCL evaluation transform (microsoft/UniCL `data/build.py`), re-implemented from torchvision's
    source because torchvision cannot be imported beside this CPU torch: `Resize(int(256 / 224 * crop), BICUBIC)`
    on a PIL image, `CenterCrop(crop)`, `ToTensor()`, `Normalize(ImageNet mean, std)`. `floor_offsets` crops at
    transformers' `excess // 2` instead (to show what the test tells apart)."""
    size = int((256 / 224) * crop) if resize is None else resize
    # Resize(int): the shorter side to `size`, the longer to int(size * long / short) (_compute_resized_output_size)
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.BICUBIC)
    # CenterCrop: zero padding (left/top get the smaller half) when the image is smaller, then round() offsets
    width, height = image.size
    if crop > width or crop > height:
        pad_w, pad_h = max(crop - width, 0), max(crop - height, 0)
        padded = Image.new(image.mode, (width + pad_w, height + pad_h))
        padded.paste(image, (pad_w // 2, pad_h // 2))
        image, (width, height) = padded, padded.size
    top, left = int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))
    if floor_offsets:
        top, left = (height - crop) // 2, (width - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    # ToTensor + Normalize (in numpy float32: the same arithmetic, and far cheaper than torch on tiny tensors)
    tensor = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
    return (tensor - mean) / std


def assert_same_pixels(ours, reference, what=""):
    """Equal up to float rounding (1e-5); a one-pixel shift of a noise image differs by more than 0.5."""
    difference = np.abs(np.asarray(ours, dtype=np.float32) - reference).max()
    assert difference < 1e-5, f"{what}: max |difference| {difference}"


def _noise(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _floor_rule_differs(width, height, crop) -> bool:
    """Whether transformers' plain `center_crop` (offset = excess // 2) would cut elsewhere than torchvision."""
    size = int((256 / 224) * crop)
    short, long = sorted((width, height))
    excess = int(size * long / short) - crop
    return excess // 2 != int(round(excess / 2.0))


# widths and heights around both crops: odd and even offsets, portrait and landscape, up- and downscaling, and
# images whose shorter side already has the resize length (torchvision then skips the resize)
SIZES = [(w, 300) for w in range(301, 420, 3)] + [(300, h) for h in range(302, 380, 5)] + [
    (256, 259), (256, 383), (259, 256), (438, 481), (481, 438), (500, 333), (640, 480), (97, 150), (1024, 683),
]


@pytest.mark.parametrize("crop", [224, 384])
def test_processor_crops_and_resizes_as_the_original(crop):
    processor = UniCLImageProcessor.for_crop_size(crop)
    assert processor.size == {"shortest_edge": {224: 256, 384: 438}[crop]}  # int(256 / 224 * crop), not round()
    differing = 0
    for index, (width, height) in enumerate(SIZES):
        image = _noise(width, height, seed=index)
        ours = processor(image, return_tensors="np")["pixel_values"][0]
        assert_same_pixels(ours, torchvision_eval_reference(image, crop), f"{width}x{height} at {crop}")
        differing += _floor_rule_differs(width, height, crop)
    assert differing >= 10  # the sizes where transformers' own rounding would shift the crop by a pixel


def test_a_one_pixel_shift_is_far_beyond_the_tolerance():
    image = _noise(304, 300)  # resized to 259 x 256: 35 pixels to cut, torchvision's left offset 18, floor 17
    assert _floor_rule_differs(304, 300, 224)
    ours = UniCLImageProcessor()(image, return_tensors="np")["pixel_values"][0]
    assert np.abs(ours - torchvision_eval_reference(image, 224, floor_offsets=True)).max() > 0.5
    assert_same_pixels(ours, torchvision_eval_reference(image, 224))


def test_a_processor_saved_before_the_fix_loads_with_the_new_rounding(tmp_path):
    # what the package wrote until this change (resize 256 / crop 224, no exact_original_preprocessing key)
    old = {
        "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
        "image_processor_type": "UniCLImageProcessor", "image_std": [0.229, 0.224, 0.225], "resample": 3,
        "rescale_factor": 1 / 255, "size": {"shortest_edge": 256},
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(old))
    for loaded in (UniCLImageProcessor.from_pretrained(tmp_path), AutoImageProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is UniCLImageProcessor and loaded.exact_original_preprocessing is False
        for width, height in [(259, 256), (300, 309), (304, 300)]:
            assert _floor_rule_differs(width, height, 224)
            image = _noise(width, height)
            assert_same_pixels(loaded(image, return_tensors="np")["pixel_values"][0],
                               torchvision_eval_reference(image, 224), f"{width}x{height}")


def test_center_crop_pads_smaller_images_as_torchvision():
    processor = UniCLImageProcessor(do_resize=False, crop_size={"height": 64, "width": 64})
    for width, height in [(41, 30), (64, 51), (90, 33), (63, 64)]:
        image = _noise(width, height)
        expected = torchvision_eval_reference(image, 64, resize=min(width, height))
        assert_same_pixels(processor(image, return_tensors="np")["pixel_values"][0], expected, f"{width}x{height}")


def _exif_rotated_jpeg(path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    _noise(300, 260).save(path, exif=exif, quality=95)
    return path


def _half_transparent_png(path):
    rgba = np.random.default_rng(3).integers(0, 256, (250, 280, 4), dtype=np.uint8)
    rgba[:, :140, 3] = 0  # the left half transparent, storing random colours
    Image.fromarray(rgba, mode="RGBA").save(path)
    return path


def _original_loader(path):
    """The original's (and torchvision's) image loader: no EXIF rotation, PIL's own conversion (alpha dropped)."""
    return Image.open(path).convert("RGB")


def test_the_two_documented_differences_and_the_switch_that_turns_them_off(tmp_path):
    from PIL import ImageOps

    phone, logo = _exif_rotated_jpeg(tmp_path / "phone.jpg"), _half_transparent_png(tmp_path / "logo.png")
    default, exact = UniCLImageProcessor(), UniCLImageProcessor(exact_original_preprocessing=True)
    for path in (phone, logo):
        original = torchvision_eval_reference(_original_loader(path), 224)
        assert_same_pixels(exact(str(path), return_tensors="np")["pixel_values"][0], original, path.name)
        assert np.abs(default(str(path), return_tensors="np")["pixel_values"][0] - original).max() > 0.5
    # the package's defaults: EXIF orientation applied, alpha composited onto white
    rotated = ImageOps.exif_transpose(Image.open(phone)).convert("RGB")
    assert_same_pixels(default(str(phone), return_tensors="np")["pixel_values"][0],
                       torchvision_eval_reference(rotated, 224), "rotated")
    rgba = Image.open(logo)
    on_white = Image.new("RGB", rgba.size, (255, 255, 255))
    on_white.paste(rgba, mask=rgba.getchannel("A"))
    assert_same_pixels(default(str(logo), return_tensors="np")["pixel_values"][0],
                       torchvision_eval_reference(on_white, 224), "on white")
    # the full processor follows its image processor's switch
    processor = UniCLProcessor(image_processor=exact)
    assert_same_pixels(processor(images=Image.open(logo), return_tensors="np")["pixel_values"][0],
                       torchvision_eval_reference(_original_loader(logo), 224), "processor")


def test_the_switch_is_saved_and_can_be_given_per_call(tmp_path):
    UniCLImageProcessor(exact_original_preprocessing=True).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["exact_original_preprocessing"] is True
    assert AutoImageProcessor.from_pretrained(tmp_path).exact_original_preprocessing is True
    logo = _half_transparent_png(tmp_path / "logo.png")
    per_call = UniCLImageProcessor()(str(logo), exact_original_preprocessing=True, return_tensors="np")
    assert_same_pixels(per_call["pixel_values"][0], torchvision_eval_reference(_original_loader(logo), 224), "per call")
