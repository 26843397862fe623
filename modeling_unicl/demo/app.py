"""The Gradio app: the only module of the package that imports gradio (an optional extra: `pip install -e .[demo]`).

One event does the work: the Classify button (and a click on an example) calls `DemoClassifier.classify` and shows
the ranked labels as bars. The same event is the API endpoint `/classify` (image, labels text[, template choice]) ->
the labels with their probabilities, which `gradio_client` can call. The image input is passed through unprocessed
(`preprocess=False`): the upload's path goes straight to our bounded decode, so gradio never decodes a huge or broken
file itself, and every bad input becomes one readable message in the page (`gr.Error`), never a dead server."""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

# Before gradio is imported: no usage statistics or version checks over the network (the demo must work offline).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from .classifier import DEFAULT_TEMPLATE_SET, DemoClassifier, Ranking  # noqa: E402
from .examples import EXAMPLE_LABELS, write_example_images  # noqa: E402
from .labels import MAX_PROMPTS  # noqa: E402
from .model_info import ModelFacts, describe_model  # noqa: E402

TITLE = "UniCL zero-shot classification"
SHOWN_LABELS = 10  # bars on the page and entries in the API's answer
MAX_UPLOAD = "50mb"
TEMPLATE_CHOICES = [
    ("81-template ensemble (UniCL's evaluation prompts, averaged)", "ensemble"),
    ('one template: "a photo of a {}."', "single"),
]
EXAMPLES_DIR = Path(tempfile.gettempdir()) / "unicl-demo-examples"
INTRO = (
    f"# {TITLE}\n"
    "Give an image and the labels you want it ranked against (comma- or line-separated): each label becomes text "
    "prompts, and the model scores the image against them. Nothing leaves this machine."
)


def status_markdown(ranking: Ranking) -> str:
    """One line on what was computed: the winner, the prompt count, and whether the labels came from the cache."""
    total = len(ranking.labels)
    shown = f"top {SHOWN_LABELS} of {total} labels shown" if total > SHOWN_LABELS else f"{total} labels"
    text_side = (
        "labels from the cache (no text forward)"
        if ranking.text_seconds is None
        else f"labels embedded in {ranking.text_seconds:.2f} s (cached for the next request)"
    )
    return (
        f"**{ranking.labels[0]}**: {ranking.probabilities[0]:.1%} · {shown} x {ranking.num_templates} "
        f"template{'s' if ranking.num_templates > 1 else ''} · {text_side} · image scored in "
        f"{ranking.image_seconds * 1000:.0f} ms"
    )


def _upload_path(payload) -> str | None:
    """The unprocessed image input (gradio's file data, already moved into its upload cache) -> the file's path."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        return payload.get("path")
    return str(payload)


def _as_page_text(message: str) -> str:
    """gradio renders error and warning messages as HTML, and ours quote the user's labels: escape the markup (not
    the quotes, so API clients read the same message)."""
    return html.escape(message, quote=False)


def make_classify_handler(classifier: DemoClassifier):
    """The event handler: the ranking for the Label output and the status line (a State, so the API answer is only
    the ranking); a bad input becomes `gr.Error` (shown in the page), a changed input `gr.Warning`s."""

    def classify(image, labels_text, template_key=DEFAULT_TEMPLATE_SET, progress=gr.Progress()):
        progress(0, desc="Reading the image and embedding the labels (a label set is embedded once, then cached)")
        try:
            ranking = classifier.classify(_upload_path(image), labels_text, template_key or DEFAULT_TEMPLATE_SET)
        except ValueError as error:  # UnreadableImageError, ImageTooLargeError, label problems: all say what to do
            raise gr.Error(_as_page_text(str(error)), title="Cannot classify", print_exception=False) from error
        for note in ranking.notes:
            gr.Warning(_as_page_text(note))
        return ranking.as_dict(), status_markdown(ranking)

    return classify


def build_demo(classifier: DemoClassifier, facts: ModelFacts, example_images: list[Path]) -> gr.Blocks:
    """The page: the model's facts, image + labels + template choice, the ranked labels as bars, examples."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(facts.markdown(), elem_id="model-facts")
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                    elem_id="image-input",
                )
                labels = gr.Textbox(
                    label="Labels (comma- or line-separated)", lines=3, elem_id="labels-input",
                    placeholder="cat, dog, a zebra on the grass",
                )
                template = gr.Radio(
                    TEMPLATE_CHOICES, value=DEFAULT_TEMPLATE_SET, label="Prompt templates", elem_id="template-choice",
                    info=f"labels x templates prompts go through the text tower, at most {MAX_PROMPTS:,} per request",
                )
                button = gr.Button("Classify", variant="primary", elem_id="classify-button")
                examples = gr.Examples(
                    [[str(path), EXAMPLE_LABELS] for path in example_images], inputs=[image, labels],
                    label="Examples: test silhouettes from the package's own data (click one)", cache_examples=False,
                )
            with gr.Column():
                ranking = gr.Label(label="Ranked labels", num_top_classes=SHOWN_LABELS, elem_id="ranking")
                status = gr.Markdown(elem_id="status")
        last_status = gr.State()
        classify = make_classify_handler(classifier)
        # One model on a CPU: requests run one at a time, from the button and the examples alike (one concurrency
        # group); gradio queues the rest and shows each its place in the queue.
        run = dict(fn=classify, inputs=[image, labels, template], outputs=[ranking, last_status], preprocess=False,
                   concurrency_limit=1, concurrency_id="model")
        button_event = button.click(**run, api_name="classify")
        example_event = examples.load_input_event.then(**run, api_visibility="private")
        for event in (button_event, example_event):
            event.success(lambda text: text, last_status, status, api_visibility="private", queue=False)
    return demo


def create_demo(name_or_path: str, trust_remote_code: bool = False, examples_dir: str | Path = EXAMPLES_DIR):
    """Loads the model and processor once and builds the page for them."""
    classifier = DemoClassifier.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    facts = describe_model(name_or_path, classifier.model, classifier.processor)
    return build_demo(classifier, facts, write_example_images(examples_dir))


def launch(demo: gr.Blocks, host: str | None = "127.0.0.1", port: int | None = None, share: bool = False, **kwargs):
    """Starts the server (host/port None: gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as on a Space). No share
    link unless asked: that needs the internet and makes the page public."""
    return demo.launch(
        server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD, ssr_mode=False,
        footer_links=["api"], **kwargs,
    )
