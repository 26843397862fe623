"""UniCL processor: an image processor pinned to the PIL backend and CLIP's BPE tokenizer, built offline."""

import gzip
import io
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps
from transformers import CLIPTokenizer, ProcessorMixin
from transformers.image_utils import PILImageResampling
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.processing_utils import ImagesKwargs
from transformers.utils import logging as hf_logging

# OpenAI's CLIP BPE merges (MIT, see LICENSE_CLIP_BPE.txt), shipped as package data.
BPE_VOCAB_FILE = Path(__file__).resolve().parent / "bpe_simple_vocab_16e6.txt.gz"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CONTEXT_LENGTH = 77

logger = hf_logging.get_logger(__name__)


# ------------------------------------------------------------------------------------------- image conversion
# The one place where "an image as it comes" becomes 8-bit RGB: the processor, the image processor, the training
# data and the zero-shot helpers all go through `to_rgb`. It lives here (not in the data package) because a saved model
# folder copies this file and it must not import `datasets`.
_EXIF_ORIENTATION = 0x0112
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, IndexError, PILImage.DecompressionBombError)


class UnreadableImageError(ValueError):
    """An input that cannot be read as an image: a missing file, bytes that are not an image, a truncated or
    corrupt file, or an array / tensor whose shape or dtype is not an image's. The message names the problem (and the
    file when there is one)."""


def _describe(value: Any) -> str:
    if isinstance(value, (str, os.PathLike)):
        return f"file {os.fspath(value)!r}"
    name = getattr(value, "filename", None)
    if name:
        return f"file {name!r}"
    return "an in-memory image" if isinstance(value, PILImage.Image) else f"a {type(value).__name__}"


def _open_bytes(data: bytes, where: str) -> PILImage.Image:
    try:
        image = PILImage.open(io.BytesIO(data))
    except (PILImage.UnidentifiedImageError, *_DECODE_ERRORS) as error:
        head = bytes(data[:8])
        raise UnreadableImageError(
            f"{where} ({len(data)} bytes, starting {head!r}) is not a readable image: {error}"
        ) from error
    return image


def _open_path(path) -> PILImage.Image:
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if path.startswith(("http://", "https://")):
        from transformers.image_utils import load_image as _load_url

        return _load_url(path)
    if not os.path.exists(path):
        raise UnreadableImageError(f"Image file {path!r} does not exist.")
    if os.path.isdir(path):
        raise UnreadableImageError(f"Image path {path!r} is a directory, not an image file.")
    try:
        return PILImage.open(path)
    except (PILImage.UnidentifiedImageError, *_DECODE_ERRORS) as error:
        raise UnreadableImageError(f"Image file {path!r} is not a readable image: {error}") from error


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """Any numeric array -> uint8: uint8 as is; bool -> 0/255; floats in [0, 1] x255, other floats clipped to
    0..255 (NaN / inf -> 0); 16-bit -> /257; other integers as is when in 0..255, else clipped to 0..65535 / 257."""
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "b":
        return array.astype(np.uint8) * 255
    if kind == "f":
        array = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if array.size and array.min() >= 0.0 and array.max() <= 1.0:
            array = array * 255.0
        return np.clip(np.round(array), 0, 255).astype(np.uint8)
    if kind in "iu":
        if array.dtype.itemsize == 2 and kind == "u":
            return np.round(array / 257.0).astype(np.uint8)
        if array.size and array.min() >= 0 and array.max() <= 255:
            return array.astype(np.uint8)
        return np.round(np.clip(array.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)
    raise UnreadableImageError(f"{what} has dtype {array.dtype}; expected integers, floats or booleans.")


def _array_to_pil(array: np.ndarray, channels_first: bool, what: str) -> PILImage.Image:
    """(H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4 -> an L, RGB or RGBA image."""
    if array.ndim == 3:
        first, last = array.shape[0] in (1, 3, 4), array.shape[-1] in (1, 3, 4)
        if channels_first and first or not last and first:
            array = np.moveaxis(array, 0, -1)
        elif not last:
            channels = array.shape[0] if channels_first else array.shape[-1]
            raise UnreadableImageError(
                f"{what} has shape {tuple(array.shape)}: cannot find a channel axis of size 1 (grey), 3 (RGB) or "
                f"4 (RGBA) at either end (it would have {channels} channels)."
            )
        if array.shape[-1] == 1:
            array = array[..., 0]
    elif array.ndim != 2:
        raise UnreadableImageError(
            f"{what} has {array.ndim} dimensions (shape {tuple(array.shape)}); an image is (H, W), (H, W, C) or "
            "(C, H, W), and a batch of images is a list or a 4-D array."
        )
    if 0 in array.shape:
        raise UnreadableImageError(f"{what} is empty (shape {tuple(array.shape)}).")
    array = np.ascontiguousarray(_to_uint8(array, what))
    mode = {2: "L"}.get(array.ndim) or {3: "RGB", 4: "RGBA"}[array.shape[-1]]
    return PILImage.fromarray(array, mode=mode)


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def load_image(value: Any, apply_exif_orientation: bool = True) -> PILImage.Image:
    """One image as it comes -> a decoded PIL image, EXIF orientation applied (unless `apply_exif_orientation` is
    False), not yet converted to RGB.

    Accepts a PIL image, a file path (str / `pathlib.Path`; http(s) URLs through transformers), raw encoded bytes,
    a `datasets` image entry `{"bytes", "path"}`, a numpy array (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4
    (channel-last preferred when ambiguous), or a torch tensor of those shapes (channel-first preferred). Anything
    else, and any file or bytes that do not decode, raise `UnreadableImageError` (a `ValueError`) naming the
    problem."""
    if isinstance(value, PILImage.Image):
        image, where = value, _describe(value)
    elif isinstance(value, dict):
        if value.get("bytes") is not None:
            where = f"image bytes (path {value.get('path')!r})" if value.get("path") else "image bytes"
            image = _open_bytes(value["bytes"], where)
        elif value.get("path") is not None:
            image, where = _open_path(value["path"]), _describe(value["path"])
        else:
            raise UnreadableImageError("An image entry has neither bytes nor a path (a missing image?).")
    elif isinstance(value, (str, os.PathLike)):
        image, where = _open_path(value), _describe(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        image, where = _open_bytes(bytes(value), "Image bytes"), "image bytes"
    elif isinstance(value, np.ndarray):
        return _array_to_pil(value, channels_first=False, what="The image array")
    elif _is_tensor(value):
        array = value.detach().cpu()
        array = array.float().numpy() if array.is_floating_point() else array.numpy()
        return _array_to_pil(array, channels_first=True, what="The image tensor")
    elif value is None:
        raise UnreadableImageError("Missing image (None).")
    else:
        raise UnreadableImageError(
            f"Cannot read an image from a {type(value).__name__}; give a PIL image, a file path, encoded bytes, a "
            "numpy array or a torch tensor."
        )
    try:
        image.load()  # decode now, so that a truncated or corrupt file fails here, with its name
        if apply_exif_orientation and image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None):
            image = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(f"Cannot decode the image ({where}): {error}") from error
    if image.width == 0 or image.height == 0:
        raise UnreadableImageError(f"The image ({where}) is empty ({image.width}x{image.height}).")
    return image


def to_rgb(
    image: Any, background: tuple[int, int, int] = (255, 255, 255), exact_original: bool = False
) -> PILImage.Image:
    """Any single image (see `load_image` for the accepted inputs) -> 8-bit RGB PIL image.

    * RGB: unchanged. L, 1, CMYK, YCbCr, LAB, HSV, P without transparency: PIL's conversion.
    * Modes with alpha (LA, La, PA, RGBA, RGBa, P with a transparency entry): composited onto `background` (white),
      so transparent pixels do not turn into whatever colour they happen to store.
    * 16-bit grey (I;16, I;16B, I;16L, I;16N): scaled by 255/65535. 32-bit integer (I): as is when it fits in
      0..255, else read as 16-bit (PNG 16-bit grey may decode as I). Float (F): scaled by 255 when it lies in [0, 1],
      else clipped to [0, 255]. NaN and infinities become 0.
    * Arrays and tensors follow the same rules per dtype (uint8 as is, bool 0/255, uint16 /257, floats in [0, 1]
      x255); 1 channel is grey, 3 RGB, 4 RGBA (composited on `background`).
    * EXIF orientation (phone photos) is applied.

    `exact_original=True` does what the original UniCL evaluation does (`Image.open(path).convert("RGB")`): no
    EXIF rotation and PIL's own conversion for every mode, so alpha is dropped rather than composited.
    """
    image = load_image(image, apply_exif_orientation=not exact_original)  # decoded (errors name the file), non-empty
    mode = image.mode
    if mode == "RGB":
        return image
    if exact_original:
        try:
            return image.convert("RGB")
        except _DECODE_ERRORS as error:
            raise UnreadableImageError(f"Cannot convert an image of mode {mode!r} to RGB ({_describe(image)}): {error}") from error
    if mode.startswith("I;16") or mode in ("I", "F"):
        try:
            array = np.asarray(image)
        except _DECODE_ERRORS as error:
            raise UnreadableImageError(f"Cannot decode the image ({_describe(image)}): {error}") from error
        if mode.startswith("I;16"):
            array = array.astype(np.uint16)
        grey = PILImage.fromarray(_to_uint8(array, "The image"), mode="L")
        return grey.convert("RGB")
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in image.info)
    try:
        if mode == "La":  # premultiplied grey + alpha: PIL converts it only to LA
            image = image.convert("LA")
        if has_alpha:
            rgba = image.convert("RGBA")
            canvas = PILImage.new("RGB", rgba.size, background)
            canvas.paste(rgba, mask=rgba.getchannel("A"))
            return canvas
        return image.convert("RGB")
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(f"Cannot convert an image of mode {mode!r} to RGB ({_describe(image)}): {error}") from error


def to_rgb_images(images: Any, exact_original: bool = False) -> Any:
    """`to_rgb` over what a processor's `images=` may be: one image, a (nested) list / tuple of images, or a batch
    as a 4-D array / tensor (N, H, W, C) or (N, C, H, W). Lists keep their nesting; a 4-D batch becomes a list."""
    if images is None:
        return None
    if isinstance(images, (list, tuple)):
        return [
            to_rgb_images(image, exact_original) if isinstance(image, (list, tuple)) else _to_rgb_one(image, exact_original)
            for image in images
        ]
    return _to_rgb_one(images, exact_original)


def _to_rgb_one(images: Any, exact_original: bool) -> Any:
    if isinstance(images, np.ndarray) or _is_tensor(images):
        if images.ndim == 4:
            return [to_rgb(image, exact_original=exact_original) for image in images]
        if images.ndim > 4 or images.ndim < 2:
            raise UnreadableImageError(
                f"images has {images.ndim} dimensions (shape {tuple(images.shape)}); expected one image (2-D or "
                "3-D), a batch (4-D) or a list of images."
            )
    return to_rgb(images, exact_original=exact_original)


def original_resize_size(crop_size: int) -> int:
    """The shorter side the original UniCL evaluation resizes to before its center crop: `int(256 / 224 * crop)`
    (microsoft/UniCL `data/build.py`), 256 at 224 px and 438 at 384 px."""
    return int((256 / 224) * crop_size)


def torchvision_center_crop_box(height: int, width: int, crop_height: int, crop_width: int) -> tuple[int, int]:
    """(top, left) of torchvision's `CenterCrop` on an image at least as large as the crop: `int(round(excess / 2))`
    with Python's round, which takes halves to even. transformers' `center_crop` takes `excess // 2`, one pixel less
    whenever the excess is odd and its half rounded down is odd (a 259-pixel side cropped to 224: 18, not 17)."""
    return int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0))


class UniCLImageProcessorKwargs(ImagesKwargs, total=False):
    """exact_original_preprocessing (`bool`): convert to RGB exactly as the original evaluation (no EXIF rotation,
    alpha dropped instead of composited on white)."""

    exact_original_preprocessing: bool


class UniCLImageProcessor(CLIPImageProcessorPil):
    """UniCL's evaluation preprocessing, pixel for pixel as the original's (torchvision `Resize(256, bicubic)` on a
    PIL image, `CenterCrop(224)`, ImageNet mean/std, not CLIP's): the shorter side resized to 256 (the longer one
    to `int(256 * long / short)`, as torchvision), then the center crop at torchvision's offsets (see
    `torchvision_center_crop_box`). A subclass of the PIL-backend CLIP processor so that a saved folder always
    reloads with the PIL backend: the torchvision backend differs by about one 8-bit level after normalisation.

    Two deliberate differences from the original, both in the conversion to RGB: EXIF orientation is applied and
    alpha is composited onto white. `exact_original_preprocessing=True` (saved with the processor) turns both off."""

    valid_kwargs = UniCLImageProcessorKwargs
    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_MEAN
    image_std = IMAGENET_STD
    size = {"shortest_edge": 256}
    crop_size = {"height": 224, "width": 224}
    exact_original_preprocessing = False

    @classmethod
    def for_crop_size(cls, crop_size: int, **kwargs) -> "UniCLImageProcessor":
        """UniCL's evaluation transform at another resolution: the shorter side resized to
        `int(256 / 224 * crop_size)` (438 at 384 px, as the original), then a center crop of `crop_size`."""
        return cls(
            size={"shortest_edge": original_resize_size(crop_size)},
            crop_size={"height": crop_size, "width": crop_size},
            **kwargs,
        )

    def preprocess(self, images, *args, **kwargs):
        """As the CLIP processor, after `to_rgb_images`: any PIL mode, EXIF rotation, numpy / torch arrays of any
        dtype, file paths and bytes become 8-bit RGB first (alpha composited on white; with
        `exact_original_preprocessing`, PIL's plain `convert("RGB")` without EXIF rotation), and unreadable input
        raises `UnreadableImageError` (a `ValueError`) naming the problem."""
        exact = kwargs.get("exact_original_preprocessing", self.exact_original_preprocessing)
        return super().preprocess(to_rgb_images(images, exact_original=bool(exact)), *args, **kwargs)

    # rescale and normalize: the PIL backend's arithmetic bit for bit, in fewer passes over the pixels. The whole
    # preprocessing of a 320x256 PIL image went from 1.4 to 0.9 ms (2-core Xeon), ~1.5% of an int8 zero-shot image.
    def rescale(self, image: np.ndarray, scale: float, **kwargs) -> np.ndarray:
        """An 8-bit image through a 256-entry table of the backend's `float32(float64(value) * scale)`, one pass;
        any other dtype as the backend does."""
        if image.dtype != np.uint8:
            return super().rescale(image, scale, **kwargs)
        return np.take((np.arange(256, dtype=np.float64) * scale).astype(np.float32), image)

    def normalize(self, image: np.ndarray, mean, std, **kwargs) -> np.ndarray:
        """`(image - mean) / std` per channel of a channels-first array, in its float dtype (float32 for integers),
        as the backend computes it, with one temporary array instead of three."""
        if not np.issubdtype(image.dtype, np.floating):
            image = image.astype(np.float32)
        channels = image.shape[0]
        per_channel = []
        for name, value in (("image_mean", mean), ("image_std", std)):
            values = np.array(value, dtype=image.dtype).reshape(-1)
            if values.size not in (1, channels):
                raise ValueError(f"{name} must have one value or one per channel ({channels}), got {value!r}.")
            per_channel.append(values.reshape((-1,) + (1,) * (image.ndim - 1)))
        normalized = image - per_channel[0]
        normalized /= per_channel[1]
        return normalized

    def center_crop(self, image: np.ndarray, size, **kwargs) -> np.ndarray:
        """torchvision's `CenterCrop` on a channels-first array: an image smaller than the crop is first zero-padded,
        `(crop - side) // 2` before it and the rest after, then cut at `torchvision_center_crop_box`."""
        if size.height is None or size.width is None:
            raise ValueError(f"crop_size must have 'height' and 'width', got {dict(size)}.")
        height, width = image.shape[-2:]
        pad_height, pad_width = max(size.height - height, 0), max(size.width - width, 0)
        if pad_height or pad_width:
            padding = [(0, 0)] * (image.ndim - 2)
            padding += [(pad_height // 2, (pad_height + 1) // 2), (pad_width // 2, (pad_width + 1) // 2)]
            image = np.pad(image, padding)
            height, width = image.shape[-2:]
        top, left = torchvision_center_crop_box(height, width, size.height, size.width)
        return image[..., top : top + size.height, left : left + size.width]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters (the BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


@lru_cache(maxsize=1)
def clip_bpe_vocab_and_merges(path: str = str(BPE_VOCAB_FILE)) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary (49408 tokens) and merges of OpenAI's CLIP tokenizer, built from its BPE file as OpenAI's
    `SimpleTokenizer` builds them: bytes, bytes + '</w>', one token per merge, then the two special tokens."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"CLIP BPE vocabulary not found at {path}; it ships with the modeling_unicl package. Load the tokenizer "
            "from a saved model folder instead (UniCLProcessor.from_pretrained)."
        )
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [t + "</w>" for t in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


class UniCLTokenizer(CLIPTokenizer):
    """CLIP's tokenizer (same vocabulary, same files, same ids) with two defaults that
    `pipeline("zero-shot-image-classification")` needs: the pipeline calls the tokenizer with `padding=True` only and
    drops `tokenizer_kwargs`, so a long candidate label would otherwise reach the text tower untruncated.

    * Texts longer than `model_max_length` (77) are truncated unless `truncation` or `max_length` is passed; the
      end-of-text token, which the text tower pools at, is kept, and a warning says how many texts were cut.
    * An empty list of texts (a pipeline called with `candidate_labels=[]`) is a `ValueError`, not an `IndexError`
      deep inside the tokenizer.
    """

    def __call__(self, text=None, *args, **kwargs):
        if isinstance(text, (list, tuple)) and len(text) == 0:
            raise ValueError(
                "No texts to tokenize: got an empty list. The zero-shot pipeline needs at least one candidate label "
                "(candidate_labels=['cat', 'dog'])."
            )
        truncate_by_default = not args and kwargs.get("truncation") is None and kwargs.get("max_length") is None
        if truncate_by_default:
            kwargs["truncation"] = True
        encoding = super().__call__(text, *args, **kwargs)
        if truncate_by_default:
            self._warn_about_truncated_texts(encoding)
        return encoding

    def _warn_about_truncated_texts(self, encoding) -> None:
        per_text = encoding.encodings or []
        truncated = sum(1 for item in per_text if item.overflowing)
        if truncated:
            logger.warning(
                f"{truncated} of {len(per_text)} text(s) are longer than {self.model_max_length} tokens and were "
                "truncated to fit the text tower (the end-of-text token is kept). Pass truncation=False to keep them "
                "whole, or shorten them."
            )


def build_clip_tokenizer(model_max_length: int = CONTEXT_LENGTH) -> UniCLTokenizer:
    """A `UniCLTokenizer` (transformers' `CLIPTokenizer` with safe defaults) equal to `openai/clip-vit-base-patch32`'s
    tokenizer, built without network access.

    It pads with `<|endoftext|>` (49407) and, unlike OpenAI's reference, does not run ftfy / HTML-unescape."""
    vocab, merges = clip_bpe_vocab_and_merges()
    return UniCLTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


def context_length(tokenizer) -> int:
    """How many tokens a text may have: the tokenizer's `model_max_length` when it is set (transformers uses a huge
    sentinel for "unset"), else CLIP's 77."""
    max_length = getattr(tokenizer, "model_max_length", None)
    return max_length if isinstance(max_length, int) and 0 < max_length <= 4096 else CONTEXT_LENGTH


CLIP_TOKENIZER_CLASSES = ("CLIPTokenizer", "CLIPTokenizerFast", "UniCLTokenizer")  # all read tokenizer.json


def _tokenizer_class(folder: Path) -> str | None:
    try:
        return json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        return None


def _first_invalid_json(folder: Path) -> Path | None:
    for path in sorted(folder.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return path
    return None


class UniCLProcessor(ProcessorMixin):
    r"""Image processor ([`UniCLImageProcessor`]) + tokenizer ([`UniCLTokenizer`], a [`CLIPTokenizer`]). With no
    arguments it builds both from the package's own data, with no network access.

    Texts are truncated to 77 tokens by default, keeping the end-of-text token, which UniCL's text tower pools at.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        # ProcessorMixin reads the sub-processors from this signature, so defaults are built before super().__init__
        image_processor = image_processor if image_processor is not None else UniCLImageProcessor()
        tokenizer = tokenizer if tokenizer is not None else build_clip_tokenizer()
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`ProcessorMixin.from_pretrained`; for a local folder, errors name the file. Without this, a folder that
        lost tokenizer.json loads a CLIPTokenizer with a 2-token vocabulary and no error."""
        name = pretrained_model_name_or_path
        folder = None
        if isinstance(name, (str, os.PathLike)):
            text = os.fspath(name)
            if os.path.isdir(text):
                folder = Path(text, kwargs.get("subfolder") or "")
            elif os.path.exists(text) or text.startswith((".", "/", "~")) or text.count("/") > 1:
                raise OSError(f"Processor folder {text!r} does not exist (or is not a folder).")
        if folder is not None and _tokenizer_class(folder) in (None, *CLIP_TOKENIZER_CLASSES):
            has_vocab = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
            if not (folder / "tokenizer.json").is_file() and not has_vocab:
                raise OSError(
                    f"{folder / 'tokenizer.json'} is missing (and there is no vocab.json + merges.txt): the tokenizer "
                    "cannot be loaded. Copy the file back or save the processor again (processor.save_pretrained)."
                )
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except ValueError as error:  # json.JSONDecodeError included: name the broken file
            broken = None if folder is None else _first_invalid_json(folder)
            if broken is None:
                raise
            raise OSError(f"{broken} is not valid JSON ({error}): the processor cannot be loaded.") from error

    def __call__(self, images=None, text=None, **kwargs):
        if images is None and text is None:
            raise ValueError("UniCLProcessor needs `images`, `text` or both; got neither.")
        if text is not None:
            kwargs.setdefault("truncation", True)
            kwargs.setdefault("padding", True)
        if images is not None:  # any input -> 8-bit RGB, see `to_rgb`
            images = to_rgb_images(images, getattr(self.image_processor, "exact_original_preprocessing", False))
        return super().__call__(images=images, text=text, **kwargs)


UniCLImageProcessor.register_for_auto_class("AutoImageProcessor")
UniCLProcessor.register_for_auto_class("AutoProcessor")
UniCLTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = [
    "UniCLImageProcessor",
    "UniCLProcessor",
    "UniCLTokenizer",
    "UnreadableImageError",
    "build_clip_tokenizer",
    "clip_bpe_vocab_and_merges",
    "load_image",
    "to_rgb",
    "to_rgb_images",
]
