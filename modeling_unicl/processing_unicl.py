"""UniCL processor: an image processor pinned to the PIL backend and CLIP's BPE tokenizer, built offline."""

import gzip
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer, ProcessorMixin
from transformers.image_utils import PILImageResampling
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

# OpenAI's CLIP BPE merges (MIT, see LICENSE_CLIP_BPE.txt), shipped as package data.
BPE_VOCAB_FILE = Path(__file__).resolve().parent / "bpe_simple_vocab_16e6.txt.gz"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CONTEXT_LENGTH = 77


class UniCLImageProcessor(CLIPImageProcessorPil):
    """UniCL's evaluation preprocessing: bicubic resize of the shorter side to 256, center crop 224, ImageNet
    mean/std (not CLIP's). A subclass of the PIL-backend CLIP processor so that a saved folder always reloads with
    the PIL backend: the torchvision backend differs by about one 8-bit level after normalisation."""

    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_MEAN
    image_std = IMAGENET_STD
    size = {"shortest_edge": 256}
    crop_size = {"height": 224, "width": 224}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters (the BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


@lru_cache(maxsize=1)
def clip_bpe_vocab_and_merges(path: str = str(BPE_VOCAB_FILE)) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary (49408 tokens) and merges of OpenAI's CLIP tokenizer, built from its BPE file as OpenAI's
    `SimpleTokenizer` builds them: bytes, bytes + '</w>', one token per merge, then the two special tokens."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"CLIP BPE vocabulary not found at {path}; it ships with the modeling_unicl package. Load the tokenizer "
            "from a saved model folder instead (UniCLProcessor.from_pretrained)."
        )
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [t + "</w>" for t in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_clip_tokenizer(model_max_length: int = CONTEXT_LENGTH) -> CLIPTokenizer:
    """A transformers `CLIPTokenizer` equal to `openai/clip-vit-base-patch32`'s, built without network access.

    It pads with `<|endoftext|>` (49407) and, unlike OpenAI's reference, does not run ftfy / HTML-unescape."""
    vocab, merges = clip_bpe_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=model_max_length)


class UniCLProcessor(ProcessorMixin):
    r"""Image processor ([`UniCLImageProcessor`]) + tokenizer ([`CLIPTokenizer`]). With no arguments it builds both
    from the package's own data, with no network access.

    Texts are truncated to 77 tokens by default, keeping the end-of-text token, which UniCL's text tower pools at.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        # ProcessorMixin reads the sub-processors from this signature, so defaults are built before super().__init__
        image_processor = image_processor if image_processor is not None else UniCLImageProcessor()
        tokenizer = tokenizer if tokenizer is not None else build_clip_tokenizer()
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(self, images=None, text=None, **kwargs):
        if images is None and text is None:
            raise ValueError("UniCLProcessor needs `images`, `text` or both; got neither.")
        if text is not None:
            kwargs.setdefault("truncation", True)
            kwargs.setdefault("padding", True)
        return super().__call__(images=images, text=text, **kwargs)


UniCLImageProcessor.register_for_auto_class("AutoImageProcessor")
UniCLProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["UniCLImageProcessor", "UniCLProcessor", "build_clip_tokenizer", "clip_bpe_vocab_and_merges"]
