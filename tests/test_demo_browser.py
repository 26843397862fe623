"""The demo in a real headless browser: Debian's Chromium driven by Playwright (`executable_path`, no downloaded
browser). Uploads an image, types labels, submits, reads the ranked labels from the page and checks them against the
model's own zero-shot scores; a non-image upload gets a message in the page and the server keeps answering.

A screenshot of the page goes to pytest's tmp folder, or to $UNICL_WRITE_DEMO_SCREENSHOT (the README's
docs/demo.png: `UNICL_WRITE_DEMO_SCREENSHOT=docs/demo.png python -m pytest tests/test_demo_browser.py`); with that
variable set, the page serves the main job's unicl-animals/ when it exists, so the picture shows a real ranking.
Skipped, with the reason, where Playwright or a Chromium is not installed (CI installs both: .ci/run)."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from test_demo import GRADIO_PANDAS_NOISE, save_tiny_model, serve_demo

from modeling_unicl.demo.classifier import DemoClassifier
from modeling_unicl.demo.examples import EXAMPLE_LABELS, write_example_images
from modeling_unicl.demo.model_info import describe_model
from modeling_unicl.evaluation import ZeroShotClassifier
from modeling_unicl.prompts import UNICL_IMAGENET_TEMPLATES

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e .[demo]")
sync_playwright = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed: pip install playwright"
).sync_playwright

SCREENSHOT_VARIABLE = "UNICL_WRITE_DEMO_SCREENSHOT"
TIMEOUT_MS = 30_000


def find_chromium() -> str | None:
    """$UNICL_CHROMIUM, else Debian's `chromium` (or another Chromium build) on the PATH."""
    candidates = [os.environ.get("UNICL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium to drive (apt-get install chromium, or set UNICL_CHROMIUM)"),
    GRADIO_PANDAS_NOISE,
]


def model_for_the_page(tmp_path_factory) -> str:
    trained = REPO_ROOT / "unicl-animals"
    if os.environ.get(SCREENSHOT_VARIABLE) and trained.is_dir():
        return str(trained)
    return str(save_tiny_model(tmp_path_factory.mktemp("unicl-tiny")))


@pytest.fixture(scope="module")
def page_setup(tmp_path_factory):
    """(url, classifier the page uses, example images), served for the module; the server closes at the end."""
    from modeling_unicl.demo.app import build_demo

    model = model_for_the_page(tmp_path_factory)
    classifier = DemoClassifier.from_pretrained(model)
    facts = describe_model(model, classifier.model, classifier.processor)
    examples = write_example_images(tmp_path_factory.mktemp("examples"))
    with serve_demo(build_demo(classifier, facts, examples)) as url:
        yield url, classifier, examples


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, page_setup):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(page_setup[0], wait_until="domcontentloaded")
    page.wait_for_selector("#classify-button")
    yield page
    page.close()


def read_ranking(page) -> dict[str, float]:
    """The bars of the Label output, in page order: label text -> the probability each bar's <meter> holds."""
    bars = page.locator("#ranking [data-testid$='-confidence-set']")
    labels = bars.locator("dt").all_inner_texts()
    values = bars.locator("meter").evaluate_all("meters => meters.map(m => m.value)")
    return dict(zip(labels, values))


def submit(page, image: Path, labels: str) -> None:
    page.set_input_files("#image-input input[type=file]", str(image))
    page.wait_for_selector("#image-input img")  # the upload is done when the page shows it
    page.fill("#labels-input textarea", labels)
    page.click("#classify-button")


def models_own_scores(classifier, image: Path, labels: list[str]) -> dict[str, float]:
    """Zero-shot probabilities straight from the library (no demo code, no cache): 81-template class embeddings."""
    zero_shot = ZeroShotClassifier(classifier.model, classifier.processor, labels, UNICL_IMAGENET_TEMPLATES)
    probabilities = zero_shot.logits(zero_shot.pixel_values([str(image)]))[0].softmax(-1)
    return dict(zip(labels, probabilities.tolist()))


def screenshot_path(tmp_path) -> Path:
    target = os.environ.get(SCREENSHOT_VARIABLE)
    path = Path(target) if target else tmp_path / "demo.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_upload_type_submit_and_read_the_ranking(page, page_setup, tmp_path):
    _, classifier, examples = page_setup
    zebra = examples[0]
    labels = [label.strip() for label in EXAMPLE_LABELS.split(",")]
    submit(page, zebra, EXAMPLE_LABELS)
    page.wait_for_selector("#status :text('labels embedded in')")
    shown = read_ranking(page)
    expected = models_own_scores(classifier, zebra, labels)
    top = sorted(expected, key=expected.get, reverse=True)
    assert list(shown) == top  # all 10 labels, ranked as the model ranks them
    for label, probability in shown.items():
        assert probability == pytest.approx(expected[label], abs=1e-5)
    assert page.inner_text("#ranking [data-testid='label-output-value']") == top[0]
    assert "Model:" in page.inner_text("#model-facts")
    path = screenshot_path(tmp_path)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000

    page.click("#classify-button")  # the same labels again: no text forward, and the page says so
    page.wait_for_selector("#status :text('labels from the cache')")
    assert read_ranking(page) == shown


def test_a_non_image_upload_gets_a_message_and_the_server_keeps_answering(page, page_setup, tmp_path):
    fake = tmp_path / "holiday.png"  # a text file with an image's name: the browser lets it through
    fake.write_text("this is not a picture\n")
    page.set_input_files("#image-input input[type=file]", str(fake))
    page.fill("#labels-input textarea", "cat, dog")
    page.click("#classify-button")
    toast = page.wait_for_selector("[data-testid='toast-body']:has-text('is not an image')")
    assert "holiday.png" in toast.inner_text()

    page.reload(wait_until="domcontentloaded")
    submit(page, page_setup[2][1], "cat, dog, cat")  # a good request (with a repeated label) still works
    page.wait_for_selector("[data-testid='toast-body']:has-text('was given 2 times')")
    page.wait_for_selector("#status :text('image scored in')")
    assert sorted(read_ranking(page)) == ["cat", "dog"]
