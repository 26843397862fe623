"""What a new user runs into first (issue 18): mistyped numbers and names fail at once with one line naming the
flag and leave nothing behind, a rerun never replaces a trained model silently, Ctrl-C says how to resume."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, tiny_config

sys.path.insert(0, str(REPO_ROOT / "scripts"))

import train  # noqa: E402

from modeling_unicl import UniCLModel  # noqa: E402


@pytest.fixture(scope="module")
def tiny_config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny_config.json"
    tiny_config().to_json_file(path)
    return path


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num_train_epochs", "-1"], "--num_train_epochs: expected a positive number of passes, got -1"),
        (["--max_steps", "0"], "--max_steps: expected a positive number of steps"),
        (["--learning_rate", "-1"], "--learning_rate: expected a positive learning rate, got -1"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size: expected at least 1, got 0"),
        (["--resume_from_checkpoint", "True"], "holds no complete checkpoint"),
        (["--resume_from_checkpoint", "./no-such-checkpoint"], "no checkpoint folder './no-such-checkpoint' here"),
        (["--threads", "0"], "--threads: expected a positive number of threads"),
    ],
)
def test_bad_numbers_exit_2_with_one_line_and_leave_no_folder(flags, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert train.main(["--output_dir", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_rerun_does_not_replace_a_trained_model(tmp_path, capsys):
    out = tmp_path / "out"
    UniCLModel(tiny_config()).save_pretrained(out)
    before = (out / "model.safetensors").read_bytes()
    assert train.main(["--output_dir", str(out), "--max_steps", "1"]) == 2
    assert "--overwrite_output_dir" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


def test_a_mistyped_local_model_name_fails_at_once_with_a_suggestion(tmp_path, capsys, monkeypatch):
    UniCLModel(tiny_config()).save_pretrained(tmp_path / "unicl-animals")
    monkeypatch.chdir(tmp_path)
    for name in ("unicl-animal", "./unicl-animal"):
        start = time.monotonic()
        assert train.main(["--model_name_or_path", name, "--output_dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert f"no folder {name!r} here (did you mean" in err and "unicl-animals" in err, err
        assert time.monotonic() - start < 15  # a probe of a few seconds at most, no retries against the Hub
    with pytest.raises(OSError, match=r"No folder './nope' here"):
        UniCLModel.from_pretrained("./nope")


def test_offline_mode_names_the_missing_folder_instead_of_retrying(tmp_path):
    code = (
        "import os\n"
        "from modeling_unicl import UniCLModel\n"
        "try:\n"
        "    UniCLModel.from_pretrained('unicl-animal')\n"
        "except OSError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    (tmp_path / "unicl-animals").mkdir()
    (tmp_path / "unicl-animals" / "config.json").write_text("{}")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert "No folder 'unicl-animal' here (did you mean 'unicl-animals'?)" in result.stdout, result.stderr
    assert "offline mode is on" in result.stdout


def test_fields_that_transformers_writes_are_not_unknown(tmp_path, caplog):
    folder = tmp_path / "saved"
    UniCLModel(tiny_config()).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["use_cache"] = False  # what the Trainer writes from TrainingArguments.use_cache
    (folder / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING):
        UniCLModel.from_pretrained(folder)
    assert "unknown fields" not in caplog.text


def test_help_starts_with_what_the_script_does(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = capsys.readouterr().out
    intro = text.split("options:")[0]
    assert "embedded default" in intro and "not a model" in intro and "--image_label_datasets" in intro
    # TrainingArguments come after the script's own flags
    assert text.index("--label_fraction") < text.index("--per_device_eval_batch_size")


def test_ctrl_c_says_where_the_last_checkpoint_is_and_how_to_resume(tiny_config_file, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "--config_name", str(tiny_config_file),
        "--output_dir", str(out), "--max_steps", "100000", "--save_strategy", "steps", "--save_steps", "2",
        "--per_device_train_batch_size", "8", "--report_to", "none", "--use_cpu", "--logging_steps", "1",
        "--threads", "1",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    # SIGINT handled as at a terminal even where this test runs in a background job (which inherits SIGINT ignored)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint-2" / "trainer_state.json").is_file():
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=180)  # generous: a loaded 2-core CI machine once needed over 60 s
        except subprocess.TimeoutExpired as timeout:
            tail = (timeout.stderr or b"")[-3000:]
            raise AssertionError(f"train.py did not exit within 180 s of Ctrl-C; its stderr ended with:\n{tail!r}")
    finally:
        process.kill()
    assert process.returncode == 130
    lines = [line for line in err.splitlines() if line.startswith(("interrupted", "  python"))]
    assert lines[0].startswith("interrupted: the last complete checkpoint is ") and "checkpoint-" in lines[0]
    assert "--resume_from_checkpoint" in lines[1] and "--max_steps 100000" in lines[1]
    assert "Traceback" not in err


def test_scripts_name_flags_where_the_library_names_keywords(tmp_path, capsys):
    from datasets import Dataset, Features, Image as ImageFeature, Value
    from PIL import Image

    rows = {"image": [Image.new("RGB", (8, 8))] * 2, "label": [0, 1]}
    Dataset.from_dict(rows, features=Features({"image": ImageFeature(), "label": Value("int64")})).save_to_disk(
        tmp_path / "ints"
    )
    out = tmp_path / "out"
    code = train.main(["--image_label_datasets", str(tmp_path / "ints"), "--output_dir", str(out), "--max_steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "pass --class_names ..." in err and "class_names=[...]" not in err
    assert not out.exists()


def test_train_fine_tunes_a_classifier_from_the_command_line(tmp_path, capsys):
    from datasets import ClassLabel, Dataset, Features, Image as ImageFeature
    from PIL import Image
    from transformers import pipeline

    from conftest import tiny_processor

    model_dir, out = tmp_path / "unicl", tmp_path / "classifier"
    UniCLModel(tiny_config()).save_pretrained(model_dir)
    tiny_processor().save_pretrained(model_dir)
    colors = [(220, 30, 30), (30, 30, 220)]
    rows = {"image": [Image.new("RGB", (40, 40), colors[i % 2]) for i in range(16)], "label": [i % 2 for i in range(16)]}
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["red", "blue"])})
    Dataset.from_dict(rows, features=features).save_to_disk(tmp_path / "ds")
    code = train.main([
        "--task", "image_classification", "--model_name_or_path", str(model_dir),
        "--image_label_datasets", str(tmp_path / "ds"), "--zero_shot_eval_dataset", str(tmp_path / "ds"),
        "--zero_shot_eval_split", "train", "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--report_to", "none", "--use_cpu",
    ])
    assert code == 0
    assert "Classifier top-1 on the eval set (16 images, 2 classes)" in capsys.readouterr().out
    classify = pipeline("image-classification", model=str(out))
    assert {r["label"] for r in classify(Image.new("RGB", (40, 40), colors[0]))} == {"red", "blue"}
    assert train.main(["--task", "image_classification", "--output_dir", str(tmp_path / "x")]) == 2
    assert "--model_name_or_path" in capsys.readouterr().err


def test_the_embedded_default_says_what_its_model_is(tmp_path, capsys):
    out = tmp_path / "unicl-animals"
    assert train.main(["--output_dir", str(out), "--max_steps", "1", "--threads", "1"]) == 0
    card = (out / "README.md").read_text()
    assert "not a model for real photos" in card and "convert_unicl_original_to_hf.py" in card
    printed = capsys.readouterr().out
    assert "it will not recognise real photos" in printed and "convert_unicl_original_to_hf.py" in printed
