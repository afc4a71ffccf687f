"""The student on ONNX Runtime: export (backbone + mean pooling + every head) and optional int8 quantisation.

``OnnxEncoder.export(encoder, folder, int8=...)`` writes ``model.onnx`` (dynamic batch and sequence
axes; one output per head plus ``pooled``) and, with ``int8``, its dynamic int8 quantisation
(``onnxruntime.quantization.quantize_dynamic`` of the transformer's MatMuls: int8 weights,
activations quantised on the fly).
``encoder.at(dim)`` is a ``TextEncoder`` view, so the eval harness scores the variants exactly like
the eager model.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from jasper_rag.embedding import normalize_rows
from jasper_rag.encoder import POOLED, JasperEncoder

TRACE_TEXTS = ("a short text", "a somewhat longer text, so that the traced batch has padding in it")


class _Outputs(torch.nn.Module):
    """The encoder as a function of positional tensors returning a tuple (what the ONNX exporter traces)."""

    def __init__(self, encoder: JasperEncoder, input_names: Sequence[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.encoder(**dict(zip(self.input_names, inputs, strict=True)))
        return tuple(outputs.values())


@contextmanager
def quiet_root_logger(level: int = logging.WARNING) -> Iterator[None]:
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(level, previous))
    try:
        yield
    finally:
        root.setLevel(previous)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class OnnxEncoder:
    """An exported encoder run by ONNX Runtime on the CPU; ``encode`` mirrors ``JasperEncoder.encode``."""

    def __init__(self, path: Path, source: JasperEncoder, variant: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = source.tokenizer
        self.max_length = source.config.max_length
        self.hidden_size = source.hidden_size
        self.head_dims = {name: head.out_features for name, head in source.heads.items()}
        self.variant = variant
        self.source_name = source.config.source
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.identity = f"{variant}-{file_digest(self.path)}"

    @classmethod
    def export(cls, encoder: JasperEncoder, folder: str | Path, int8: bool = False) -> OnnxEncoder:
        """Export ``encoder`` (on the CPU, eval mode) to ``folder/model.onnx`` (+ ``model.int8.onnx`` with ``int8``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        fp32 = folder / "model.onnx"
        if not fp32.is_file():
            encoder = encoder.to("cpu").eval()
            batch = encoder.tokenize(list(TRACE_TEXTS))
            names = list(batch)
            outputs = [POOLED, *encoder.heads]
            axes = {name: {0: "batch", 1: "tokens"} for name in names} | {name: {0: "batch"} for name in outputs}
            tmp = folder / ".model.onnx.tmp"
            with warnings.catch_warnings():  # tracing notes about constants that are constant indeed
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.onnx.export(
                    _Outputs(encoder, names).eval(),
                    tuple(batch[name] for name in names),
                    str(tmp),
                    input_names=names,
                    output_names=outputs,
                    dynamic_axes=axes,
                    opset_version=17,
                    dynamo=False,
                )
            encoder.eval()  # the exporter restores the wrapper's (training) mode on every submodule
            tmp.replace(fp32)
        if not int8:
            return cls(fp32, encoder, "onnx")
        quantised = folder / "model.int8-matmul.onnx"
        if not quantised.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = folder / ".model.int8.onnx.tmp"
            with quiet_root_logger():  # the quantiser logs every tensor it skips at INFO on the root logger
                # The transformer's MatMuls only, one scale per tensor: on models/jasper-quick this kept STSB
                # Spearman within 0.03 of eager, while also quantising the embedding Gather and the head Gemms
                # (ONNX Runtime's default) lost 0.26 (0.41 with per-channel scales).
                quantize_dynamic(
                    str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=False, op_types_to_quantize=["MatMul"]
                )
            tmp.replace(quantised)
        return cls(quantised, encoder, "onnx-int8")

    def output_for_dim(self, dim: int | None) -> str:
        if dim is None or (dim == self.hidden_size and dim not in self.head_dims.values()):
            return POOLED
        for name, size in self.head_dims.items():
            if size == dim:
                return name
        raise ValueError(f"no head of dimension {dim}; available: {[self.hidden_size, *self.head_dims.values()]}")

    def encode(
        self,
        texts: Sequence[str],
        dim: int | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Vectors of ``texts`` from one output (``dim`` as in ``JasperEncoder.encode``), longest-first batches."""
        output = self.output_for_dim(dim)
        width = self.hidden_size if output == POOLED else self.head_dims[output]
        vectors = np.zeros((len(texts), width), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        for start in tqdm(range(0, len(texts), batch_size), desc="encoding", disable=not show_progress):
            rows = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            feeds = {name: batch[name].astype(np.int64) for name in self.input_names}
            vectors[rows] = self.session.run([output], feeds)[0]
        return normalize_rows(vectors) if normalize else vectors

    def at(self, dim: int | None) -> OnnxHeadEncoder:
        return OnnxHeadEncoder(self, dim)


class OnnxHeadEncoder:
    """A ``TextEncoder`` view of one output of an ``OnnxEncoder``."""

    def __init__(self, encoder: OnnxEncoder, dim: int | None) -> None:
        self.encoder = encoder
        self.output = encoder.output_for_dim(dim)
        self.dim = encoder.hidden_size if self.output == POOLED else encoder.head_dims[self.output]
        self.name = f"{encoder.source_name}@{self.output}[{encoder.variant}]"

    def fingerprint(self) -> str:
        return f"{self.encoder.identity}-{self.output}"

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        dim = None if self.output == POOLED else self.dim
        return self.encoder.encode(texts, dim=dim, batch_size=batch_size, show_progress=show_progress)
