"""`write_space`: a Hugging Face Space folder (Gradio SDK) that serves the demo for a model on the Hub.

The Space loads the model with `trust_remote_code=True` (the model's own code comes with it from the Hub); the demo
itself is this package, copied beside `app.py`, so the Space needs nothing that is not on PyPI."""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# What `import modeling_unicl` and the demo need on a Space (gradio itself comes with the Space's SDK); datasets and
# accelerate are for training only. Versions as in pyproject.toml.
SPACE_REQUIREMENTS = (
    "torch>=2.4",
    "transformers>=5.24,<6",
    "huggingface_hub>=1.0",
    "safetensors>=0.4",
    "pillow>=10",
    "numpy>=1.26",
)
MODEL_ID_VARIABLE = "UNICL_MODEL_ID"

APP_TEMPLATE = '''"""UniCL zero-shot classification of {model_id}.

Written by `python scripts/demo.py {model_id} --write_space DIR` (the unicl package).

The model and its code come from the Hub (trust_remote_code=True); the demo is the `modeling_unicl` package beside this
file. Set the Space variable {variable} to serve another UniCL model."""

import os

from modeling_unicl.demo.app import create_demo, launch

demo = create_demo(os.environ.get("{variable}", "{model_id}"), trust_remote_code=True)

if __name__ == "__main__":
    launch(demo, host=None, port=None)  # the Space sets GRADIO_SERVER_NAME and GRADIO_SERVER_PORT
'''

README_TEMPLATE = """---
title: UniCL zero-shot classification
emoji: 🦓
colorFrom: indigo
colorTo: green
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
license: mit
models:
  - {model_id}
---

# UniCL zero-shot classification

Try [{model_id}](https://huggingface.co/{model_id}) on your own image with your own labels: upload, paste or take a
picture, type the labels (comma- or line-separated), pick one prompt template or UniCL's 81-template ensemble, and
get the labels ranked by probability. The same classification is an API endpoint:

```python
from gradio_client import Client, handle_file

Client("OWNER/SPACE").predict(handle_file("cat.jpg"), "cat, dog, bird", api_name="/classify")
```

Written by `python scripts/demo.py {model_id} --write_space DIR` of the `unicl` package.
"""


def check_hub_model_id(model_id: str) -> None:
    """A Space downloads its model: `model_id` must be a Hub id (`owner/name`), not a local folder."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(model_id).expanduser().exists():
        raise ValueError(
            f"{model_id!r} is a local folder; a Space loads its model from the Hub. Push it first "
            f"(python scripts/push_to_hub.py {model_id} --repo_id OWNER/NAME) and pass OWNER/NAME."
        )
    try:
        validate_repo_id(model_id)
    except HFValidationError as error:
        raise ValueError(f"{model_id!r} is not a Hub model id (OWNER/NAME): {error}") from error
    if "/" not in model_id:
        raise ValueError(f"{model_id!r} is not a Hub model id: give it with its owner, as OWNER/NAME.")


def _gradio_version() -> str:
    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError as error:
        raise ValueError(
            "Writing a Space records the gradio version it was tested with: pip install -e .[demo]"
        ) from error


def write_space(directory: str | Path, model_id: str) -> list[Path]:
    """Writes `app.py`, `requirements.txt`, `README.md` (the Space's front matter) and a copy of the package into
    `directory` (created; it must be empty or absent). Returns the files written at the top level."""
    check_hub_model_id(model_id)
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ValueError(f"{str(directory)!r} exists and is not an empty folder; give a new folder for the Space.")
    gradio_version = _gradio_version()
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "app.py": APP_TEMPLATE.format(model_id=model_id, variable=MODEL_ID_VARIABLE),
        "requirements.txt": "\n".join(SPACE_REQUIREMENTS) + "\n",
        "README.md": README_TEMPLATE.format(model_id=model_id, gradio_version=gradio_version),
    }
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    shutil.copytree(PACKAGE_DIR, directory / PACKAGE_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return [directory / name for name in files] + [directory / PACKAGE_DIR.name]
