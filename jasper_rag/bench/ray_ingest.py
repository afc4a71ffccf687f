"""``make bench-ray`` (``python -m jasper_rag.bench.ray_ingest``): ingestion by the local engine and by Ray.

The same files, the first ``docs`` SciFact corpus documents as ``.txt`` files (``bench.ingestion``'s
``write_documents``), are ingested end to end into a fresh scratch store (SQLite + FAISS) by the local
engine, then by ``--engine ray`` with each worker count (default 1 and 2), with the student (``JASPER_MODEL``,
or ``--model``) on its settings' backend. Each run gives its wall seconds (median of ``repeats``), chunks/s
and its ratio to the local engine's chunks/s; every run must store the same chunks as the local one.

The local Ray is started once, before the Ray runs, and its start-up (``ray.init``) is reported apart. Each
Ray run includes what every ``ingest --engine ray`` pays: its workers' start (Python, torch, the encoder,
the parse worker) and Ray Data's scheduling. The local engine runs torch on every core; each Ray worker
reserves one CPU, on which its torch runs one thread. Reports: ``ray-ingest.json`` and ``ray-ingest.md``
(rendered from the JSON), both written atomically.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from jasper_rag.bench.ingestion import ingest_once, write_documents
from jasper_rag.bench.machine import host_facts
from jasper_rag.bench.report import _table, render_markdown, write_json
from jasper_rag.bench.stats import Spread
from jasper_rag.config import Settings, get_settings
from jasper_rag.encoder import load_encoder
from jasper_rag.eval.data import EvalDataError
from jasper_rag.ingest.ray_engine import (
    RayIngestError,
    RayUnavailableError,
    import_ray,
    ingest_paths_ray,
    model_reference,
    start_ray,
)
from jasper_rag.store import EntryKind, Store, embed_heads
from jasper_rag.weights import WeightsNotInstalledError

DOCS = 500
WORKERS = (1, 2)
REPEATS = 3
VERSIONED = ("ray", "torch", "onnxruntime", "pyarrow")


def ray_once(encoder, model: str, workers: int, folder: Path, scratch: Path, settings: Settings) -> tuple[float, int]:
    """Wall seconds of one ``--engine ray`` ingest of ``folder`` into a new store under ``scratch``, and the
    chunks it stored."""
    scratch.mkdir(parents=True)
    store = Store(f"sqlite:///{scratch / 'meta.db'}", scratch / "indexes")
    try:
        started = time.perf_counter()
        ingest_paths_ray([folder], encoder, model, store, settings, workers, progress=False)
        wall = time.perf_counter() - started
        return wall, len(store.embedded_ids(EntryKind.CHUNK))
    finally:
        store.close()


def timing(walls: Sequence[float], chunks: int) -> dict[str, object]:
    """Median wall seconds of the runs, their min and max, and chunks/s at the median."""
    wall = Spread.of(walls)
    return {"wall_s": wall.median, "wall_spread_s": [wall.min, wall.max], "chunks_per_s": chunks / wall.median}


def measure(
    texts: Sequence[str], model: str, settings: Settings, workers: Sequence[int], repeats: int, scratch: Path
) -> dict:
    """``local``: the local engine's timing; ``ray``: one row per worker count (its timing and ratio to local);
    ``ray_start_s``: the local Ray's start-up."""
    encoder = load_encoder(model)
    embed_heads(encoder, ["warm up: opens the backend's session"], settings.batch_size)
    folder = scratch / "docs"
    write_documents(texts, folder)
    local_walls, chunks = [], 0
    for number in range(repeats):
        measured, stored = ingest_once(encoder, folder, scratch / f"local-{number}", settings)
        local_walls.append(measured.wall)
        chunks = len(stored)
    if not chunks:
        raise ValueError("ingestion stored no chunks: nothing to compare")
    local = timing(local_walls, chunks)
    rows = []
    ray = import_ray()
    started = time.perf_counter()
    start_ray(max(workers))
    ray_start = time.perf_counter() - started
    try:
        for count in workers:
            walls = []
            for number in range(repeats):
                wall, stored = ray_once(
                    encoder, model_reference(model), count, folder, scratch / f"ray-{count}-{number}", settings
                )
                if stored != chunks:
                    raise ValueError(f"Ray with {count} workers stored {stored} chunks, the local engine {chunks}")
                walls.append(wall)
            row = {"workers": count, **timing(walls, chunks)}
            rows.append({**row, "ratio_to_local": row["chunks_per_s"] / local["chunks_per_s"]})
    finally:
        ray.shutdown()
    return {"backend": encoder.backend, "chunks": chunks, "ray_start_s": ray_start, "local": local, "ray": rows}


def run(docs: int, workers: Sequence[int], repeats: int, model: str | None, output_dir: Path) -> list[Path]:
    """Measure and write ``ray-ingest.json`` and ``ray-ingest.md`` into ``output_dir``."""
    from jasper_rag.eval.tasks import RetrievalTask, load_task

    settings = get_settings()
    model = model or settings.model
    scifact = load_task("scifact", settings.eval_dir)
    assert isinstance(scifact, RetrievalTask)
    texts = [scifact.data.corpus[i] for i in scifact.doc_ids[:docs]]
    began, clock, load_before = datetime.datetime.now(datetime.timezone.utc), time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="jasper-bench-ray-") as scratch:
        figures = measure(texts, model, settings, workers, repeats, Path(scratch))
    payload = {
        "generated_at": began.isoformat(timespec="seconds"),
        "machine": host_facts(VERSIONED, load_before),
        "model": model,
        "documents": len(texts),
        "repeats": repeats,
        **figures,
        "seconds": time.perf_counter() - clock,
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }
    return render_markdown(write_json(payload, output_dir / "ray-ingest.json"), full_markdown)


def full_markdown(payload: dict) -> str:
    """``ray-ingest.md`` from the payload."""
    machine = payload["machine"]
    versions = ", ".join(f"{name} {value}" for name, value in machine["versions"].items())
    runs = [("local", "", {**payload["local"], "ratio_to_local": 1.0})]
    runs += [("ray", str(row["workers"]), row) for row in payload["ray"]]
    rows = [
        [
            engine,
            workers,
            f"{run['wall_s']:.1f} ({run['wall_spread_s'][0]:.1f}–{run['wall_spread_s'][1]:.1f})",
            f"{run['chunks_per_s']:.1f}",
            f"{run['ratio_to_local']:.2f}x",
        ]
        for engine, workers, run in runs
    ]
    header = ["engine", "workers", "wall s (min–max)", "chunks/s", "vs local"]
    return "\n".join(
        [
            "# Ingestion: local engine against Ray",
            "",
            f"Generated {payload['generated_at']} by `make bench-ray` (`python -m jasper_rag.bench.ray_ingest`) in "
            f"{payload['seconds']:.0f} s. Machine: {machine['cpu']}, {machine['cores']} cores, "
            f"{machine['memory_gib']} GiB; load average {machine['load_average'][0]:.1f} at start, "
            f"{payload['load_average_after'][0]:.1f} at the end. Versions: {versions}.",
            "",
            f"{payload['documents']} SciFact documents as .txt files, {payload['chunks']:,} chunks, ingested end to "
            f"end into a fresh store by `jasper-rag ingest` with model `{payload['model']}` (backend "
            f"{payload['backend']}); median of {payload['repeats']} runs. Every Ray run stored the local run's chunks. "
            "The local engine runs torch on every core; each Ray worker reserves one CPU and runs torch on one "
            "thread. A Ray run includes its workers' start (Python, torch, the encoder, the parse worker).",
            "",
            _table(header, rows, text_columns=2),
            "",
            f"Starting the local Ray (`ray.init`, once before the Ray runs): {payload['ray_start_s']:.1f} s.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m jasper_rag.bench.ray_ingest [--docs N] [--workers 1,2] [--repeats R] [--model M] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=DOCS, help=f"SciFact documents ingested (default {DOCS})")
    parser.add_argument("--workers", default=",".join(map(str, WORKERS)), help="comma list of Ray worker counts")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"timed runs per engine (default {REPEATS})")
    parser.add_argument("--model", default=None, help="model folder or packaged name (default JASPER_MODEL)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: the reports folder)")
    args = parser.parse_args(argv)
    try:
        workers = [int(count) for count in args.workers.split(",") if count.strip()]
    except ValueError:
        parser.error(f"--workers takes a comma list of whole numbers, not '{args.workers}'")
    if min([args.docs, args.repeats, *workers], default=0) < 1 or not workers:
        parser.error("--docs, --repeats and every --workers count must be at least 1")
    try:
        files = run(args.docs, workers, args.repeats, args.model, args.out or get_settings().reports_dir)
    except (EvalDataError, WeightsNotInstalledError, RayUnavailableError, RayIngestError, ValueError, OSError) as err:
        sys.exit(f"bench-ray failed: {err}")
    for path in files:
        print(path)


if __name__ == "__main__":
    main()
