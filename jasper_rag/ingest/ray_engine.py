"""``jasper-rag ingest --engine ray``: files prepared and embedded on Ray Data, committed here as usual.

The driver (the process running ``ingest``) does what the local engine does around the files, with the
same code (``pipeline.Ingestor``): discovery, unchanged-file detection, removals, the model binding, and
the commits (every ``ingest_commit_chunks`` entries, the writer lock held only to write, so the same crash
safety: a killed run loses at most its uncommitted batch, which the next run redoes). Only the files'
preparation and embedding move to Ray: one Ray Data ``map_batches`` stage whose callable class
(``FileBatchWorker``) runs as an actor pool of ``workers`` actors, each reserving one CPU (its torch then
runs on one thread). Each actor loads the encoder once, then does for each batch of files what the local
engine does for them: ``Ingestor._prepare`` (read under the size limit and the symlink checks, hash, parse,
chunk; a per-file error becomes a failed record with its reason) and ``Ingestor._embed`` (every head in
one call, sorted by length across the batch's files). The records come back in file order.

Parsing stays in the bounded parse worker (``jasper_rag.ingest.worker``), one per actor for the actor's
life: its limits (CPU and address-space rlimits, a wall clock) cannot be put on the actor itself without
bounding the encoder and Ray's own threads too, and a parser crashing the actor would make Ray restart it
(reloading the encoder) and retry the batch. In the child process a hostile file costs the same limits,
and fails with the same reason, as in a local run, and the actor carries on.

Unchanged files are found by the driver (read and hashed, as the local engine does), so a run with
nothing new starts no Ray work. For the others, ``RAY_ADDRESS`` (Ray's own variable) connects to a running
cluster, whose nodes need jasper_rag, the model and the files at the same paths (the ``JASPER_*`` variables
are passed on; the workers' working folder is the cluster's, not the driver's, so paths in them should be
absolute); otherwise a local Ray with one CPU per worker is started (no dashboard, quiet logs) and shut
down once they are prepared. A Ray already initialised in the process is used as it is.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from jasper_rag.config import Settings, get_settings
from jasper_rag.encoder import load_encoder
from jasper_rag.ingest import worker
from jasper_rag.ingest.loaders import LoadError
from jasper_rag.ingest.pipeline import Ingestor, file_hash, read_file
from jasper_rag.ingest.summary import IngestSummary
from jasper_rag.store import DocumentRecord, DocumentView, Store
from jasper_rag.store.heads import ModelIdentity

RAY_EXTRA = "pip install 'jasper-rag[ray]'"
MAX_FILES_PER_BATCH = 64  # files per call of a worker: their texts are embedded together
BATCHES_PER_WORKER = 4  # smaller batches when there are few files, so that every worker gets some
CONNECT_TIMEOUT_S = 10.0  # a RAY_ADDRESS that does not answer: ray.init itself would wait minutes


class RayUnavailableError(RuntimeError):
    """Ray or Ray Data cannot be imported (the ``ray`` extra is not installed)."""


class RayIngestError(RuntimeError):
    """The Ray workers failed (a node could not load the model, the cluster went away, ...)."""


def import_ray():
    """The ``ray`` module with Ray Data, or ``RayUnavailableError`` saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise RayUnavailableError(f"--engine ray needs Ray Data ({err}): {RAY_EXTRA}") from None
    return ray


def start_ray(workers: int) -> bool:
    """Connect to ``RAY_ADDRESS``, or start a local Ray with ``workers`` CPUs; False when Ray was already up
    in this process (then left as it is)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)  # before init: its start-up notices too
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # else one line per actor about its restart policy
    env = {name: value for name, value in os.environ.items() if name.startswith("JASPER_")}
    options: dict[str, object] = {"log_to_driver": False, "configure_logging": False}
    if env:
        options["runtime_env"] = {"env_vars": env}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, **options)
    except Exception as err:  # an unreachable address, a local start that fails: one line, not Ray's traceback
        where = f"connect to RAY_ADDRESS={address}" if address else "start a local Ray"
        cause = f" ({type(err.__cause__).__name__}: {last_line(err.__cause__)})" if err.__cause__ else ""
        raise RayIngestError(f"cannot {where}: {type(err).__name__}: {last_line(err)}{cause}") from None
    return True


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in one line, within ``timeout`` seconds, when ``RAY_ADDRESS`` is malformed or nothing listens
    there (``auto`` and ``local`` are Ray's own words and are left to it)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise RayIngestError(f"RAY_ADDRESS={address}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise RayIngestError(f"cannot reach RAY_ADDRESS={address} within {timeout:g} s: {err}") from None


class FileBatchWorker(Ingestor):
    """One actor of the pool: the encoder, loaded once, and the local engine's preparation and embedding,
    run on batches of files. It has no store: the driver commits what it returns."""

    def __init__(self, model: str, settings: Settings, identity: ModelIdentity) -> None:
        super().__init__(None, load_encoder(model), settings, progress=False)  # type: ignore[arg-type]
        if self.identity != identity:
            raise RuntimeError(
                f"the model '{model}' on this Ray node is not the driver's "
                f"({self.identity.fingerprint} != {identity.fingerprint}): give every node the same model"
            )
        self.parser = worker.acquire(self.parse_limits)  # this actor's bounded parse worker, for its life

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Columns ``path``, ``root`` ("" for a path named directly) and ``done`` (the hash under which the
        file needs no work, or "") -> ``path`` and ``record`` (the file's embedded record, None if unchanged)."""
        paths = [Path(path) for path in batch["path"]]
        self.roots = {path: Path(root) for path, root in zip(paths, batch["root"], strict=True) if root}
        records = [self._prepare(path, done or None) for path, done in zip(paths, batch["done"], strict=True)]
        self.pending = [record for record in records if record is not None]
        self._embed()
        self.pending, self.embedded = [], 0
        column = np.empty(len(records), dtype=object)
        column[:] = records
        return {"path": batch["path"], "record": column}


class RayIngestor(Ingestor):
    """The local engine's run, with its files prepared and embedded by a pool of ``FileBatchWorker`` actors
    that load ``model``, the model of ``encoder``: its identity binds the store and is checked in each actor."""

    def __init__(
        self, store: Store, encoder, model: str, settings: Settings, workers: int = 1, progress: bool = True
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        super().__init__(store, encoder, settings, progress)
        self.model = model
        self.workers = workers

    @contextmanager
    def _prepared(
        self, files: list[Path], known: dict[str, DocumentView]
    ) -> Iterator[Iterator[tuple[Path, DocumentRecord | None]]]:
        """Each file with its new record (None: unchanged), in order. Unchanged files are found here (read
        and hashed, as the local engine does), so a run with nothing new starts no Ray work; the others go
        to the actors, Ray being started for them (see ``start_ray``) and stopped after them."""
        done = {path: self._done_hash(known.get(str(path))) for path in files}
        unchanged = {path for path in files if self._unchanged(path, done[path])}
        todo = [path for path in files if path not in unchanged]
        if not todo:
            yield ((path, None) for path in files)
            return
        ray = import_ray()
        started = start_ray(self.workers)
        try:
            rows = iter(self._dataset(ray, todo, done).iter_rows())
            prepared = ((Path(row["path"]), row["record"]) for row in rows)
            try:
                yield ((path, None) if path in unchanged else next(prepared) for path in files)
            except ray.exceptions.RayError as err:
                raise RayIngestError(f"the Ray workers failed: {last_line(err)}") from None
            finally:
                rows.close()  # an early end (an error, Ctrl-C) stops the execution
        finally:
            if started:
                ray.shutdown()

    def _unchanged(self, path: Path, done: str | None) -> bool:
        """Whether the file still has the content its document needs no work under."""
        if done is None:
            return False
        try:
            return file_hash(read_file(path, self.limit_bytes, self.roots.get(path))) == done
        except LoadError:
            return False  # its actor reads it again and records why it fails

    def _dataset(self, ray, files: list[Path], done: dict[Path, str | None]):
        """The Ray Data dataset of the files' records, in file order, from an actor pool of ``workers``."""
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # committed in file order, as by the local engine
        context.enable_progress_bars = False  # the files bar counts them
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        items = [{"path": str(path), "root": str(self.roots.get(path, "")), "done": done[path] or ""} for path in files]
        per_batch = max(1, min(MAX_FILES_PER_BATCH, math.ceil(len(files) / (self.workers * BATCHES_PER_WORKER))))
        batches = math.ceil(len(files) / per_batch)
        return ray.data.from_items(items, override_num_blocks=batches).map_batches(
            FileBatchWorker,
            fn_constructor_kwargs={"model": self.model, "settings": self.settings, "identity": self.identity},
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, batches)),  # no actor without a batch
            num_cpus=1,
            batch_size=per_batch,
            batch_format="numpy",
        )

    def _embed(self) -> None:
        """Nothing left to embed: the records come embedded from the actors."""
        self.embed_bar.update(self.waiting)
        self.embedded, self.waiting = len(self.pending), 0


def last_line(error: BaseException) -> str:
    """The last line of an error's text: a Ray error ends with the worker's own exception."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def model_reference(model: str) -> str:
    """``model`` as the actors should load it: an existing folder made absolute (their working folder is not
    ours), a packaged name as it is."""
    return str(Path(model).resolve()) if Path(model).is_dir() else model


def ingest_paths_ray(
    paths: Sequence[str | Path],
    encoder,
    model: str,
    store: Store,
    settings: Settings | None = None,
    workers: int = 1,
    rebuild: bool = False,
    progress: bool = True,
) -> IngestSummary:
    """``ingest_paths`` with the files prepared and embedded on Ray by ``workers`` actors, each loading
    ``model`` (which ``encoder`` was loaded from); see the module docstring."""
    ingestor = RayIngestor(store, encoder, model_reference(model), settings or get_settings(), workers, progress)
    return ingestor.run(paths, rebuild=rebuild)
