"""The class-name file of image-label shards: line i names class id i, possibly with synonyms.

    tench, Tinca tinca
    goldfish, Carassius auratus
    great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias

ImageNet-21K's WordNet names come this way. As UniCL's `prompt_engineering` does, a class prompt uses one synonym
drawn per sample (from the sample's own generator, after its template: see `examples.sample_rng`), with commas
dropped and `+` read as a space (`"hot+dog"` -> `"hot dog"`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ClassNames", "draw_synonym", "read_class_names_file"]

SYNONYM_DRAW_RANGE = 1 << 30  # picks among n synonyms by `draw % n` (a bias below 1e-8 for any real n)


class ClassNames:
    """Per class id, its synonyms (the first is the class's display name)."""

    def __init__(self, synonyms: Sequence[Sequence[str]]):
        self.synonyms = [tuple(names) for names in synonyms]
        bad = [i for i, names in enumerate(self.synonyms) if not names or not all(n.strip() for n in names)]
        if not self.synonyms or bad:
            raise ValueError(f"Every class needs at least one non-empty name; classes {bad[:10]} have none.")

    @classmethod
    def from_names(cls, names: Sequence[str]) -> ClassNames:
        """One name per class, no synonyms (a `ClassLabel`'s names): commas inside a name are kept as one name."""
        return cls([(name,) for name in names])

    def __len__(self) -> int:
        return len(self.synonyms)

    @property
    def display_names(self) -> list[str]:
        """The first synonym of every class (what zero-shot tables and `class_names` show)."""
        return [names[0] for names in self.synonyms]

    def prompt_name(self, class_id: int, draw: int) -> str:
        """The synonym of `class_id` that `draw` (from `draw_synonym`) picks, cleaned as UniCL's prompt engineering
        cleans it: commas dropped, `+` read as a space."""
        names = self.synonyms[class_id]
        return names[int(draw) % len(names)].replace(",", "").replace("+", " ")


def draw_synonym(rng: np.random.Generator) -> int:
    """One draw that picks a synonym of any class (`ClassNames.prompt_name`): a single draw whatever the number of
    synonyms, so every sample's stream of draws has the same layout."""
    return int(rng.integers(SYNONYM_DRAW_RANGE))


def read_class_names_file(path: str | Path) -> ClassNames:
    """The classes of a class-name file (line i = class id i; comma-separated synonyms). A missing file is an
    OSError, an empty file or an empty line a ValueError naming the file and the line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise OSError(f"Class-name file {str(path)!r} does not exist.")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():  # a trailing newline (or a few) is not a class
        lines.pop()
    if not lines:
        raise ValueError(f"Class-name file {str(path)!r} lists no classes (expected one class name per line).")
    synonyms = []
    for number, line in enumerate(lines, start=1):
        names = tuple(name.strip() for name in line.split(",") if name.strip())
        if not names:
            raise ValueError(
                f"Class-name file {str(path)!r}: line {number} is empty (line i names class id i-1; every line needs "
                "a name)."
            )
        synonyms.append(names)
    return ClassNames(synonyms)
