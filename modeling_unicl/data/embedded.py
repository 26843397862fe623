"""The embedded default data of `python scripts/train.py`: real animal silhouettes as image-label AND image-text data.

Where the images come from
--------------------------
`modeling_unicl/data/animal_silhouettes.npz` (~2.6 MB, shipped with the package) holds the 9,716 distinct real 28x28
grayscale silhouettes of the `animal-mnist==0.4` PyPI package (MIT, see `data/LICENSE_ANIMAL_MNIST.txt`): bear, bird,
cat, cow, dog, elephant, giraffe, horse, sheep, zebra, white animal on a black background (zebras keep their
stripes). `scripts/make_embedded_data.py` made it (exact duplicates removed, a fixed content-hash train/test split of
200 test images per class); `data/README.md` says how. Nothing is downloaded at run time.

What UniCL needs, and how it is built from them
-----------------------------------------------
UniCL trains one image tower and one text tower on the union of image-label data (the class name becomes a prompt
such as "a photo of a dog.") and image-caption data, with a bidirectional contrastive loss whose positives are all
pairs in the batch that share a label; every image-caption pair gets its own unique label. It then classifies any
class by its name. `build_embedded_datasets` reproduces that setting in miniature:

* `label_train` -- the supervised source (like ImageNet): one silhouette, centred with a little scale/offset
  jitter, labelled with a `ClassLabel` of the SEEN classes only.
* `caption_train` -- the web source (like GCC/YFCC): no PyPI package ships image-caption data, so captions are
  generated for compositions of the real silhouettes on a canvas, and they say more than a class name, so the text
  tower must read language rather than look up a label: position and size ("a small cat in the top left corner",
  "a large elephant"), two animals and their arrangement ("a cow to the left of a zebra", "two dogs side by side"),
  contrast ("a black zebra on a white background" for an inverted image; the default rendering is white on black),
  with several sentence templates and synonyms per phrase.
* Held-out classes (`HELD_OUT_CLASSES`, default giraffe, sheep, zebra) NEVER appear as labels in `label_train`,
  but appear by name in captions. Scoring them (`eval_held_out`) measures what the paper is about: concepts that
  only the image-text data covers become classifiable by name because both sources share one embedding space.
  They are chosen so the benchmark is meaningful: two visually distinctive ones (giraffe: the long neck; zebra:
  the stripes, the only textured silhouettes) and one that is hard (sheep, close to cow). Keeping them out of the
  label data also removes a conflict that the objective builds in: an image-caption pair showing a sheep is, by the
  objective's design, a negative for the prompt "a photo of a sheep." (its label is unique, not "sheep"), so a
  class present in both sources gets contradicting targets. For the seen classes that conflict stays, exactly as
  with ImageNet classes inside web captions in the paper.
* Coarse words (`COARSE_WORDS`): with probability `coarse_caption_prob` (default 0.25) each animal in a caption is
  named by its coarse category ("a farm animal next to a dog", "two pets side by side") instead of its name, as
  web captions often are vague. Caption supervision is therefore noisier and less specific than label
  supervision, and a caption showing a sheep may never say "sheep" -- which is why both sources are needed.
* `eval_all` (all 10 classes), `eval_seen` and `eval_held_out` -- single centred silhouettes rendered like the
  label data, from the fixed test split (never used by any training set), each with its OWN `ClassLabel` (the
  paper scores each benchmark on its own class set). Their rendering depends on `eval_seed` only (default 0), so
  runs with different training seeds are scored on the same images.

All images are RGB (grey levels replicated) PIL images of `image_size` px: `datasets.Image(mode="RGB")` features
over grayscale PNG bytes. Same `seed` -> identical datasets; the default sizes (3,000 label images, 3,000
captions, 1,000 eval images at 64 px) build in about three seconds on 2 CPU cores. Only numpy, PIL and datasets
are used (no torch).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image as PILImage

if TYPE_CHECKING:  # `datasets` is imported lazily by `build_embedded_datasets`
    import datasets

DATA_FILE = Path(__file__).resolve().parent / "animal_silhouettes.npz"

ANIMAL_CLASSES: tuple[str, ...] = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
HELD_OUT_CLASSES: tuple[str, ...] = ("giraffe", "sheep", "zebra")
COARSE_WORDS: dict[str, tuple[str, ...]] = {
    "pet": ("cat", "dog"),
    "farm animal": ("cow", "horse", "sheep"),
    "wild animal": ("bear", "elephant", "giraffe", "zebra"),
    "winged animal": ("bird",),
}
COARSE_WORD_OF: dict[str, str] = {name: coarse for coarse, names in COARSE_WORDS.items() for name in names}
PLURALS: dict[str, str] = {
    **{name: name + "s" for name in ANIMAL_CLASSES},
    "sheep": "sheep",
    **{coarse: coarse + "s" for coarse in COARSE_WORDS},
}

DEFAULT_NUM_LABEL_TRAIN = 3000
DEFAULT_NUM_CAPTION_TRAIN = 3000
DEFAULT_NUM_EVAL = 1000

# --- caption vocabulary -------------------------------------------------------------------------------------------
_SIZE_RANGES = {"small": (0.28, 0.38), "medium": (0.50, 0.62), "large": (0.82, 0.95)}
_SIZE_PROBS = (("small", 0.4), ("medium", 0.3), ("large", 0.3))
_SIZE_WORDS = {
    "small": ("small", "little", "tiny"),
    "medium": ("", "", "", "medium-sized"),
    "large": ("large", "big", "huge"),
}
# (row, col) -> phrases; row/col in {0, 1, 2} = top/middle/bottom, left/centre/right
_WHERE = {
    (0, 0): ("in the top left corner", "in the upper left corner", "at the top left"),
    (0, 1): ("at the top", "at the top of the picture", "near the top"),
    (0, 2): ("in the top right corner", "in the upper right corner", "at the top right"),
    (1, 0): ("on the left", "on the left side", "at the left"),
    (1, 1): ("in the middle", "in the centre", "in the center"),
    (1, 2): ("on the right", "on the right side", "at the right"),
    (2, 0): ("in the bottom left corner", "in the lower left corner", "at the bottom left"),
    (2, 1): ("at the bottom", "at the bottom of the picture", "near the bottom"),
    (2, 2): ("in the bottom right corner", "in the lower right corner", "at the bottom right"),
}
_POSITIONS_FOR_SIZE = {
    "small": tuple(_WHERE),
    "medium": ((1, 1), (0, 1), (2, 1), (1, 0), (1, 2)),
    "large": ((1, 1),),
}
_SINGLE_TEMPLATES = (
    "{np}{where}{bg}.",
    "a photo of {np}{where}{bg}.",
    "silhouette of {np}{where}{bg}.",
    "there is {np}{where}{bg}.",
    "a picture of {np}{where}{bg}.",
    "an image showing {np}{where}{bg}.",
)
_PAIR_TEMPLATES = (
    "{a} to the left of {b}{bg}.",
    "{b} to the right of {a}{bg}.",
    "{a} and {b} side by side{bg}.",
    "{a} on the left and {b} on the right{bg}.",
    "{b} on the right and {a} on the left{bg}.",
    "{a} next to {b}{bg}.",
    "a photo of {a} next to {b}{bg}.",
    "{b} standing next to {a}{bg}.",
)
_SAME_PAIR_TEMPLATES = (
    "two {plural} side by side{bg}.",
    "a photo of two {plural}{bg}.",
    "a pair of {plural}{bg}.",
    "two {plural} next to each other{bg}.",
)
_BG_PREPOSITIONS = ("on", "on", "against")
_P_PAIR = 0.45  # fraction of captions with two animals
_P_SAME_PAIR = 0.15  # of those, fraction with two animals of the same class
_P_INVERTED = 0.3  # black animal on a white background (always said in the caption)
_P_MENTION_DEFAULT_COLOUR = 0.2  # "on a black background" / "a white cat" for the default rendering


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


@dataclass
class EmbeddedData:
    """The datasets of the embedded default job (see the module docstring)."""

    label_train: datasets.Dataset
    caption_train: datasets.Dataset
    eval_all: datasets.Dataset
    eval_seen: datasets.Dataset
    eval_held_out: datasets.Dataset
    seen_classes: tuple[str, ...]
    held_out_classes: tuple[str, ...]
    seed: int = 0
    image_size: int = 64
    coarse_caption_prob: float = 0.25
    # per caption: kind ("single" | "pair" | "same_pair"), mentions [(class name, named by coarse word?)], classes
    # (class of each drawn animal), inverted, size, position, source (rows of the npz, one per drawn animal)
    caption_info: list[dict] = field(default_factory=list, repr=False)
    # rows of the npz used by each split (caption_train: one array with all drawn rows)
    source_indices: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def eval_splits(self) -> dict[str, datasets.Dataset]:
        """The three benchmarks by name: `all`, `seen`, `held_out` (each with its own class set)."""
        return {"all": self.eval_all, "seen": self.eval_seen, "held_out": self.eval_held_out}

    def describe(self, num_examples: int = 6) -> str:
        """A short Markdown summary: counts per split, class sets, example captions."""
        n_mentions = sum(len(c["mentions"]) for c in self.caption_info)
        n_coarse = sum(coarse for c in self.caption_info for _, coarse in c["mentions"])
        kinds = {k: sum(c["kind"] == k for c in self.caption_info) for k in ("single", "pair", "same_pair")}
        n_inv = sum(c["inverted"] for c in self.caption_info)
        rows = [
            ("label_train", len(self.label_train), "image, label", ", ".join(self.seen_classes)),
            ("caption_train", len(self.caption_train), "image, caption", "all 10 by name (+ coarse words)"),
            ("eval_all", len(self.eval_all), "image, label", ", ".join(ANIMAL_CLASSES)),
            ("eval_seen", len(self.eval_seen), "image, label", ", ".join(self.seen_classes)),
            ("eval_held_out", len(self.eval_held_out), "image, label", ", ".join(self.held_out_classes) or "-"),
        ]
        lines = [
            f"### Embedded data: real animal silhouettes (animal-mnist 0.4, MIT), {self.image_size} px RGB, "
            f"seed {self.seed}",
            "",
            "| split | examples | columns | classes |",
            "|---|---:|---|---|",
            *(f"| {name} | {n} | {cols} | {classes} |" for name, n, cols, classes in rows),
            "",
            "Held-out classes (never a label in `label_train`, named only in captions): "
            f"{', '.join(self.held_out_classes) or 'none'}.",
            f"Captions: {kinds['single']} one animal, {kinds['pair']} two animals, {kinds['same_pair']} two of a kind; "
            f"{n_inv} inverted (black on white); {n_coarse}/{n_mentions} animal mentions "
            f"({n_coarse / max(n_mentions, 1):.0%}, asked {self.coarse_caption_prob:.0%}) use a coarse word "
            f"({', '.join(COARSE_WORDS)}).",
            "",
            "Example captions:",
            *(f"- {c}" for c in self.caption_train[:num_examples]["caption"]),
        ]
        return "\n".join(lines)


def _load_npz(path: str | Path | None = None) -> dict[str, np.ndarray]:
    path = Path(path) if path is not None else DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"The embedded animal silhouettes are missing: {path} does not exist. It ships with the package "
            f"(modeling_unicl/data/); to rebuild it: `pip download --no-deps animal-mnist==0.4 -d /tmp/am && "
            f"python scripts/make_embedded_data.py --wheel /tmp/am/animal_mnist-0.4-py3-none-any.whl`."
        )
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def load_animal_silhouettes(
    path: str | Path | None = None, split: str | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images uint8 [N, 28, 28] white-on-black, labels int64 [N], class names) from the shipped file.

    `split`: None (all 9,716), "train" (7,716) or "test" (2,000 = 200 per class, the evaluation pool).
    """
    d = _load_npz(path)
    images, labels = d["images"], d["labels"].astype(np.int64)
    if split is not None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
        keep = d["split"] == (1 if split == "test" else 0)
        images, labels = images[keep], labels[keep]
    return images, labels, tuple(str(c) for c in d["class_names"])


# --- rendering ----------------------------------------------------------------------------------------------------
def _crop(sil: np.ndarray) -> np.ndarray:
    mask = sil > 24
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return sil
    return sil[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _paste(canvas: np.ndarray, sil: np.ndarray, extent: float, cy: float, cx: float) -> None:
    """Draws `sil` (cropped) with its longer side = `extent` * canvas size, centred at (cy, cx) in [0, 1]."""
    size = canvas.shape[0]
    crop = _crop(sil)
    h, w = crop.shape
    scale = extent * size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    patch = np.asarray(PILImage.fromarray(crop).resize((nw, nh), PILImage.BILINEAR))
    top = min(max(round(cy * size - nh / 2), 0), size - nh)
    left = min(max(round(cx * size - nw / 2), 0), size - nw)
    region = canvas[top : top + nh, left : left + nw]
    np.maximum(region, patch, out=region)


def _to_png(canvas: np.ndarray, inverted: bool = False) -> dict:
    """Stored as a grayscale PNG (a third of the bytes and of the encoding time); the `Image(mode="RGB")` feature
    of every split converts it on decoding, so users always get RGB PIL images with replicated grey levels."""
    if inverted:
        canvas = 255 - canvas
    buf = io.BytesIO()
    PILImage.fromarray(canvas).save(buf, format="PNG", compress_level=1)
    return {"bytes": buf.getvalue(), "path": None}


def _render_centred(sil: np.ndarray, size: int, rng: np.random.Generator) -> dict:
    """A label/eval image: one silhouette, centred, longer side 65-90 % of the canvas, offset jitter +-6 %."""
    canvas = np.zeros((size, size), np.uint8)
    extent = rng.uniform(0.65, 0.9)
    cy, cx = 0.5 + rng.uniform(-0.06, 0.06, size=2)
    _paste(canvas, sil, extent, cy, cx)
    return _to_png(canvas)


def _where_centre(pos: tuple[int, int], extent: float, rng: np.random.Generator) -> tuple[float, float]:
    def coord(k: int) -> float:
        if k == 0:
            return extent / 2 + rng.uniform(0.0, 0.04)
        if k == 2:
            return 1 - extent / 2 - rng.uniform(0.0, 0.04)
        return 0.5 + rng.uniform(-0.04, 0.04)

    return coord(pos[0]), coord(pos[1])


# --- builder ------------------------------------------------------------------------------------------------------
def _validate_held_out(held_out_classes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(held_out_classes, str):
        held_out_classes = (held_out_classes,)
    held = tuple(held_out_classes)
    unknown = [c for c in held if c not in ANIMAL_CLASSES]
    if unknown:
        raise ValueError(f"unknown held-out class(es) {unknown}; valid names: {', '.join(ANIMAL_CLASSES)}")
    if len(set(held)) != len(held):
        raise ValueError(f"held-out classes repeat a name: {list(held)}")
    if len(held) > len(ANIMAL_CLASSES) - 2:
        raise ValueError(f"at least two classes must stay seen; got held-out {list(held)}")
    return tuple(c for c in ANIMAL_CLASSES if c in held)  # label order


def _balanced_counts(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def build_embedded_datasets(
    seed: int = 0,
    image_size: int = 64,
    num_label_train: int = DEFAULT_NUM_LABEL_TRAIN,
    num_caption_train: int = DEFAULT_NUM_CAPTION_TRAIN,
    num_eval: int = DEFAULT_NUM_EVAL,
    held_out_classes: Sequence[str] = HELD_OUT_CLASSES,
    coarse_caption_prob: float = 0.25,
    eval_seed: int = 0,
    data_path: str | Path | None = None,
) -> EmbeddedData:
    """Builds the image-label, image-caption and evaluation datasets (see the module docstring).

    `num_label_train` images are spread evenly over the seen classes and `num_eval` over all 10 classes (at most
    200 per class: the test pool); captions cycle evenly through the 10 classes for their first animal. `seed`
    drives every training choice; `eval_seed` alone drives which test images are used and how they are rendered.
    """
    import datasets  # imported here so that `import modeling_unicl.data.embedded` stays light

    held = _validate_held_out(held_out_classes)
    seen = tuple(c for c in ANIMAL_CLASSES if c not in held)
    if not 16 <= int(image_size) <= 1024:
        raise ValueError(f"image_size must be in [16, 1024], got {image_size}")
    image_size = int(image_size)
    if not 0.0 <= coarse_caption_prob <= 1.0:
        raise ValueError(f"coarse_caption_prob must be in [0, 1], got {coarse_caption_prob}")
    sizes = {"num_label_train": num_label_train, "num_caption_train": num_caption_train, "num_eval": num_eval}
    for name, n in sizes.items():
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")

    d = _load_npz(data_path)
    images, labels, split = d["images"], d["labels"].astype(np.int64), d["split"]
    class_names = tuple(str(c) for c in d["class_names"])
    if class_names != ANIMAL_CLASSES:
        raise ValueError(f"unexpected class names in the data file: {class_names}")
    train_pool = {c: np.flatnonzero((labels == c) & (split == 0)) for c in range(len(ANIMAL_CLASSES))}
    test_pool = {c: np.flatnonzero((labels == c) & (split == 1)) for c in range(len(ANIMAL_CLASSES))}
    rng = np.random.default_rng(seed)
    eval_rng = np.random.default_rng([eval_seed, 1])
    n_cls = len(ANIMAL_CLASSES)

    # ---- evaluation rows: the fixed test pool, balanced over all classes, chosen by eval_seed only
    eval_rows, eval_y = [], []
    for c, n in enumerate(_balanced_counts(num_eval, n_cls)):
        if n > len(test_pool[c]):
            raise ValueError(
                f"num_eval={num_eval} asks {n} '{ANIMAL_CLASSES[c]}' test images; only {len(test_pool[c])} exist"
            )
        eval_rows.append(eval_rng.permutation(test_pool[c])[:n])
        eval_y += [c] * n
    eval_rows, eval_y = np.concatenate(eval_rows), np.asarray(eval_y, np.int64)
    order = eval_rng.permutation(len(eval_rows))
    eval_rows, eval_y = eval_rows[order], eval_y[order]

    # ---- image-label data: seen classes only, disjoint from the caption images while the pool allows
    seen_ids = [ANIMAL_CLASSES.index(c) for c in seen]
    label_rows, label_y, caption_pool = [], [], {}
    for k, (c, n) in enumerate(zip(seen_ids, _balanced_counts(num_label_train, len(seen_ids)))):
        pool = rng.permutation(train_pool[c])
        if n > len(pool):
            raise ValueError(
                f"num_label_train={num_label_train} asks {n} '{ANIMAL_CLASSES[c]}' images; only {len(pool)} exist"
            )
        label_rows.append(pool[:n])
        label_y += [k] * n
        caption_pool[c] = pool[n:] if len(pool) > n else pool  # overlap only if label_train took every image
    for c in (ANIMAL_CLASSES.index(h) for h in held):
        caption_pool[c] = train_pool[c]
    label_rows = np.concatenate(label_rows) if label_rows else np.zeros(0, np.int64)
    label_y = np.asarray(label_y, np.int64)
    order = rng.permutation(len(label_rows))
    label_rows, label_y = label_rows[order], label_y[order]
    label_images = [_render_centred(images[r], image_size, rng) for r in label_rows]

    # ---- image-caption data: compositions of real silhouettes, all 10 classes named
    def mention(c: int, coarse: bool) -> str:
        return COARSE_WORD_OF[ANIMAL_CLASSES[c]] if coarse else ANIMAL_CLASSES[c]

    def draw(c: int) -> int:
        pool = caption_pool[c]
        return int(pool[rng.integers(len(pool))])

    first_classes = np.concatenate([rng.permutation(n_cls) for _ in range(-(-num_caption_train // n_cls))] + [[]])
    caption_images, captions, caption_info = [], [], []
    for i in range(num_caption_train):
        c1 = int(first_classes[i])
        inverted = bool(rng.random() < _P_INVERTED)
        say_colour = inverted or bool(rng.random() < _P_MENTION_DEFAULT_COLOUR)
        fg, bg_word = ("black", "white") if inverted else ("white", "black")
        bg = f" {_BG_PREPOSITIONS[rng.integers(len(_BG_PREPOSITIONS))]} a {bg_word} background" if say_colour else ""
        canvas = np.zeros((image_size, image_size), np.uint8)
        if rng.random() >= _P_PAIR:  # one animal, with a size and a position
            size = _SIZE_PROBS[rng.choice(len(_SIZE_PROBS), p=[p for _, p in _SIZE_PROBS])][0]
            positions = _POSITIONS_FOR_SIZE[size]
            pos = positions[rng.integers(len(positions))]
            extent = rng.uniform(*_SIZE_RANGES[size])
            row = draw(c1)
            _paste(canvas, images[row], extent, *_where_centre(pos, extent, rng))
            coarse = bool(rng.random() < coarse_caption_prob)
            words = _SIZE_WORDS[size]
            size_word = words[rng.integers(len(words))]
            colour_word = ""
            if say_colour and rng.random() < 0.5:  # "a black cat" instead of "... on a white background"
                colour_word, bg = fg, bg if rng.random() < 0.5 else ""
            where = _WHERE[pos][rng.integers(3)]
            if size == "large" and rng.random() < 0.5:
                where = ""
            np_ = _article(" ".join(w for w in (size_word, colour_word, mention(c1, coarse)) if w))
            template = _SINGLE_TEMPLATES[rng.integers(len(_SINGLE_TEMPLATES))]
            caption = template.format(np=np_, where=f" {where}" if where else "", bg=bg)
            info = dict(kind="single", mentions=[(ANIMAL_CLASSES[c1], coarse)], classes=[c1], size=size, position=pos)
            rows = [row]
        else:  # two animals side by side (left one = c1 or the other, at random)
            same = bool(rng.random() < _P_SAME_PAIR)
            other = c1 if same else int((c1 + rng.integers(1, n_cls)) % n_cls)
            left, right = (c1, other) if rng.random() < 0.5 else (other, c1)
            rows = [draw(left), draw(right)]
            cy = 0.5 + rng.uniform(-0.08, 0.08)
            for row, cx0 in zip(rows, (0.25, 0.75)):
                extent = rng.uniform(0.38, 0.48)
                _paste(canvas, images[row], extent, cy + rng.uniform(-0.04, 0.04), cx0 + rng.uniform(-0.03, 0.03))
            if same:
                coarse = bool(rng.random() < coarse_caption_prob)
                template = _SAME_PAIR_TEMPLATES[rng.integers(len(_SAME_PAIR_TEMPLATES))]
                caption = template.format(plural=PLURALS[mention(left, coarse)], bg=bg)
                mentions = [(ANIMAL_CLASSES[left], coarse)]
            else:
                ca, cb = (bool(rng.random() < coarse_caption_prob) for _ in range(2))
                template = _PAIR_TEMPLATES[rng.integers(len(_PAIR_TEMPLATES))]
                caption = template.format(a=_article(mention(left, ca)), b=_article(mention(right, cb)), bg=bg)
                mentions = [(ANIMAL_CLASSES[left], ca), (ANIMAL_CLASSES[right], cb)]
            kind = "same_pair" if same else "pair"
            info = dict(kind=kind, mentions=mentions, classes=[left, right], size=None, position=None)
        info.update(inverted=inverted, source=rows)
        caption_images.append(_to_png(canvas, inverted))
        captions.append(caption)
        caption_info.append(info)

    # ---- evaluation rendering (rows chosen above)
    eval_images = [_render_centred(images[r], image_size, eval_rng) for r in eval_rows]

    # ---- datasets
    def labelled(imgs: list, ys: Sequence[int], names: Sequence[str]) -> datasets.Dataset:
        features = datasets.Features(
            {"image": datasets.Image(mode="RGB"), "label": datasets.ClassLabel(names=list(names))}
        )
        return datasets.Dataset.from_dict({"image": list(imgs), "label": [int(y) for y in ys]}, features=features)

    def subset(names: Sequence[str]) -> datasets.Dataset:
        ids = [ANIMAL_CLASSES.index(n) for n in names]
        keep = [i for i, y in enumerate(eval_y) if y in ids]
        return labelled([eval_images[i] for i in keep], [ids.index(eval_y[i]) for i in keep], names)

    caption_features = datasets.Features({"image": datasets.Image(mode="RGB"), "caption": datasets.Value("string")})
    return EmbeddedData(
        label_train=labelled(label_images, label_y, seen),
        caption_train=datasets.Dataset.from_dict(
            {"image": caption_images, "caption": captions}, features=caption_features
        ),
        eval_all=labelled(eval_images, eval_y, ANIMAL_CLASSES),
        eval_seen=subset(seen),
        eval_held_out=subset(held),
        seen_classes=seen,
        held_out_classes=held,
        seed=seed,
        image_size=image_size,
        coarse_caption_prob=coarse_caption_prob,
        caption_info=caption_info,
        source_indices={
            "label_train": label_rows,
            "caption_train": np.asarray([r for info in caption_info for r in info["source"]], np.int64),
            "eval_all": eval_rows,
        },
    )


def unused_training_rows(data: EmbeddedData, npz: dict | None = None) -> list[np.ndarray]:
    """Per class (in `ANIMAL_CLASSES` order), the rows of the npz's train split that no training set of `data` draws."""
    d = npz if npz is not None else _load_npz()
    labels, split = d["labels"].astype(np.int64), d["split"]
    used = np.union1d(data.source_indices["label_train"], data.source_indices["caption_train"])
    return [np.setdiff1d(np.flatnonzero((labels == c) & (split == 0)), used) for c in range(len(ANIMAL_CLASSES))]


def build_embedded_validation(
    data: EmbeddedData, max_per_class: int = 50, validation_seed: int = 0, data_path: str | Path | None = None
) -> dict[str, datasets.Dataset]:
    """Validation benchmarks for choosing settings without the test split: centred silhouettes (rendered as the
    evaluation images) from the npz's TRAIN split that no training set of `data` draws, up to `max_per_class` per
    class (fewer where the training sets left fewer: bird keeps about 18 at the default sizes). Returns
    {"all", "seen", "held_out"}, each with its own `ClassLabel`, as `EmbeddedData.eval_splits()`."""
    import datasets

    d = _load_npz(data_path)
    rng = np.random.default_rng([validation_seed, 2])
    rows, ys = [], []
    for c, free in enumerate(unused_training_rows(data, d)):
        chosen = rng.permutation(free)[:max_per_class]
        rows += chosen.tolist()
        ys += [c] * len(chosen)
    images = [_render_centred(d["images"][r], data.image_size, rng) for r in rows]

    def labelled(names: Sequence[str]) -> datasets.Dataset:
        ids = [ANIMAL_CLASSES.index(n) for n in names]
        keep = [i for i, y in enumerate(ys) if y in ids]
        features = datasets.Features({"image": datasets.Image(mode="RGB"), "label": datasets.ClassLabel(names=list(names))})
        return datasets.Dataset.from_dict(
            {"image": [images[i] for i in keep], "label": [ids.index(ys[i]) for i in keep]}, features=features
        )

    return {"all": labelled(ANIMAL_CLASSES), "seen": labelled(data.seen_classes), "held_out": labelled(data.held_out_classes)}


__all__ = [
    "ANIMAL_CLASSES",
    "COARSE_WORDS",
    "COARSE_WORD_OF",
    "DATA_FILE",
    "EmbeddedData",
    "HELD_OUT_CLASSES",
    "build_embedded_datasets",
    "build_embedded_validation",
    "load_animal_silhouettes",
]
