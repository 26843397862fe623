"""`OnnxUniCLModel`: an exported folder run by ONNX Runtime, in the place of a `UniCLModel` for inference.

It offers what the evaluation code calls on a model (`ZeroShotClassifier`, `build_class_embeddings`,
`evaluate_zero_shot`, `extract_image_embeddings`, `ClassEmbeddingCache`): `get_image_features`,
`get_text_features`, `get_logit_scale`, `config`, `eval()` / `train(False)` / `training`, `device`, `parameters()`
and `state_dict()` (the graphs' bytes). One difference in contract: the `pooler_output` it returns is already
L2-normalised (the graphs end with the normalisation); the evaluation code normalises every feature itself, and
normalising twice changes an embedding by float rounding only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .dependencies import require
from .folder import ExportConfig, check_export_folder, graph_file

__all__ = ["IMAGE_CHUNK_SIZE", "OnnxUniCLModel"]

# How the image graph runs a batch. By default one image per run (`IMAGE_CHUNK_SIZE`), and when a batch has at least
# as many runs as there are threads, the runs go concurrently, one thread each (`concurrent_image_runs`), instead of
# one after the other on all threads: ONNX Runtime's many small ops (window partitions, layer norms, the int8 graph's
# activation quantization) leave cores idle between them within one run, not across runs; one image's activations
# stay in the CPU caches. `python scripts/benchmark.py --onnx_runs_only` measures the modes (README, Deployment).
# A batch with fewer runs than threads runs them one after the other on all threads, for latency.
IMAGE_CHUNK_SIZE = 1


def _session(path: Path, threads: int):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # as many as torch uses, so that the backends compare on equal cores
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _output(embeddings: np.ndarray) -> BaseModelOutputWithPooling:
    return BaseModelOutputWithPooling(pooler_output=torch.from_numpy(embeddings))


class OnnxUniCLModel:
    """The two exported graphs of a UniCL model in ONNX Runtime sessions (CPU), with the model's logit scale.

    `OnnxUniCLModel.from_exported(folder, int8=False)`; with `int8=True` the dynamically quantized image graph runs
    (the text tower stays fp32; the README's Deployment section gives the measured agreement with fp32). Inputs and
    outputs are CPU tensors. Images go through the image graph `image_chunk_size` at a time (`IMAGE_CHUNK_SIZE`, one;
    None: the whole batch in one run), concurrently on one thread each when a batch has at least `threads` runs and
    `concurrent_image_runs` is on. The int8 graph quantizes activations per run: with one image per run, an image's
    int8 embedding does not depend on the other images of its batch."""

    device = torch.device("cpu")
    training = False

    def __init__(self, folder: str | Path, export_config: ExportConfig, int8: bool = False, threads: int | None = None,
                 image_chunk_size: int | None = IMAGE_CHUNK_SIZE, concurrent_image_runs: bool = True):
        from ..configuration_unicl import UniCLConfig

        if image_chunk_size is not None and (not isinstance(image_chunk_size, int) or isinstance(image_chunk_size, bool)
                                             or image_chunk_size < 1):
            raise ValueError(f"image_chunk_size must be a positive int (images per run of the image graph) or None "
                             f"(the whole batch), got {image_chunk_size!r}.")
        threads = torch.get_num_threads() if threads is None else threads
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive int (ONNX Runtime's CPU threads) or None (torch's), "
                             f"got {threads!r}.")
        self.image_chunk_size = image_chunk_size
        self.threads = threads
        self.folder = Path(folder)
        self.export_config = export_config
        self.int8 = int8
        self.config = UniCLConfig.from_json_file(str(self.folder / "config.json"))
        self.image_session = _session(self.folder / graph_file("image", int8), threads)
        # The same graph on one thread, for concurrent runs (a second session: ONNX Runtime fixes a session's
        # threads when it is created). It costs memory: +43 MB for Swin-T int8, +105 MB fp32.
        self.single_thread_image_session = (_session(self.folder / graph_file("image", int8), 1)
                                            if concurrent_image_runs and threads > 1 else None)
        self.text_session = _session(self.folder / graph_file("text", int8), threads)
        self._text_inputs = [node.name for node in self.text_session.get_inputs()]
        self._device_marker = torch.empty(0)

    @classmethod
    def from_exported(cls, folder: str | Path, int8: bool = False, threads: int | None = None,
                      image_chunk_size: int | None = IMAGE_CHUNK_SIZE,
                      concurrent_image_runs: bool = True) -> "OnnxUniCLModel":
        """Loads a folder written by `export_onnx`; `ValueError` / `OSError` naming the missing file when it is not
        a complete export (or has no int8 image graph and `int8` is asked). `threads`: ONNX Runtime's intra-op threads
        (default: torch's); `image_chunk_size`: images per run of the image graph (None: the whole batch);
        `concurrent_image_runs`: a batch of at least `threads` runs runs them concurrently, one thread each."""
        export_config = check_export_folder(folder, int8=int8)
        return cls(folder, export_config, int8=int8, threads=threads, image_chunk_size=image_chunk_size,
                   concurrent_image_runs=concurrent_image_runs)

    # ------------------------------------------------------------------------------------ nn.Module's surface
    def eval(self) -> "OnnxUniCLModel":
        return self

    def train(self, mode: bool = True) -> "OnnxUniCLModel":
        if mode:
            raise ValueError("an ONNX Runtime model runs inference only; train the PyTorch UniCLModel instead.")
        return self

    def parameters(self):
        """One empty CPU tensor: the evaluation code reads the device to put inputs on from the first parameter."""
        yield self._device_marker

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The bytes of the two graphs that run (fp32 or int8), as uint8 tensors under `vision_model.onnx` and
        `text_model.onnx`: what identifies this model's weights, so that caches keyed by the text side's weights
        (`ClassEmbeddingCache`) tell fp32, int8 and different exports apart."""
        return {f"{prefix}.onnx": torch.frombuffer(bytearray((self.folder / graph_file(tower, self.int8)).read_bytes()),
                                                   dtype=torch.uint8)
                for prefix, tower in (("vision_model", "image"), ("text_model", "text"))}

    # ------------------------------------------------------------------------------------------- features
    def get_image_features(self, pixel_values: torch.Tensor) -> BaseModelOutputWithPooling:
        """`pooler_output`: the L2-normalised image embeddings (batch, projection_dim)."""
        expected = (self.export_config.num_channels, self.export_config.image_size, self.export_config.image_size)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"pixel_values must have shape (batch, {', '.join(map(str, expected))}) (the exported "
                             f"image size), got {shape}.")
        if len(pixel_values) == 0:  # ONNX Runtime fails on it deep in the graph (a Reshape of 0 elements)
            raise ValueError("pixel_values holds no image (batch size 0).")
        pixels = pixel_values.detach().to("cpu", torch.float32).contiguous().numpy()
        chunk = len(pixels) if self.image_chunk_size is None else self.image_chunk_size
        chunks = [pixels[start : start + chunk] for start in range(0, len(pixels), chunk)]
        if self.single_thread_image_session is not None and len(chunks) >= self.threads:
            run = self.single_thread_image_session.run
            with ThreadPoolExecutor(self.threads, thread_name_prefix="unicl-onnx") as pool:  # run releases the GIL
                runs = list(pool.map(lambda chunk_pixels: run(None, {"pixel_values": chunk_pixels})[0], chunks))
        else:
            runs = [self.image_session.run(None, {"pixel_values": chunk_pixels})[0] for chunk_pixels in chunks]
        return _output(runs[0] if len(runs) == 1 else np.concatenate(runs))

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> BaseModelOutputWithPooling:
        """`pooler_output`: the L2-normalised text embeddings (batch, projection_dim); no mask means no padding."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a 2-D tensor (batch, sequence_length), got {shape}.")
        if input_ids.shape[1] > self.export_config.context_length:
            raise ValueError(f"input_ids has {input_ids.shape[1]} tokens per text; the text tower takes at most "
                             f"{self.export_config.context_length}. Tokenize with truncation=True.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape "
                             f"{tuple(input_ids.shape)}.")
        given = {"input_ids": input_ids, "attention_mask": attention_mask}
        feed = {name: given[name].detach().to("cpu", torch.int64).contiguous().numpy() for name in self._text_inputs}
        return _output(self.text_session.run(None, feed)[0])

    def get_logit_scale(self) -> torch.Tensor:
        """`exp(logit_scale)` after the model's clamp, as exported."""
        return torch.tensor(self.export_config.logit_scale)

    def __repr__(self) -> str:
        return f"OnnxUniCLModel({str(self.folder)!r}, int8={self.int8}, threads={self.threads})"
