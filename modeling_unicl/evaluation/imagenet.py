"""ImageNet-1K as the original UniCL evaluates it: its 1000 class names in the standard index order, the synset ids
that define that order, and the validation folder in its two common layouts.

`IMAGENET_CLASSES` is `IMAGENET_CLASSES` of microsoft/UniCL `data/imagenet/constants.py` (MIT; OpenAI CLIP's cleaned
names with the two duplicates renamed: 744 "projectile", 837 "dark glasses"). `IMAGENET_SYNSETS` are the 1000
WordNet ids sorted, which is how torchvision's `ImageFolder` (the original's validation loader) numbers the classes.
Sources and licences: LICENSE_IMAGENET_METADATA.txt beside this file.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGENET_SYNSETS",
    "IMAGE_EXTENSIONS",
    "SOLUTION_CSV",
    "find_solution_csv",
    "imagenet_val_files",
    "looks_like_imagenet_val",
]

_HERE = Path(__file__).resolve().parent


def _read_lines(name: str) -> tuple[str, ...]:
    return tuple(line for line in (_HERE / name).read_text(encoding="utf-8").splitlines() if line)


IMAGENET_CLASSES = _read_lines("imagenet_classes.txt")
IMAGENET_SYNSETS = _read_lines("imagenet_synsets.txt")
_SYNSET_INDEX = {synset: index for index, synset in enumerate(IMAGENET_SYNSETS)}

# torchvision's ImageFolder extensions (compared case-insensitively), so a folder reads as the original reads it
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SOLUTION_CSV = "LOC_val_solution.csv"
# Kaggle's layout keeps the csv four levels above the images: <root>/ILSVRC/Data/CLS-LOC/val/*.JPEG
_SOLUTION_CSV_LEVELS_UP = 4


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _looks_like_synset(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def _from_synset_folders(folder: Path, synset_folders: list[Path]) -> tuple[list[Path], list[int]]:
    unknown = [path.name for path in synset_folders if path.name not in _SYNSET_INDEX]
    if unknown:
        raise ValueError(
            f"{folder}: folder(s) {unknown[:5]} are not ImageNet-1K synsets (expected names among the 1000 ids "
            f"{IMAGENET_SYNSETS[0]} ... {IMAGENET_SYNSETS[-1]})."
        )
    files, labels = [], []
    for synset_folder in synset_folders:
        images = sorted(path for path in synset_folder.rglob("*") if _is_image(path))
        files += images
        labels += [_SYNSET_INDEX[synset_folder.name]] * len(images)
    return files, labels


def find_solution_csv(folder: Path) -> Path | None:
    """`LOC_val_solution.csv` in `folder` or up to four folders above it (Kaggle's layout), else None."""
    for candidate in [folder, *folder.parents][: _SOLUTION_CSV_LEVELS_UP + 1]:
        if (candidate / SOLUTION_CSV).is_file():
            return candidate / SOLUTION_CSV
    return None


def _read_solution_csv(path: Path) -> dict[str, int]:
    """ImageId -> class index from Kaggle's `ImageId,PredictionString` file (the first synset of the boxes)."""
    labels = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row_number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                image_id, synset = row["ImageId"], row["PredictionString"].split()[0]
            except (KeyError, AttributeError, IndexError) as error:
                raise ValueError(
                    f"{path}, line {row_number}: expected 'ImageId,PredictionString' with a synset first, got {row}."
                ) from error
            if synset not in _SYNSET_INDEX:
                raise ValueError(f"{path}, line {row_number}: {synset!r} is not an ImageNet-1K synset.")
            labels[image_id] = _SYNSET_INDEX[synset]
    return labels


def _from_flat_files(folder: Path, solution: Path) -> tuple[list[Path], list[int]]:
    labels_by_id = _read_solution_csv(solution)
    files = sorted(path for path in folder.iterdir() if _is_image(path))
    missing = [path.name for path in files if path.stem not in labels_by_id]
    if missing:
        raise ValueError(f"{solution} has no label for {len(missing)} image(s) of {folder}, e.g. {missing[:3]}.")
    return files, [labels_by_id[path.stem] for path in files]


def looks_like_imagenet_val(folder) -> bool:
    """Whether `folder` has synset folders or a `LOC_val_solution.csv` (in it or up to four levels above)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return False
    has_synset_folders = any(path.is_dir() and _looks_like_synset(path.name) for path in folder.iterdir())
    return has_synset_folders or find_solution_csv(folder) is not None


def imagenet_val_files(folder) -> tuple[list[Path], list[int]]:
    """Image files and ImageNet-1K class indices (into `IMAGENET_CLASSES`) of a validation folder, sorted by path.

    Layouts: synset folders (`n01440764/*.JPEG`, any subset of the 1000, as torchvision's `ImageFolder` reads them);
    or flat files (`ILSVRC2012_val_00000001.JPEG`) labelled by `LOC_val_solution.csv` in the folder or up to four
    levels above it (Kaggle's `ILSVRC/Data/CLS-LOC/val`)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise OSError(f"ImageNet validation folder {str(folder)!r} does not exist (or is not a folder).")
    synset_folders = sorted(path for path in folder.iterdir() if path.is_dir() and _looks_like_synset(path.name))
    solution = find_solution_csv(folder)
    if synset_folders:
        files, labels = _from_synset_folders(folder, synset_folders)
    elif solution is not None:
        files, labels = _from_flat_files(folder, solution)
    else:
        raise ValueError(
            f"{folder} is not an ImageNet validation folder: expected synset folders (n01440764/...) or images with "
            f"a {SOLUTION_CSV} in it or up to {_SOLUTION_CSV_LEVELS_UP} levels above."
        )
    if not files:
        raise ValueError(f"{folder} holds no images (extensions {', '.join(IMAGE_EXTENSIONS)}).")
    return files, labels
