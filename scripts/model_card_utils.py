#!/usr/bin/env python
"""Regenerate the model cards of the released UniCL checkpoints committed in model_cards/.

The cards are rendered by `modeling_unicl.conversion.model_card` (the converter writes the same card into each
converted folder); its template and the facts about the 12 checkpoints ship with the package
(`modeling_unicl/conversion/model_card_template.md`, `released_checkpoints.json`). Edit those, then run
`python scripts/model_card_utils.py` to rewrite every `model_cards/<name>.md`, or
`python scripts/model_card_utils.py --check` to only verify that they are up to date (exit 1 if not).
"""

from __future__ import annotations

import argparse
import sys

from cli_utils import REPO_ROOT

from modeling_unicl.conversion.model_card import known_checkpoints, render_model_card

MODEL_CARDS_DIR = REPO_ROOT / "model_cards"


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or with `--check` verify) every `model_cards/<name>.md`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that the committed cards are up to date (exit 1 if not)"
    )
    args = parser.parse_args(argv)

    names = known_checkpoints()
    stale = []
    for name in names:
        path = MODEL_CARDS_DIR / f"{name}.md"
        content = str(render_model_card(name))
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == content:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(content, encoding="utf-8", newline="")
            print(f"wrote {path}")
    strays = sorted(p.name for p in MODEL_CARDS_DIR.glob("*.md") if p.stem not in names and p.name != "README.md")
    if strays:
        print(f"warning: cards with no entry in released_checkpoints.json: {', '.join(strays)}", file=sys.stderr)
    if args.check:
        if stale:
            print("out of date (run `python scripts/model_card_utils.py`): " + ", ".join(p.name for p in stale))
            return 1
        print(f"all {len(names)} model cards are up to date")
    elif not stale:
        print(f"all {len(names)} model cards were already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
