"""Encoded images in the training transform: a JPEG is decoded at a reduced scale (PIL's `draft`) when the random
crop allows it, with the same crop boxes, flips and random stream as the full-size path; everything else (PNG,
EXIF-rotated JPEGs, small crops, evaluation) is decoded at full size; bad bytes raise the documented error; decoded
PIL images give exactly what they gave before."""

import io
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_processor
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags
from PIL import Image as PILImage

from modeling_unicl.data.examples import ExampleMaker, RandomResizedCropAndFlip, sample_rng
from modeling_unicl.data.sources import UNREADABLE_IMAGE_ERRORS
from modeling_unicl.processing_unicl import UnreadableImageError, to_rgb

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from benchmarks import data_path  # noqa: E402

TEMPLATES = ("a photo of a {}.", "a drawing of a {}.")


def natural_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> PILImage.Image:
    """The data-path benchmark's photograph-like picture (JPEG sizes and decode costs like a photo's), in `mode`."""
    image = data_path.natural_image(width, height, seed)
    return image if mode == "RGB" else image.convert(mode)


def encode(image: PILImage.Image, format: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **({"quality": 90} if format == "JPEG" else {}), **kwargs)
    return buffer.getvalue()


class RecordingCrop(RandomResizedCropAndFlip):
    """Records every crop drawn (full-size coordinates) and the decoded size + box each resize starts from."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drawn, self.resized = [], []

    def get_params(self, width, height, rng):
        params = super().get_params(width, height, rng)
        self.drawn.append(((width, height), params))
        return params

    def _resize_and_flip(self, image, box, rng):
        self.resized.append((image.size, tuple(box)))
        return super()._resize_and_flip(image, box, rng)


def both_paths(data: bytes, seed: int, **crop_kwargs):
    """(drafted crop, full-size crop, their two RecordingCrops), with the same generator seed."""
    drafted, full = RecordingCrop(**crop_kwargs), RecordingCrop(**crop_kwargs)
    rng_drafted, rng_full = np.random.default_rng(seed), np.random.default_rng(seed)
    out_drafted = drafted.from_encoded(data, rng_drafted)
    out_full = full(to_rgb(data), rng_full)
    assert rng_drafted.random() == rng_full.random(), "the two paths consumed different random draws"
    return out_drafted, out_full, drafted, full


def mean_abs_difference(a: PILImage.Image, b: PILImage.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


@pytest.fixture(scope="module")
def photo_jpeg() -> bytes:
    return encode(natural_image(512, 384, seed=3))


# ------------------------------------------------------------------------------------------------ crop boxes
@settings(max_examples=40, deadline=None)
@given(width=st.integers(8, 400), height=st.integers(8, 400), seed=st.integers(0, 2**32 - 1),
       low=st.sampled_from([0.08, 0.5, 1.0]), output=st.sampled_from([8, 16, 24]))
def test_crop_boxes_and_flips_equal_the_full_size_path(width, height, seed, low, output):
    data = encode(PILImage.new("RGB", (width, height), (90, 140, 200)))  # content does not matter here: boxes do
    out_drafted, out_full, drafted, full = both_paths(data, seed, size=output, scale=(low, 1.0))
    assert drafted.drawn == full.drawn == [((width, height), full.drawn[0][1])]
    (decoded_size, box), ((full_size, full_box),) = drafted.resized[0], full.resized
    assert full_size == (width, height)
    reduction = drafted.draft_reduction(*full.drawn[0][1][2:])
    # the box in the drafted image's pixels, scaled back, is the full-size box
    assert decoded_size == (-(-width // reduction), -(-height // reduction))
    assert [value * reduction for value in box] == pytest.approx(full_box, abs=1e-9)
    assert out_drafted.size == out_full.size == (output, output) and out_drafted.mode == "RGB"


def test_draft_reduction_keeps_the_crop_at_least_the_output_size():
    crop = RandomResizedCropAndFlip((32, 48))  # (height, width)
    assert crop.draft_reduction(48 * 8, 32 * 8) == 8
    assert crop.draft_reduction(48 * 8 - 1, 32 * 8) == 4  # one pixel short of 1/8 in width
    assert crop.draft_reduction(48 * 8, 32 * 4 - 1) == 2
    assert crop.draft_reduction(96, 64) == 2 and crop.draft_reduction(95, 1000) == 1
    assert crop.draft_reduction(10, 10) == 1  # a crop smaller than the output is never reduced further


# ------------------------------------------------------------------------------------------------ the decoded scale
def test_draft_is_used_when_the_crop_allows_and_not_when_it_is_small(photo_jpeg):
    whole = RecordingCrop(32, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3), flip_prob=0.0)  # the whole 512 x 384 image
    whole.from_encoded(photo_jpeg, np.random.default_rng(0))
    assert whole.resized[0] == ((64, 48), (0.0, 0.0, 64.0, 48.0))  # 1/8: 384 / 8 = 48 >= 32
    large = RecordingCrop(100, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3))
    large.from_encoded(photo_jpeg, np.random.default_rng(0))
    assert large.resized[0][0] == (256, 192)  # 1/2: 384 / 4 = 96 < 100 <= 384 / 2
    small = RecordingCrop(32, scale=(0.01, 0.01))  # ~51 x 38 px crops: less than twice the output
    small.from_encoded(photo_jpeg, np.random.default_rng(0))
    assert small.resized[0][0] == (512, 384)  # decoded at full size


def test_drafted_crop_is_close_to_the_full_decode(photo_jpeg):
    """Decoding at 1/2..1/8 (libjpeg's scaled IDCT) then a bicubic resize against a bicubic resize of the full decode:
    mean |difference| under 3 of 255 levels per crop (measured 0.4-1.6 on this image), while a crop from elsewhere
    in the image differs by more than 10 (measured 24-36)."""
    reductions = set()
    for output, seed in [(output, seed) for output in (32, 80) for seed in range(8)]:
        out_drafted, out_full, drafted, full = both_paths(photo_jpeg, seed, size=output, scale=(0.08, 1.0))
        reductions.add(drafted.draft_reduction(*full.drawn[0][1][2:]))
        assert mean_abs_difference(out_drafted, out_full) < 3.0, (output, seed)
        other = RandomResizedCropAndFlip(output)(to_rgb(photo_jpeg), np.random.default_rng(seed + 100))
        assert mean_abs_difference(out_drafted, other) > 10.0, (output, seed)
    assert reductions == {1, 2, 4, 8}  # every scale was exercised


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grey_and_cmyk_jpegs_are_drafted_and_become_rgb(mode):
    data = encode(natural_image(256, 192, seed=1, mode=mode))
    out_drafted, out_full, drafted, _ = both_paths(data, 0, size=16, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3))
    assert drafted.resized[0][0] == (32, 24)  # decoded at 1/8
    assert out_drafted.mode == out_full.mode == "RGB"
    assert mean_abs_difference(out_drafted, out_full) < 3.0


# ------------------------------------------------------------------------------------------------ full-size cases
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_jpeg_crops_as_the_full_path(orientation):
    """Orientation 6/8 swap width and height, 3 turns the image: the crop is drawn on the rotated image, as to_rgb
    gives it, so these are decoded at full size and rotated first: bit-identical to the full path."""
    image = natural_image(120, 80, seed=2)
    exif = PILImage.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    data = encode(image, exif=exif.tobytes())
    rotated_size = (80, 120) if orientation in (6, 8) else (120, 80)
    assert to_rgb(data).size == rotated_size
    for seed in range(5):
        out_drafted, out_full, drafted, full = both_paths(data, seed, size=8, scale=(0.5, 1.0))
        assert drafted.drawn[0][0] == rotated_size
        assert np.array_equal(np.asarray(out_drafted), np.asarray(out_full))


def test_png_bytes_are_decoded_at_full_size_and_match_the_decoded_image():
    image = natural_image(96, 64, seed=4)
    for seed in range(5):
        out_bytes, out_full, recorded, _ = both_paths(encode(image, "PNG"), seed, size=8)
        assert recorded.resized[0][0] == (96, 64)
        assert np.array_equal(np.asarray(out_bytes), np.asarray(out_full))


# ------------------------------------------------------------------------------------------------ bad bytes
@pytest.mark.parametrize("cut", ["header", "pixels"])
@pytest.mark.parametrize("scale", [(1.0, 1.0), (0.01, 0.01)])  # drafted / full size
def test_truncated_jpeg_raises_the_documented_error(photo_jpeg, cut, scale):
    data = photo_jpeg[:100] if cut == "header" else photo_jpeg[: len(photo_jpeg) // 2]
    with pytest.raises(UnreadableImageError, match="bytes") as raised:
        RandomResizedCropAndFlip(32, scale=scale).from_encoded(data, np.random.default_rng(0))
    assert isinstance(raised.value, UNREADABLE_IMAGE_ERRORS) and isinstance(raised.value, ValueError)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\xff\xd8\xff" + b"\x00" * 50])
@pytest.mark.parametrize("train", [True, False])
def test_non_image_bytes_raise_through_the_example_maker(data, train):
    augmentation = RandomResizedCropAndFlip(32) if train else None
    maker = ExampleMaker(tiny_processor().image_processor, ["dog"], TEMPLATES, seed=0, augmentation=augmentation)
    with pytest.raises(UNREADABLE_IMAGE_ERRORS):
        maker({"image": data, "caption": "x", "label": -1, "uid": 0}, epoch=0)
    with pytest.raises(UnreadableImageError):
        maker({"image": data, "caption": "x", "label": -1, "uid": 0}, epoch=0)


# ------------------------------------------------------------------------------------------------ ExampleMaker
def reference_example(maker: ExampleMaker, record: dict, epoch: int) -> dict:
    """ExampleMaker as it was before encoded images: the template draw, the crop, the flip, rescale + normalise."""
    rng = sample_rng(maker.seed, epoch, int(record["uid"]))
    template = maker.templates[int(rng.integers(len(maker.templates)))]
    text = record["caption"] if record["caption"] is not None else template.format(maker.class_names[record["label"]])
    crop, image = maker.augmentation, record["image"]
    left, top, crop_w, crop_h = crop.get_params(image.width, image.height, rng)
    out = image.resize((crop.size[1], crop.size[0]), resample=crop.resample,
                       box=(left, top, left + crop_w, top + crop_h))
    if rng.random() < crop.flip_prob:
        out = out.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
    pixels = maker.image_processor(out, do_resize=False, do_center_crop=False, return_tensors="pt")["pixel_values"][0]
    return {"pixel_values": pixels, "text": text, "labels": int(record["label"])}


def test_decoded_images_give_exactly_what_they_gave_before():
    maker = ExampleMaker(tiny_processor().image_processor, ["dog", "cat"], TEMPLATES, seed=7,
                         augmentation=RandomResizedCropAndFlip(32))
    for uid in range(8):
        image = to_rgb(encode(natural_image(70 + 9 * uid, 50 + 5 * uid, seed=uid)))
        record = {"image": image, "caption": None if uid % 2 else f"caption {uid}", "label": uid % 2, "uid": uid}
        for epoch in (0, 3):
            made, expected = maker(record, epoch), reference_example(maker, record, epoch)
            assert torch.equal(made["pixel_values"], expected["pixel_values"])
            assert (made["text"], made["labels"]) == (expected["text"], expected["labels"])


def test_example_maker_takes_encoded_bytes():
    processor = tiny_processor()
    image = natural_image(256, 192, seed=5)
    jpeg, png = encode(image), encode(image, "PNG")
    train = ExampleMaker(processor.image_processor, ["dog"], TEMPLATES, seed=1,
                         augmentation=RandomResizedCropAndFlip(32))
    evaluation = ExampleMaker(processor.image_processor, ["dog"], TEMPLATES, seed=1)
    for uid in range(4):
        records = {kind: {"image": value, "caption": None, "label": 0, "uid": uid}
                   for kind, value in (("decoded", to_rgb(jpeg)), ("jpeg", jpeg), ("png", png),
                                       ("memoryview", memoryview(png)))}
        made = {kind: train(record, epoch=2) for kind, record in records.items()}
        assert len({m["text"] for m in made.values()}) == 1  # the template is drawn first, whatever the image
        assert torch.equal(made["png"]["pixel_values"], made["memoryview"]["pixel_values"])
        assert made["jpeg"]["pixel_values"].shape == (3, 32, 32)
        # normalised values: 3 of 255 levels is ~0.05 after dividing by ImageNet's std (~0.23)
        assert (made["jpeg"]["pixel_values"] - made["decoded"]["pixel_values"]).abs().mean() < 0.05
        assert torch.equal(evaluation(records["jpeg"], 0)["pixel_values"],
                           evaluation(records["decoded"], 0)["pixel_values"])
