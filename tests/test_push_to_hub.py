"""scripts/push_to_hub.py: folder validation and the huggingface_hub calls, up to the network (HfApi is faked).

The folders carry the model card the converter writes (modeling_unicl.conversion.model_card)."""

import importlib.util
import inspect
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi as RealHfApi
from safetensors.torch import save_file

from modeling_unicl.conversion import model_card as mcu

ROOT = Path(__file__).resolve().parent.parent


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"_unicl_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


push = _load_script("push_to_hub")

REPO_ID = "test-org/unicl-swin-tiny-in1k"
AUTO_MAP = {"AutoConfig": "configuration_unicl.UniCLConfig", "AutoModel": "modeling_unicl.UniCLModel"}


@pytest.fixture
def model_dir(tmp_path):
    """A minimal folder that passes validation."""
    out = tmp_path / "out"
    out.mkdir()
    config = {"model_type": "unicl", "architectures": ["UniCLModel"], "auto_map": AUTO_MAP, "projection_dim": 512}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_file({"logit_scale": torch.zeros(())}, str(out / "model.safetensors"))
    (out / "configuration_unicl.py").write_text("class UniCLConfig:\n    model_type = 'unicl'\n")
    (out / "modeling_unicl.py").write_text(
        "from .configuration_unicl import UniCLConfig\n\n\nclass UniCLModel:\n    config_class = UniCLConfig\n"
    )
    mcu.render_model_card("in1k", repo_id=REPO_ID).save(out / "README.md")
    return out


class _Recorder:
    def __init__(self):
        self.instances = []  # kwargs of each HfApi(...)
        self.calls = []  # (method, args, kwargs)
        self.fail_on = None


@pytest.fixture
def hub(monkeypatch):
    """Replace HfApi in the module under test by a fake that records every call and touches no network."""
    rec = _Recorder()

    class FakeHfApi:
        def __init__(self, **kwargs):
            inspect.signature(RealHfApi.__init__).bind(self, **kwargs)
            rec.instances.append(kwargs)

        def _record(self, method, args, kwargs):
            # the arguments must also be accepted by the real huggingface_hub method
            inspect.signature(getattr(RealHfApi, method)).bind(self, *args, **kwargs)
            rec.calls.append((method, args, kwargs))
            if rec.fail_on == method:
                raise RuntimeError("401 Unauthorized (fake)")

        def create_repo(self, *args, **kwargs):
            self._record("create_repo", args, kwargs)
            return f"https://huggingface.co/{args[0] if args else kwargs['repo_id']}"

        def create_branch(self, *args, **kwargs):
            self._record("create_branch", args, kwargs)

        def upload_folder(self, *args, **kwargs):
            self._record("upload_folder", args, kwargs)
            return SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/abc", pr_url=None)

        def __getattr__(self, name):  # any other HfApi method would be a network call the test did not expect
            raise AssertionError(f"unexpected HfApi.{name}")

    monkeypatch.setattr(push, "HfApi", FakeHfApi)
    return rec


def _call(hub, method):
    matching = [(args, kwargs) for m, args, kwargs in hub.calls if m == method]
    assert len(matching) == 1, hub.calls
    args, kwargs = matching[0]
    if method in ("create_repo", "create_branch") and args:  # repo_id may be positional
        kwargs = {"repo_id": args[0], **kwargs}
    return kwargs


def test_valid_folder_has_no_problems(model_dir):
    assert push.validate_model_folder(model_dir) == []
    assert push.validate_model_folder(str(model_dir)) == []


def test_push_to_main(model_dir, hub, caplog):
    caplog.set_level(logging.INFO, logger="push_to_hub")
    (model_dir / "__pycache__").mkdir()
    (model_dir / "__pycache__" / "modeling_unicl.cpython-311.pyc").write_bytes(b"\0")

    assert push.main([str(model_dir), "--repo_id", REPO_ID]) == 0

    assert [m for m, _, _ in hub.calls] == ["create_repo", "upload_folder"]
    assert hub.instances == [{"token": None}]
    create = _call(hub, "create_repo")
    assert create == {"repo_id": REPO_ID, "private": False, "exist_ok": True, "repo_type": "model"}
    upload = _call(hub, "upload_folder")
    assert upload["folder_path"] == str(model_dir.resolve())
    assert upload["repo_id"] == REPO_ID
    assert upload["repo_type"] == "model"
    assert upload["commit_message"] == push.DEFAULT_COMMIT_MESSAGE
    assert upload["revision"] is None
    assert upload["create_pr"] is False
    assert "*.pyc" in upload["ignore_patterns"]

    log = caplog.text
    for name in ("config.json", "model.safetensors", "README.md", "configuration_unicl.py", "modeling_unicl.py"):
        assert name in log
    assert "Uploading 5 files" in log and ".pyc" not in log
    assert "commit/abc" in log


def test_push_private_to_branch_with_message_and_token(model_dir, hub):
    argv = [str(model_dir), "--repo_id", REPO_ID, "--private", "--commit_message", "Add UniCL in1k",
            "--revision", "v1-convert", "--token", "hf_fake"]
    assert push.main(argv) == 0

    assert [m for m, _, _ in hub.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert hub.instances == [{"token": "hf_fake"}]
    assert _call(hub, "create_repo")["private"] is True
    branch = _call(hub, "create_branch")
    assert branch["repo_id"] == REPO_ID and branch["branch"] == "v1-convert"
    assert branch["exist_ok"] is True and branch["repo_type"] == "model"
    upload = _call(hub, "upload_folder")
    assert upload["commit_message"] == "Add UniCL in1k"
    assert upload["revision"] == "v1-convert"
    assert upload["create_pr"] is False
    assert upload["folder_path"] == str(model_dir.resolve())


def test_revision_main_creates_no_branch(model_dir, hub):
    assert push.main([str(model_dir), "--repo_id", REPO_ID, "--revision", "main"]) == 0
    assert [m for m, _, _ in hub.calls] == ["create_repo", "upload_folder"]
    assert _call(hub, "upload_folder")["revision"] == "main"


def test_create_pr(model_dir, hub):
    assert push.main([str(model_dir), "--repo_id", REPO_ID, "--create_pr"]) == 0
    upload = _call(hub, "upload_folder")
    assert upload["create_pr"] is True and upload["revision"] is None


def test_dry_run_calls_nothing(model_dir, hub, caplog):
    caplog.set_level(logging.INFO, logger="push_to_hub")
    assert push.main([str(model_dir), "--repo_id", REPO_ID, "--dry_run"]) == 0
    assert hub.calls == [] and hub.instances == []
    assert "model.safetensors" in caplog.text and "Dry run" in caplog.text


def test_hub_failure_exits_1(model_dir, hub, caplog):
    hub.fail_on = "upload_folder"
    assert push.main([str(model_dir), "--repo_id", REPO_ID]) == 1
    assert "Unauthorized" in caplog.text


def test_sharded_weights_are_accepted(model_dir):
    (model_dir / "model.safetensors").rename(model_dir / "model-00001-of-00001.safetensors")
    index = {"metadata": {}, "weight_map": {"logit_scale": "model-00001-of-00001.safetensors"}}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    assert push.validate_model_folder(model_dir) == []


def test_auto_map_lists_and_other_repo_references(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"]["AutoTokenizer"] = ["tokenization_unicl.UniCLTokenizer", None]
    config["auto_map"]["AutoProcessor"] = "someone/other-repo--processing_unicl.UniCLProcessor"
    (model_dir / "config.json").write_text(json.dumps(config))
    assert push.validate_model_folder(model_dir) == ["tokenization_unicl.py: missing remote-code file "
                                                     "(module 'tokenization_unicl' referenced by config.json auto_map)"]
    (model_dir / "tokenization_unicl.py").write_text("class UniCLTokenizer:\n    pass\n")
    assert push.validate_model_folder(model_dir) == []


def test_processor_auto_map_modules_must_exist(model_dir):
    processor_config = {"processor_class": "UniCLProcessor", "auto_map": {"AutoProcessor": "processing_unicl.UniCLProcessor"}}
    (model_dir / "processor_config.json").write_text(json.dumps(processor_config))
    assert push.validate_model_folder(model_dir) == [
        "processing_unicl.py: missing remote-code file "
        "(module 'processing_unicl' referenced by processor_config.json auto_map)"
    ]
    (model_dir / "processing_unicl.py").write_text("class UniCLProcessor:\n    pass\n")
    assert push.validate_model_folder(model_dir) == []
    assert "processor_config.json" not in " ".join(push.folder_warnings(model_dir))


def test_missing_processor_is_only_a_warning(model_dir, hub, caplog):
    assert push.main([str(model_dir), "--repo_id", REPO_ID]) == 0
    assert "no processor_config.json / preprocessor_config.json" in caplog.text
    assert "no tokenizer files" in caplog.text


def test_folder_saved_by_the_real_model_passes(tmp_path, hub, caplog):
    """What `save_pretrained` of the real UniCL classes writes (tiny random weights) is accepted as is."""
    modeling_unicl = pytest.importorskip("modeling_unicl")
    config = modeling_unicl.UniCLConfig(
        vision_config=dict(model_type="swin", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                           num_heads=[2, 2], window_size=4),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        projection_dim=24,
    )
    out = tmp_path / "converted"
    modeling_unicl.UniCLModel(config).save_pretrained(out)
    modeling_unicl.UniCLProcessor().save_pretrained(out)
    mcu.render_model_card("in1k", repo_id=REPO_ID).save(out / "README.md")

    assert push.validate_model_folder(out) == []
    assert push.folder_warnings(out) == []
    caplog.set_level(logging.INFO, logger="push_to_hub")
    assert push.main([str(out), "--repo_id", REPO_ID]) == 0
    assert _call(hub, "upload_folder")["folder_path"] == str(out.resolve())
    assert "modeling_unicl.py" in caplog.text and "WARNING" not in caplog.text


# --- one test per validation failure: exit code 2, the message, and no HfApi at all ---------------------------


def _edit_config(**changes):
    def edit(out):
        config = json.loads((out / "config.json").read_text())
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        (out / "config.json").write_text(json.dumps(config))
        return out

    return edit


def _unlink(name):
    def edit(out):
        (out / name).unlink()
        return out

    return edit


def _write(name, content):
    def edit(out):
        (out / name).write_text(content)
        return out

    return edit


def _missing_folder(out):
    return out.parent / "does-not-exist"


def _file_not_folder(out):
    path = out.parent / "model.tar"
    path.write_bytes(b"not a folder")
    return path


def _missing_shard(out):
    (out / "model.safetensors").unlink()
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    save_file({"a": torch.zeros(1)}, str(out / "model-00001-of-00002.safetensors"))
    return out


_BAD_YAML_CARD = "---\nlicense: mit\ntags: [unicl, clip\n---\n\n# UniCL\n"

FOLDER_FAILURES = {
    "missing_folder": (_missing_folder, "the folder does not exist"),
    "not_a_directory": (_file_not_folder, "not a directory"),
    "missing_config": (_unlink("config.json"), "missing config.json"),
    "config_not_json": (_write("config.json", "{model_type: unicl"), "config.json: cannot be parsed as JSON"),
    "config_not_object": (_write("config.json", "[1, 2]"), "config.json: must contain a JSON object"),
    "wrong_model_type": (_edit_config(model_type="clip"), "config.json: model_type is 'clip', expected 'unicl'"),
    "missing_model_type": (_edit_config(model_type=None), "config.json: model_type is None, expected 'unicl'"),
    "missing_weights": (_unlink("model.safetensors"), "missing weights (model.safetensors or sharded"),
    "missing_shard": (_missing_shard, "missing weight shard(s) model-00002-of-00002.safetensors"),
    "missing_readme": (_unlink("README.md"), "missing README.md"),
    "readme_bad_yaml": (_write("README.md", _BAD_YAML_CARD), "README.md: the model card metadata cannot be parsed"),
    "readme_metadata_not_a_dict": (
        _write("README.md", "---\n- just\n- a list\n---\n# UniCL\n"),
        "README.md: the model card metadata cannot be parsed",
    ),
    "readme_without_metadata": (_write("README.md", "# UniCL\n\nNo front matter.\n"), "no YAML metadata block"),
    "missing_auto_map": (_edit_config(auto_map=None), "config.json: no `auto_map`"),
    "bad_auto_map_reference": (
        _edit_config(auto_map={"AutoModel": "UniCLModel"}),
        "auto_map['AutoModel'] = 'UniCLModel' is not a 'module.Class' reference",
    ),
    "missing_modeling_file": (
        _unlink("modeling_unicl.py"),
        "modeling_unicl.py: missing remote-code file (module 'modeling_unicl' referenced by config.json auto_map)",
    ),
    "missing_configuration_file": (_unlink("configuration_unicl.py"), "configuration_unicl.py: missing remote-code"),
    "missing_relative_import": (
        _write("modeling_unicl.py", "from .configuration_unicl import UniCLConfig\nfrom .loss_unicl import loss\n"),
        "loss_unicl.py: missing remote-code file (module 'loss_unicl' referenced by modeling_unicl.py)",
    ),
}


@pytest.mark.parametrize("case", sorted(FOLDER_FAILURES))
def test_invalid_folder_exits_2_before_any_hub_call(case, model_dir, hub, caplog):
    break_it, message = FOLDER_FAILURES[case]
    folder = break_it(model_dir)
    assert any(message in problem for problem in push.validate_model_folder(folder)), push.validate_model_folder(
        folder
    )
    assert push.main([str(folder), "--repo_id", REPO_ID]) == 2
    assert message in caplog.text
    assert hub.calls == [] and hub.instances == []


@pytest.mark.parametrize(
    "repo_id, message",
    [
        ("unicl-swin-tiny-in1k", "must be 'namespace/name'"),
        ("org/sub/name", "must be 'namespace/name'"),
        ("org/bad--name", "Cannot have -- or .."),
        ("org/name.git", "cannot end by '.git'"),
        ("org/with space", "alphanumeric"),
    ],
)
def test_malformed_repo_id_exits_2(repo_id, message, model_dir, hub, caplog):
    assert push.main([str(model_dir), "--repo_id", repo_id]) == 2
    assert message in caplog.text and repr(repo_id) in caplog.text
    assert hub.calls == [] and hub.instances == []


def test_create_pr_on_a_branch_exits_2(model_dir, hub, caplog):
    assert push.main([str(model_dir), "--repo_id", REPO_ID, "--create_pr", "--revision", "dev"]) == 2
    assert "--create_pr with --revision 'dev'" in caplog.text
    assert hub.calls == [] and hub.instances == []


def test_all_problems_are_reported_together(tmp_path, hub, caplog):
    out = tmp_path / "empty"
    out.mkdir()
    assert push.main([str(out), "--repo_id", "bad"]) == 2
    for message in ("must be 'namespace/name'", "missing config.json", "missing weights", "missing README.md"):
        assert message in caplog.text
    assert hub.calls == [] and hub.instances == []


def test_missing_repo_id_is_an_argparse_error(model_dir, hub):
    with pytest.raises(SystemExit) as excinfo:
        push.main([str(model_dir)])
    assert excinfo.value.code == 2
    assert hub.calls == [] and hub.instances == []


def test_hyphenated_flags_of_earlier_versions_still_work(model_dir, hub):
    argv = [str(model_dir), "--repo-id", REPO_ID, "--commit-message", "old spelling", "--create-pr", "--dry-run"]
    assert push.main(argv) == 0
    args = push.build_parser().parse_args(argv)
    assert (args.repo_id, args.commit_message, args.create_pr, args.dry_run) == (REPO_ID, "old spelling", True, True)
    assert hub.calls == []
