#!/usr/bin/env python
"""Builds `modeling_unicl/data/animal_silhouettes.npz` from the `animal-mnist==0.4` PyPI package.

The package (MIT, https://pypi.org/project/animal-mnist/0.4/) ships 10,000 real 28x28 grayscale animal
silhouettes (1,000 each of bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra; white animal on a
black background) as two gzip'd pickles of numpy arrays under `animal_mnist/data/Animal_MNIST/`. Its metadata
pulls tensorflow, so get it WITHOUT dependencies (this script never imports the package, it only reads the files):

    pip download --no-deps animal-mnist==0.4 -d /tmp/am   # then: --wheel /tmp/am/animal_mnist-0.4-py3-none-any.whl
    # or
    pip install --no-deps animal-mnist==0.4               # then: no argument needed (found via importlib)

    python scripts/make_embedded_data.py [--wheel WHL | --source_dir DIR] [--out PATH.npz]

What it does (deterministic: the same package files always give a byte-identical npz):
1. unpickles both arrays with a restricted unpickler that only allows numpy's array reconstruction;
2. checks the expected shapes/dtypes (images uint8 [10000, 28, 28], labels int64 [10000], 1,000 per class);
3. drops exact duplicate images (the package has 284 pairs of byte-identical images, never across classes),
   keeping the first occurrence, so that no image can be both in a training split and in the evaluation split;
4. makes a fixed train/test split that does not depend on any random generator: in every class, the
   `--test_per_class` (200) images with the smallest SHA-256 of their pixel bytes are `test`, the rest `train`;
5. writes a `.npz` (a zip of DEFLATE'd `.npy` members with fixed timestamps, so the bytes are reproducible) with
   `images` uint8 [N, 28, 28], `labels` int64 [N], `class_names` <U8 [10], `split` uint8 [N] (0 = train,
   1 = test), `source_index` int64 [N] (row in the package's arrays).
If the result were over 3 MB it would subsample 500 images per class (or `--max_per_class`); not needed: all
9,716 distinct images fit in ~2.6 MB.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

PACKAGE_VERSION = "0.4"
DATA_SUBDIR = "animal_mnist/data/Animal_MNIST"
DATA_FILE = "animal_data_version_3.gz"
LABEL_FILE = "animal_label_version_3.gz"
# Label order of the package (verified by looking at the images: 0 = bears ... 9 = striped zebras).
CLASS_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
MAX_BYTES = 3 * 1024 * 1024
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "modeling_unicl" / "data" / "animal_silhouettes.npz"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays only; any other global in the pickle is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            if module == "numpy.core.multiarray" and hasattr(np, "_core"):  # numpy 2 renamed numpy.core
                module = "numpy._core.multiarray"
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")


def _load_array(raw_gz: bytes) -> np.ndarray:
    return _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(raw_gz))).load()


def read_package_files(wheel: str | None = None, source_dir: str | None = None) -> tuple[bytes, bytes, str]:
    """Returns (data .gz bytes, label .gz bytes, a description of where they came from)."""
    if wheel:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(f"{DATA_SUBDIR}/{DATA_FILE}")
            labels = zf.read(f"{DATA_SUBDIR}/{LABEL_FILE}")
        return data, labels, f"wheel {Path(wheel).name} (sha256 {hashlib.sha256(Path(wheel).read_bytes()).hexdigest()})"
    if source_dir is None:
        spec = importlib.util.find_spec("animal_mnist")  # locates the installed package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(
                "animal_mnist is not installed: `pip install --no-deps animal-mnist==0.4`, or pass --wheel/--source_dir"
            )
        source_dir = str(Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST")
    d = Path(source_dir)
    return (d / DATA_FILE).read_bytes(), (d / LABEL_FILE).read_bytes(), f"directory {d}"


def build_arrays(data_gz: bytes, label_gz: bytes, test_per_class: int = 200, max_per_class: int | None = None):
    images = _load_array(data_gz)
    labels = _load_array(label_gz)
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape == (10000, 28, 28)):
        raise ValueError(f"unexpected image array: {type(images)} {getattr(images, 'shape', None)}")
    if not (isinstance(labels, np.ndarray) and labels.shape == (10000,)):
        raise ValueError(f"unexpected label array: {type(labels)} {getattr(labels, 'shape', None)}")
    labels = labels.astype(np.int64)
    if np.bincount(labels, minlength=10).tolist() != [1000] * 10:
        raise ValueError(f"unexpected class counts {np.bincount(labels).tolist()}")

    # 3. exact duplicates: keep the first occurrence
    seen: dict[bytes, int] = {}
    keep = []
    for i in range(len(images)):
        key = images[i].tobytes()
        if key in seen:
            if labels[seen[key]] != labels[i]:
                raise ValueError(f"images {seen[key]} and {i} are identical but labelled differently")
            continue
        seen[key] = i
        keep.append(i)
    keep = np.asarray(keep, dtype=np.int64)

    # 4. content-hash split, per class; optional content-hash subsample
    digests = {int(i): hashlib.sha256(images[i].tobytes()).hexdigest() for i in keep}
    rows, split = [], []
    for c in range(10):
        idx = sorted((int(i) for i in keep if labels[i] == c), key=lambda i: digests[i])
        if max_per_class is not None:
            idx = idx[:max_per_class]
        rows += idx
        split += [1] * test_per_class + [0] * (len(idx) - test_per_class)
    order = np.argsort(np.asarray(rows), kind="stable")  # back to package order
    rows = np.asarray(rows, dtype=np.int64)[order]
    split = np.asarray(split, dtype=np.uint8)[order]
    return {
        "images": np.ascontiguousarray(images[rows]),
        "labels": labels[rows],
        "class_names": np.asarray(CLASS_NAMES, dtype="<U8"),
        "split": split,
        "source_index": rows,
    }


def write_npz(arrays: dict[str, np.ndarray], out: Path) -> bytes:
    """A valid `.npz` (readable by np.load) with fixed zip timestamps, so the bytes are reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    payload = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(payload)
    return payload


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--wheel", help="path to animal_mnist-0.4-py3-none-any.whl (from `pip download --no-deps`)")
    src.add_argument("--source_dir", "--source-dir", help="folder holding animal_data_version_3.gz and animal_label_version_3.gz")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--test_per_class", "--test-per-class", type=int, default=200)
    p.add_argument("--max_per_class", "--max-per-class", type=int, default=None, help="subsample (only if the file would exceed 3 MB)")
    args = p.parse_args(argv)

    data_gz, label_gz, origin = read_package_files(args.wheel, args.source_dir)
    arrays = build_arrays(data_gz, label_gz, args.test_per_class, args.max_per_class)
    payload = write_npz(arrays, args.out)
    if len(payload) > MAX_BYTES and args.max_per_class is None:
        print(f"{len(payload)} bytes > 3 MB: subsampling 500 per class", file=sys.stderr)
        arrays = build_arrays(data_gz, label_gz, args.test_per_class, 500)
        payload = write_npz(arrays, args.out)
    counts = np.bincount(arrays["labels"], minlength=10)
    print(f"source: {origin}")
    print(f"  {DATA_FILE} sha256 {hashlib.sha256(data_gz).hexdigest()}")
    print(f"  {LABEL_FILE} sha256 {hashlib.sha256(label_gz).hexdigest()}")
    print(f"wrote {args.out} ({len(payload)} bytes, sha256 {hashlib.sha256(payload).hexdigest()})")
    print(f"  {len(arrays['labels'])} images after removing exact duplicates; per class {counts.tolist()}")
    print(f"  split: {int((arrays['split'] == 0).sum())} train / {int((arrays['split'] == 1).sum())} test")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
