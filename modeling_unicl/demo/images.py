"""Uploads -> RGB images with a bounded decode: the size is read from the header before any pixel is decoded.

The conversion of every mode (CMYK, 16-bit, palette, alpha) and the errors for non-images are the package's own
(`processing_unicl.to_rgb`, `UnreadableImageError`); this module only adds the bound, so one huge upload cannot take
the server's memory for every other visitor."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image as PILImage

from ..processing_unicl import UnreadableImageError, to_rgb

# 40 MP decoded is 120 MB as RGB and about a second of PNG decoding; a 12,000 x 12,000 PNG would be 432 MB.
MAX_DECODED_PIXELS = 40_000_000
# JPEGs are decoded at the smallest of the scales 1/1, 1/2, 1/4, 1/8 that still covers this size (PIL's `draft`):
# the model sees at most a few hundred pixels, so a phone photo never needs its full-size decode.
JPEG_DRAFT_SIZE = (1024, 1024)


class ImageTooLargeError(ValueError):
    """An image whose decoded size would exceed `MAX_DECODED_PIXELS`."""


def _open_lazily(path: str | os.PathLike) -> PILImage.Image:
    """Reads the header only; PIL's own bomb check (above 2x its `MAX_IMAGE_PIXELS`) becomes our error."""
    where = f"file {Path(path).name!r}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)  # the size is checked right after
            return PILImage.open(path)
    except PILImage.DecompressionBombError as error:
        raise ImageTooLargeError(f"The image ({where}) is too large to decode: {error}") from error
    except PILImage.UnidentifiedImageError as error:  # its message repeats the server-side path: not for the page
        raise UnreadableImageError(
            f"The upload ({where}) is not an image (PNG, JPEG, WebP, GIF, BMP, TIFF, ... are read)."
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"The upload ({where}) cannot be read as an image: {error}") from error


def _check_size(image: PILImage.Image) -> None:
    width, height = image.size
    if width * height > MAX_DECODED_PIXELS:
        raise ImageTooLargeError(
            f"The image is {width:,} x {height:,} pixels ({width * height / 1e6:.0f} MP); the demo decodes at most "
            f"{MAX_DECODED_PIXELS / 1e6:.0f} MP. Downscale it (the model sees {JPEG_DRAFT_SIZE[0]} px or less anyway) "
            "or save it as JPEG, which is decoded at a reduced scale."
        )


def read_image_bounded(path: str | os.PathLike) -> PILImage.Image:
    """An image file -> 8-bit RGB, never decoding more than `MAX_DECODED_PIXELS` pixels.

    Raises `ImageTooLargeError` or `UnreadableImageError` (both `ValueError`s) with a message for the page."""
    image = _open_lazily(path)
    if image.format == "JPEG":
        image.draft("RGB", JPEG_DRAFT_SIZE)  # shrinks `image.size` to the scale that will be decoded
    _check_size(image)
    return to_rgb(image)

