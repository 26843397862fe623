"""The data-path benchmark (scripts/benchmarks/data_path.py) in miniature: shards written and read back as raw bytes,
the whole path (read -> decode -> crop -> normalise -> tokenise + collate) run with reduced-scale and full-size
decoding, and the JSON figure. Nothing here is timed: the speed itself comes from a full run (README, Performance)."""

import json
import math
import sys
from dataclasses import replace

import numpy as np
import pytest
from conftest import REPO_ROOT, tiny_processor

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import benchmark  # noqa: E402
from benchmarks import data_path, report, workloads  # noqa: E402

TINY = replace(workloads.QUICK, mode="tiny", data_path_images=5, data_path_image_size=(160, 120),
               data_path_shard_size=2, data_path_batch=2, data_path_rounds=2)


@pytest.fixture(scope="module")
def results():
    return benchmark.run_data_path_benchmark(TINY, processor=tiny_processor(), log=lambda msg: None)


def test_data_path_json_has_the_figure_with_plausible_values(results):
    saved = json.loads(json.dumps(results))
    fig = saved["data_path_speedup_vs_full_decode"]
    assert fig["goal"] == 2.0 and fig["peer_name"] == report.FULL_DECODE_PATH
    assert fig["ours"] > 0 and fig["peer"] > 0 and fig["value"] == pytest.approx(fig["ours"] / fig["peer"])
    workers = fig["workers_for_1000_images_per_s"]
    per_core = saved["data_path"]["samples_per_s_per_core"]
    assert workers == {name: math.ceil(1000 / per_core[name]) for name in ("draft", "full_decode")}
    assert fig["decode_and_crop_only"]["ratio"] > 0
    assert sum(fig["draft_reductions"].values()) == TINY.data_path_images
    assert {"1/1", "1/2"} & set(fig["draft_reductions"])  # 160x120 with 32 px crops: full size or 1/2..1/8
    measured = saved["data_path"]
    assert all(len(t["cpu_s"]) == len(t["wall_s"]) == TINY.data_path_rounds for t in measured["times_s"].values())
    assert measured["images"] == 5 and measured["shards"] == 3 and measured["crop_size"] == [32, 32]
    assert 0.05 < measured["jpeg_bytes_per_pixel"] < 2.0
    by_content = fig["decode_and_crop_by_content"]
    assert list(by_content) == [name for name, _, _ in data_path.CONTENT_SWEEP]
    assert all(c["ratio"] == pytest.approx(c["draft"] / c["full_decode"]) for c in by_content.values())
    sizes = [by_content[name]["bytes_per_pixel"] for name in by_content]
    assert sizes[0] > sizes[1] > sizes[2] > 0  # quality 90 > quality 75 > smooth gradients: what the sweep varies
    table = report.markdown(saved)
    assert "| `data_path_speedup_vs_full_decode` |" in table and "worker processes (cores) feed 1,000" in table
    assert "Decode + crop by content" in table and "smooth gradients, quality 90" in table


def test_shards_hold_distinct_jpegs_and_captions_read_back_as_raw_bytes(tmp_path):
    shards, jpeg_bytes = data_path.write_shards(tmp_path, 5, (64, 48), per_shard=2)
    rows = list(data_path.read_samples(shards))
    assert len(shards) == 3 and [row["uid"] for row in rows] == list(range(5))
    assert all(isinstance(row["image"], bytes) and row["image"][:3] == b"\xff\xd8\xff" for row in rows)
    assert len({row["image"] for row in rows}) == 5 and sum(len(row["image"]) for row in rows) == jpeg_bytes
    assert all(row["caption"].startswith("a photo of ") and row["label"] == -(1 + row["uid"]) for row in rows)


def test_both_variants_make_the_same_batches_up_to_the_decode_scale(tmp_path):
    """The peer differs only in the decode: same samples, same crops (same texts, near-equal pixels)."""
    from modeling_unicl import UniCLCollator
    from modeling_unicl.data.examples import ExampleMaker, RandomResizedCropAndFlip

    processor = tiny_processor()
    shards, _ = data_path.write_shards(tmp_path, 4, (160, 120), per_shard=4)
    examples = ExampleMaker(processor.image_processor, [], ("{}",), 0, RandomResizedCropAndFlip(32))
    batches = {}
    for full in (False, True):
        rows = data_path.read_samples(shards)
        rows = data_path.decoded_before_the_crop(rows) if full else rows
        batches[full] = UniCLCollator(processor)([examples(row, epoch=1) for row in rows])
    assert batches[False]["input_ids"].equal(batches[True]["input_ids"])
    assert batches[False]["labels"].equal(batches[True]["labels"])
    difference = (batches[False]["pixel_values"] - batches[True]["pixel_values"]).abs().mean()
    assert float(difference) < 0.05  # ~3 of 255 levels after normalising


def test_the_data_path_flag_runs_it_alone(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(benchmark, "run_data_path_benchmark",
                        lambda settings, **kw: seen.update(mode=settings.mode) or {})
    monkeypatch.setattr(report, "markdown", lambda results: "")
    assert benchmark.main(["--data_path_only", "--quick"]) == 0 and seen["mode"] == "quick"
    assert benchmark.main(["--data_path_only", "--device", "cuda"]) == 2
    assert "--data_path_only" in capsys.readouterr().err


def test_natural_image_is_not_flat():
    image = np.asarray(data_path.natural_image(64, 48, seed=0), dtype=np.float64)
    assert image.shape == (48, 64, 3) and image.std() > 20
    assert np.abs(np.diff(image, axis=1)).mean() < 20  # smooth-ish: neighbours close, unlike white noise
