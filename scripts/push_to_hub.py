#!/usr/bin/env python
"""Publish a converted UniCL model folder to the Hugging Face Hub.

    python scripts/push_to_hub.py OUT --repo_id ORG/NAME [--private] [--commit_message MSG]
        [--revision BRANCH] [--token TOKEN] [--create_pr] [--dry_run]

Before any network call the folder is validated (see `validate_model_folder`): on a problem the script exits
with code 2 and names it. Then it creates the repo (`exist_ok=True`), the branch when `--revision` is not
`main`, and uploads the folder with one commit. Exit codes: 0 done, 1 the Hub call failed, 2 invalid input.
The hyphenated spellings of earlier versions (--repo-id, --commit-message, --create-pr, --dry-run) still work.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import filter_repo_objects

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

logger = logging.getLogger("push_to_hub")

EXPECTED_MODEL_TYPE = "unicl"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PROCESSOR_CONFIG_NAMES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
DEFAULT_COMMIT_MESSAGE = "Upload UniCL model converted from the original checkpoint"
# Never worth publishing; huggingface_hub itself already skips .git/ and .cache/huggingface/.
IGNORE_PATTERNS = ["*.pyc", "*__pycache__*", "*.DS_Store"]
# What `upload_folder` skips on its own (mirrored so that the logged file list is what gets uploaded).
_HUB_DEFAULT_IGNORE = [".git", ".git/*", "*/.git", "**/.git/**", ".cache/huggingface", ".cache/huggingface/*",
                       "*/.cache/huggingface", "**/.cache/huggingface/**"]

_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.(\w+)\s+import\s", re.MULTILINE)

EXIT_OK, EXIT_HUB_ERROR, EXIT_INVALID = 0, 1, 2


def _auto_map_modules(auto_map: object) -> tuple[list[str], list[str]]:
    """(local module names referenced by `auto_map`, problems with its format)."""
    modules: list[str] = []
    problems: list[str] = []
    if not isinstance(auto_map, dict):
        return modules, [f"config.json: `auto_map` must be a dict of 'module.Class' references, got {auto_map!r}"]
    for auto_class, refs in auto_map.items():
        for ref in refs if isinstance(refs, (list, tuple)) else [refs]:
            if ref is None:  # e.g. AutoTokenizer: [slow, None]
                continue
            if not isinstance(ref, str) or "." not in ref:
                problems.append(f"config.json: auto_map[{auto_class!r}] = {ref!r} is not a 'module.Class' reference")
                continue
            if "--" in ref:  # "other/repo--module.Class": the code lives in another Hub repo
                continue
            module = ref.rsplit(".", 1)[0]
            if module not in modules:
                modules.append(module)
    return modules, problems


def validate_model_folder(path: str | Path) -> list[str]:
    """Problems that keep the folder at `path` from being a publishable UniCL model (empty list: none).

    Checks: it is a directory; `config.json` parses and has `model_type` "unicl"; the weights are there
    (`model.safetensors`, or `model.safetensors.index.json` and every shard it lists); every module of the
    `auto_map` of `config.json` (and of processor_config.json / preprocessor_config.json / tokenizer_config.json
    when present) has its `.py` file, and so do their relative imports; `README.md` exists and its metadata
    parses with `ModelCard.load`.
    """
    folder = Path(path)
    if not folder.exists():
        return [f"{folder}: the folder does not exist"]
    if not folder.is_dir():
        return [f"{folder}: not a directory"]

    problems: list[str] = []

    config_path = folder / "config.json"
    if not config_path.is_file():
        problems.append(f"{folder}: missing config.json")
    else:
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(f"config.json: cannot be parsed as JSON ({e})")
            config = None
        if config is not None and not isinstance(config, dict):
            problems.append("config.json: must contain a JSON object")
            config = None
        if config is not None:
            model_type = config.get("model_type")
            if model_type != EXPECTED_MODEL_TYPE:
                problems.append(f"config.json: model_type is {model_type!r}, expected {EXPECTED_MODEL_TYPE!r}")
            if "auto_map" not in config:
                problems.append("config.json: no `auto_map`, so `trust_remote_code=True` cannot find the UniCL code")
            else:
                modules, map_problems = _auto_map_modules(config["auto_map"])
                problems.extend(map_problems)
                problems.extend(_check_modules(folder, modules))

    # Processor / tokenizer configs carry their own auto_map (AutoProcessor, AutoImageProcessor, AutoTokenizer).
    for name in PROCESSOR_CONFIG_NAMES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(f"{name}: cannot be parsed as JSON ({e})")
            continue
        maps = [data.get("auto_map")] if isinstance(data, dict) else []
        maps += [v.get("auto_map") for v in (data.values() if isinstance(data, dict) else []) if isinstance(v, dict)]
        for auto_map in filter(None, maps):
            modules, map_problems = _auto_map_modules(auto_map)
            problems.extend(p.replace("config.json:", f"{name}:", 1) for p in map_problems)
            problems.extend(
                p for p in _check_modules(folder, modules, referrer=f"{name} auto_map") if p not in problems
            )

    index_path = folder / WEIGHTS_INDEX_NAME
    if (folder / WEIGHTS_NAME).is_file():
        pass
    elif index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            problems.append(f"{WEIGHTS_INDEX_NAME}: cannot read its weight_map ({e!r})")
        else:
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                problems.append(f"{WEIGHTS_INDEX_NAME}: missing weight shard(s) {', '.join(missing)}")
    else:
        problems.append(f"{folder}: missing weights ({WEIGHTS_NAME} or sharded {WEIGHTS_INDEX_NAME})")

    readme_path = folder / "README.md"
    if not readme_path.is_file():
        problems.append(f"{folder}: missing README.md (the model card)")
    else:
        problems.extend(_check_model_card(readme_path))
    return problems


def _check_modules(folder: Path, modules: list[str], referrer: str = "config.json auto_map") -> list[str]:
    problems = []
    seen: set[str] = set()
    todo = [(m, referrer) for m in modules]
    while todo:
        module, referrer = todo.pop(0)
        if module in seen:
            continue
        seen.add(module)
        file = folder / (module.replace(".", "/") + ".py")
        if not file.is_file():
            problems.append(f"{file.name}: missing remote-code file (module {module!r} referenced by {referrer})")
            continue
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{file.name}: cannot be read ({e})")
            continue
        todo.extend((m, file.name) for m in _RELATIVE_IMPORT.findall(source))
    return problems


def _check_model_card(readme_path: Path) -> list[str]:
    text = readme_path.read_text(encoding="utf-8-sig", errors="replace")
    if not re.match(r"^\s*---(\r\n|\r|\n)", text):
        return ["README.md: no YAML metadata block (the model card must start with '---' front matter)"]
    try:
        ModelCard.load(readme_path)
    except Exception as e:  # yaml errors, invalid model-index, non-dict metadata, ...
        return [f"README.md: the model card metadata cannot be parsed ({type(e).__name__}: {e})"]
    return []


def folder_warnings(path: str | Path) -> list[str]:
    """Things that do not block the upload but that users of the model will miss."""
    folder = Path(path)
    warnings = []
    if not any((folder / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")):
        warnings.append(
            "no processor_config.json / preprocessor_config.json: AutoProcessor and the zero-shot pipeline "
            "of the model card will not load from this repo"
        )
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.json").is_file():
        warnings.append("no tokenizer files (tokenizer.json or vocab.json): text inputs cannot be tokenized")
    return warnings


def check_repo_id(repo_id: str) -> list[str]:
    """Problems with `repo_id` (must be 'namespace/name', the converter's rule), named by the flag."""
    from modeling_unicl.conversion.model_card import check_repo_id as check  # here: importing the package takes seconds

    try:
        check(repo_id)
    except ValueError as e:  # the message starts with "repo_id "
        return ["--" + str(e)]
    return []


def files_to_upload(folder: str | Path) -> list[tuple[str, int]]:
    """(path relative to `folder`, size in bytes) of every file `upload_folder` will send, sorted."""
    folder = Path(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    kept = filter_repo_objects(paths, ignore_patterns=IGNORE_PATTERNS + _HUB_DEFAULT_IGNORE)
    return [(p, (folder / p).stat().st_size) for p in kept]


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", metavar="OUT", help="converted model folder (output of the converter)")
    parser.add_argument("--repo_id", "--repo-id", required=True, help="target Hub repo, 'namespace/name'")
    parser.add_argument("--private", action="store_true", help="create the repo as private (if it does not exist)")
    parser.add_argument("--commit_message", "--commit-message", default=DEFAULT_COMMIT_MESSAGE)
    parser.add_argument("--revision", default=None, help="branch to push to (created if missing); default main")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the stored login)")
    parser.add_argument("--create_pr", "--create-pr", action="store_true",
                        help="open a pull request instead of pushing directly")
    parser.add_argument("--dry_run", "--dry-run", action="store_true", help="validate and list the files, upload nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)

    problems = check_repo_id(args.repo_id)
    if args.create_pr and args.revision not in (None, "main"):
        problems.append(
            f"--create_pr with --revision {args.revision!r}: huggingface_hub opens pull requests against main only"
        )
    problems += validate_model_folder(args.folder)
    if problems:
        logger.error("Not uploading %s:", args.folder)
        for problem in problems:
            logger.error("  - %s", problem)
        return EXIT_INVALID

    folder = Path(args.folder).resolve()
    for warning in folder_warnings(folder):
        logger.warning("%s", warning)
    files = files_to_upload(folder)
    target = f"{args.repo_id}@{args.revision or 'main'}" + (" (as a pull request)" if args.create_pr else "")
    logger.info("Uploading %d files (%s) from %s to %s:", len(files), _human(sum(s for _, s in files)), folder, target)
    for name, size in files:
        logger.info("  %s (%s)", name, _human(size))
    if args.dry_run:
        logger.info("Dry run: nothing uploaded.")
        return EXIT_OK

    api = HfApi(token=args.token)
    try:
        repo_url = api.create_repo(args.repo_id, private=args.private, exist_ok=True, repo_type="model")
        logger.info("Repo: %s", repo_url)
        if args.revision and args.revision != "main":
            api.create_branch(args.repo_id, branch=args.revision, repo_type="model", exist_ok=True)
            logger.info("Branch: %s", args.revision)
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=args.repo_id,
            repo_type="model",
            commit_message=args.commit_message,
            revision=args.revision,
            create_pr=args.create_pr,
            ignore_patterns=list(IGNORE_PATTERNS),
        )
    except Exception as e:  # network, auth, permission: report it plainly
        logger.error("Upload to %s failed: %s: %s", args.repo_id, type(e).__name__, e)
        return EXIT_HUB_ERROR
    logger.info("Done: %s", getattr(commit, "pr_url", None) or getattr(commit, "commit_url", None) or commit)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
