"""Caption-to-class linking: an image-caption pair whose caption names exactly one known class gets that class's id.

By UniCL's design an image-caption pair has a label of its own, so a caption "a photo of a sheep" is a NEGATIVE of
the prompt "a photo of a sheep." when both are in one batch. With linking (`TrainingDataOptions(
link_captions_to_classes=True)`), such a pair carries the class id instead and becomes a positive of that class's
prompts (and of its labelled images). A caption that names two or more different classes keeps its own id: it is
evidence for neither class alone.

Matching is by whole words, case-insensitively: a class name matches as itself or in its plural ("cat" / "cats",
"box" / "boxes", "butterfly" / "butterflies", "sheep" / "sheep"; for a multi-word name the last word takes the
plural: "golden retrievers"), never inside a longer word ("cat" is not in "category" nor in "bobcat"). Longer
names win over names inside them: "a polar bear" names "polar bear", not also "bear". Names equal after
`strip().casefold()` are one class (the first id is used).

`CaptionLinker(class_names)(caption)` is the function a streaming path calls per caption: it returns the class id
(an index into `class_names`) or None.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["CaptionLinker", "link_caption", "plural_forms"]


def plural_forms(word: str) -> tuple[str, ...]:
    """The word itself and the regular English plurals a caption may use for it (lower case)."""
    word = word.casefold()
    forms = [word, word + "s"]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        forms.append(word + "es")
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        forms.append(word[:-1] + "ies")
    if word.endswith("f"):
        forms.append(word[:-1] + "ves")
    if word.endswith("fe"):
        forms.append(word[:-2] + "ves")
    return tuple(dict.fromkeys(forms))


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


class CaptionLinker:
    """caption -> the id of the one known class it names, or None (see the module docstring).

    Args:
        class_names: the known classes; a returned id indexes this sequence.
    """

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self._id_of: dict[str, int] = {}  # every accepted spelling (normalised) -> class id
        for class_id, name in enumerate(self.class_names):
            words = _key(name).split()
            if not words:
                continue
            for last in plural_forms(words[-1]):
                self._id_of.setdefault(" ".join(words[:-1] + [last]), class_id)
        # longest spelling first: at a given position the regex takes "polar bear" before "bear"
        spellings = sorted(self._id_of, key=len, reverse=True)
        alternatives = [r"\s+".join(re.escape(word) for word in spelling.split()) for spelling in spellings]
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE) if spellings else None

    def classes_named(self, caption: str) -> set[int]:
        """The ids of every known class that `caption` names."""
        if self._pattern is None or not caption:
            return set()
        return {self._id_of[_key(match.group(0))] for match in self._pattern.finditer(caption)}

    def __call__(self, caption: str | None) -> int | None:
        named = self.classes_named(caption or "")
        return next(iter(named)) if len(named) == 1 else None


def link_caption(caption: str | None, class_names: Sequence[str]) -> int | None:
    """The id (index into `class_names`) of the one class `caption` names, or None. Builds the matcher each call:
    for many captions, make one `CaptionLinker(class_names)` and call it."""
    return CaptionLinker(class_names)(caption)
