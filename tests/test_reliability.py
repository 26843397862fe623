"""Reliability: images as they come, corrupt training rows, non-finite losses, hostile files (README: Reliability).

Bad inputs that must raise are listed (and mostly tested) in tests/test_bad_inputs.py; this file tests that good but
unusual inputs work."""

import io
import math

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from modeling_unicl import UniCLImageProcessor, UniCLProcessor
from modeling_unicl.data import RandomResizedCropAndFlip, UniCLCollator, build_training_dataset, sample_rng
from modeling_unicl.processing_unicl import to_rgb, to_rgb_images

MODES = ("1", "L", "LA", "La", "P", "PT", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr")
INPUT_KINDS = ("pil", "hwc", "chw", "hwc_float", "tensor_chw", "tensor_float", "png_bytes", "path")


@pytest.fixture(scope="module")
def processor():
    return UniCLProcessor(
        image_processor=UniCLImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    )


def make_image(mode: str, width: int, height: int, seed: int = 0) -> PILImage.Image:
    """A random image of `mode` ("PT": palette with a transparent entry)."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, (height, width), dtype=np.uint8)
    if mode == "1":
        return PILImage.fromarray(grey > 127)
    if mode in ("L", "P", "PT"):
        image = PILImage.fromarray(grey)
        if mode != "L":
            image = image.convert("P")
            if mode == "PT":
                image.info["transparency"] = int(grey[0, 0])
        return image
    if mode in ("LA", "La"):
        image = PILImage.fromarray(rng.integers(0, 256, (height, width, 2), dtype=np.uint8))
        return image if mode == "LA" else image.convert("La")
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        channels = 4 if mode == "RGBA" else 3
        image = PILImage.fromarray(rng.integers(0, 256, (height, width, channels), dtype=np.uint8))
        return image.convert(mode) if mode in ("CMYK", "YCbCr") else image
    if mode == "I;16":
        return PILImage.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return PILImage.fromarray(rng.integers(0, 65536, (height, width), dtype=np.int32))
    if mode == "F":
        return PILImage.fromarray(rng.random((height, width), dtype=np.float32))
    raise AssertionError(mode)


def as_input(image: PILImage.Image, kind: str, tmp_path):
    """The same picture as `kind` of input (arrays from its RGB version)."""
    if kind == "pil":
        return image
    rgb = np.array(to_rgb(image))
    if kind == "hwc":
        return rgb
    if kind == "chw":
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)) if rgb.shape[-1] not in (1, 3, 4) else rgb
    if kind == "hwc_float":
        return rgb.astype(np.float32) / 255.0
    if kind == "tensor_chw":
        return torch.from_numpy(rgb).permute(2, 0, 1)
    if kind == "tensor_float":
        return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    encoded = io.BytesIO()
    image = image.convert("LA") if image.mode == "La" else image  # La cannot be encoded
    # YCbCr goes as JPEG, its native colour space: Pillow 12.3 writes YCbCr TIFFs it cannot read back
    formats = {"F": "TIFF", "I": "TIFF", "CMYK": "TIFF", "YCbCr": "JPEG"}
    image.save(encoded, format=formats.get(image.mode, "PNG"))
    if kind == "png_bytes":
        return encoded.getvalue()
    path = tmp_path / "image.bin"
    path.write_bytes(encoded.getvalue())
    return path if image.width % 2 else str(path)


# ------------------------------------------------------------------------------------------ 1. images as they come
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    mode=st.sampled_from(MODES),
    kind=st.sampled_from(INPUT_KINDS),
    seed=st.integers(0, 2**16),
)
# every encoded mode once, whatever the random draw (a YCbCr TIFF that Pillow could not read back failed CI once)
@example(width=1, height=1, mode="YCbCr", kind="png_bytes", seed=0)
@example(width=3, height=2, mode="CMYK", kind="path", seed=1)
@example(width=2, height=5, mode="F", kind="png_bytes", seed=2)
@example(width=7, height=1, mode="I", kind="path", seed=3)
def test_any_mode_size_and_input_kind_becomes_rgb_of_crop_size(processor, tmp_path, width, height, mode, kind, seed):
    value = as_input(make_image(mode, width, height, seed), kind, tmp_path)
    rgb = to_rgb(value)
    assert rgb.mode == "RGB" and rgb.size == (width, height)
    pixel_values = processor(images=value, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 32, 32) and torch.isfinite(pixel_values).all()
    # the training path: augmentation (random resized crop, bicubic) then rescale + normalise
    augmented = RandomResizedCropAndFlip(32)(rgb, sample_rng(seed, 0, 0))
    train_values = processor.image_processor(augmented, do_resize=False, do_center_crop=False, return_tensors="pt")
    assert train_values["pixel_values"].shape == (1, 3, 32, 32) and torch.isfinite(train_values["pixel_values"]).all()


@pytest.mark.parametrize("size", [(1, 1), (1, 500), (500, 1), (2, 300)])
def test_extreme_sizes_through_processor_and_training_data(processor, size):
    images = [make_image(mode, *size, seed=i) for i, mode in enumerate(("RGB", "LA", "PT", "I;16"))]
    dataset = Dataset.from_dict(
        {"image": images, "label": [0, 1, 0, 1]},
        features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])}),
    )
    for train in (True, False):
        data = build_training_dataset(processor, [dataset], train=train, mixing="concat")
        for k in range(len(data)):
            values = data[k]["pixel_values"]
            assert values.shape == (3, 32, 32) and torch.isfinite(values).all()
    batch = processor(images=images, text=["a"] * 4, return_tensors="pt")
    assert batch["pixel_values"].shape == (4, 3, 32, 32)


def test_every_input_kind_gives_the_same_pixels(processor, tmp_path):
    rgb = make_image("RGB", 45, 37, seed=3)
    reference = processor(images=rgb, return_tensors="pt")["pixel_values"]
    for kind in INPUT_KINDS:
        got = processor(images=as_input(rgb, kind, tmp_path), return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(got, reference, rtol=0, atol=0, msg=kind)
    # a batch as a 4-D array / tensor, and a list of mixed kinds
    array = np.stack([np.asarray(rgb)] * 2)
    for batch in (array, torch.from_numpy(array).permute(0, 3, 1, 2), [rgb, np.asarray(rgb)]):
        got = processor(images=batch, return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(got, reference.expand(2, -1, -1, -1), rtol=0, atol=0)
    # the image processor alone (the zero-shot pipeline's path) converts too
    got = processor.image_processor(as_input(rgb, "tensor_float", tmp_path), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(got, reference, rtol=0, atol=0)


def test_conversion_rules():
    # alpha on white, palette transparency through RGBA, 16-bit and float scaling, NaN -> 0
    assert to_rgb(np.array([[[10, 20, 30, 0]]], dtype=np.uint8)).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(np.full((2, 2), 65535, dtype=np.uint16)).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(np.full((2, 2), 257 * 100, dtype=np.uint16)).getpixel((0, 0)) == (100, 100, 100)
    floats = np.asarray(to_rgb(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32)))
    assert floats[0, :, 0].tolist() == [0, 128, 255, 0]
    assert to_rgb(np.array([[0.0, 300.0]])).getpixel((1, 0)) == (255, 255, 255)  # beyond [0, 1]: 0..255, clipped
    assert to_rgb(np.array([[True, False]])).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(torch.ones(1, 2, 2, dtype=torch.bfloat16)).getpixel((0, 0)) == (255, 255, 255)
    premultiplied = PILImage.fromarray(np.array([[[100, 0]]], dtype=np.uint8)).convert("La")
    assert to_rgb(premultiplied).getpixel((0, 0)) == (255, 255, 255)
    palette = make_image("PT", 4, 4)
    transparent = palette.info["transparency"]
    x, y = next((x, y) for y in range(4) for x in range(4) if palette.getpixel((x, y)) == transparent)
    assert to_rgb(palette).getpixel((x, y)) == (255, 255, 255)
    # nested lists keep their nesting; a single image stays single
    nested = to_rgb_images([[np.zeros((2, 2), np.uint8)], [np.zeros((2, 2), np.uint8)] * 2])
    assert [len(n) for n in nested] == [1, 2] and nested[1][0].mode == "RGB"


@pytest.mark.parametrize("source", ["path", "bytes", "pil", "dataset"])
def test_exif_rotated_jpeg_is_upright(processor, tmp_path, source):
    # stored 40 wide x 20 high, left half red; EXIF orientation 6: display rotated 90 degrees clockwise
    stored = PILImage.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = stored.getexif()
    exif[0x0112] = 6
    encoded = io.BytesIO()
    stored.save(encoded, format="JPEG", exif=exif.tobytes(), quality=95)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(encoded.getvalue())
    if source == "dataset":
        dataset = Dataset.from_dict({"image": [str(path)], "caption": ["x"]}, features=Features(
            {"image": Image(), "caption": Value("string")}))
        upright = build_training_dataset(processor, [], [dataset], train=False).hf_dataset[0]["image"]
    else:
        value = {"path": path, "bytes": encoded.getvalue(), "pil": PILImage.open(path)}[source]
        upright = to_rgb(value)
    assert upright.size == (20, 40)  # portrait
    top, bottom = upright.getpixel((10, 3)), upright.getpixel((10, 36))
    assert top[0] > 200 and top[2] < 60, top  # the stored left half is on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_collator_and_zero_shot_helpers_accept_any_input(processor, tmp_path):
    path = tmp_path / "grey.png"
    make_image("I;16", 20, 30).save(path)
    collator = UniCLCollator(processor)
    batch = collator([
        {"image": str(path), "text": "a", "labels": 0},
        {"image": np.zeros((30, 20, 4), np.uint8), "text": "b", "labels": 1},
        {"image": path.read_bytes(), "text": "c", "labels": 0},
    ])
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and torch.isfinite(batch["pixel_values"]).all()
    # transparent black -> white, normalised
    white = (1.0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(batch["pixel_values"][1, :, 5, 5], white, atol=1e-5, rtol=0)
    assert math.isfinite(float(batch["pixel_values"].sum()))


# ------------------------------------------------------------------------------------- 2. corrupt training rows
def _encoded(image: PILImage.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def corrupt_dataset(tmp_path) -> Dataset:
    """10 image-label rows; row 2: truncated JPEG, row 5: truncated PNG, row 7: a missing file."""
    rng = np.random.default_rng(0)
    images = [
        {"bytes": _encoded(PILImage.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)), "PNG"), "path": None}
        for _ in range(10)
    ]
    jpeg = _encoded(PILImage.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    png = _encoded(PILImage.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    images[2] = {"bytes": jpeg[: len(jpeg) // 2], "path": "photos/truncated.jpg"}
    images[5] = {"bytes": png[: len(png) // 2], "path": None}
    images[7] = {"bytes": None, "path": str(tmp_path / "gone.jpg")}
    return Dataset.from_dict(
        {"image": images, "label": [i % 2 for i in range(10)]},
        features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])}),
    )


def test_corrupt_rows_are_skipped_deterministically_and_recorded(processor, tmp_path, caplog):
    captions = Dataset.from_dict(
        {"image": [make_image("RGB", 32, 32, i) for i in range(4)], "caption": [f"c{i}" for i in range(4)]},
        features=Features({"image": Image(), "caption": Value("string")}),
    )
    data = build_training_dataset(processor, [corrupt_dataset(tmp_path)], [captions], mixing="concat")
    with caplog.at_level("WARNING", logger="modeling_unicl.data.sources"):
        examples = [data[k] for k in range(len(data))]
    assert sorted(data.skipped_rows) == [2, 5, 7]
    assert "truncated.jpg" in data.skipped_rows[2] and "embedded bytes" in data.skipped_rows[5]
    assert "gone.jpg" in data.skipped_rows[7]
    assert "row 2" in caplog.text and "truncated.jpg" in caplog.text
    # the next readable row of the same type stands in, with that row's own (seeded) sample
    for bad, substitute in ((2, 3), (5, 6), (7, 8)):
        torch.testing.assert_close(examples[bad]["pixel_values"], examples[substitute]["pixel_values"])
        assert examples[bad]["labels"] == examples[substitute]["labels"]
        assert set(examples[bad]) == {"pixel_values", "text", "labels"}  # the record is the dataset's, not the sample's
    assert all(e["labels"] >= 0 for e in examples[:10]) and all(e["labels"] < 0 for e in examples[10:])
    # the last label row wraps around to the first readable label row, never to the caption row after it
    wrapped = build_training_dataset(processor, [corrupt_dataset(tmp_path).select([0, 1, 2])], [captions])
    torch.testing.assert_close(wrapped[2]["pixel_values"], wrapped[0]["pixel_values"])


def test_strict_raises_with_the_row(processor, tmp_path):
    data = build_training_dataset(processor, [corrupt_dataset(tmp_path)], strict=True)
    data[0]
    with pytest.raises(ValueError, match=r"Unreadable image at row 2 .*truncated\.jpg"):
        data[2]


@pytest.mark.parametrize("start_method", [None, "spawn"])  # the default (fork on Linux), and pickled workers
def test_trainer_reports_skipped_rows_from_dataloader_workers(processor, tmp_path, caplog, start_method):
    from test_trainer import tiny_model, training_args

    from modeling_unicl.training import UniCLTrainer

    data = build_training_dataset(processor, [corrupt_dataset(tmp_path)], crop_scale=(0.5, 1.0))
    args = training_args(
        tmp_path / "out", per_device_train_batch_size=10, max_steps=2, dataloader_num_workers=1,
        dataloader_multiprocessing_context=start_method, dataloader_persistent_workers=start_method == "spawn",
    )
    trainer = UniCLTrainer(model=tiny_model(), args=args, train_dataset=data)
    with caplog.at_level("WARNING"):
        output = trainer.train()
    # only the worker read rows (it alone logged them); the records reached this process through the dataset's channel
    assert "Skipping an unreadable image" not in caplog.text
    assert sorted(data.skipped_rows) == [2, 5, 7] and "truncated.jpg" in data.skipped_rows[2]
    assert sorted(trainer.skipped_images) == [2, 5, 7] and output.metrics["train_skipped_images"] == 3
    assert "3 unreadable training image(s) were skipped" in caplog.text and "row 7:" in caplog.text


# --------------------------------------------------------------------------------------------------- 3. numerics
def _shapes_dataset(n=8):
    from test_trainer import NAMES, label_dataset

    return label_dataset(NAMES, per_class=max(1, n // len(NAMES)))


def _nan_at_forward(model, forward_number: int):
    """Makes the `forward_number`-th training forward (1-based) produce NaN image features."""
    calls = {"n": 0}

    def hook(module, inputs, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] == forward_number:
                return output * float("nan")
        return output

    return model.visual_projection.register_forward_hook(hook)


def test_nonfinite_loss_stops_training_naming_the_step(processor, tmp_path):
    from test_trainer import tiny_model, training_args

    from modeling_unicl.training import NonFiniteLossError, UniCLTrainer

    model = tiny_model()
    _nan_at_forward(model, 3)
    data = build_training_dataset(processor, [_shapes_dataset()])
    trainer = UniCLTrainer(model=model, args=training_args(tmp_path, per_device_train_batch_size=8, max_steps=5),
                           train_dataset=data)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3 .*skip_nonfinite_loss=True"):
        trainer.train()
    assert trainer.state.global_step == 2


def test_nonfinite_loss_is_skipped_when_asked(processor, tmp_path, caplog):
    from test_trainer import logged, tiny_model, training_args
    from transformers import TrainerCallback

    from modeling_unicl.training import UniCLTrainer

    snapshots = {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            snapshots[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model = tiny_model()
    _nan_at_forward(model, 3)
    data = build_training_dataset(processor, [_shapes_dataset()])
    trainer = UniCLTrainer(model=model, args=training_args(tmp_path, per_device_train_batch_size=8, max_steps=5),
                           train_dataset=data, skip_nonfinite_loss=True, callbacks=[Snapshot()])
    with caplog.at_level("WARNING", logger="modeling_unicl.training.callbacks"):
        output = trainer.train()
    assert trainer.skipped_nonfinite_steps == [3] and output.metrics["train_skipped_nonfinite_steps"] == 1
    assert "non-finite loss (nan) at step 3; skipping" in caplog.text and "steps [3]" in caplog.text
    assert trainer.state.global_step == 5 and all(math.isfinite(v) for v in logged(trainer).values())
    for key, value in snapshots[3].items():  # step 3 changed nothing
        torch.testing.assert_close(value, snapshots[2][key], rtol=0, atol=0, msg=key)
    assert any(not torch.equal(snapshots[4][k], snapshots[3][k]) for k in snapshots[3])  # step 4 trained
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_temperature_never_leaves_its_clamp(processor, tmp_path):
    from test_trainer import logged, tiny_model, training_args

    from modeling_unicl.training import UniCLTrainer

    model = tiny_model()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1e6))
    data = build_training_dataset(processor, [_shapes_dataset()])
    trainer = UniCLTrainer(model=model, args=training_args(tmp_path, per_device_train_batch_size=8, max_steps=2,
                                                           learning_rate=0.5), train_dataset=data)
    trainer.train()
    # exp(log(100)) in float32 is 100.0000076: the bound holds up to float32 rounding
    bound = model.config.logit_scale_max * (1 + 1e-6)
    assert model.get_logit_scale().item() <= bound
    assert all(s <= bound for s in logged(trainer, "logit_scale").values())
    assert all(math.isfinite(v) for v in logged(trainer).values())


BF16_RTOL = 1e-2  # bf16 autocast vs fp32 loss, same weights and batch (tiny model); measured ~1e-3


def test_bf16_autocast_loss_matches_fp32(processor):
    from test_trainer import tiny_model

    model = tiny_model().eval()
    data = build_training_dataset(processor, [_shapes_dataset()], [], train=False)
    batch = UniCLCollator(processor)([data[k] for k in range(len(data))])
    with torch.no_grad():
        reference = model(**batch).loss
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(**batch)
    assert low.vision_model_output.pooler_output.dtype == torch.bfloat16  # autocast really is active
    assert low.loss.dtype == torch.float32 and torch.isfinite(low.loss)
    torch.testing.assert_close(low.loss, reference, rtol=BF16_RTOL, atol=0)


# ------------------------------------------------------------------------------------------ 6. interrupted training
def _resumable_run(output_dir, resume=None, stall_at_save=None):
    """6 steps of 8 samples (16 rows: 2 steps per epoch), a checkpoint every 2 steps. `stall_at_save=N` blocks the
    save of checkpoint-N after its weights are written and before its optimizer / trainer state (for a kill)."""
    import time

    from test_trainer import caption_dataset, label_dataset, tiny_model, training_args

    from modeling_unicl.training import UniCLTrainer

    processor = UniCLProcessor(
        image_processor=UniCLImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    )
    train = build_training_dataset(processor, [label_dataset(per_class=1)], [caption_dataset(1)], crop_scale=(0.5, 1))
    args = training_args(output_dir, per_device_train_batch_size=8, max_steps=6, save_strategy="steps", save_steps=2)
    trainer = UniCLTrainer(model=tiny_model(), args=args, train_dataset=train, processing_class=processor)
    if stall_at_save is not None:
        save = trainer._save_optimizer_and_scheduler

        def stalled(folder):
            if trainer.state.global_step == stall_at_save:
                print(f"SAVING {stall_at_save}", flush=True)
                time.sleep(600)
            return save(folder)

        trainer._save_optimizer_and_scheduler = stalled
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_run_killed_during_a_save_resumes_from_the_last_complete_checkpoint(tmp_path, caplog):
    import os
    import random
    import signal
    import subprocess
    import sys
    import threading

    from test_trainer import logged

    from modeling_unicl.training import checkpoint_problem, resolve_resume_checkpoint

    stall = random.choice([4, 6])  # the kill lands inside the save of checkpoint-4 or checkpoint-6
    run_dir = tmp_path / "run"
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path[:0] = [{tests_dir!r}, {os.path.dirname(tests_dir)!r}]\n"
        f"from test_reliability import _resumable_run\n_resumable_run({str(run_dir)!r}, stall_at_save={stall})\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(300, child.kill)
    watchdog.start()
    output = []
    try:
        for line in child.stdout:
            output.append(line)
            if line.strip() == f"SAVING {stall}":
                os.kill(child.pid, signal.SIGKILL)
                break
        child.wait(timeout=60)
    finally:
        watchdog.cancel()
    assert child.returncode == -signal.SIGKILL, "".join(output[-30:])
    half_written = run_dir / f"checkpoint-{stall}"
    assert (half_written / "model.safetensors").is_file() and "trainer_state.json" in checkpoint_problem(half_written)

    assert checkpoint_problem(run_dir / f"checkpoint-{stall - 2}") is None
    with caplog.at_level("WARNING", logger="modeling_unicl.training.checkpoints"):
        resumed = _resumable_run(run_dir, resume=True)
    assert f"checkpoint-{stall} is incomplete" in caplog.text
    assert resumed.state.global_step == 6
    reference, after = logged(_resumable_run(tmp_path / "full")), logged(resumed)
    assert sorted(after) == list(range(1, 7))  # steps up to the checkpoint come from its trainer_state.json
    for step in range(stall - 1, 7):
        assert after[step] == pytest.approx(reference[step], rel=1e-5, abs=1e-6), step

    # a truncated weights file makes a checkpoint incomplete too; an explicit incomplete checkpoint is an error
    weights = run_dir / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "model.safetensors is truncated" in checkpoint_problem(weights.parent)
    assert resolve_resume_checkpoint(True, run_dir) == str(run_dir / "checkpoint-4")
    with pytest.raises(ValueError, match=r"checkpoint-6 is incomplete: model\.safetensors is truncated"):
        resolve_resume_checkpoint(str(weights.parent), run_dir)
