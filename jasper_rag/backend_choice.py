"""``JASPER_BACKEND=auto``, the CPU default: the faster of eager torch and fp32 ONNX for this model on this machine.

Which of the two is faster depends on the CPU (ONNX Runtime was 1.07-1.3x eager on an AMD EPYC and 0.9x on
an Intel Xeon, both 2 cores: docs/performance.md, "Backends"), so the choice is timed, once per model and
machine, on texts shipped with the package (short FAQ-style questions and passages made of them), and
recorded in ``<cache_dir>/backend-choice/`` (later loads read it; delete the file to time again).

Only the backends that keep the model's vectors (``KEEPS_IDENTITY``: their vectors are eager's within
``IDENTITY_TOLERANCE``) are candidates, so both qualify by construction and the store never needs a
rebuild; ``onnx-int8`` loses more than ``QUALITY_TOLERANCE`` on some heads (``make eval``, "Backends"), so
it is used only when asked for by name. ``make eval`` times every backend on the eval tasks' texts and
warns when it finds a qualifying backend faster than this choice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from jasper_rag.files import atomic_write

if TYPE_CHECKING:
    from jasper_rag.encoder import JasperEncoder

log = logging.getLogger(__name__)

CANDIDATES = ("torch", "onnx")  # the backends whose vectors are eager's (jasper_rag.backends.KEEPS_IDENTITY)
SPEED_REPEATS = 3
SHORT_TEXTS = 48
PASSAGES = 8
SENTENCES_PER_PASSAGE = 12


def texts_per_second(encoder: JasperEncoder, texts: Sequence[str], batch_size: int) -> float:
    """All-heads throughput of ``encoder``'s current backend on ``texts``: best of ``SPEED_REPEATS`` runs."""
    encoder.encode_heads(list(texts[:batch_size]), batch_size=batch_size)  # warm-up (session, allocator)
    best = float("inf")
    for _ in range(SPEED_REPEATS):
        start = time.perf_counter()
        encoder.encode_heads(list(texts), batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return round(len(texts) / best, 1)


def timing_texts() -> list[str]:
    """Packaged texts: short FAQ-style questions, and passages of about 150-250 tokens joined from them."""
    from jasper_rag.search.faq import packaged_calibration_pairs

    rows = [line.split("\t") for line in packaged_calibration_pairs().read_text().splitlines()]
    sentences = list(dict.fromkeys(text for row in rows for text in row[5:7] if text))
    short = sentences[:SHORT_TEXTS]
    rest = sentences[SHORT_TEXTS:]
    passages = [" ".join(rest[i * SENTENCES_PER_PASSAGE : (i + 1) * SENTENCES_PER_PASSAGE]) for i in range(PASSAGES)]
    return short + [passage for passage in passages if passage]


def machine_key() -> str:
    """What the timing depends on besides the model: the CPU, its cores, the threads and the runtimes' versions."""
    import onnxruntime

    cpu = platform.processor()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), cpu)
    except OSError:
        pass
    parts = [cpu, str(os.cpu_count()), str(torch.get_num_threads()), torch.__version__, onnxruntime.__version__]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def choice_file(encoder: JasperEncoder, cache_dir: Path) -> Path:
    return Path(cache_dir) / "backend-choice" / f"{encoder.weights_fingerprint()}-{machine_key()}.json"


def recorded_choice(path: Path) -> str | None:
    """The backend recorded at ``path``; None when there is none (or the file is unreadable: timed again)."""
    try:
        choice = json.loads(path.read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return choice if choice in CANDIDATES else None


def choose_backend(encoder: JasperEncoder, cache_dir: Path, batch_size: int = 32) -> str:
    """The faster candidate for ``encoder`` here: recorded, or timed now (a few seconds, once) and recorded.

    Leaves ``encoder`` on the backend it had."""
    path = choice_file(encoder, cache_dir)
    recorded = recorded_choice(path)
    if recorded is not None:
        return recorded
    previous = encoder.backend
    texts = timing_texts()
    log.info(
        "%s: timing %s on %d packaged texts to pick the CPU backend ...", encoder.config.source, CANDIDATES, len(texts)
    )
    rates = {}
    for backend in CANDIDATES:
        encoder.use_backend(backend, cache_dir)
        rates[backend] = texts_per_second(encoder, texts, batch_size)
    encoder.use_backend(previous, cache_dir)
    choice = max(rates, key=rates.__getitem__)
    record = {"backend": choice, "texts_per_s": rates, "texts": len(texts), "machine": machine_key()}
    try:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
    except OSError as error:  # a read-only or full cache: use the choice, time again next load
        log.warning("%s: could not record the backend choice in %s (%s)", encoder.config.source, path, error)
    log.info(
        "%s: backend %s (%s texts/s); recorded in %s",
        encoder.config.source,
        choice,
        ", ".join(f"{name} {rate:g}" for name, rate in rates.items()),
        path,
    )
    return choice
