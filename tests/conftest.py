"""Shared test helpers: tiny configs (no download) and a Python subprocess that cannot import `modeling_unicl`."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

# CI must be reproducible: the same examples on every run. Explore new draws locally with
# `pytest --hypothesis-profile=explore`.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "unicl_original"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Prepended to every isolated script: makes `import modeling_unicl` fail even when the package is pip-installed,
# exactly as on a machine that only downloaded a saved folder from the Hub.
_BLOCK_MODELING_UNICL = textwrap.dedent(
    """
    import importlib.abc, sys
    class _BlockModelingUniCL(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "modeling_unicl" or fullname.startswith("modeling_unicl."):
                raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by the test)")
            return None
    sys.meta_path.insert(0, _BlockModelingUniCL())
    sys.path[:] = [p for p in sys.path if p not in ("", ".", %r)]
    try:
        import modeling_unicl  # noqa: F401
        raise SystemExit("modeling_unicl is importable; the isolation failed")
    except ModuleNotFoundError:
        pass
    """
)


def run_isolated_python(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter where `modeling_unicl` is not importable; raises with its output on error."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    script = (_BLOCK_MODELING_UNICL % str(REPO_ROOT)) + "\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"isolated process failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


TINY_SWIN = dict(
    model_type="swin", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
    drop_path_rate=0.0,
)
TINY_CLIP_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def tiny_config(vision=None, text=None, projection_dim=24, **kwargs):
    from modeling_unicl import UniCLConfig

    return UniCLConfig(
        vision_config=dict(TINY_SWIN) if vision is None else vision,
        text_config=dict(TINY_CLIP_TEXT) if text is None else text,
        projection_dim=projection_dim,
        **kwargs,
    )


def tiny_processor(image_size: int = 32):
    from modeling_unicl import UniCLImageProcessor, UniCLProcessor

    return UniCLProcessor(
        image_processor=UniCLImageProcessor(
            size={"shortest_edge": image_size * 8 // 7}, crop_size={"height": image_size, "width": image_size}
        )
    )


@pytest.fixture
def tiny_unicl_config():
    return tiny_config()
