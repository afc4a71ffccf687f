"""One FAISS inner-product index over L2-normalised vectors, addressed by our own int64 ids.

Built from a FAISS factory string (``"Flat"``: exact, the default; ``"HNSW32"``; ``"IVF256,PQ16"``),
optionally followed by FAISS search-time parameters after a space (``"HNSW32 efSearch=128"``,
``"IVF256,Flat nprobe=16"``; ``faiss.ParameterSpace`` syntax), so that ids are SQL entry ids and vectors
can be reconstructed by id. Saved with FAISS's own format
(no pickle) through a temp file, fsync and rename, written by Python so that a full disk raises.
Searches run on the GPU when FAISS sees one (a lazily made copy; the CPU index stays the one that is
changed and saved).
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

if TYPE_CHECKING:
    from jasper_rag.store.vectors import SearchScope

log = logging.getLogger(__name__)

ID_MAP_PREFIXES = ("IDMap2,", "IDMap,")


def normalise_factory(factory: str) -> str:
    """The inner factory string (without an ``IDMap`` prefix, which is always added), search parameters kept."""
    factory = factory.strip()
    for prefix in ID_MAP_PREFIXES:
        if factory.startswith(prefix):
            return factory[len(prefix) :]
    return factory


def split_factory(factory: str) -> tuple[str, str]:
    """``"HNSW32 efSearch=128"`` -> ``("HNSW32", "efSearch=128")``: the FAISS factory and its search-time
    parameters (``""`` when none)."""
    inner, _, parameters = normalise_factory(factory).partition(" ")
    return inner, parameters.strip()


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexTrainingError(ValueError):
    """A trainable index (IVF, PQ) was given too few vectors to train on."""


class VectorIndex:
    """A FAISS inner-product index with our ids: add, remove, search, reconstruct, save, load.

    Flat and HNSW indexes sit inside an ``IndexIDMap2``; IVF indexes keep ids in their inverted
    lists themselves (an ID map over IVF breaks on removal), with a hash-table direct map so
    vectors can be reconstructed and removed by id.
    """

    def __init__(self, index: faiss.Index, factory: str) -> None:
        self.index = index
        self.factory = normalise_factory(factory)
        self._gpu_index: faiss.Index | None = None

    @classmethod
    def create(cls, dim: int, factory: str = "Flat") -> VectorIndex:
        name, parameters = split_factory(factory)
        inner = faiss.index_factory(dim, name, faiss.METRIC_INNER_PRODUCT)
        if faiss.try_extract_index_ivf(inner) is None:
            created = cls(faiss.IndexIDMap2(inner), factory)
        else:
            created = cls(inner, factory)
            if inner.is_trained:
                created._enable_reconstruct()
        created.set_search_parameters(parameters)
        return created

    @classmethod
    def load(cls, path: Path, factory: str) -> VectorIndex:
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2) and faiss.try_extract_index_ivf(index) is None:
            raise ValueError(f"{path}: not an index written by VectorIndex")
        loaded = cls(index, factory)
        loaded._enable_reconstruct()
        loaded.set_search_parameters(split_factory(factory)[1])
        return loaded

    def set_search_parameters(self, parameters: str) -> None:
        """Apply FAISS search-time parameters (``"efSearch=128"``, ``"nprobe=16"``; ``""``: none)."""
        if not parameters:
            return
        try:
            faiss.ParameterSpace().set_index_parameters(self.index, parameters)
        except RuntimeError as err:
            raise ValueError(f"FAISS index '{self.factory}': bad search parameters '{parameters}' ({err})") from err
        self._gpu_index = None

    # ----------------------------------------------------------------- facts
    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every stored id (int64): in insertion order, or list by list for IVF."""
        ivf = self._ivf()
        if ivf is None:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64, copy=False)
        lists = ivf.invlists
        parts = [np.zeros(0, dtype=np.int64)]
        for number in range(ivf.nlist):
            size = lists.list_size(number)
            if size:
                parts.append(faiss.rev_swig_ptr(lists.get_ids(number), size).astype(np.int64))
        return np.concatenate(parts)

    def _ivf(self) -> faiss.IndexIVF | None:
        return None if isinstance(self.index, faiss.IndexIDMap2) else faiss.try_extract_index_ivf(self.index)

    # ----------------------------------------------------------------- changes
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows of ``vectors`` (float32, unit length) under ``ids``; trains a trainable index first."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(ids) == 0:
            return
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        if not self.index.is_trained:
            self._train(vectors)
        self.index.add_with_ids(vectors, ids)
        self._gpu_index = None

    def remove(self, ids: np.ndarray) -> int:
        """Remove every vector stored under ``ids``; returns how many were removed."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0 or self.ntotal == 0:
            return 0
        self._gpu_index = None
        try:
            # IVF's hash-table direct map only takes an array selector; a batch (hash set) is faster elsewhere
            selector = faiss.IDSelectorArray if self._ivf() is not None else faiss.IDSelectorBatch
            return int(self.index.remove_ids(selector(len(ids), faiss.swig_ptr(ids))))
        except RuntimeError:  # e.g. HNSW cannot remove: rebuild from the vectors that stay
            return self._rebuild_without(ids)

    def _rebuild_without(self, ids: np.ndarray) -> int:
        stored = self.ids()
        keep = stored[~np.isin(stored, ids)]
        vectors = self.reconstruct(keep)
        fresh = VectorIndex.create(self.dim, self.factory)
        fresh.add(keep, vectors)
        self.index = fresh.index
        return len(stored) - len(keep)

    def _train(self, vectors: np.ndarray) -> None:
        try:
            self.index.train(vectors)
        except RuntimeError as err:
            raise IndexTrainingError(
                f"FAISS index '{self.factory}' could not train on {len(vectors)} vectors ({err}); "
                "commit more vectors at once (JASPER_INGEST_COMMIT_CHUNKS) or use the exact 'Flat' index"
            ) from err
        self._enable_reconstruct()

    def _enable_reconstruct(self) -> None:
        """IVF indexes need a (removal-friendly) direct map to reconstruct vectors by id."""
        ivf = self._ivf()
        if ivf is not None and ivf.direct_map.type != faiss.DirectMap.Hashtable:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)

    # ----------------------------------------------------------------- reading
    def search(self, vectors: np.ndarray, k: int, scope: SearchScope | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` inner products per query row: ``(scores, ids)``, ids -1 where fewer than k exist.

        ``scope``: only the ids SQL resolves its filter to are searched (an id selector inside FAISS, on the
        CPU index)."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"query dimension {queries.shape[1]} != index dimension {self.dim}")
        if scope is None:
            return self._searcher().search(queries, k)
        wanted = np.ascontiguousarray(scope.ids, dtype=np.int64)
        selector = faiss.IDSelectorBatch(len(wanted), faiss.swig_ptr(wanted))
        ivf = self._ivf()
        if ivf is not None:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        return self.index.search(queries, k, params=params)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (exact for Flat and HNSW, approximate for PQ); KeyError if absent."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for row, entry_id in enumerate(ids):
            try:
                out[row] = self.index.reconstruct(int(entry_id))
            except RuntimeError as err:
                raise KeyError(int(entry_id)) from err
        return out

    def _searcher(self) -> faiss.Index:
        if self._gpu_index is None and faiss.get_num_gpus() > 0:
            try:
                self._gpu_index = faiss.index_cpu_to_all_gpus(self.index)
            except RuntimeError as err:  # e.g. HNSW has no GPU version
                log.info("FAISS index '%s' stays on the CPU: %s", self.factory, err)
                self._gpu_index = self.index
        return self._gpu_index or self.index

    # ----------------------------------------------------------------- persistence
    def save(self, path: Path) -> None:
        """Write atomically: temp file in the same folder, fsync, rename, fsync the folder.

        The index is serialized in memory and written with Python's file I/O, so a full disk or an I/O
        error raises (FAISS's own writer only prints a failed final flush to stderr and leaves a short
        file); the written size is checked before the rename, so a short file is never renamed into place.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = memoryview(faiss.serialize_index(self.index))
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                written = 0
                while written < len(data):  # os.write may write less than asked; a failure raises OSError
                    written += os.write(fd, data[written:])
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size != len(data):
                raise OSError(errno.EIO, f"index file is {size} bytes, expected {len(data)}", str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)
