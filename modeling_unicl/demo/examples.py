"""Example images for the page: test-split silhouettes from the package's own data, rendered as small PNGs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from ..data.embedded import ANIMAL_CLASSES, load_animal_silhouettes

EXAMPLE_CLASSES = ("zebra", "giraffe", "cat", "elephant")
EXAMPLE_LABELS = ", ".join(ANIMAL_CLASSES)
# Large enough to see on the page; the processor resizes to the model's input anyway.
EXAMPLE_SIZE = 192
# The longer side of the animal as a fraction of the canvas: the middle of the training renders' 65-90 %.
EXAMPLE_EXTENT = 0.8


def render_silhouette(silhouette: np.ndarray, size: int = EXAMPLE_SIZE) -> PILImage.Image:
    """A 28x28 white-on-black silhouette, cropped to the animal and centred on a black `size` px canvas, as the
    embedded data renders its label and test images."""
    rows, cols = np.flatnonzero(silhouette.max(axis=1) > 24), np.flatnonzero(silhouette.max(axis=0) > 24)
    animal = silhouette[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = EXAMPLE_EXTENT * size / max(animal.shape)
    width, height = max(1, round(animal.shape[1] * scale)), max(1, round(animal.shape[0] * scale))
    canvas = PILImage.new("L", (size, size), 0)
    canvas.paste(PILImage.fromarray(animal).resize((width, height), PILImage.BILINEAR),
                 ((size - width) // 2, (size - height) // 2))
    return canvas


def write_example_images(directory: str | Path, classes=EXAMPLE_CLASSES) -> list[Path]:
    """The first test-split silhouette of each class in `classes`, as `<class>.png` in `directory` (created)."""
    images, labels, class_names = load_animal_silhouettes(split="test")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in classes:
        if name not in class_names:
            raise ValueError(f"No silhouettes of class {name!r}; the classes are {list(class_names)}.")
        first = int(np.flatnonzero(labels == class_names.index(name))[0])
        path = directory / f"{name}.png"
        # written aside and renamed: two demos starting at once never read each other's half-written file
        partial = directory / f".{name}.{os.getpid()}.png"
        render_silhouette(images[first]).save(partial)
        os.replace(partial, path)
        paths.append(path)
    return paths
