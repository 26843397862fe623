"""The package's layout promises (README, Layout): which files travel with a saved model and what they may import,
which way imports point between rooms, and that folders saved by earlier versions still load."""

import ast
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, run_isolated_python, tiny_config, tiny_processor

PACKAGE = REPO_ROOT / "modeling_unicl"
OLD_FOLDER = Path(__file__).resolve().parent / "fixtures" / "unicl_saved_2026_12_01"

# What a copied file may import besides the standard library and its sibling copied files. huggingface_hub is a hard
# dependency of transformers; the configs of transformers' own models import `strict` from it, as ours does.
ALLOWED_THIRD_PARTY = {"torch", "transformers", "safetensors", "PIL", "numpy", "huggingface_hub"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(level, module) of every import in a file, at any depth (function-local imports count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def _absolute(path: Path, level: int, module: str) -> str:
    """The dotted name an import in `path` (a module of the package) refers to."""
    if level == 0:
        return module
    package = list(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.fixture(scope="module")
def copied_files(tmp_path_factory) -> list[str]:
    """The Python files `save_pretrained` copies into a model folder (model and processor)."""
    from modeling_unicl import UniCLModel

    folder = tmp_path_factory.mktemp("saved")
    UniCLModel(tiny_config()).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return sorted(p.name for p in folder.glob("*.py"))


def test_the_copied_files_are_the_flat_unicl_files(copied_files):
    # the visible convention: the files named *_unicl.py at the top of the package are exactly those that travel
    flat = sorted(p.name for p in PACKAGE.glob("*_unicl.py"))
    assert copied_files == flat
    assert {"configuration_unicl.py", "modeling_unicl.py", "loss_unicl.py"} <= set(copied_files)


def test_copied_files_import_only_the_model_runtime_and_each_other(copied_files):
    stdlib = set(sys.stdlib_module_names)
    siblings = {Path(name).stem for name in copied_files}
    for name in copied_files:
        for level, module in _imports(PACKAGE / name):
            if level:
                assert level == 1 and module in siblings, f"{name}: relative import of {module!r} (level {level})"
            else:
                top = module.split(".")[0]
                assert top in stdlib or top in ALLOWED_THIRD_PARTY, f"{name} imports {module!r}"


def test_evaluation_and_inference_never_import_training_code():
    training_rooms = ("modeling_unicl.data", "modeling_unicl.training")
    inference = [*(PACKAGE / "evaluation").rglob("*.py"), *PACKAGE.glob("*_unicl.py")]
    for path in inference:
        for level, module in _imports(path):
            target = _absolute(path, level, module)
            assert not target.startswith(training_rooms), f"{path.relative_to(REPO_ROOT)} imports {target}"


def test_zero_shot_inference_loads_neither_datasets_nor_training_code():
    code = (
        "import sys\n"
        "import modeling_unicl\n"
        "from modeling_unicl import ZeroShotClassifier, build_class_embeddings\n"
        "from modeling_unicl.evaluation import linear_probe\n"
        "bad = sorted(m for m in sys.modules if m == 'datasets' or m.startswith(('modeling_unicl.data', "
        "'modeling_unicl.training')))\n"
        "assert not bad, bad\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_package_never_imports_scripts():
    script_modules = {p.stem for p in (REPO_ROOT / "scripts").glob("*.py")} | {"scripts"}
    for path in _package_modules():
        for level, module in _imports(path):
            if level == 0:
                assert module.split(".")[0] not in script_modules, f"{path.relative_to(REPO_ROOT)} imports {module}"
        # nor reaches into the checkout by path (an installed package has no scripts/ beside it)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert node.value != "scripts" and not node.value.startswith("scripts/"), (
                    f"{path.relative_to(REPO_ROOT)} names {node.value!r}"
                )


def test_every_public_name_still_imports_from_the_package():
    import modeling_unicl

    for name in modeling_unicl.__all__:
        assert getattr(modeling_unicl, name) is not None, name


# ------------------------------------------------------------------------------------ folders saved earlier
def _check_outputs(model) -> None:
    expected = torch.load(OLD_FOLDER / "expected_outputs.pt", weights_only=True)
    with torch.no_grad():
        out = model.eval()(input_ids=expected["input_ids"], pixel_values=expected["pixel_values"])
    for key in ("logits_per_image", "image_embeds", "text_embeds"):
        torch.testing.assert_close(getattr(out, key), expected[key], rtol=0, atol=1e-5)


def test_a_folder_saved_before_the_layout_change_loads_in_process():
    from transformers import AutoModel

    from modeling_unicl import UniCLModel

    _check_outputs(UniCLModel.from_pretrained(OLD_FOLDER))
    model = AutoModel.from_pretrained(OLD_FOLDER)
    assert type(model) is UniCLModel
    _check_outputs(model)


def test_a_folder_saved_before_the_layout_change_loads_with_remote_code(tmp_path):
    # a fresh process that cannot import the package: the folder's own (old) code runs, as after a Hub download
    run_isolated_python(
        f"""
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(OLD_FOLDER)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        expected = torch.load({str(OLD_FOLDER / "expected_outputs.pt")!r}, weights_only=True)
        with torch.no_grad():
            out = model(input_ids=expected["input_ids"], pixel_values=expected["pixel_values"])
        torch.testing.assert_close(out.logits_per_image, expected["logits_per_image"], rtol=0, atol=1e-5)
        """,
        cwd=tmp_path,
    )


# ------------------------------------------------------------------------------------------ distribution
def test_a_forward_with_labels_on_one_rank_alone_never_blocks(tmp_path):
    """2 gloo processes: only rank 0 runs the model with labels (evaluation on rank 0), which must not wait for rank 1;
    then both run it with `gather_distributed=True` on halves of a batch and get the full batch's loss."""
    import torch.multiprocessing as mp

    from dist_model_worker import WORLD, model_worker

    ctx = mp.spawn(model_worker, args=(f"file://{tmp_path}/init", str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 180  # hang guard; ~15 s normally (children import transformers)
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("a forward with labels on rank 0 alone blocked (or the workers hung)")
    finally:
        for process in ctx.processes:
            if process.is_alive():
                process.kill()
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]
    # rank 0's lone forward: its own batch's loss, as in a single process
    torch.testing.assert_close(results[0]["alone"], results[0]["alone_expected"], rtol=0, atol=1e-6)
    # gathered: every rank gets the loss of the whole global batch
    for result in results:
        torch.testing.assert_close(result["gathered"], result["global_expected"], rtol=0, atol=1e-6)
