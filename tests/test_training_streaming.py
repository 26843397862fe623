"""Training from streamed shards through the real paths: 2 gloo processes x 2 dataloader workers under torchrun and
UniCLTrainer (every sample once per epoch, ranks disjoint, exact mixing, the gathered loader states resume exactly),
`scripts/train.py` killed with SIGKILL mid-epoch and resumed (the same losses as an uninterrupted run), and the
arguments train.py refuses with exit code 2 before training."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, tiny_config
from test_data_streaming import caption_uids, make_caption_shards, make_label_shards

sys.path.insert(0, str(REPO_ROOT / "scripts"))

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny_config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny_config.json"
    tiny_config().to_json_file(path)
    return path


def _torchrun(run_dir, shards, max_steps, resume=False):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO_ROOT / "tests" / "dist_streaming_worker.py"), str(run_dir), *shards, str(max_steps)]
    result = subprocess.run(command + (["resume"] if resume else []), cwd=run_dir.parent, env=ENV,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    suffix = "_resumed" if resume else ""
    return [json.loads((run_dir / f"labels_rank{rank}{suffix}.json").read_text()) for rank in range(2)]


def test_two_gloo_ranks_with_two_workers_read_every_sample_once_and_resume_exactly(tmp_path):
    label_pattern, classes = make_label_shards(tmp_path / "label", num_shards=8, per_shard=6)  # class id = sample
    caption_pattern = make_caption_shards(tmp_path / "caption", num_shards=8, per_shard=6)
    shards = [label_pattern, classes, caption_pattern]
    # 12 steps: each rank's 2 workers each read their 2 shards per data type (12 samples, 2 per batch) exactly once
    ranks = _torchrun(tmp_path / "full", shards, max_steps=12)
    class_ids, captions = [], []
    for seen in ranks:
        assert sorted(map(int, seen)) == list(range(1, 13))
        for labels in seen.values():
            assert all(label >= 0 for label in labels[:2]) and all(label < 0 for label in labels[2:])  # 2 + 2
            class_ids += labels[:2]
            captions += labels[2:]
    assert sorted(class_ids) == list(range(48))  # every image-label sample once, over both ranks
    assert sorted(captions) == sorted(caption_uids(caption_pattern))  # every image-text sample once
    rank_ids = [{label for labels in seen.values() for label in labels} for seen in ranks]
    assert not rank_ids[0] & rank_ids[1]

    # both ranks' loader states were gathered into checkpoint-6: resuming there replays steps 7-12 exactly
    state = json.loads((tmp_path / "full" / "checkpoint-6" / "trainer_state.json").read_text())
    assert len(state["stateful_callbacks"]["StreamingStateCallback"]["args"]["loader_states"]) == 2
    shutil.copytree(tmp_path / "full" / "checkpoint-6", tmp_path / "resumed" / "checkpoint-6")
    resumed = _torchrun(tmp_path / "resumed", shards, max_steps=12, resume=True)
    for full, again in zip(ranks, resumed):
        assert again == {step: labels for step, labels in full.items() if int(step) > 6}


def _train_command(config, out, label_pattern, classes, caption_pattern, *extra):
    return [
        sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "--config_name", str(config), "--output_dir", str(out),
        "--image_label_shards", label_pattern, "--class_names_file", classes, "--image_text_shards", caption_pattern,
        "--max_steps", "24", "--save_strategy", "steps", "--save_steps", "4", "--per_device_train_batch_size", "4",
        "--logging_steps", "1", "--dataloader_num_workers", "2", "--report_to", "none", "--use_cpu", "--threads", "1",
        "--seed", "0", "--learning_rate", "1e-3", "--shuffle_window", "5", "--disable_tqdm", "True", *extra,
    ]


def _losses(out: Path) -> dict[int, float]:
    state = json.loads((out / "checkpoint-24" / "trainer_state.json").read_text())
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


def test_train_script_killed_mid_epoch_resumes_with_the_same_samples_and_losses(tiny_config_file, tmp_path):
    label_pattern, classes = make_label_shards(tmp_path / "label", num_shards=4, per_shard=12)
    caption_pattern = make_caption_shards(tmp_path / "caption", num_shards=4, per_shard=12)
    shards = (label_pattern, classes, caption_pattern)
    full = tmp_path / "full"
    result = subprocess.run(_train_command(tiny_config_file, full, *shards), cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "'samples_per_second'" in result.stdout + result.stderr

    # each of the 2 workers reads 2 shards per data type: 24 samples, 12 batches; the kill lands inside that epoch
    killed = tmp_path / "killed"
    process = subprocess.Popen(_train_command(tiny_config_file, killed, *shards), cwd=tmp_path, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "checkpoint-8" / "trainer_state.json").is_file():
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint-8 before the end"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "checkpoint-24").exists()
    result = subprocess.run(_train_command(tiny_config_file, killed, *shards, "--resume_from_checkpoint", "True"),
                            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-5000:]
    reference, resumed = _losses(full), _losses(killed)
    assert sorted(resumed) == list(range(1, 25))
    for step in range(1, 25):
        assert resumed[step] == pytest.approx(reference[step], rel=0, abs=1e-6), step


@pytest.mark.parametrize("problem, message", [
    ("no_match", r"--image_text_shards: the shard pattern '.*/nothing/\{0\.\.3\}\.tar' matches no existing file"),
    ("class_out_of_range", r"class ids up to 11 .*only 2"),
    ("no_image", r"noimage\.tar: sample 'a' has a problem: sample without image"),
    ("no_max_steps", r"--max_steps: streamed data has no length"),
    ("no_class_names", r"--image_label_shards: give --class_names_file"),
])
def test_train_script_refuses_what_cannot_train_with_exit_2_before_training(tiny_config_file, tmp_path, capsys,
                                                                          problem, message):
    import webdataset as wds
    import train

    label_pattern, classes = make_label_shards(tmp_path / "label", num_shards=2, per_shard=6)
    caption_pattern = make_caption_shards(tmp_path / "caption", num_shards=2, per_shard=6)
    args = ["--config_name", str(tiny_config_file), "--output_dir", str(tmp_path / "out"), "--report_to", "none",
            "--use_cpu", "--max_steps", "2"]
    if problem == "no_match":
        args += ["--image_text_shards", f"{tmp_path}/nothing/{{0..3}}.tar"]
    elif problem == "class_out_of_range":
        (tmp_path / "two.txt").write_text("a\nb\n")
        args += ["--image_label_shards", label_pattern, "--class_names_file", str(tmp_path / "two.txt")]
    elif problem == "no_image":
        with wds.TarWriter(str(tmp_path / "noimage.tar")) as writer:
            writer.write({"__key__": "a", "txt": "a caption without its image"})
        args += ["--image_text_shards", str(tmp_path / "noimage.tar")]
    elif problem == "no_max_steps":
        (tmp_path / "caption" / "manifest.json").unlink()
        args = [a for a in args if a not in ("--max_steps", "2")] + ["--image_text_shards", caption_pattern]
    else:
        args += ["--image_label_shards", label_pattern]
    assert train.main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ")
    assert re.search(message, error[0]), error[0]
    assert not (tmp_path / "out").exists()
