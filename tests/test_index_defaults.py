"""Index settings: a FAISS factory with search-time parameters ("HNSW32 efSearch=128"), as the bench tunes them."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from jasper_rag.config import Settings
from jasper_rag.embedding import normalize_rows
from jasper_rag.store import Store, VectorIndex
from jasper_rag.store.vector_index import split_factory
from tests.test_store_store import MODEL, record


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return normalize_rows(np.random.default_rng(seed).standard_normal((n, dim)))


def ef_search(index: VectorIndex) -> int:
    return faiss.downcast_index(index.index.index).hnsw.efSearch


def test_factory_strings_split_into_factory_and_search_parameters() -> None:
    assert split_factory("HNSW32 efSearch=128") == ("HNSW32", "efSearch=128")
    assert split_factory("IDMap2,IVF256,Flat nprobe=16") == ("IVF256,Flat", "nprobe=16")
    assert split_factory("Flat") == ("Flat", "")
    assert Settings().index_factory == "Flat"  # the default stays exact search


def test_hnsw_search_parameters_survive_save_load_and_rebuild(tmp_path) -> None:
    index = VectorIndex.create(16, "HNSW16 efSearch=77")
    assert index.factory == "HNSW16 efSearch=77" and ef_search(index) == 77
    index.add(np.arange(300), unit_vectors(300, 16))
    index.remove(np.arange(0, 300, 3))  # HNSW cannot remove: rebuilt from the same factory and parameters
    assert ef_search(index) == 77 and index.ntotal == 200
    index.save(tmp_path / "index.faiss")
    loaded = VectorIndex.load(tmp_path / "index.faiss", index.factory)
    assert ef_search(loaded) == 77 and loaded.ntotal == 200


def test_ivf_nprobe_is_applied_after_training_and_on_load(tmp_path) -> None:
    index = VectorIndex.create(8, "IVF4,Flat nprobe=3")
    index.add(np.arange(400), unit_vectors(400, 8))
    assert faiss.extract_index_ivf(index.index).nprobe == 3
    index.save(tmp_path / "index.faiss")
    loaded = VectorIndex.load(tmp_path / "index.faiss", "IVF4,Flat nprobe=3")
    assert faiss.extract_index_ivf(loaded.index).nprobe == 3
    vectors = unit_vectors(5, 8, seed=1)
    np.testing.assert_array_equal(loaded.search(vectors, 3)[1], index.search(vectors, 3)[1])


def test_plain_factories_keep_working_and_bad_parameters_are_refused() -> None:
    assert ef_search(VectorIndex.create(8, "IDMap2,HNSW16")) == faiss.IndexHNSWFlat(8, 16).hnsw.efSearch
    assert VectorIndex.create(8).factory == "Flat"
    with pytest.raises(ValueError, match="bad search parameters"):
        VectorIndex.create(8, "Flat efSearch=64")


def test_a_store_records_and_reloads_the_search_parameters(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'meta.db'}", tmp_path / "indexes", factory="HNSW16 efSearch=40")
    store.bind_model(MODEL)
    with store.writer():
        store.commit([record("/a", ["a1", "a2"]), record("/b", ["b1"])])
    assert store.index_states()[("chunk", "full")].factory == "HNSW16 efSearch=40"
    reader = Store(store.url, store.index_dir)  # the factory comes from the store's records, not the setting
    assert ef_search(reader.index("chunk", "full")) == 40
