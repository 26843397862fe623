"""The label box of the demo: free text -> the distinct labels to score, and what was changed on the way."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Labels x templates prompts go through the text tower on a cache miss. 4,096 prompts take about 18 s with the paper's
# 12-layer text tower on 2 CPU cores (README, Evaluation): 50 labels with the 81-template ensemble, 4,096 with one.
MAX_PROMPTS = 4096
# The page's box is free text; a paste of a whole file should fail with a message, not tokenize megabytes.
MAX_LABEL_TEXT_CHARS = 100_000

_SEPARATORS = re.compile(r"[,\n]")


@dataclass(frozen=True)
class ParsedLabels:
    """The distinct labels in the order given, and one note per change made to the text (shown as warnings)."""

    labels: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _normalise(label: str) -> str:
    return " ".join(label.split())


def parse_labels(text: str | None) -> ParsedLabels:
    """Comma- or line-separated labels -> the distinct non-empty labels in the order given, whitespace collapsed.

    A repeated label is scored once (twice it would split its probability with itself); case is kept, since a cased
    text tower (RoBERTa) tells "Apple" from "apple". Raises `ValueError` when fewer than two distinct labels remain: a
    softmax over one label is always 100%."""
    text = text or ""
    if len(text) > MAX_LABEL_TEXT_CHARS:
        raise ValueError(
            f"The labels are {len(text):,} characters long; the demo takes at most {MAX_LABEL_TEXT_CHARS:,}."
        )
    counts: dict[str, int] = {}  # label -> how often it was given, in the order of first appearance
    for raw in _SEPARATORS.split(text):
        label = _normalise(raw)
        if label:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        raise ValueError("No labels: type at least two labels, separated by commas or new lines (e.g. cat, dog).")
    if len(counts) < 2:
        raise ValueError(
            f"Only one distinct label ({next(iter(counts))!r}): with one label its probability is always 100%. "
            "Add at least one other label to compare against."
        )
    repeated = [(label, count) for label, count in counts.items() if count > 1]
    notes = tuple(f"{label!r} was given {count} times; it is scored once." for label, count in repeated)
    return ParsedLabels(tuple(counts), notes)


def check_prompt_budget(num_labels: int, num_templates: int) -> None:
    """Raises `ValueError` when labels x templates exceeds `MAX_PROMPTS` (too slow for a page request)."""
    prompts = num_labels * num_templates
    if prompts > MAX_PROMPTS:
        hint = "use the single template or fewer labels" if num_templates > 1 else "give fewer labels"
        raise ValueError(
            f"{num_labels:,} labels x {num_templates} templates = {prompts:,} prompts; the demo embeds at most "
            f"{MAX_PROMPTS:,} per request ({MAX_PROMPTS // num_templates:,} labels with {num_templates} "
            f"template{'s' if num_templates > 1 else ''}): {hint}."
        )
