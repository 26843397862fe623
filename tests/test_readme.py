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
