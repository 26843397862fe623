"""The converter of a regular (not editable) install writes the full model card: the card template and the facts of
the released checkpoints are package data, not files of the checkout."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modeling_unicl.conversion.model_card import render_model_card

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = REPO_ROOT.parent / "shared" / "fixtures" / "unicl_original" / "tiny"

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"fixture not found at {FIXTURE}")

CONVERT = r"""
import sys
from pathlib import Path

import modeling_unicl
from modeling_unicl.conversion import convert_unicl_checkpoint

target, checkpoint, config, out = sys.argv[1:]
assert Path(modeling_unicl.__file__).resolve().is_relative_to(Path(target).resolve()), modeling_unicl.__file__
convert_unicl_checkpoint(checkpoint, config, out)
"""


def _install(tmp_path: Path) -> Path:
    """`pip install --target` of a copy of the sources (the build writes into its source folder, not into the repo)."""
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "modeling_unicl", source / "modeling_unicl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO_ROOT / name, source / name)
    target = tmp_path / "site-packages"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return target


def test_installed_converter_writes_the_released_checkpoints_card(tmp_path):
    target = _install(tmp_path)
    assert (target / "modeling_unicl" / "conversion" / "model_card_template.md").is_file()
    assert (target / "modeling_unicl" / "conversion" / "released_checkpoints.json").is_file()
    checkpoint = tmp_path / "in1k.pth"  # the file name of a released checkpoint selects its card
    checkpoint.symlink_to(FIXTURE / "checkpoint.pth")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "hf_modules"))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", CONVERT, str(target), str(checkpoint), str(FIXTURE / "config.yaml"), str(out)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card == str(render_model_card("in1k"))
    assert "| ImageNet-1K top-1 accuracy (%), ImageNet-1K labels used in training (classes seen) | 79.9 |" in card
