"""Concurrency: searches from several threads and processes while ``python -m ingest`` commits.

No search may fail and no read may be torn (see ``tests/search_worker.py``): readers see the old or
the new generation of an index, never a partial one (SQLite in WAL mode; new files per generation).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time

from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.store import EntryKind
from tests.conftest import ROOT, TINY_WORDS
from tests.ingest_support import load_tiny, make_store, save_tiny_model, small_settings
from tests.reliability_report import record
from tests.search_worker import search_until

THREADS = 3
PROCESSES = 2
FIRST_FILES = 10
LATER_FILES = 150
RUN_TIMEOUT_S = 420


def write_files(folder, count: int, seed: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for number in range(count):
        text = " ".join(" ".join(rng.choices(TINY_WORDS, k=12)) + "." for _ in range(6))
        (folder / f"doc{number:04d}.txt").write_text(text)


def test_searches_during_an_ingest_never_fail_nor_see_a_torn_index(tmp_path, one_torch_thread):
    model = save_tiny_model(tmp_path / "model")
    root = tmp_path / "store"
    write_files(tmp_path / "corpus" / "first", FIRST_FILES, seed=1)
    write_files(tmp_path / "corpus" / "later", LATER_FILES, seed=2)
    url, index_dir = f"sqlite:///{root / 'meta.db'}", str(root / "indexes")  # = make_store(root)
    store = make_store(root)
    ingest_paths([tmp_path / "corpus" / "first"], load_tiny(model), store, small_settings(), progress=False)
    store.close()

    env = {**os.environ, "JASPER_INGEST_COMMIT_CHUNKS": "16", "JASPER_CHUNK_TOKENS": "24", "JASPER_DEVICE": "cpu"}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "JASPER_CHUNK_OVERLAP": "4"})
    stop_file = tmp_path / "stop"
    worker = [sys.executable, "-m", "tests.search_worker", url, index_dir, str(model), str(stop_file)]
    workers = [
        subprocess.Popen([*worker, str(RUN_TIMEOUT_S)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    stop = threading.Event()
    loads = []
    threads = [
        threading.Thread(
            target=lambda: loads.append(search_until(url, index_dir, model, time.time() + RUN_TIMEOUT_S, stop.is_set))
        )
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    command = [sys.executable, "-m", "ingest", str(tmp_path / "corpus"), "--model", str(model), "--quiet"]
    ingest = subprocess.run(
        [*command, "--db", url, "--index-dir", index_dir], cwd=ROOT, env=env, capture_output=True, timeout=RUN_TIMEOUT_S
    )
    seconds = time.perf_counter() - started
    stop.set()
    stop_file.touch()
    for thread in threads:
        thread.join(timeout=120)
    results = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
    assert ingest.returncode == 0, ingest.stdout.decode()[-2000:]

    searches = sum(load.searches for load in loads) + sum(r["searches"] for r in results)
    errors = [e for load in loads for e in load.errors] + [e for r in results for e in r["errors"]]
    torn = sum(load.torn for load in loads) + sum(r["torn"] for r in results)
    generations = set().union(*(load.generations for load in loads), *(set(r["generations"]) for r in results))
    store = make_store(root)
    commits = store.index_states()[(EntryKind.CHUNK, "full")].generation
    store.close()
    record(
        "concurrency",
        "Concurrent searches during an ingest",
        {
            "searchers": f"{THREADS} threads + {PROCESSES} processes, each with its own store handle",
            "ingest": f"{LATER_FILES} files added by `python -m ingest` in {seconds:.0f} s, {commits} commits in all",
            "searches": searches,
            "errors": len(errors),
            "torn reads": torn,
            "index generations seen by readers": len(generations),
        },
        notes=[f"first errors: {errors[:3]}"] if errors else None,
    )
    assert not errors, errors[:5]
    assert torn == 0
    assert len(generations) > 2  # readers really crossed commits
