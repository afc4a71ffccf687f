"""VectorIndex: the FAISS wrapper (ids, add/remove/search/reconstruct, factories, atomic save)."""

from __future__ import annotations

import errno
import subprocess
import sys

import numpy as np
import pytest

from jasper_rag.embedding import normalize_rows
from jasper_rag.store import IndexTrainingError, VectorIndex
from tests.conftest import ROOT


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return normalize_rows(np.random.default_rng(seed).standard_normal((n, dim)))


def test_flat_add_search_remove_reconstruct_roundtrip(tmp_path):
    vectors = unit_vectors(50, 16)
    ids = np.arange(100, 150)
    index = VectorIndex.create(16)
    index.add(ids, vectors)
    scores, found = index.search(vectors[:3], k=1)
    assert found[:, 0].tolist() == [100, 101, 102]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(index.reconstruct(np.array([120])), vectors[20:21], atol=1e-6)
    assert index.remove(np.array([100, 101, 999])) == 2
    assert index.ntotal == 48 and 100 not in index.ids()
    with pytest.raises(KeyError):
        index.reconstruct(np.array([100]))

    path = tmp_path / "chunk.full.g000001.faiss"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    loaded = VectorIndex.load(path, "Flat")
    assert loaded.ntotal == 48 and np.array_equal(np.sort(loaded.ids()), np.arange(102, 150))


def test_search_pads_with_minus_one_and_checks_dimensions():
    index = VectorIndex.create(8)
    index.add(np.array([1, 2]), unit_vectors(2, 8))
    _, ids = index.search(unit_vectors(1, 8), k=5)
    assert ids[0, 2:].tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match="dimension"):
        index.search(unit_vectors(1, 4), k=1)
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([3]), unit_vectors(2, 8))


def test_hnsw_removal_rebuilds_without_the_removed_ids():
    vectors = unit_vectors(200, 16)
    index = VectorIndex.create(16, "IDMap2,HNSW16")
    assert index.factory == "HNSW16"
    index.add(np.arange(200), vectors)
    assert index.remove(np.arange(0, 200, 2)) == 100
    assert sorted(index.ids().tolist()) == list(range(1, 200, 2))
    _, ids = index.search(vectors[1:2], k=1)
    assert ids[0, 0] == 1
    np.testing.assert_allclose(index.reconstruct(np.array([3])), vectors[3:4], atol=1e-6)


def test_ivf_pq_trains_on_first_add_and_supports_remove_and_reconstruct(tmp_path):
    vectors = unit_vectors(600, 32)
    index = VectorIndex.create(32, "IVF8,PQ4x4")
    index.add(np.arange(600), vectors)
    assert index.remove(np.arange(10)) == 10
    assert index.reconstruct(np.array([500])).shape == (1, 32)
    index.save(tmp_path / "x.faiss")
    loaded = VectorIndex.load(tmp_path / "x.faiss", "IVF8,PQ4x4")
    assert loaded.reconstruct(np.array([500])).shape == (1, 32)
    assert sorted(loaded.ids().tolist()) == list(range(10, 600))
    _, ids = loaded.search(loaded.reconstruct(np.array([100])), k=1)
    assert ids[0, 0] == 100


def test_ivf_with_too_few_vectors_says_what_to_do():
    with pytest.raises(IndexTrainingError, match="Flat"):
        VectorIndex.create(16, "IVF64,Flat").add(np.arange(10), unit_vectors(10, 16))


SAVE_UNDER_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
import faiss, numpy as np
from jasper_rag.store import VectorIndex

folder = Path(sys.argv[1])
index = VectorIndex.create(16)
index.add(np.arange(200), np.eye(16, dtype=np.float32)[np.arange(200) % 16])
VectorIndex.create(16).save(folder / "old.faiss")
size = len(faiss.serialize_index(index.index))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG, like a full disk
for cut in map(int, sys.argv[2:]):
    resource.setrlimit(resource.RLIMIT_FSIZE, (size - cut, resource.RLIM_INFINITY))
    try:
        index.save(folder / f"new{cut}.faiss")
        print(cut, "saved")
    except OSError as err:
        print(cut, "raised", err.errno)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
"""


def test_a_write_failure_raises_and_renames_no_short_file(tmp_path):
    """The disk fills ``cut`` bytes before the end of the file; cut=1: only FAISS's final flush fails,
    which FAISS's own writer merely printed (and the short file was renamed into place)."""
    cuts = ["1", "100", "2000"]
    done = subprocess.run(
        [sys.executable, "-c", SAVE_UNDER_FILE_SIZE_LIMIT, str(tmp_path), *cuts],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{cut} raised {errno.EFBIG}" for cut in cuts], done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.faiss"]  # no short file, no temp file left
    assert VectorIndex.load(tmp_path / "old.faiss", "Flat").ntotal == 0
