"""Streamed training data (modeling_unicl.data.streaming and its rooms): shard lists, who reads which shard, exact
per-batch mixing, sample ids, synonyms, bad data counted per kind, checks before training, exact resume of the
loader state, streamed `datasets`, and make_shards.py. Shards are generated here (32 px JPEGs); nothing is
downloaded. The multi-process and trainer paths are in tests/test_training_streaming.py."""

import io
import json
import sys
import tarfile
from collections import Counter

import numpy as np
import pytest
import webdataset as wds
from PIL import Image as PILImage

from conftest import REPO_ROOT, tiny_processor

from modeling_unicl.data import UniCLCollator, build_streaming_dataset, sample_uid, write_shards
from modeling_unicl.data.class_names import ClassNames, read_class_names_file
from modeling_unicl.data.sampling import label_samples_per_batch
from modeling_unicl.data.shards import expand_shard_patterns, worker_shards

sys.path.insert(0, str(REPO_ROOT / "scripts"))


def jpeg(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.full((size, size, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    pixels[: size // 2, : size // 2] = rng.integers(0, 256, 3)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_label_shards(folder, num_shards=4, per_shard=6, num_classes=None, first=0):
    """Image-label shards whose sample i (counting from `first`) has class id i: a class id names its sample."""
    total = num_shards * per_shard
    num_classes = num_classes or first + total
    samples = ({"jpg": jpeg(first + i), "cls": first + i} for i in range(total))
    write_shards(samples, folder, kind="image-label", max_samples=per_shard,
                 class_names=[f"class {i}" for i in range(num_classes)])
    return f"{folder}/{{00000..{num_shards - 1:05d}}}.tar", f"{folder}/classes.txt"


def make_caption_shards(folder, num_shards=4, per_shard=6):
    samples = ({"jpg": jpeg(1000 + i), "txt": f"caption number {i}"} for i in range(num_shards * per_shard))
    write_shards(samples, folder, kind="image-text", max_samples=per_shard)
    return f"{folder}/{{00000..{num_shards - 1:05d}}}.tar"


def caption_uids(pattern: str) -> dict[int, str]:
    """label of every caption sample of the shards -> "shard#key"."""
    found = {}
    for url in expand_shard_patterns(pattern):
        with tarfile.open(url) as tar:
            for key in {member.name.split(".")[0] for member in tar.getmembers()}:
                found[-(1 + sample_uid(url, key))] = f"{url}#{key}"
    return found


def batches(dataset, count, batch_size, num_workers=0, state=None):
    dataset.configure(batch_size)
    loader = dataset.make_loader(UniCLCollator(dataset.processor), num_workers=num_workers)
    if state is not None:
        loader.load_state_dict(state)
    iterator, out = iter(loader), []
    for _ in range(count):
        out.append(next(iterator))
    return out, loader


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    label_pattern, classes = make_label_shards(folder / "label")
    return label_pattern, classes, make_caption_shards(folder / "caption")


# -------------------------------------------------------------------------------------------- class names
def test_class_name_file_synonyms_are_drawn_per_sample_and_cleaned(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("tench, Tinca tinca\nhot+dog\n\n")
    names = read_class_names_file(path)
    assert names.synonyms == [("tench", "Tinca tinca"), ("hot+dog",)] and names.display_names == ["tench", "hot+dog"]
    assert {names.prompt_name(0, draw) for draw in range(4)} == {"tench", "Tinca tinca"}
    assert names.prompt_name(1, 7) == "hot dog"
    assert ClassNames.from_names(["crane, bird"]).prompt_name(0, 3) == "crane bird"  # a ClassLabel name: commas dropped
    path.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        read_class_names_file(path)
    with pytest.raises(OSError, match="does not exist"):
        read_class_names_file(tmp_path / "missing.txt")


def test_class_prompts_use_every_synonym_from_the_sample_generator(processor, tmp_path):
    write_shards(({"jpg": jpeg(i), "cls": 0} for i in range(8)), tmp_path / "s", kind="image-label",
                 class_names=["unused"])
    classes = tmp_path / "syn.txt"
    classes.write_text("tench, Tinca tinca\n")
    dataset = build_streaming_dataset(processor, f"{tmp_path}/s/00000.tar", class_names_file=classes,
                                      shuffle_window=8, templates=["{}"])
    texts = [example["text"] for example in _take(dataset.configure(8), 64)]
    assert set(texts) == {"tench", "Tinca tinca"}
    again = [example["text"] for example in _take(dataset.configure(8), 64)]
    assert again == texts  # from (seed, epoch, uid): the same draws every time


def _take(dataset, count):
    iterator = iter(dataset)
    return [next(iterator) for _ in range(count)]


# ------------------------------------------------------------------------------------------------ shard lists
def test_patterns_expand_braces_and_wildcards_and_a_pattern_matching_nothing_is_refused(shards, tmp_path):
    label_pattern, _, caption_pattern = shards
    urls = expand_shard_patterns([label_pattern, caption_pattern])
    assert len(urls) == 8 and urls[0].endswith("label/00000.tar") and urls[-1].endswith("caption/00003.tar")
    folder = label_pattern.rsplit("/", 1)[0]
    assert expand_shard_patterns(f"{folder}/*.tar") == urls[:4]
    assert expand_shard_patterns(f"file://{folder}/0000[0-1].tar") == [f"file://{u}" for u in urls[:2]]
    with pytest.raises(ValueError, match=r"image_text_shards: the shard pattern '.*nothing/\{0\.\.3\}\.tar' matches"):
        expand_shard_patterns(f"{tmp_path}/nothing/{{0..3}}.tar", "image_text_shards")


@pytest.mark.parametrize("num_shards, num_slots", [(8, 4), (5, 4), (3, 8), (1, 4), (7, 7)])
def test_readers_partition_the_samples_of_every_epoch_and_the_order_changes_per_epoch(num_shards, num_slots):
    samples_per_shard = 10
    for epoch in range(3):
        seen = Counter()
        for slot in range(num_slots):
            for shard, stride, phase in worker_shards(num_shards, slot, num_slots, seed=0, group=1, epoch=epoch):
                seen.update((shard, i) for i in range(samples_per_shard) if i % stride == phase)
        assert seen == Counter({(s, i): 1 for s in range(num_shards) for i in range(samples_per_shard)})
    orders = {tuple(worker_shards(8, 0, 1, seed=0, group=1, epoch=e)) for e in range(4)}
    assert len(orders) > 1


# -------------------------------------------------------------------------------------------------- mixing
@pytest.mark.parametrize("label_fraction, batch_size", [(0.5, 6), (0.25, 8), (0.9, 4)])
def test_every_batch_holds_the_exact_label_share_and_caption_ids_are_unique(processor, shards, label_fraction,
                                                                           batch_size):
    label_pattern, classes, caption_pattern = shards
    dataset = build_streaming_dataset(processor, label_pattern, caption_pattern, classes, shuffle_window=5,
                                      label_fraction=label_fraction)
    per_label = label_samples_per_batch(label_fraction, batch_size)
    out, _ = batches(dataset, 6, batch_size, num_workers=2)
    captions = caption_uids(caption_pattern)
    for batch in out:
        labels = batch["labels"].tolist()
        assert all(0 <= label < 24 for label in labels[:per_label])
        assert all(label in captions for label in labels[per_label:])
    # within an epoch of the caption stream (24 samples) no caption id repeats
    caption_labels = [label for batch in out for label in batch["labels"].tolist() if label < 0]
    first_epoch = caption_labels[: len(captions)]
    assert len(set(first_epoch)) == len(first_epoch)


def test_caption_ids_differ_across_shards_and_never_collide_with_class_ids(shards):
    _, _, caption_pattern = shards
    ids = caption_uids(caption_pattern)
    assert len(ids) == 24 and all(label < 0 for label in ids)
    assert sample_uid("a.tar", "000000001") != sample_uid("b.tar", "000000001")
    assert sample_uid("a.tar", "k") == sample_uid("a.tar", "k") < 2**63


def test_two_ranks_of_two_workers_read_every_sample_once_per_epoch(processor, tmp_path):
    # one process plays both ranks (rank is a setting of the dataset); the gloo version is in test_training_streaming
    label_pattern, classes = make_label_shards(tmp_path / "l", num_shards=8, per_shard=6)
    caption_pattern = make_caption_shards(tmp_path / "c", num_shards=8, per_shard=6)
    seen_labels, seen_captions = [], []
    for rank in range(2):
        dataset = build_streaming_dataset(processor, label_pattern, caption_pattern, classes, shuffle_window=4)
        dataset.configure(4, rank=rank, world_size=2)
        loader = dataset.make_loader(UniCLCollator(processor), num_workers=2)
        iterator = iter(loader)
        for _ in range(12):  # 2 workers x 6 batches: each worker's share of epoch 0 (2 shards x 6 samples per type)
            labels = next(iterator)["labels"].tolist()
            seen_labels += labels[:2]
            seen_captions += labels[2:]
    assert sorted(seen_labels) == list(range(48))
    assert sorted(seen_captions) == sorted(caption_uids(caption_pattern))


# -------------------------------------------------------------------------------------------------- resume
def test_loader_state_restores_the_same_samples_in_the_same_order(processor, shards):
    label_pattern, classes, caption_pattern = shards

    def dataset():
        return build_streaming_dataset(processor, label_pattern, caption_pattern, classes, shuffle_window=5)

    reference, _ = batches(dataset(), 14, 4, num_workers=2)
    _, loader = batches(dataset(), 5, 4, num_workers=2)
    state = json.loads(json.dumps(loader.state_dict()))  # as a checkpoint stores it
    resumed, _ = batches(dataset(), 9, 4, num_workers=2, state=state)
    for expected, got in zip(reference[5:], resumed):
        assert expected["labels"].tolist() == got["labels"].tolist()
        assert (expected["pixel_values"] == got["pixel_values"]).all()
        assert (expected["input_ids"] == got["input_ids"]).all()
    with pytest.raises(ValueError, match="same per-device batch size, number of ranks and dataloader workers"):
        batches(dataset(), 1, 6, num_workers=2, state=state)  # another batch size: the saved positions do not apply


# -------------------------------------------------------------------------------------------------- bad data
def _bad_shards(folder):
    """Two caption shards with one damaged sample of each kind among good ones, a truncated tar, a missing shard."""
    folder.mkdir()
    good = lambda i: {"__key__": f"good{i:02d}", "jpg": jpeg(i), "txt": f"good caption {i}"}  # noqa: E731
    with wds.TarWriter(str(folder / "0.tar")) as writer:
        writer.write(good(0))
        writer.write({"__key__": "truncatedjpeg", "jpg": jpeg(50)[:200], "txt": "cut short"})
        writer.write({"__key__": "noimage", "txt": "a caption alone"})
        writer.write(good(1))
        writer.write({"__key__": "nocaption", "jpg": jpeg(51)})
        writer.write({"__key__": "notanimage", "jpg": b"this is text, not a JPEG", "txt": "bytes"})
        writer.write(good(2))
    with wds.TarWriter(str(folder / "1.tar")) as writer:
        for i in range(3, 9):
            writer.write(good(i))
    data = (folder / "1.tar").read_bytes()
    (folder / "1.tar").write_bytes(data[: len(data) // 2])  # truncated in the middle of the shard
    (folder / "2.tar").write_bytes(b"")  # present but not a tar
    return f"{folder}/{{0..3}}.tar"  # 3.tar does not exist


def test_bad_samples_and_shards_are_skipped_counted_per_kind_and_logged(processor, tmp_path, caplog):
    pattern = _bad_shards(tmp_path / "bad")
    dataset = build_streaming_dataset(processor, image_text_shards=pattern, shuffle_window=3)
    with caplog.at_level("WARNING"):
        texts = [example["text"] for example in _take(dataset.configure(2), 16)]
    assert {t for t in texts} <= {f"good caption {i}" for i in range(9)} and "good caption 0" in texts
    counts = dataset.skipped_rows.counts()
    assert counts == {"unreadable image": 2, "sample without image": 1, "sample without caption": 1,
                      "truncated tar": 1, "unreadable shard": 2}
    truncated = next(k for k in dataset.skipped_rows if k.endswith("0.tar#truncatedjpeg"))
    assert dataset.skipped_rows.kind(truncated) == "unreadable image"
    assert "sample 'nocaption' of shard" in caplog.text and "3.tar" in caplog.text and "truncated tar" in caplog.text
    strict = build_streaming_dataset(processor, image_text_shards=pattern, shuffle_window=1, strict=True)
    first_problem = r"Unusable training data: (sample '\w+' of )?shard .*bad/\d\.tar .*strict=True"
    with pytest.raises(ValueError, match=first_problem):
        _take(strict.configure(2), 4)  # the first problem met (the shard order is shuffled) stops it


def test_what_would_break_every_sample_is_refused_before_training(processor, shards, tmp_path):
    label_pattern, classes, caption_pattern = shards
    with pytest.raises(ValueError, match="image_label_shards: the shard pattern .* matches no existing file"):
        build_streaming_dataset(processor, f"{tmp_path}/none-{{0..9}}.tar", class_names_file=classes)
    few = tmp_path / "few.txt"
    few.write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"class ids up to 23 .*only 2"):  # the manifest counts 24 classes
        build_streaming_dataset(processor, label_pattern, class_names_file=few)
    unlisted, _ = make_label_shards(tmp_path / "unlisted", num_shards=2, per_shard=3)
    (tmp_path / "unlisted" / "manifest.json").unlink()  # then the first samples tell: shard 1 starts with class 3
    outside = r"00001\.tar: sample '000000003' has a problem: class id outside .*\(class id 3 is outside the 2 class"
    with pytest.raises(ValueError, match=outside):
        build_streaming_dataset(processor, unlisted, class_names_file=few)
    with wds.TarWriter(str(tmp_path / "noimage.tar")) as writer:
        writer.write({"__key__": "a", "txt": "text only", "npy": b"123"})
    with pytest.raises(ValueError, match=r"noimage\.tar: sample 'a' has a problem: sample without image"):
        build_streaming_dataset(processor, image_text_shards=str(tmp_path / "noimage.tar"))
    with pytest.raises(ValueError, match="need class names"):
        build_streaming_dataset(processor, label_pattern)
    with pytest.raises(ValueError, match="mixing='interleave' is not available for streamed data"):
        build_streaming_dataset(processor, image_text_shards=caption_pattern, mixing="interleave")


# ------------------------------------------------------------------------------------------ streamed datasets
def test_streamed_datasets_go_through_the_same_path(processor):
    from datasets import ClassLabel, Dataset, Features, Image, Value

    images = [PILImage.open(io.BytesIO(jpeg(i))) for i in range(12)]
    captions = Dataset.from_dict({"image": images, "caption": [f"streamed {i}" for i in range(12)]},
                                 features=Features({"image": Image(), "caption": Value("string")}))
    labelled = Dataset.from_dict({"image": images, "label": [i % 3 for i in range(12)]},
                                 features=Features({"image": Image(), "label": ClassLabel(names=["a", "b", "c"])}))
    dataset = build_streaming_dataset(
        processor, image_label_datasets=labelled.to_iterable_dataset(num_shards=3),
        image_text_datasets=captions.to_iterable_dataset(num_shards=2), shuffle_window=4,
    )
    assert dataset.class_names == ["a", "b", "c"]
    out, _ = batches(dataset, 6, 4, num_workers=2)
    label_ids = [label for batch in out for label in batch["labels"].tolist()[:2]]
    caption_ids = [label for batch in out for label in batch["labels"].tolist()[2:]]
    assert set(label_ids) <= {0, 1, 2} and all(label < 0 for label in caption_ids)
    assert len(set(caption_ids)) == 12  # 12 caption slots over 6 batches: one epoch, every row once


# ------------------------------------------------------------------------------------------------- make_shards
def test_make_shards_writes_bounded_shards_classes_and_a_manifest(tmp_path, capsys):
    import make_shards

    folder = tmp_path / "photos"
    for name in ("cat", "dog"):
        (folder / "train" / name).mkdir(parents=True)
        for i in range(5):
            (folder / "train" / name / f"{i}.jpg").write_bytes(jpeg(i + (10 if name == "dog" else 0)))
    assert make_shards.main(["--imagefolder", str(folder), "--output_dir", str(tmp_path / "out"),
                             "--max_samples_per_shard", "4"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["kind"] == "image-label" and manifest["num_samples"] == 10 and manifest["num_classes"] == 2
    assert [s["num_samples"] for s in manifest["shards"]] == [4, 4, 2]
    assert (tmp_path / "out" / "classes.txt").read_text() == "cat\ndog\n"
    with tarfile.open(tmp_path / "out" / "00000.tar") as tar:
        names = sorted(tar.getnames())
    assert names[:2] == ["000000000.cls", "000000000.jpg"]
    assert "--image_label_shards" in capsys.readouterr().out

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for i in range(6):
        (pairs / f"{i}.jpg").write_bytes(jpeg(i))
        (pairs / f"{i}.txt").write_text(f"pair {i}\n")
    assert make_shards.main(["--caption_folder", str(pairs), "--output_dir", str(tmp_path / "cap"),
                             "--max_bytes_per_shard", "3000"]) == 0
    manifest = json.loads((tmp_path / "cap" / "manifest.json").read_text())
    assert manifest["kind"] == "image-text" and manifest["num_samples"] == 6 and len(manifest["shards"]) > 1
    assert all(s["num_bytes"] == (tmp_path / "cap" / s["file"]).stat().st_size for s in manifest["shards"])
    assert make_shards.main(["--caption_folder", str(pairs), "--output_dir", str(tmp_path / "cap")]) == 2
