"""The browser demo (scripts/demo.py, modeling_unicl/demo/): label parsing, the bounded image decode, the cached
classifier, what the page says about the model, the Space writer, the layout promise (gradio stays optional), and the
running app through gradio_client. The real-browser test is tests/test_demo_browser.py."""

import ast
import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_config, tiny_processor
from PIL import Image

from modeling_unicl import UniCLModel
from modeling_unicl.demo.classifier import DemoClassifier, labels_cut_by_context
from modeling_unicl.demo.examples import EXAMPLE_CLASSES, write_example_images
from modeling_unicl.demo.images import MAX_DECODED_PIXELS, ImageTooLargeError, read_image_bounded
from modeling_unicl.demo.labels import MAX_PROMPTS, check_prompt_budget, parse_labels
from modeling_unicl.demo.model_info import describe_model
from modeling_unicl.demo.space import SPACE_REQUIREMENTS, write_space
from modeling_unicl.processing_unicl import UnreadableImageError
from modeling_unicl.prompts import SIMPLE_TEMPLATE, UNICL_IMAGENET_TEMPLATES

PACKAGE = REPO_ROOT / "modeling_unicl"
# gradio's queue calls pandas APIs that pandas 3 deprecates: its noise, not ours
GRADIO_PANDAS_NOISE = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword is deprecated)")
pytestmark = GRADIO_PANDAS_NOISE
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import demo as demo_script  # noqa: E402  (scripts/demo.py)


# ------------------------------------------------------------------------------------------------ helpers
def save_tiny_model(folder):
    torch.manual_seed(0)
    UniCLModel(tiny_config()).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("unicl-tiny"))


@pytest.fixture
def classifier(tiny_folder):
    return DemoClassifier.from_pretrained(str(tiny_folder))


def image_file(path, seed=0, size=(40, 52), mode="RGB", fmt=None):
    array = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path, format=fmt)
    return path


class CountTextForwards:
    """Wraps `model.get_text_features` (what build_class_embeddings calls for every batch of prompts)."""

    def __init__(self, model):
        self.calls = 0
        original = model.get_text_features

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        model.get_text_features = counted


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_demo(demo):
    """Serves a built demo on a free local port for the block; the server is closed afterwards, whatever happens."""
    from modeling_unicl.demo.app import launch

    port = free_port()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


# ------------------------------------------------------------------------------------------------- labels
def test_labels_split_on_commas_and_lines_and_collapse_duplicates():
    parsed = parse_labels(" cat ,dog\n\n a   zebra on grass ,cat, Cat,cat \n")
    assert parsed.labels == ("cat", "dog", "a zebra on grass", "Cat")  # case is kept: cased text towers tell them apart
    assert parsed.notes == ("'cat' was given 3 times; it is scored once.",)
    assert parse_labels("cat, dog").notes == ()


@pytest.mark.parametrize(
    "text, message",
    [(None, "No labels"), ("", "No labels"), (" , \n ,", "No labels"), ("cat", "Only one distinct label"),
     ("cat, cat,  cat ", "Only one distinct label"), ("x" * 100_001, "at most 100,000")],
)
def test_bad_label_texts_say_what_to_do(text, message):
    with pytest.raises(ValueError, match=message):
        parse_labels(text)


def test_the_prompt_budget_counts_labels_times_templates():
    check_prompt_budget(1000, 1)
    check_prompt_budget(MAX_PROMPTS // 81, 81)
    with pytest.raises(ValueError, match=r"1,000 labels x 81 templates = 81,000 prompts.*single template"):
        check_prompt_budget(1000, 81)


# ------------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("P", "PNG"), ("RGBA", "PNG"), ("L", "PNG")])
def test_every_mode_becomes_rgb(tmp_path, mode, fmt):
    path = image_file(tmp_path / f"image.{fmt.lower()}", mode=mode, fmt=fmt)
    image = read_image_bounded(path)
    assert image.mode == "RGB" and image.size == (40, 52)


def test_a_16_bit_png_becomes_8_bit_rgb(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((20, 30), 65535, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    image = read_image_bounded(path)
    assert image.mode == "RGB" and np.asarray(image).min() == 255


def test_a_huge_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (12_000, 12_000)).save(path)  # 144 MP, 18 MB as bits: a cheap file that would decode to 432 MB
    with pytest.raises(ImageTooLargeError, match="12,000 x 12,000 pixels"):
        read_image_bounded(path)


def test_a_huge_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("L", (12_000, 12_000), 128).save(path, quality=50)
    image = read_image_bounded(path)
    assert image.size == (1500, 1500)  # PIL's draft: 1/8 scale, the smallest that covers 1024 px
    assert image.width * image.height < MAX_DECODED_PIXELS


@pytest.mark.parametrize("content", [b"just some text, not an image\n", b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_a_file_that_is_not_an_image_is_unreadable(tmp_path, content):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match="fake.png"):
        read_image_bounded(path)


def test_a_truncated_png_is_unreadable(tmp_path):
    path = image_file(tmp_path / "cut.png", size=(200, 200))
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(UnreadableImageError):
        read_image_bounded(path)


# --------------------------------------------------------------------------------------------- classifier
def test_the_ranking_is_the_models_own_softmax_over_the_prompts(classifier, tmp_path):
    path = image_file(tmp_path / "a.png")
    ranking = classifier.classify(str(path), "cat, dog, a red car", "single")
    model, processor = classifier.model, classifier.processor
    labels = ["cat", "dog", "a red car"]
    inputs = processor(images=Image.open(path), text=[SIMPLE_TEMPLATE.format(x) for x in labels], padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits_per_image.softmax(-1)[0]
    assert sorted(ranking.labels) == sorted(labels)
    assert list(ranking.probabilities) == sorted(ranking.probabilities, reverse=True)
    for label, probability in ranking.as_dict().items():
        assert probability == pytest.approx(float(expected[labels.index(label)]), abs=1e-5)
    assert ranking.num_templates == 1 and sum(ranking.probabilities) == pytest.approx(1.0, abs=1e-5)


def test_the_ensemble_uses_the_81_templates(classifier, tmp_path):
    ranking = classifier.classify(str(image_file(tmp_path / "a.png")), "cat, dog")
    assert ranking.num_templates == len(UNICL_IMAGENET_TEMPLATES) == 81


def test_repeated_labels_cost_no_text_forward(classifier, tmp_path):
    counter = CountTextForwards(classifier.model)
    first = classifier.classify(str(image_file(tmp_path / "a.png", seed=1)), "cat, dog, bird")
    after_first = counter.calls
    assert after_first > 0 and first.text_seconds is not None
    # the same labels, spelled differently, another image: the class matrix comes from the cache
    second = classifier.classify(str(image_file(tmp_path / "b.png", seed=2)), "cat,dog\n  bird\n")
    assert counter.calls == after_first and second.text_seconds is None
    classifier.classify(str(image_file(tmp_path / "a.png", seed=1)), "cat, dog, bird", "single")
    assert counter.calls > after_first  # another template choice is another class matrix


def test_the_cache_forgets_the_least_recently_used_label_set(tiny_folder, tmp_path):
    classifier = DemoClassifier.from_pretrained(str(tiny_folder), cache_size=2)
    counter = CountTextForwards(classifier.model)
    path = str(image_file(tmp_path / "a.png"))
    for labels in ("a, b", "c, d", "a, b", "e, f"):  # "c, d" is the oldest when "e, f" arrives
        classifier.classify(path, labels, "single")
    calls = counter.calls
    classifier.classify(path, "a, b", "single")
    assert counter.calls == calls
    classifier.classify(path, "c, d", "single")
    assert counter.calls == calls + 1


def test_bad_requests_raise_value_errors_for_the_page(classifier, tmp_path):
    path = str(image_file(tmp_path / "a.png"))
    with pytest.raises(ValueError, match="No image"):
        classifier.classify(None, "cat, dog")
    with pytest.raises(ValueError, match="No labels"):
        classifier.classify(path, "  ")
    with pytest.raises(ValueError, match="81,000 prompts"):
        classifier.classify(path, ", ".join(f"thing {i}" for i in range(1000)))
    with pytest.raises(ValueError, match="Unknown template choice 'many'"):
        classifier.classify(path, "cat, dog", "many")


def test_a_thousand_labels_with_one_template_are_ranked(classifier, tmp_path):
    ranking = classifier.classify(str(image_file(tmp_path / "a.png")), "\n".join(f"thing {i}" for i in range(1000)),
                                  "single")
    assert len(ranking.labels) == 1000 and sum(ranking.probabilities) == pytest.approx(1.0, abs=1e-4)


def test_a_label_longer_than_77_tokens_is_truncated_with_a_note(classifier, tmp_path):
    long_label = " ".join(["zebra"] * 100)
    assert labels_cut_by_context(classifier.processor.tokenizer, ["cat", long_label], [SIMPLE_TEMPLATE]) == [long_label]
    ranking = classifier.classify(str(image_file(tmp_path / "a.png")), f"cat, {long_label}", "single")
    assert len(ranking.labels) == 2
    assert any("longer than the text tower's 77 tokens" in note for note in ranking.notes)
    # the note is shown again when the class matrix comes from the cache
    again = classifier.classify(str(image_file(tmp_path / "a.png")), f"cat, {long_label}", "single")
    assert again.text_seconds is None and again.notes == ranking.notes


def test_a_pil_image_of_any_mode_is_classified(classifier, tmp_path):
    cmyk = Image.open(image_file(tmp_path / "a.jpg", mode="CMYK", fmt="JPEG"))
    assert len(classifier.classify(cmyk, "cat, dog").labels) == 2


# --------------------------------------------------------------------------------------------- model facts
def test_a_randomly_initialised_tiny_model_says_so(classifier, tiny_folder):
    facts = describe_model(str(tiny_folder), classifier.model, classifier.processor)
    text = facts.markdown()
    assert "Randomly initialised" in text and "A tiny model (32 px input" in text
    assert facts.name == tiny_folder.name


def test_the_main_jobs_model_says_what_it_was_trained_on(tmp_path):
    from modeling_unicl.presets import get_preset, processor_for_config

    config = get_preset("animals-small").config()
    model = UniCLModel(config)
    processor = processor_for_config(config)
    results_file = tmp_path / "zero_shot_results.json"
    # the same preset trained on other data (train.py's custom-data run names its one split "zero-shot eval")
    results_file.write_text(json.dumps({"zero-shot eval": {"top1": 0.7}}))
    assert "a training run's records" in describe_model(str(tmp_path), model, processor).provenance
    results = {"all 10 classes": {"top1": 0.503, "top5": 0.95}, "held-out 3 (captions only)": {"top1": 0.907}}
    results_file.write_text(json.dumps(results))
    facts = describe_model(str(tmp_path), model, processor)
    assert "animal silhouettes" in facts.provenance and "all 10 classes: 50.3%" in facts.provenance
    assert any("will not recognise real photos" in caution for caution in facts.cautions)
    assert any("tiny model (48 px input" in caution for caution in facts.cautions)
    assert not any("Randomly" in caution for caution in facts.cautions)


def test_a_converted_checkpoint_names_its_model_card(classifier, tmp_path):
    (tmp_path / "README.md").write_text(
        "---\nlicense: mit\n---\n# UniCL Swin-T in1k\n\nThis is the UniCL checkpoint, converted from the original.\n"
    )
    facts = describe_model(str(tmp_path), classifier.model, classifier.processor)
    assert "converted from the original microsoft/UniCL release (model card: UniCL Swin-T in1k)" in facts.provenance
    assert not any("Randomly" in caution for caution in facts.cautions)


def test_a_folder_of_the_main_job_is_described_as_the_main_job(tmp_path):
    # what scripts/train.py leaves without arguments: the animals-small preset and its three-way zero-shot results
    from modeling_unicl import UniCLModel
    from modeling_unicl.presets import MODEL_PRESETS, processor_for_config

    folder = tmp_path / "unicl-animals"
    config = MODEL_PRESETS["animals-small"].config()
    UniCLModel(config).save_pretrained(folder)
    processor_for_config(config).save_pretrained(folder)
    results = {"all 10 classes": {"top1": 0.53}, "seen 7 (labels)": {"top1": 0.58},
               "held-out 3 (captions only)": {"top1": 0.92}}
    (folder / "zero_shot_results.json").write_text(json.dumps(results))
    trained = DemoClassifier.from_pretrained(str(folder))
    facts = describe_model(str(folder), trained.model, trained.processor)
    assert facts.name == "unicl-animals" and "main job's model" in facts.provenance
    assert not any("Randomly" in caution for caution in facts.cautions)


def test_example_images_are_small_silhouettes(tmp_path):
    paths = write_example_images(tmp_path)
    assert [p.stem for p in paths] == list(EXAMPLE_CLASSES)
    for path in paths:
        assert path.stat().st_size < 10_000
        assert Image.open(path).size == (192, 192)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no partial files left


# -------------------------------------------------------------------------------------------------- layout
def test_only_the_app_module_imports_gradio():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        if any(name.split(".")[0] in ("gradio", "gradio_client") for name in names):
            assert path == PACKAGE / "demo" / "app.py", f"{path.relative_to(REPO_ROOT)} imports gradio"


def test_the_package_and_the_demos_library_code_never_import_gradio():
    code = (
        "import sys\n"
        "import modeling_unicl, modeling_unicl.evaluation, modeling_unicl.presets\n"
        "from modeling_unicl import ZeroShotClassifier\n"
        "import modeling_unicl.demo.classifier, modeling_unicl.demo.model_info, modeling_unicl.demo.space\n"
        "import modeling_unicl.demo.examples\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'gradio_client'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------------------------- script
def test_the_script_says_how_to_make_the_default_model_when_it_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no unicl-animals/ here
    assert demo_script.main([]) == 2
    error = capsys.readouterr().err
    assert "python scripts/train.py" in error and "python scripts/demo.py MODEL" in error


@pytest.mark.parametrize(
    "args, message",
    [(["--port", "70000"], "--port must be between 1 and 65535"), (["{missing}"], "MODEL"),
     (["{tiny}", "--write_space", "{space}"], "a Space loads its model from the Hub"),
     (["not a hub id!", "--write_space", "{space}"], "not a Hub model id")],
)
def test_the_script_rejects_bad_arguments_with_exit_code_2(tiny_folder, tmp_path, capsys, args, message):
    values = {"missing": str(tmp_path / "missing"), "tiny": str(tiny_folder), "space": str(tmp_path / "space")}
    assert demo_script.main([arg.format(**values) for arg in args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "space").exists()


# -------------------------------------------------------------------------------------------------- Space
def test_write_space_writes_an_app_requirements_and_front_matter(tmp_path):
    pytest.importorskip("gradio")
    space = tmp_path / "space"
    written = write_space(space, "someone/unicl-swin-tiny")
    assert [p.name for p in written] == ["app.py", "requirements.txt", "README.md", "modeling_unicl"]
    front_matter = (space / "README.md").read_text().split("---")[1]
    for line in ("sdk: gradio", "app_file: app.py", "- someone/unicl-swin-tiny"):
        assert line in front_matter
    app = (space / "app.py").read_text()
    assert "trust_remote_code=True" in app and '"someone/unicl-swin-tiny"' in app
    ast.parse(app)
    assert (space / "modeling_unicl" / "demo" / "app.py").is_file()
    assert not list(space.rglob("__pycache__"))
    with pytest.raises(ValueError, match="not an empty folder"):
        write_space(space, "someone/unicl-swin-tiny")


def test_the_space_requirements_are_package_dependencies():
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    declared = {Requirement(r).name.lower().replace("_", "-"): Requirement(r).specifier for r in requires("unicl")
                if "extra ==" not in r}
    for line in SPACE_REQUIREMENTS:
        requirement = Requirement(line)
        assert requirement.name.lower().replace("_", "-") in declared, line


def test_the_space_app_builds_from_its_own_copy_of_the_package(tiny_folder, tmp_path):
    """The Space's app.py, run where only its copied package is importable first, loads a model with remote code
    (a local folder stands in for the Hub id through the Space variable) and builds the page."""
    pytest.importorskip("gradio")
    space = tmp_path / "space"
    write_space(space, "someone/unicl-tiny")
    code = (
        "import app, modeling_unicl\n"
        f"assert modeling_unicl.__file__.startswith({str(space)!r}), modeling_unicl.__file__\n"
        "print('ENDPOINTS', sorted(f.api_name for f in app.demo.fns.values() if f.api_visibility == 'public'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", UNICL_MODEL_ID=str(tiny_folder), GRADIO_ANALYTICS_ENABLED="False")
    result = subprocess.run([sys.executable, "-c", code], cwd=space, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ENDPOINTS ['classify']" in result.stdout


# ------------------------------------------------------------------------------------ the app, over HTTP
@pytest.fixture(scope="module")
def served(tiny_folder, tmp_path_factory):
    pytest.importorskip("gradio")
    from modeling_unicl.demo.app import build_demo

    classifier = DemoClassifier.from_pretrained(str(tiny_folder))
    facts = describe_model(str(tiny_folder), classifier.model, classifier.processor)
    examples = write_example_images(tmp_path_factory.mktemp("examples"))
    with serve_demo(build_demo(classifier, facts, examples)) as url:
        yield url, classifier, examples


def test_the_api_endpoint_returns_the_ranked_labels(served):
    from gradio_client import Client, handle_file

    url, classifier, examples = served
    client = Client(url, verbose=False)
    answer = client.predict(handle_file(str(examples[0])), "zebra, horse, cat", api_name="/classify")
    expected = classifier.classify(str(examples[0]), "zebra, horse, cat")
    assert answer["label"] == expected.labels[0]
    assert [c["label"] for c in answer["confidences"]] == list(expected.labels)
    for entry, probability in zip(answer["confidences"], expected.probabilities):
        assert entry["confidence"] == pytest.approx(probability, abs=1e-6)
    single = client.predict(handle_file(str(examples[0])), "zebra, horse, cat", "single", api_name="/classify")
    assert len(single["confidences"]) == 3


def test_bad_api_requests_get_a_message_and_the_server_survives(served, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, _, examples = served
    client = Client(url, verbose=False)
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("1", (12_000, 12_000)).save(huge)  # an 18 kB upload that would decode to 432 MB as RGB
    for image, labels, message in [
        (None, "cat, dog", "No image"),
        (handle_file(str(examples[0])), "", "No labels"),
        (handle_file(str(examples[0])), "cat, cat,  cat", "Only one distinct label"),
        (handle_file(str(fake)), "cat, dog", "is not an image"),
        (handle_file(str(huge)), "cat, dog", "12,000 x 12,000 pixels"),
        (handle_file(str(examples[0])), ", ".join(f"x{i}" for i in range(1000)), "81,000 prompts"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(image, labels, api_name="/classify")
    # the server still answers, also for images in modes a browser would not send
    cmyk = image_file(tmp_path / "cmyk.jpg", mode="CMYK", fmt="JPEG")
    assert client.predict(handle_file(str(cmyk)), "cat, dog", api_name="/classify")["label"] in ("cat", "dog")


def test_only_the_classify_endpoint_is_public(served):
    from gradio_client import Client

    endpoints = Client(served[0], verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert list(endpoints) == ["/classify"]
    parameters = endpoints["/classify"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == ["image", "labels_text", "template_key"]
    assert parameters[2]["parameter_has_default"]  # (image, labels) is a complete call
