"""Benchmark 6: the training data path on one core, shard to batch, with the JPEG decoded at a reduced scale when the
crop allows it (ours: `ExampleMaker` on the encoded bytes) against the same path with a full-size decode before the
crop (what open_clip's and transformers' run_clip transforms do).

The path: webdataset tar shards of 1024x768 JPEGs (quality 90, natural-ish content: smooth gradients, 1/f noise,
a little pixel noise, so that the files are as large and as costly to decode as photographs') + captions -> read
(raw bytes, no decoding in the reader) -> decode -> random resized crop to the training size -> rescale + normalise
-> tokenise + collate (`UniCLCollator`). Both variants run on the same samples with the same crops (same seed and
epoch), in turn per round (ABAB...), on one thread; per-core samples/s = samples / process CPU seconds (what one
dataloader worker process delivers per core it is given, and less sensitive to other jobs on a shared machine than
wall time, which is reported too)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .workloads import Settings, captions

FEED_RATE = 1000  # images/s the workers must feed: "how many cores for 1,000 images/s"


# ------------------------------------------------------------------------------------------------ the shards
def natural_image(width: int, height: int, seed: int):
    """Smooth colour gradients + noise with the 1/f^1.3 amplitude spectrum of photographs + pixel noise (sigma 3):
    at quality 90 about 0.3 bytes per pixel, as photographs (flat colour would decode many times faster, white noise
    slower)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    frequency = np.hypot(fx, fy)
    frequency[0, 0] = 1.0
    spectrum = (rng.normal(size=(3, *frequency.shape)) + 1j * rng.normal(size=(3, *frequency.shape))) / frequency**1.3
    spectrum[:, 0, 0] = 0
    fields = np.fft.irfft2(spectrum, s=(height, width))
    fields /= fields.std(axis=(1, 2), keepdims=True)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    phases = rng.uniform(0, 2 * np.pi, 3)
    base = 128 + 50 * np.stack([np.cos(3 * x + phases[0]), np.sin(3 * y + phases[1]), np.cos(2 * (x + y) + phases[2])])
    pixels = base + 35 * fields + rng.normal(0, 3, (3, height, width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8).transpose(1, 2, 0))


def smooth_image(width: int, height: int, seed: int):
    """Smooth colour gradients only (no texture): about 0.04 bytes per pixel at quality 90, the cheapest content to
    entropy-decode, for the content sweep (`decode_and_crop_by_content`)."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, 3)
    pixels = 128 + 100 * np.stack([np.sin(3 * x + phases[0]), np.cos(4 * y + phases[1]), np.sin(2 * (x + y) + phases[2])])
    return Image.fromarray(pixels.astype(np.uint8).transpose(1, 2, 0))


# The content sweep: (name, picture maker, JPEG quality). The first is the benchmark's own content; the ratio of a
# reduced-scale decode grows as the compressed bytes per pixel fall, because libjpeg's scaled decoding skips the
# inverse DCT, colour conversion and resize work of the dropped pixels but not the entropy (Huffman) decoding.
CONTENT_SWEEP = (("photo-like, quality 90", natural_image, 90), ("photo-like, quality 75", natural_image, 75),
                 ("smooth gradients, quality 90", smooth_image, 90))


def write_shards(folder: Path, num_images: int, image_size: tuple[int, int], per_shard: int,
                 seed: int = 0) -> tuple[list[str], int]:
    """`num_images` JPEGs (quality 90) + captions as webdataset tar shards (`KEY.jpg`, `KEY.txt`) in `folder`; the
    shard paths and the total JPEG bytes."""
    import webdataset as wds

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    texts = captions(num_images, seed)
    # a few distinct pictures (0.3 s each at 1024x768), each image one of them circularly shifted: distinct files
    pool = [np.asarray(natural_image(*image_size, seed=seed * 1_000_003 + k)) for k in range(min(num_images, 16))]
    rng = np.random.default_rng(seed)
    paths, jpeg_bytes = [], 0
    for shard in range(math.ceil(num_images / per_shard)):
        path = folder / f"{shard:05d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for index in range(shard * per_shard, min(num_images, (shard + 1) * per_shard)):
                shift = (int(rng.integers(image_size[1])), int(rng.integers(image_size[0])))
                picture = Image.fromarray(np.roll(pool[index % len(pool)], shift, axis=(0, 1)))
                buffer = io.BytesIO()
                picture.save(buffer, "JPEG", quality=90)
                jpeg_bytes += buffer.tell()
                sink.write({"__key__": f"{index:08d}", "jpg": buffer.getvalue(), "txt": texts[index]})
        paths.append(str(path))
    return paths, jpeg_bytes


def read_samples(shards: list[str]) -> Iterator[dict]:
    """The reading stage: shards -> rows for `ExampleMaker` (`image`: the encoded bytes, `caption`, `label`, `uid`).
    One function, so that the streaming dataset's reader can take its place."""
    import webdataset as wds

    for sample in wds.WebDataset(shards, shardshuffle=False, nodesplitter=None, workersplitter=None):
        uid = int(sample["__key__"])
        yield {"image": sample["jpg"], "caption": sample["txt"].decode("utf-8"), "label": -(1 + uid), "uid": uid}


# ------------------------------------------------------------------------------------------------ the path
def decoded_before_the_crop(rows: Iterable[dict]) -> Iterator[dict]:
    """The peer: every image decoded at full size (and converted to RGB) before the example is made."""
    from modeling_unicl.processing_unicl import to_rgb

    for row in rows:
        yield {**row, "image": to_rgb(row["image"])}


def run_data_path(shards: list[str], examples, collator, batch_size: int, epoch: int, full_decode: bool) -> int:
    """One pass over the shards: read -> (full decode) -> example -> batches collated; the number of samples."""
    rows = read_samples(shards)
    if full_decode:
        rows = decoded_before_the_crop(rows)
    batch, samples = [], 0
    for row in rows:
        batch.append(examples(row, epoch))
        if len(batch) == batch_size:
            collator(batch)
            samples, batch = samples + len(batch), []
    if batch:
        collator(batch)
        samples += len(batch)
    return samples


def decode_and_crop(encoded: list[bytes], crop, seed: int, epoch: int, full_decode: bool) -> int:
    """Decode + random resized crop + flip alone (PIL, no reading, normalising or collating); the number of images."""
    from modeling_unicl.data.examples import sample_rng
    from modeling_unicl.processing_unicl import to_rgb

    for uid, data in enumerate(encoded):
        rng = sample_rng(seed, epoch, uid)
        if full_decode:
            crop(to_rgb(data), rng)
        else:
            crop.from_encoded(data, rng)
    return len(encoded)


def decode_and_crop_by_content(crop, image_size: tuple[int, int], images: int, rounds: int, seed: int = 0) -> dict:
    """Decode + crop alone, reduced-scale vs full-size, on each content of `CONTENT_SWEEP` (`images` samples, each
    of up to 16 distinct pictures under crops of its own; `rounds` round-robin passes after a warm-up): images/s per
    core, the ratio and the compressed bytes per pixel."""
    results = {}
    for name, make, quality in CONTENT_SWEEP:
        pictures = []
        for k in range(min(images, 16)):
            buffer = io.BytesIO()
            make(*image_size, seed=seed * 1_000_003 + k).save(buffer, "JPEG", quality=quality)
            pictures.append(buffer.getvalue())
        encoded = [pictures[index % len(pictures)] for index in range(images)]
        cpu = {True: [], False: []}
        for epoch in range(rounds + 1):
            for full in (True, False):
                start = time.process_time()
                decode_and_crop(encoded, crop, seed, epoch, full_decode=full)
                if epoch:  # epoch 0 is the warm-up
                    cpu[full].append(time.process_time() - start)
        full_rate, draft_rate = (images / statistics.median(cpu[full]) for full in (True, False))
        results[name] = {"jpeg_quality": quality,
                         "bytes_per_pixel": sum(map(len, pictures)) / (len(pictures) * math.prod(image_size)),
                         "full_decode": full_rate, "draft": draft_rate, "ratio": draft_rate / full_rate}
    return results


@contextlib.contextmanager
def one_core():
    """One torch thread and no tokenizer thread pool, as in a dataloader worker process (tokenizers turns its
    parallelism off after a fork)."""
    threads, parallelism = torch.get_num_threads(), os.environ.get("TOKENIZERS_PARALLELISM")
    torch.set_num_threads(1)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if parallelism is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = parallelism


def draft_reductions(shards: list[str], examples, epoch: int) -> dict[str, int]:
    """How many samples of one pass are decoded at each scale (1: full size), from the crops drawn (not timed)."""
    from PIL import Image

    from modeling_unicl.data.examples import sample_rng

    counts, crop = Counter(), examples.augmentation
    for row in read_samples(shards):
        rng = sample_rng(examples.seed, epoch, row["uid"])
        examples.text(row, rng)  # the template is the first draw, as in ExampleMaker
        width, height = Image.open(io.BytesIO(row["image"])).size
        counts[f"1/{crop.draft_reduction(*crop.get_params(width, height, rng)[2:])}"] += 1
    return dict(sorted(counts.items()))


def bench_data_path(processor, settings: Settings, workdir: Path, seed: int = 0) -> dict:
    """Samples/s per core of the data path, reduced-scale decode (`draft`) vs full-size decode (`full_decode`), and
    of decode + crop alone (`*_decode_and_crop`), round-robin over `settings.data_path_rounds` rounds (one warm-up
    pass each first); the workers the whole path needs to feed `FEED_RATE` images/s."""
    from modeling_unicl import UniCLCollator
    from modeling_unicl.data.examples import ExampleMaker, RandomResizedCropAndFlip, training_image_size
    from modeling_unicl.prompts import IMAGENET_TEMPLATES

    image_size = tuple(settings.data_path_image_size)
    written = time.perf_counter()
    shards, jpeg_bytes = write_shards(workdir / "data_path_shards", settings.data_path_images, image_size,
                                      settings.data_path_shard_size, seed)
    written = time.perf_counter() - written
    crop = RandomResizedCropAndFlip(training_image_size(processor.image_processor))
    examples = ExampleMaker(processor.image_processor, [], IMAGENET_TEMPLATES, seed, augmentation=crop)
    collator = UniCLCollator(processor)
    batch = settings.data_path_batch
    encoded = [row["image"] for row in read_samples(shards)]  # for decode + crop alone, as the issue measured PIL
    variants = {  # name -> one pass at an epoch; the whole path, then decode + crop alone (no reading, no normalising)
        "draft": lambda epoch: run_data_path(shards, examples, collator, batch, epoch, full_decode=False),
        "full_decode": lambda epoch: run_data_path(shards, examples, collator, batch, epoch, full_decode=True),
        "draft_decode_and_crop": lambda epoch: decode_and_crop(encoded, crop, seed, epoch, full_decode=False),
        "full_decode_and_crop": lambda epoch: decode_and_crop(encoded, crop, seed, epoch, full_decode=True),
    }
    times = {name: {"wall_s": [], "cpu_s": []} for name in variants}
    with one_core():
        for one_pass in variants.values():  # warm-up: imports, the tokenizer's cache, the page cache
            one_pass(0)
        for epoch in range(1, settings.data_path_rounds + 1):  # a new epoch per round: new crops, alike for all
            for name, one_pass in variants.items():
                wall, cpu = time.perf_counter(), time.process_time()
                samples = one_pass(epoch)
                times[name]["wall_s"].append(time.perf_counter() - wall)
                times[name]["cpu_s"].append(time.process_time() - cpu)
                if samples != settings.data_path_images:
                    raise RuntimeError(f"The {name} pass gave {samples} samples of {settings.data_path_images}.")
        by_content = decode_and_crop_by_content(crop, image_size, settings.data_path_images, settings.data_path_rounds,
                                                seed)
    per_core = {name: settings.data_path_images / statistics.median(t["cpu_s"]) for name, t in times.items()}
    wall = {name: settings.data_path_images / statistics.median(t["wall_s"]) for name, t in times.items()}
    return {
        "samples_per_s_per_core": per_core,
        "samples_per_s_wall": wall,
        "workers_for_1000_images_per_s": {name: math.ceil(FEED_RATE / per_core[name])
                                          for name in ("draft", "full_decode")},
        "times_s": times,
        "images": settings.data_path_images, "image_size": list(image_size), "shards": len(shards),
        "batch_size": settings.data_path_batch, "crop_size": list(crop.size), "crop_scale": list(crop.scale),
        "jpeg_quality": 90, "jpeg_bytes_per_pixel": jpeg_bytes / (settings.data_path_images * math.prod(image_size)),
        "draft_reductions_first_round": draft_reductions(shards, examples, epoch=1),
        "decode_and_crop_by_content": by_content,
        "shards_written_s": written,
    }
