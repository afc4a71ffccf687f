"""Inference backends of the text encoder: eager torch, or ONNX Runtime (fp32 or dynamic int8) on the CPU.

``JASPER_BACKEND`` picks one for everything loaded by ``load_encoder``. For ``onnx`` / ``onnx-int8`` the
encoder (backbone + mean pooling + every head, one output each plus ``pooled``) is exported on first use
to ``<cache_dir>/onnx/<weights fingerprint>/`` (``CACHE_FILES``) (temp file + rename under a file lock: a
second process waits, then reuses the file) and its text forward pass runs there; images stay on torch.

Store identity: a backend whose vectors stay within ``IDENTITY_TOLERANCE`` of eager (``KEEPS_IDENTITY``,
decided by ``python -m jasper_rag.backends``, docs/performance.md) keeps the model's fingerprint, so a
store built on one serves the other; any other backend adds its name to the fingerprint (a rebuild).

``OnnxEncoder`` is the bench's stand-alone view of an export (``OnnxEncoder.export(encoder, folder,
int8=...)``; ``encoder.at(dim)`` is a ``TextEncoder``), run by the same batching code.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from jasper_rag.batching import sorted_batches, token_lengths
from jasper_rag.config import BACKENDS
from jasper_rag.embedding import normalize_rows
from jasper_rag.encoder import POOLED

if TYPE_CHECKING:
    from jasper_rag.encoder import JasperEncoder

log = logging.getLogger(__name__)

TORCH, ONNX, ONNX_INT8 = BACKENDS
# Largest |cos(backend vector, eager vector) - 1| over every head that still counts as the same vectors.
IDENTITY_TOLERANCE = 1e-4
# Points (x100 scores) a backend may lose to eager on any head and eval task and still qualify as the default.
QUALITY_TOLERANCE = 0.3
# Backends measured within IDENTITY_TOLERANCE of eager on real text (docs/performance.md, "Backends").
KEEPS_IDENTITY = frozenset({TORCH, ONNX})
CACHE_FILES = {ONNX: "fp32.onnx", ONNX_INT8: "int8-channel-scales.onnx"}
TRACE_TEXTS = ("a short text", "a somewhat longer text, so that the traced batch has padding in it")


def require_onnxruntime() -> None:
    """Raise a clear error when the ONNX backends cannot run (no onnx or onnxruntime package)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"JASPER_BACKEND=onnx / onnx-int8 needs the onnx and onnxruntime packages ({error}): "
            "pip install 'jasper-rag[bench]', or set JASPER_BACKEND=torch"
        ) from error


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


@contextmanager
def file_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder/.lock`` (another process exporting there is waited for)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _write_once(path: Path, write: Callable[[Path], None], what: str) -> Path:
    """``write(tmp)`` then rename to ``path``, unless ``path`` exists; logs how long it took."""
    if path.is_file():
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    log.info("exporting %s to %s ...", what, path)
    start = time.perf_counter()
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s in %.1f s", what, time.perf_counter() - start)
    return path


def export_fp32(encoder: JasperEncoder, path: Path) -> Path:
    """``encoder``'s text side as an fp32 ONNX graph at ``path`` (kept if it exists)."""

    def write(tmp: Path) -> None:
        device, was_training = encoder.device, encoder.training
        module = encoder.to("cpu").eval()
        batch = module.tokenize(list(TRACE_TEXTS))
        names = list(batch)
        outputs = [POOLED, *module.heads]
        axes = {name: {0: "batch", 1: "tokens"} for name in names} | {name: {0: "batch"} for name in outputs}
        with warnings.catch_warnings():  # tracing notes about constants that are constant indeed
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                _Outputs(module, names).eval(),
                tuple(batch[name] for name in names),
                str(tmp),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        encoder.to(device).train(was_training)  # the exporter restores the wrapper's mode on every submodule

    return _write_once(path, write, f"{encoder.config.source} (fp32 ONNX)")


def quantise_int8(fp32: Path, path: Path) -> Path:
    """Dynamic int8 quantisation of the transformer's MatMuls of ``fp32``, one weight scale per output channel,
    at ``path`` (kept if it exists)."""

    def write(tmp: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with quiet_root_logger(logging.ERROR):  # the quantiser logs every tensor it skips on the root logger
            # Candidates compared on models/jasper-quick in docs/performance.md ("Backends"): per-channel scales
            # cut the loss of one scale per tensor by about two thirds at the same speed; also quantising the
            # embedding Gather and the head Gemms, or keeping the FFN output projections in fp32, lost more.
            quantize_dynamic(
                str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
            )

    return _write_once(path, write, f"{fp32.name} (int8 ONNX)")


def cached_onnx(encoder: JasperEncoder, backend: str, cache_dir: Path) -> Path:
    """The ONNX file of ``backend`` for ``encoder``'s weights under ``<cache_dir>/onnx/<fingerprint>/``,
    exported on first use (one process at a time; the others wait and reuse it)."""
    folder = Path(cache_dir) / "onnx" / encoder.weights_fingerprint()
    with file_lock(folder):
        fp32 = export_fp32(encoder, folder / CACHE_FILES[ONNX])
        return fp32 if backend == ONNX else quantise_int8(fp32, folder / CACHE_FILES[ONNX_INT8])


class OnnxSession:
    """An ONNX Runtime CPU session of an exported encoder; ``encode_heads`` mirrors ``JasperEncoder``'s."""

    def __init__(self, path: Path, tokenizer, max_length: int, threads: int | None = None) -> None:
        require_onnxruntime()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.widths = {item.name: int(item.shape[1]) for item in self.session.get_outputs()}

    def encode_heads(
        self,
        texts: Sequence[str],
        names: Sequence[str],
        batch_size: int = 32,
        normalize: bool = True,
        show_progress: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Output name -> float32 vectors of ``texts`` (input order), from length-sorted batches
        (``jasper_rag.batching``, the eager encoder's rule)."""
        arrays = {name: np.zeros((len(texts), self.widths[name]), dtype=np.float32) for name in names}
        batches = list(sorted_batches(token_lengths(self.tokenizer, texts, self.max_length), batch_size))
        for rows in tqdm(batches, desc="encoding", unit="batch", disable=not show_progress):
            batch = self.tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
            )
            feeds = {name: batch[name].astype(np.int64) for name in self.input_names}
            for name, values in zip(names, self.session.run(list(names), feeds), strict=True):
                arrays[name][rows] = values
            if on_batch is not None:
                on_batch(len(rows))
        return {name: normalize_rows(vectors) if normalize else vectors for name, vectors in arrays.items()}


def agreement(encoder: JasperEncoder, texts: Sequence[str], backend: str, cache_dir: Path) -> dict[str, tuple]:
    """Head -> (max, mean) of ``|1 - cos|`` between ``backend``'s and eager torch's vector of each text."""
    eager = encoder.encode_heads(texts)
    path = cached_onnx(encoder, backend, cache_dir)
    other = OnnxSession(path, encoder.tokenizer, encoder.config.max_length).encode_heads(texts, list(eager))
    gaps = {name: np.abs(1.0 - np.sum(eager[name] * other[name], axis=1)) for name in eager}
    return {name: (float(gap.max()), float(gap.mean())) for name, gap in gaps.items()}


class OnnxEncoder:
    """An exported encoder run by ONNX Runtime on the CPU; ``encode`` mirrors ``JasperEncoder.encode``."""

    def __init__(self, path: Path, source: JasperEncoder, variant: str, threads: int | None = None) -> None:
        self.runner = OnnxSession(path, source.tokenizer, source.config.max_length, threads)
        self.path = self.runner.path
        self.hidden_size = source.hidden_size
        self.head_dims = {name: head.out_features for name, head in source.heads.items()}
        self.variant = variant
        self.source_name = source.config.source
        self.identity = f"{variant}-{file_digest(self.path)}"

    @classmethod
    def export(cls, encoder: JasperEncoder, folder: str | Path, int8: bool = False) -> OnnxEncoder:
        """Export ``encoder`` to ``folder/model.onnx`` (+ ``model.int8-channel-scales.onnx`` with ``int8``)."""
        folder = Path(folder)
        with file_lock(folder):
            fp32 = export_fp32(encoder, folder / "model.onnx")
            if not int8:
                return cls(fp32, encoder, ONNX)
            return cls(quantise_int8(fp32, folder / "model.int8-channel-scales.onnx"), encoder, ONNX_INT8)

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
        return self.runner.encode_heads(texts, [output], batch_size, normalize, show_progress)[output]

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


def main() -> None:
    """Print each ONNX backend's agreement with eager torch and its speed on real text:
    ``python -m jasper_rag.backends MODEL [N]`` (N sentences of the packaged FAQ calibration set)."""
    import json
    import sys

    from jasper_rag.config import get_settings
    from jasper_rag.encoder import load_encoder
    from jasper_rag.search.faq import packaged_calibration_pairs

    model, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400
    rows = [line.split("\t") for line in packaged_calibration_pairs().read_text().splitlines()]
    texts = list(dict.fromkeys(text for row in rows for text in row[5:7]))[:count]
    encoder = load_encoder(model, device="cpu")
    encoder.use_backend(TORCH)
    report: dict[str, object] = {"model": model, "texts": len(texts), "tolerance": IDENTITY_TOLERANCE}
    for backend in BACKENDS:
        if backend != TORCH:
            report[backend] = agreement(encoder, texts, backend, get_settings().cache_dir)
        encoder.use_backend(backend)
        encoder.encode_heads(texts[:32])  # warm-up (and export)
        start = time.perf_counter()
        encoder.encode_heads(texts)
        report[f"{backend} texts/s"] = round(len(texts) / (time.perf_counter() - start), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
