"""scripts/benchmark.py and its parts (scripts/benchmarks/) on tiny configs: the JSON's schema, the pipeline cache's
text-forward count, the FLOP counter, the report from given measurements, the command line, a worker in a fresh
process. Nothing here is timed: the speed figures themselves come from a full run (README, Performance)."""

import json
import sys

import pytest
import torch
from conftest import REPO_ROOT, TINY_CLIP_TEXT, tiny_config, tiny_processor

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import benchmark  # noqa: E402
from benchmarks import measure, report, workers, workloads  # noqa: E402

TINY = workloads.Settings("tiny", num_classes=12, num_templates=3, zero_shot_batch=2, zero_shot_reps=1,
                          pipeline_images=1, train_batch=2, warmup_steps=0, train_steps=1, matmul_size=64,
                          matmul_reps=1, data_path_images=3, data_path_image_size=(96, 72), data_path_shard_size=2,
                          data_path_batch=2, data_path_rounds=1, onnx_runs_rounds=1)
TEXT = {**TINY_CLIP_TEXT, "max_position_embeddings": 77}


def tiny_clip_config():
    return workloads.clip_config(
        {**TEXT, "model_type": "clip_text_model"}, image_size=32, hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2)


def run_tiny(workdir, bf16: bool) -> dict:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread avoids OpenMP spin-waits on a busy machine (nothing is timed)
    try:
        return benchmark.run_benchmark(TINY, tiny_config(text=dict(TEXT)), tiny_clip_config(), tiny_processor(),
                                       workdir=workdir, log=lambda msg: None, bf16=bf16,
                                       fresh_processes=False)  # the RSS steps in this process: no interpreter start-up
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run_tiny(tmp_path_factory.mktemp("bench"), bf16=True)  # every row, whatever this CPU's bf16 support


def test_json_schema(results):
    json.loads(json.dumps(results))  # serialisable
    for key in report.GOALS:
        fig = results[key]
        assert {"ours", "peer", "peer_name", "ratio", "value", "goal", "goal_met"} <= set(fig), key
        assert isinstance(fig["peer_name"], str) and fig["peer_name"], key
        if key != "grad_checkpointing_rss_reduction":  # measured in this process here: a step may add ~0 MiB
            assert fig["ours"] > 0 and fig["peer"] > 0 and fig["ratio"] == pytest.approx(fig["ours"] / fig["peer"])
    assert results["zero_shot_speedup_vs_pipeline"]["value"] == results["zero_shot_speedup_vs_pipeline"]["ratio"]
    rss = results["grad_checkpointing_rss_reduction"]
    assert rss["with_checkpointing"]["peak_rss_mib"] > 0 and rss["without"]["peak_rss_mib"] > 0
    machine = results["machine"]
    assert {"cpu", "cpu_count", "torch_threads", "torch", "transformers"} <= set(machine)
    assert results["mode"] == "tiny" and results["settings"]["num_classes"] == 12
    assert results["zero_shot"]["num_classes"] == 12 and results["zero_shot"]["num_templates_ours"] == 3
    assert results["train"]["profile"]["top_ops"], "the profiler found no ops"
    assert results["train"]["text_tokens"]["77"] == 77 > results["train"]["text_tokens"]["longest"]
    table = report.markdown(results)
    assert all(f"`{key}`" in table for key in report.GOALS)


def test_ceilings_bound_the_measured_ratios(results):
    """The ceilings: images/s if every counted FLOP ran at the measured matmul peak (GFLOP/s), against the same peer
    as the figure they bound. Only the arithmetic is checked: on tiny models a 64x64 matmul is no peak."""
    peak = results["flops_fraction_of_peak"]["peer"]
    zero_shot = results["zero_shot_speedup_ceiling"]
    assert zero_shot["bounds"] == "zero_shot_speedup_vs_pipeline"
    assert zero_shot["ours"] == pytest.approx(peak * 1e9 / zero_shot["flops_per_image"])
    assert zero_shot["peer"] == results["zero_shot_speedup_vs_pipeline"]["peer"]
    assert zero_shot["flops_per_image"] == results["zero_shot"]["flops_per_image_ours"] > 0
    train = results["train_step_padded_to_longest_ceiling"]
    assert train["flops_per_step"] == results["train"]["flops_per_step"]["ours_longest"]
    assert train["ours"] == pytest.approx(TINY.train_batch * peak * 1e9 / train["flops_per_step"])
    assert train["peer"] == results["train_step_ratio_padded_to_longest_vs_77"]["peer"]
    table = report.markdown(results)
    assert "upper bound of `zero_shot_speedup_vs_pipeline` (goal 100)" in table
    assert "upper bound of `train_step_ratio_padded_to_longest_vs_77` (goal 1.5)" in table


def test_cached_pipeline_does_no_text_forward_on_later_calls(results):
    cache = results["zero_shot_pipeline_cache"]
    assert cache["first_call_text_forwards"] == 1
    assert cache["later_calls"] >= 2 and cache["later_calls_text_forwards"] == 0
    assert results["zero_shot_speedup_vs_pipeline"]["clip_text_forwards"] >= 1  # the peer encodes every call
    times = results["zero_shot"]["round_robin_times_s"]  # ours and both pipelines interleaved, as many calls each
    assert set(times) == {"ours", "onnx_fp32", "onnx_int8", "clip_pipeline", "cached_pipeline"}
    assert len({len(t) for t in times.values()}) == 1 and len(times["ours"]) == cache["later_calls"]


def test_flop_counter_counts_a_training_step(results):
    flops = results["train"]["flops_per_step"]
    # the dual encoder runs its text tower on all 77 tokens; ours cuts them to the longest caption, as padded to it
    assert flops["dual_encoder_77"] > flops["ours_77"] > 0
    assert flops["ours_77"] == flops["ours_longest"]
    assert results["flops_fraction_of_peak"]["flops_per_step"] == flops["ours_77"]
    assert len(results["flops_fraction_of_peak"]["peaks_gflops"]) == 3
    assert results["flops_fraction_of_peak"]["peer"] == max(results["flops_fraction_of_peak"]["peaks_gflops"])


def test_every_step_variant_is_timed(results):
    expected = {"ours_77", "dual_encoder_77", "ours_77_untrimmed", "ours_longest", "ours_longest_bf16_autocast",
                "dual_encoder_77_bf16_autocast"}
    assert set(results["train"]["step_s"]) == expected
    assert all(len(times) == TINY.train_steps for times in results["train"]["step_s"].values())
    for key in ("train_step_trim_padding_vs_untrimmed", "train_step_bf16_ratio_vs_dual_encoder_bf16"):
        assert results[key]["ratio"] > 0 and results[key]["peer_name"]
    profile = results["train"]["profile"]
    assert profile["top_ops"] and profile["after_trimming"]["top_ops"]
    assert results["machine"]["keep_freed_memory"] is False
    rss = results["grad_checkpointing_rss_reduction"]
    assert rss["without_keep_freed"]["peak_rss_mib"] > 0
    assert not any(v["keep_freed_memory"] for v in (rss["with_checkpointing"], rss["without"], rss["without_keep_freed"]))


def test_class_names_and_captions_are_real_words():
    names = workloads.class_names(1000)
    assert len(set(names)) == 1000 and all(n.replace(" ", "").isalpha() for n in names)
    tokenizer = tiny_processor().tokenizer
    lengths = [len(ids) for ids in tokenizer(workloads.captions(50))["input_ids"]]
    assert 10 <= min(lengths) and max(lengths) <= 20


def test_the_measured_model_is_the_swin_tiny_preset_with_the_earlier_drop_path():
    """Every run before the preset took drop path 0.2 measured 0.1: the benchmark keeps it (same ops either way)."""
    from modeling_unicl.presets import MODEL_PRESETS

    measured, preset = workloads.unicl_config().to_dict(), MODEL_PRESETS["swin-tiny"].config().to_dict()
    assert measured["vision_config"].pop("drop_path_rate") == 0.1
    preset["vision_config"].pop("drop_path_rate")
    assert measured == preset


def test_trimming_trailing_padding_keeps_text_features():
    """The benchmark's 77-token and longest batches hold the same captions, so they must give the same features."""
    from modeling_unicl import UniCLModel

    torch.manual_seed(0)
    config = tiny_config(text=dict(TEXT), trim_text_padding=False)
    model = UniCLModel(config).eval()
    batches = workloads.train_batches(tiny_processor(), config, 4)
    padded, longest = batches["77"], batches["longest"]
    assert torch.equal(padded["input_ids"][:, : longest["input_ids"].shape[1]], longest["input_ids"])
    with torch.no_grad():
        full = model.get_text_features(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"])
        cut = model.get_text_features(input_ids=longest["input_ids"], attention_mask=longest["attention_mask"])
    torch.testing.assert_close(full.pooler_output, cut.pooler_output, rtol=1e-5, atol=1e-5)


def test_untrimmed_restores_the_setting_even_on_error():
    from modeling_unicl import UniCLModel

    model = UniCLModel(tiny_config())
    with pytest.raises(RuntimeError), workloads.Untrimmed(model):
        assert model.config.trim_text_padding is False
        raise RuntimeError("step failed")
    assert model.config.trim_text_padding is True


BF16_ROWS = ("zero_shot_bf16_autocast_vs_pipeline", "train_step_bf16_autocast_vs_fp32",
             "train_step_bf16_ratio_vs_dual_encoder_bf16")


def test_bf16_rows_are_skipped_with_a_reason_without_native_bf16(tmp_path):
    results = run_tiny(tmp_path, bf16=False)
    assert not any("bf16" in name for name in results["train"]["step_s"]), "no bf16 step may run"
    for key in BF16_ROWS:
        assert "native bf16" in results[key]["skipped"]
    assert results["flops_fraction_of_peak"]["fraction_bf16_autocast_step"] is None
    assert results["train_step_ratio_vs_dual_encoder"]["ratio"] > 0  # the fp32 rows are unaffected
    table = report.markdown(results)
    assert all(f"`{key}` | | | | | not measured" in table for key in BF16_ROWS)
    json.loads(json.dumps(results))


def test_bf16_flag_reaches_the_run(monkeypatch):
    """--bf16 auto leaves the choice to run_benchmark (None: native_bf16()); on / off force it."""
    seen = {}
    monkeypatch.setattr(benchmark, "run_benchmark", lambda settings, **kw: seen.update(kw) or {})
    monkeypatch.setattr(report, "markdown", lambda results: "")
    for flag, expected in (("auto", None), ("on", True), ("off", False)):
        assert benchmark.main(["--quick", "--no_keep_freed_memory", "--bf16", flag]) == 0
        assert seen["bf16"] is expected
    assert isinstance(measure.native_bf16(), bool)


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "fma"}, False),  # the AVX2 EPYC: emulated
    ({"avx512f", "avx512_vnni"}, False),  # AVX-512 without BF16: oneDNN says yes, but it emulates (3x slower)
    ({"avx512f", "avx512_bf16"}, True),
    ({"avx512f", "amx_bf16", "amx_tile"}, True),
    ({"fp", "asimd", "bf16"}, True),  # Arm's BF16 extension
])
def test_native_bf16_reads_the_cpu_flags(flags, expected):
    assert measure.native_bf16(flags) is expected


@pytest.mark.parametrize("flags, expected", [
    ([], True), (["--no_keep_freed_memory"], False),
    (["--keep_freed_memory", "off"], False), (["--keep_freed_memory", "on"], True),  # the deprecated spelling
])
def test_keep_freed_memory_flag_reaches_the_run(flags, expected, monkeypatch, capsys):
    """`--no_keep_freed_memory` as in the other scripts; the old `--keep_freed_memory on|off` still works, with a
    warning, and is not in --help."""
    seen = {}
    monkeypatch.setattr(benchmark, "run_benchmark", lambda settings, **kw: seen.update(kw) or {})
    monkeypatch.setattr(report, "markdown", lambda results: "")
    monkeypatch.setattr(benchmark, "apply_keep_freed_memory", lambda args: args.keep_freed_memory)  # malloc untouched
    assert benchmark.main(["--quick", *flags]) == 0
    assert seen["keep_freed"] is expected
    assert ("deprecated" in capsys.readouterr().err) == ("--keep_freed_memory" in flags)
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--help"])
    usage = capsys.readouterr().out
    assert "--no_keep_freed_memory" in usage and "--keep_freed_memory {" not in usage


# The results' top-level keys, in order: the JSON's schema, which the split into scripts/benchmarks/ kept.
RESULT_KEYS = [
    "mode", "settings", "machine", "zero_shot_speedup_vs_pipeline", "zero_shot_bf16_autocast_vs_pipeline",
    "zero_shot_vs_cached_pipeline", "zero_shot_pipeline_cache", "zero_shot", "zero_shot_speedup_ceiling",
    "zero_shot_fraction_of_ceiling", "zero_shot_onnx_fp32_speedup_vs_pipeline", "zero_shot_onnx_int8_speedup_vs_pipeline",
    "zero_shot_onnx",
    "train_step_ratio_vs_dual_encoder", "train_step_ratio_padded_to_longest_vs_77",
    "train_step_padded_to_longest_ceiling", "train_step_trim_padding_vs_untrimmed", "train_step_bf16_autocast_vs_fp32",
    "train_step_bf16_ratio_vs_dual_encoder_bf16", "flops_fraction_of_peak", "grad_checkpointing_rss_reduction",
    "data_path_speedup_vs_full_decode", "data_path", "train", "elapsed_s",
]


def test_result_keys_and_a_saved_json_renders_the_same(results):
    assert list(results) == RESULT_KEYS
    saved = json.loads(json.dumps(results))
    assert report.markdown(saved) == report.markdown(results)


def measurements() -> dict:
    """Made-up measurements in the shapes the benchmarks return: the report's input, no model run."""
    times = {"ours": [0.5, 0.5], "clip_pipeline": [4.0, 4.0], "cached_pipeline": [1.0, 1.0]}
    zero_shot = {
        "zero_shot": {"num_classes": 10, "num_templates_ours": 2, "pipeline_template": "a photo of a {}.",
                      "class_matrix_s": 3.0, "flops_per_image_ours": 1e9, "round_robin_times_s": times},
        "pipeline_cache": {"first_call_s": 2.0, "first_call_text_forwards": 1, "later_calls_images_per_s": 1.0,
                           "later_calls_text_forwards": 0},
        "zero_shot_onnx": {"export_s": 5.0, "class_matrix_s": {"onnx_fp32": 1.0, "onnx_int8": 1.0}, "templates": 1,
                           "parity_max_abs_diff": {"image": 1e-7, "text": 1e-7}, "int8_options": {}},
        "images_per_s": {"ours": 8.0, "onnx_fp32": 10.0, "onnx_int8": 40.0, "clip_pipeline": 0.25,
                         "cached_pipeline": 1.0, "ours_bf16_autocast": None},
        "clip_text_forwards": 3,
    }
    median = {"ours_77": 2.0, "dual_encoder_77": 4.0, "ours_77_untrimmed": 3.0, "ours_longest": 2.0}
    train = {"images_per_s": {name: 4 / t for name, t in median.items()}, "median_step_s": median,
             "step_s": {name: [t] for name, t in median.items()}, "text_tokens": {"77": 77, "longest": 20},
             "flops_per_step": {"ours_77": 100e9, "dual_encoder_77": 150e9, "ours_longest": 100e9}}
    rss = {name: {"step_increase_mib": inc, "peak_rss_mib": peak, "first_forward_backward_increase_mib": inc / 2}
           for name, inc, peak in (("without", 100.0, 1000.0), ("with", 60.0, 960.0),
                                   ("without_keep_freed", 100.0, 1100.0))}
    per_core = {"draft": 150.0, "full_decode": 100.0, "draft_decode_and_crop": 200.0, "full_decode_and_crop": 100.0}
    data_path = {"samples_per_s_per_core": per_core, "samples_per_s_wall": per_core,
                 "workers_for_1000_images_per_s": {"draft": 7, "full_decode": 10}, "images": 8,
                 "image_size": [1024, 768], "crop_size": [224, 224], "jpeg_quality": 90, "jpeg_bytes_per_pixel": 0.3,
                 "shards": 2, "batch_size": 4, "draft_reductions_first_round": {"1/1": 2, "1/2": 6}}
    return {"train": train, "rss": rss, "zero_shot": zero_shot, "peaks": [80.0, 100.0, 90.0], "data_path": data_path}


def test_report_makes_the_figures_from_given_measurements():
    machine = {"cpu": "test cpu", "cpu_count": 2, "torch_threads": 2, "torch": "t", "transformers": "tf",
               "keep_freed_memory": True}
    results = report.results(TINY, machine, **measurements(), bf16=False)
    assert list(results) == RESULT_KEYS[:-1]  # elapsed_s is the front's
    speedup = results["zero_shot_speedup_vs_pipeline"]
    assert speedup["value"] == 32 and not speedup["goal_met"] and speedup["clip_images"] == 2
    assert results["zero_shot_speedup_ceiling"]["ours"] == pytest.approx(100)  # 100 GFLOP/s over 1 GFLOP per image
    fraction = results["zero_shot_fraction_of_ceiling"]  # eager 8 images/s of a 100 images/s ceiling
    assert fraction["value"] == pytest.approx(0.08) and not fraction["goal_met"] and fraction["goal"] == 0.6
    assert fraction["fractions_of_ceiling"] == pytest.approx({"ours": 0.08, "onnx_fp32": 0.1, "onnx_int8": 0.4})
    assert results["zero_shot_onnx_fp32_speedup_vs_pipeline"]["ratio"] == 40
    int8 = results["zero_shot_onnx_int8_speedup_vs_pipeline"]
    assert int8["value"] == 160 and int8["goal_met"] and int8["vs_onnx_fp32"] == 4
    assert results["train_step_ratio_vs_dual_encoder"]["value"] == 2
    assert results["train_step_ratio_vs_dual_encoder"]["goal_met"]
    assert results["train_step_trim_padding_vs_untrimmed"]["ratio"] == pytest.approx(1.5)
    assert results["flops_fraction_of_peak"]["value"] == pytest.approx(0.5)  # 100 GFLOP in 2 s against 100 GFLOP/s
    assert results["grad_checkpointing_rss_reduction"]["value"] == pytest.approx(0.4)
    assert results["grad_checkpointing_rss_reduction"]["keep_freed_memory_peak_rss_increase"] == pytest.approx(0.1)
    for key in BF16_ROWS:
        assert results[key] == {"skipped": report.BF16_SKIPPED}
    table = report.markdown({**results, "elapsed_s": 1.0})
    assert "| `train_step_ratio_vs_dual_encoder` | 2 images/s | 1 images/s |" in table
    assert "| 2 | >= 1: met |" in table and "Machine: test cpu, 2 cores" in table
    data_path = results["data_path_speedup_vs_full_decode"]
    assert data_path["value"] == 1.5 and data_path["goal"] == 2 and not data_path["goal_met"]
    assert "| `data_path_speedup_vs_full_decode` | 150 samples/s per core | 100 samples/s per core |" in table
    assert "Data path: 7 worker processes (cores) feed 1,000 images/s" in table and "1/2 6" in table


def test_worker_runs_through_the_front_script_from_any_directory(tmp_path, monkeypatch):
    """The RSS worker in a fresh interpreter, as a full run launches it (`--rss_worker`), started from elsewhere."""
    monkeypatch.chdir(tmp_path)
    spec = {"config": tiny_config(text=dict(TEXT)).to_dict(), "batch": 2, "checkpointing": False, "padding": "77",
            "keep_freed_memory": False}
    out = workers.run_worker("--rss_worker", spec, "tiny")
    assert out["peak_rss_mib"] >= out["rss_before_mib"] > 0 and out["keep_freed_memory"] is False


def test_onnx_rows_say_why_without_onnxruntime():
    machine = {"cpu": "test cpu", "cpu_count": 2, "torch_threads": 2, "torch": "t", "transformers": "tf",
               "keep_freed_memory": True}
    given = measurements()
    given["zero_shot"]["zero_shot_onnx"] = {"skipped": "not measured: onnxruntime is needed"}
    for name in ("onnx_fp32", "onnx_int8"):
        del given["zero_shot"]["images_per_s"][name]
    results = report.results(TINY, machine, **given, bf16=False)
    for key in ("zero_shot_onnx_fp32_speedup_vs_pipeline", "zero_shot_onnx_int8_speedup_vs_pipeline"):
        assert results[key] == {"skipped": "not measured: onnxruntime is needed"}
    assert results["zero_shot_fraction_of_ceiling"]["value"] == pytest.approx(0.08)  # eager fp32 still measured
    assert "| `zero_shot_onnx_int8_speedup_vs_pipeline` | | | | | not measured" in report.markdown(
        {**results, "elapsed_s": 1.0})


def test_onnx_rows_are_measured_round_robin_with_the_peers(results):
    onnx = results["zero_shot_onnx"]
    assert max(onnx["parity_max_abs_diff"].values()) <= 1e-4 and onnx["templates"] == 1
    for key in ("zero_shot_onnx_fp32_speedup_vs_pipeline", "zero_shot_onnx_int8_speedup_vs_pipeline"):
        fig = results[key]
        assert fig["ours"] > 0 and fig["peer"] == results["zero_shot_speedup_vs_pipeline"]["peer"]
        assert fig["fraction_of_ceiling"] == pytest.approx(fig["ours"] / results["zero_shot_speedup_ceiling"]["ours"])
    fraction = results["zero_shot_fraction_of_ceiling"]
    assert fraction["peer"] == results["zero_shot_speedup_ceiling"]["ours"]  # the FLOPs are counted once
    assert "ONNX Runtime: export with --int8" in report.markdown(results)


def test_onnx_run_modes_are_measured_against_one_run_of_the_whole_batch():
    """`--onnx_runs_only` (7.) on a tiny model: every precision x run mode timed, each a ratio to the whole batch in
    one run, the default mode among them, the table rendered (no timing is checked)."""
    pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")
    from benchmarks.onnx_runs import RUN_MODES

    from modeling_unicl.export.onnxruntime_backend import IMAGE_CHUNK_SIZE

    results = benchmark.run_onnx_runs_benchmark(TINY, config=tiny_config(text=dict(TEXT)), processor=tiny_processor(),
                                                log=lambda msg: None)
    figures = results["onnx_image_run_modes"]
    assert set(figures) == {"fp32", "int8"} and all(set(by_mode) == set(RUN_MODES) for by_mode in figures.values())
    assert (IMAGE_CHUNK_SIZE, True) in RUN_MODES.values()  # the default is measured
    for by_mode in figures.values():
        assert by_mode["whole_batch"]["ratio"] == 1.0
        for fig in by_mode.values():
            assert fig["ratio"] == pytest.approx(fig["ours"] / fig["peer"]) and fig["ms_per_image"] > 0
    times = results["onnx_runs"]["round_robin_times_s"]
    assert all(len(t) == TINY.onnx_runs_rounds for by_mode in times.values() for t in by_mode.values())
    table = report.markdown({**results, "elapsed_s": 1.0})
    assert "| `concurrent_chunks_of_1` |" in table and "int8 vs whole batch" in table
    json.loads(json.dumps(results))


def test_the_parts_run_alone_one_at_a_time(capsys):
    assert benchmark.main(["--quick", "--data_path_only", "--onnx_runs_only"]) == 2
    assert "give one of them" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- accelerator (5.)
def test_device_cuda_without_a_gpu_and_compile_without_cuda_exit_2(capsys):
    if not torch.cuda.is_available():
        assert benchmark.main(["--quick", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert benchmark.main(["--quick", "--compile"]) == 2
    assert "--device cuda only" in capsys.readouterr().err


def test_accelerator_report_from_given_measurements():
    accelerator = {
        "device": "cuda", "device_name": "Test GPU", "compile": False,
        "train": {"images_per_s": {"ours_77": 300.0, "dual_encoder_77": 250.0, "ours_longest": 400.0},
                  "text_tokens": {"77": 77, "longest": 20}},
        "zero_shot": {"images_per_s": {"ours_bf16_autocast": 2000.0, "clip_pipeline": 20.0}, "num_classes": 1000},
        "data_path": {"skipped": "not measured: the streaming data path (the streaming issue) does not exist yet"},
    }
    machine = {"cpu": "host", "torch": "t", "transformers": "tf"}
    results = report.accelerator_results(TINY, machine, accelerator)
    assert results["accelerator_train_step_ratio_vs_dual_encoder"]["value"] == pytest.approx(1.2)
    assert results["accelerator_train_step_ratio_vs_dual_encoder"]["goal_met"]
    longest = results["accelerator_train_step_ratio_padded_to_longest_vs_77"]
    assert longest["value"] == pytest.approx(1.6) and longest["goal"] == 1.3 and longest["goal_met"]
    assert results["accelerator_zero_shot_vs_pipeline"]["ratio"] == 100
    table = report.markdown({**results, "elapsed_s": 1.0})
    assert "Accelerator: Test GPU" in table and "streaming data path" in table and "bf16 autocast, SDPA" in table
    measured = {"samples_per_s_per_core": {"draft": 150.0, "full_decode": 100.0}}
    workers = report.accelerator_results(TINY, machine, {**accelerator, "data_path": measured})[
        "accelerator_loader_workers_per_accelerator"]
    # 400 images/s to feed: ceil(400 / 150) and ceil(400 / 100) workers
    assert (workers["ours"], workers["peer"], workers["value"]) == (3, 4, 3)
    assert "| `accelerator_loader_workers_per_accelerator` | 3 workers | 4 workers |" in report.markdown(
        {**results, "accelerator_loader_workers_per_accelerator": workers, "elapsed_s": 1.0})


def test_accelerator_benchmark_runs_on_the_cpu_code_path(tmp_path):
    """The accelerator benchmark's code on tiny models, on the CPU (no timing is checked; CUDA itself: below)."""
    results = benchmark.run_accelerator_benchmark(TINY, "cpu", False, log=lambda msg: None,
                                                  config=tiny_config(text=dict(TEXT)), clip_cfg=tiny_clip_config(),
                                                  processor=tiny_processor())
    assert results["device"] == "cpu"
    assert set(results["accelerator"]["train"]["step_s"]) == {"ours_77", "dual_encoder_77", "ours_longest"}
    assert results["accelerator_zero_shot_vs_pipeline"]["ratio"] > 0
    workers = results["accelerator_loader_workers_per_accelerator"]
    assert workers["ours"] >= 1 and workers["peer"] >= 1 and workers["value"] == workers["ours"]
    json.loads(json.dumps(results))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: benchmark.py --device cuda runs only where "
                                                          "an accelerator is lent")
def test_accelerator_benchmark_on_cuda():
    results = benchmark.run_accelerator_benchmark(TINY, "cuda", False, log=lambda msg: None,
                                                  config=tiny_config(text=dict(TEXT)), clip_cfg=tiny_clip_config(),
                                                  processor=tiny_processor())
    assert results["accelerator_train_step_ratio_vs_dual_encoder"]["ours"] > 0
    assert results["machine"]["accelerator"] == torch.cuda.get_device_name(0)
