"""The README's code runs as written (the Quickstart block, executed in a fresh folder)."""

import re
import subprocess
import sys

from conftest import REPO_ROOT


def _python_block_after(heading: str) -> str:
    section = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_quickstart_runs_as_written(tmp_path):
    code = _python_block_after("## Quickstart")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"tensor\(\[\[0\.\d+, 0\.\d+\]\]", result.stdout)
    assert "'label': 'cat'" in result.stdout and "'label': 'bird'" in result.stdout


def test_the_fine_tuning_recipes_run_as_written(tmp_path):
    """Both Fine-tuning blocks, one after the other, in a folder holding a tiny `unicl-animals`; the only change is
    the length of training (2 steps instead of an epoch)."""
    section = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("### Fine-tuning", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)  # up to the next section
    assert len(blocks) == 2
    setup = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT / 'tests')!r})\n"
        "from conftest import tiny_config, tiny_processor\n"
        "from modeling_unicl import UniCLModel\n"
        "UniCLModel(tiny_config()).save_pretrained('unicl-animals')\n"
        "tiny_processor().save_pretrained('unicl-animals')\n"
    )
    code = setup + "\n".join(blocks).replace("num_train_epochs=1", "max_steps=2")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "finetuned" / "model.safetensors").is_file()
    assert (tmp_path / "classifier" / "processor_config.json").is_file()
    assert "'label': " in result.stdout
