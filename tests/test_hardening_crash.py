"""Crash safety: SIGKILL ``python -m ingest`` at random points, again and again, on one store.

Each trial changes a few files and adds new ones, starts an ingestion subprocess, waits for it to
write an index generation, kills it a random moment later (often inside a commit), then checks:
``doctor`` finds no drift, no id is stored twice, and every file the store had acknowledged
(committed as ingested) just before the kill is still searchable. A last run without a kill must
leave exactly the chunks of the files on disk. ``JASPER_TEST_CRASH_TRIALS`` sets the number of
trials (``make test`` runs 20).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jasper_rag.ingest.chunking import Chunker
from jasper_rag.ingest.pipeline import file_hash
from jasper_rag.store import DocumentStatus, EntryKind
from jasper_rag.store.doctor import check
from tests.conftest import ROOT, TINY_WORDS
from tests.ingest_support import load_tiny, make_store, save_tiny_model
from tests.reliability_report import record

TRIALS = int(os.environ.get("JASPER_TEST_CRASH_TRIALS", "5"))
START_FILES = 40
CHANGED_PER_TRIAL = 10
ADDED_PER_TRIAL = 6
KILL_WINDOW_S = 0.5  # the kill comes up to this long after the run's first index write
RUN_TIMEOUT_S = 180
SETTINGS = {"JASPER_INGEST_COMMIT_CHUNKS": "16", "JASPER_CHUNK_TOKENS": "24", "JASPER_CHUNK_OVERLAP": "4"}


def document_text(rng: random.Random) -> str:
    return " ".join(" ".join(rng.choices(TINY_WORDS, k=12)) + "." for _ in range(6))


def start_ingest(corpus: Path, model: Path, root: Path) -> subprocess.Popen:
    env = {**os.environ, **SETTINGS, "JASPER_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "ingest", str(corpus), "--model", str(model), "--quiet"]
    command += ["--db", f"sqlite:///{root / 'meta.db'}", "--index-dir", str(root / "indexes")]  # = make_store(root)
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def index_files(root: Path) -> set[str]:
    folder = root / "indexes"
    return {path.name for path in folder.glob("*.faiss")} if folder.is_dir() else set()


def acknowledged(root: Path) -> set[str]:
    """Files committed as ingested, as a fresh reader sees them now."""
    store = make_store(root)
    try:
        return {doc.path for doc in store.documents(DocumentStatus.INGESTED)}
    finally:
        store.close()


def committed(root: Path, paths: list[Path]) -> int:
    """How many of ``paths`` the store holds with their current content."""
    store = make_store(root)
    try:
        hashes = {doc.path: doc.content_hash for doc in store.documents(DocumentStatus.INGESTED)}
    finally:
        store.close()
    return sum(hashes.get(str(path)) == file_hash(path.read_bytes()) for path in paths)


def searchable(root: Path) -> tuple[dict[str, list[str]], int]:
    """Each document's chunk texts reachable from the full-head index, and the number of duplicated ids."""
    store = make_store(root)
    try:
        if (EntryKind.CHUNK, "full") not in store.index_states():  # killed inside the very first commit
            return {}, 0
        ids = store.index(EntryKind.CHUNK, "full").ids()
        texts: dict[str, list[str]] = {}
        for view in sorted(store.fetch(ids), key=lambda v: (v.path, v.ordinal)):
            texts.setdefault(view.path, []).append(view.text)
        return texts, len(ids) - len(np.unique(ids))
    finally:
        store.close()


def test_repeated_sigkills_lose_no_acknowledged_file(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    corpus, root = tmp_path / "corpus", tmp_path / "store"
    corpus.mkdir()
    rng = random.Random(20)
    for number in range(START_FILES):
        (corpus / f"doc{number:04d}.txt").write_text(document_text(rng))
    rows, killed, lost, duplicated, inside_commit = [], 0, 0, 0, 0
    started = time.perf_counter()
    for trial in range(TRIALS):
        work = rng.sample(sorted(corpus.iterdir()), CHANGED_PER_TRIAL)
        work += [corpus / f"new{trial:02d}-{number}.txt" for number in range(ADDED_PER_TRIAL)]
        for path in work:
            path.write_text(document_text(rng))
        before = index_files(root)
        process = start_ingest(corpus, model, root)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while process.poll() is None and index_files(root) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, KILL_WINDOW_S))
        acked = acknowledged(root) if process.poll() is None else set()
        process.send_signal(signal.SIGKILL)
        was_killed = process.wait(timeout=60) == -signal.SIGKILL
        killed += was_killed
        acked = acked or acknowledged(root)

        store = make_store(root)
        report = check(store)
        store.close()
        texts, duplicates = searchable(root)
        missing = acked - set(texts)
        lost += len(missing)
        duplicated += duplicates
        inside_commit += bool(report.garbage)  # new index files written, SQL not committed yet
        progress = f"{committed(root, work)}/{len(work)}"
        inside = "yes" if report.garbage else "no"
        rows.append([trial + 1, "yes" if was_killed else "no", progress, inside, len(acked), len(missing), duplicates])
        assert report.consistent, f"trial {trial}: {report.render()}"
        assert not missing and not duplicates, f"trial {trial}: lost {sorted(missing)[:3]}, {duplicates} duplicated"

    final = start_ingest(corpus, model, root)
    assert final.wait(timeout=RUN_TIMEOUT_S) == 0
    store = make_store(root)
    report = check(store)
    store.close()
    assert report.consistent and not report.garbage, report.render()
    chunker = Chunker.for_encoder(load_tiny(model), 24, 4)
    expected = {str(path): [s.text for s in chunker.split(path.read_text())] for path in sorted(corpus.iterdir())}
    texts, duplicates = searchable(root)
    assert texts == expected and not duplicates  # nothing lost, nothing stale, nothing twice
    assert killed >= TRIALS // 2  # most kills landed mid-run
    record(
        "crash",
        "Crash safety (SIGKILL of `python -m ingest`)",
        {
            "trials": TRIALS,
            "killed mid-run": killed,
            "killed inside a commit (index files written, SQL not committed)": inside_commit,
            "doctor consistent after every kill": "yes",
            "acknowledged files lost": lost,
            "duplicated vectors": duplicated,
            "final run": f"{len(expected)} files, every chunk present once, no leftover files",
            "total time": f"{time.perf_counter() - started:.0f} s",
        },
        (["trial", "killed mid-run", "its files committed", "inside a commit", "acknowledged", "lost", "dup."], rows),
        [
            f"Each trial changed {CHANGED_PER_TRIAL} files and added {ADDED_PER_TRIAL}; the kill came 0-"
            f"{KILL_WINDOW_S} s after the run's first index write.",
            "Acknowledged = files committed with status `ingested`, read by a separate reader just before the kill; "
            "lost = acknowledged files not searchable after the kill.",
        ],
    )
