"""The prepared GPU check: one short run on a CUDA machine, with the CPU figures beside.

Not yet run on GPU hardware. On a machine with a GPU (``pip install -r requirements-gpu.txt``:
CUDA torch and ``faiss-gpu-cu12``), run::

    python -m jasper_rag.bench.gpu_check --out reports/bench_gpu.json

It measures, on CUDA and on the CPU: (1) training examples/s of stage 2 (FC1 + the last 3 layers,
the recipe's batch and max length; bf16 autocast on CUDA) with the training code's own loop;
(2) FAISS build time and batched query time of a Flat and an IVF-PQ index over synthetic unit
vectors (``--vectors`` x ``--dim``), GPU index against CPU index, with recall@10 of each against
exact search. A few minutes in all. Without CUDA it still runs the CPU half and says so.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import faiss
import numpy as np
import torch
import typer

from jasper_rag.bench.machine import Machine, peak_matmul_gflops
from jasper_rag.bench.search import recall_at_k
from jasper_rag.bench.training import measure_stage
from jasper_rag.embedding import normalize_rows
from jasper_rag.encoder import load_encoder

log = logging.getLogger(__name__)


def training_speed(model: str, device: str, batch_size: int, steps: int, max_length: int) -> dict[str, object]:
    """Stage-2 examples/s on ``device`` (random unit targets: speed does not depend on their values)."""
    encoder = load_encoder(model, device=device)
    texts = [
        f"text number {i} about protein folding, search indexes and cities" for i in range(batch_size * (steps + 1))
    ]
    targets = torch.from_numpy(normalize_rows(np.random.default_rng(0).standard_normal((len(texts), 1152))))
    speed = measure_stage(encoder, 2, texts, targets, [], batch_size, steps, max_length, device=device)
    return {"device": device, **speed.to_json()}


def faiss_speed(vectors: np.ndarray, queries: np.ndarray, factory: str, gpu: bool) -> dict[str, object]:
    """Build (train + add) and batched search time of one inner-product index, CPU or GPU."""
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if gpu:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    start = time.perf_counter()
    index.train(vectors)
    index.add(vectors)
    build = time.perf_counter() - start
    if "IVF" in factory:
        space = faiss.GpuParameterSpace() if gpu else faiss.ParameterSpace()
        space.set_index_parameter(index, "nprobe", 16)
    index.search(queries[:8], 10)  # warm-up
    start = time.perf_counter()
    _, found = index.search(queries, 10)
    search = time.perf_counter() - start
    timing = {"factory": factory, "gpu": gpu, "build_s": build, "batch_ms_per_query": 1000 * search / len(queries)}
    return {**timing, "found": found}


def run_check(
    model: str, vectors: int, dim: int, queries: int, steps: int, max_length: int, ivf: str = "IVF1024,PQ32"
) -> dict[str, object]:
    """Training and FAISS figures on CUDA (when present) and on the CPU."""
    cuda = torch.cuda.is_available()
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    result: dict[str, object] = {
        "machine": asdict(Machine.describe(peak_matmul_gflops())),
        "cuda": torch.cuda.get_device_name(0) if cuda else None,
        "faiss_gpus": gpus,
    }
    devices = ["cuda", "cpu"] if cuda else ["cpu"]
    result["training"] = [training_speed(model, device, 32, steps, max_length) for device in devices]
    rng = np.random.default_rng(0)
    corpus = normalize_rows(rng.standard_normal((vectors, dim)))
    probe = normalize_rows(rng.standard_normal((queries, dim)))
    truth = faiss_speed(corpus, probe, "Flat", gpu=False)  # exact: the ground truth
    truth_ids = truth.pop("found")
    rows = [{**truth, "recall_at_10": 1.0}]
    for factory, gpu in [("Flat", True), (ivf, True), (ivf, False)]:
        if gpu and not gpus:
            continue
        row = faiss_speed(corpus, probe, factory, gpu)
        found = row.pop("found")
        rows.append({**row, "recall_at_10": recall_at_k(found, truth_ids)})
    result["faiss"] = rows
    if not cuda:
        result["note"] = "no CUDA device: CPU half only"
    return result


def main(
    model: Annotated[
        str, typer.Option(help="Model to train a stage-2 step of (packaged name or folder).")
    ] = "minilm-l6",
    vectors: Annotated[int, typer.Option(help="Synthetic corpus size for FAISS.")] = 1_000_000,
    dim: Annotated[int, typer.Option(help="Vector size for FAISS.")] = 256,
    queries: Annotated[int, typer.Option(help="Batched queries.")] = 1000,
    steps: Annotated[int, typer.Option(help="Timed training steps per device.")] = 5,
    max_length: Annotated[int, typer.Option(help="Training tokens per text.")] = 128,
    ivf: Annotated[str, typer.Option(help="The approximate FAISS factory compared.")] = "IVF1024,PQ32",
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path("reports/bench_gpu.json"),
) -> None:
    """GPU training step + FAISS GPU index build/search, with the CPU figures beside."""
    logging.basicConfig(level=logging.INFO)
    result = run_check(model, vectors, dim, queries, steps, max_length, ivf)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    tmp.replace(out)
    typer.echo(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    typer.run(main)
