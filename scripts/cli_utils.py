"""What the command-line scripts share: loading datasets and models named on the command line, and failing early.

Every check here runs before a script creates or writes anything, and a bad argument ends the script with exit
code 2 and one line naming the argument (`UsageError`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))


class UsageError(Exception):
    """A bad command-line argument: printed as one line, exit code 2."""


def exit_on_usage_error(main):
    """Decorator for a script's `main`: turns `UsageError`, `ValueError` and `OSError` (a missing or unreadable file)
    into one line and exit code 2."""

    def wrapped(argv=None):
        try:
            return main(argv)
        except (UsageError, ValueError, OSError) as error:
            print(f"error: {as_flags(str(error))}", file=sys.stderr)
            return 2

    wrapped.__name__ = main.__name__
    wrapped.__doc__ = main.__doc__
    return wrapped


def as_flags(message: str) -> str:
    """A library message as a script prints it: the hints "pass label_column=<name>" and "pass class_names=[...]"
    name the scripts' flags of the same names ("pass --label_column NAME", "pass --class_names ...")."""
    message = re.sub(r"\b([Pp]ass) ([a-z][a-z_]*)=<(\w+)>", lambda m: f"{m[1]} --{m[2]} {m[3].upper()}", message)
    return re.sub(r"\b([Pp]ass) ([a-z][a-z_]*)=\[\.\.\.\]", r"\1 --\2 ...", message)


def add_keep_freed_memory_flag(parser) -> None:
    """`--no_keep_freed_memory` for the evaluation scripts, which keep freed memory by default (as train.py does)."""
    parser.add_argument(
        "--no_keep_freed_memory", dest="keep_freed_memory", action="store_false",
        help="leave glibc's malloc as it is; by default it keeps freed memory for reuse (Swin-T's CPU forward measured "
             "1.45x faster at batch 32, about 10%% more peak RSS; see modeling_unicl.utils.runtime)",
    )


def apply_keep_freed_memory(args) -> bool:
    """Called once the arguments are checked: `keep_freed_memory()` unless `--no_keep_freed_memory`."""
    if not args.keep_freed_memory:
        return False
    from modeling_unicl.utils.runtime import keep_freed_memory

    return keep_freed_memory()


def add_threads_flag(parser) -> None:
    """`--threads N`: torch's intra-op threads for a script that trains or evaluates (default: torch's own choice)."""
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads (torch.set_num_threads); default: torch's choice, one per core",
    )


def apply_threads(threads: int | None) -> None:
    """Called once the arguments are checked: `torch.set_num_threads(threads)` unless it is None."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads: expected a positive number of threads, got {threads}.")
    import torch

    torch.set_num_threads(threads)


def load_dataset_argument(spec: str, split: str, argument: str):
    """A dataset named on the command line: a folder written by `Dataset.save_to_disk`, an `imagefolder` directory,
    or a `datasets` Hub name (optionally `name:config`)."""
    import datasets

    from modeling_unicl.utils.checks import looks_like_local_path

    path = Path(spec).expanduser()
    if looks_like_local_path(spec):
        if not path.exists():
            raise UsageError(f"{argument}: dataset path {spec!r} does not exist.")
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(path))
        elif path.is_dir():
            loaded = datasets.load_dataset("imagefolder", data_dir=str(path))
        else:
            raise UsageError(f"{argument}: {spec!r} is neither a saved dataset folder nor an image folder.")
    else:
        name, _, config = spec.partition(":")
        try:
            loaded = datasets.load_dataset(name, config or None, split=split)
        except Exception as error:  # noqa: BLE001 - offline or unknown name: one clear line
            raise UsageError(f"{argument}: cannot load dataset {spec!r} ({type(error).__name__}: {error}).") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UsageError(f"{argument}: {spec!r} has splits {list(loaded)}, not {split!r}.")
        loaded = loaded[split]
    if len(loaded) == 0:
        raise UsageError(f"{argument}: dataset {spec!r} (split {split!r}) is empty.")
    return loaded


def load_streaming_dataset_argument(spec: str, split: str, argument: str):
    """A dataset named on the command line, read with `streaming=True` (a `datasets.IterableDataset`): a `datasets`
    Hub name (optionally `name:config`), an `imagefolder` directory, or a `save_to_disk` folder (streamed from its
    Arrow files, one shard per file)."""
    import datasets

    from modeling_unicl.utils.checks import looks_like_local_path

    path = Path(spec).expanduser()
    try:
        if looks_like_local_path(spec):
            if not path.exists():
                raise UsageError(f"{argument}: dataset path {spec!r} does not exist.")
            if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
                saved = datasets.load_from_disk(str(path))
                return saved.to_iterable_dataset(num_shards=max(1, len(saved.cache_files)))
            if (path / "dataset_dict.json").is_file():
                saved = datasets.load_from_disk(str(path))
                if split not in saved:
                    raise UsageError(f"{argument}: {spec!r} has splits {list(saved)}, not {split!r}.")
                return saved[split].to_iterable_dataset(num_shards=max(1, len(saved[split].cache_files)))
            if not path.is_dir():
                raise UsageError(f"{argument}: {spec!r} is neither a saved dataset folder nor an image folder.")
            return datasets.load_dataset("imagefolder", data_dir=str(path), split=split, streaming=True)
        name, _, config = spec.partition(":")
        return datasets.load_dataset(name, config or None, split=split, streaming=True)
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - offline, unknown name, missing split: one clear line
        raise UsageError(f"{argument}: cannot stream dataset {spec!r} ({type(error).__name__}: {error}).") from error


def check_unicl_folder(name_or_path: str, argument: str) -> None:
    """Fails early when a local folder is not a saved UniCL model (Hub ids are checked by `from_pretrained`)."""
    from modeling_unicl.utils.checks import check_unicl_folder as check

    try:
        check(name_or_path)
    except (ValueError, OSError) as error:
        raise UsageError(f"{argument}: {error}") from error


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
