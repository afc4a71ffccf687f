"""Exact full-head search from (hidden+1)-d vectors.

The full head is affine in the pooled hidden state: ``f = W h + b = A x`` with ``A = [W b]`` and
``x = [h; 1]``. With the eigendecomposition ``A^T A = V diag(s) V^T`` (``r`` non-zero eigenvalues,
``r <= hidden + 1``), the ``r``-d vector ``y = diag(sqrt(s)) V^T x / |A x|`` has unit length and
``y . (diag(1/sqrt(s)) V^T A^T q) = q . f / |f|`` for every query ``q``: the cosine against the
L2-normalised full-head vector, exactly. So an index of ``y`` ranks like the full index while
storing ``r`` floats per vector instead of ``full_dim`` (385 instead of 1152 for MiniLM's 384-d
hidden state and a 1152-d head: a third of the bytes). ``reconstruct`` gives back the exact
normalised full-head vectors, so the index also serves as the re-scoring side of funnel search.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import nn

from jasper_rag.embedding import normalize_rows
from jasper_rag.store import VectorIndex

MAP_FILE = "compact_map.npz"
INDEX_FILE = "compact.faiss"
META_FILE = "compact.json"


class CompactFullHead:
    """The linear maps between hidden states, compact vectors, full-head queries and full-head vectors."""

    def __init__(self, to_compact: np.ndarray, query_map: np.ndarray) -> None:
        self.to_compact = np.asarray(to_compact, dtype=np.float64)  # (r, hidden + 1): x -> y (before normalising)
        self.query_map = np.asarray(query_map, dtype=np.float64)  # (r, full_dim): q -> q'; its transpose: y -> f
        self._expand32 = self.query_map.astype(np.float32)  # float32 copies: compressing millions of vectors
        self._compress32 = self.to_compact.astype(np.float32)  # and expanding shortlists must be fast

    @classmethod
    def from_linear(cls, weight: np.ndarray, bias: np.ndarray, tolerance: float = 1e-10) -> CompactFullHead:
        """From the head's ``weight`` (full_dim, hidden) and ``bias`` (full_dim,)."""
        affine = np.concatenate([np.asarray(weight, np.float64), np.asarray(bias, np.float64)[:, None]], axis=1)
        values, vectors = np.linalg.eigh(affine.T @ affine)
        keep = values > tolerance * values.max()
        roots, basis = np.sqrt(values[keep]), vectors[:, keep]
        return cls((basis * roots).T, (affine @ basis / roots).T)

    @classmethod
    def from_head(cls, head: nn.Linear) -> CompactFullHead:
        return cls.from_linear(head.weight.detach().cpu().numpy(), head.bias.detach().cpu().numpy())

    @property
    def dim(self) -> int:
        """Floats stored per vector (``r``)."""
        return int(self.to_compact.shape[0])

    @property
    def full_dim(self) -> int:
        return int(self.query_map.shape[1])

    @property
    def hidden_size(self) -> int:
        return int(self.to_compact.shape[1] - 1)

    def compress(self, hidden: np.ndarray, block: int = 65_536) -> np.ndarray:
        """Unit-length compact vectors of raw (unnormalised) pooled hidden states ``(n, hidden)``, float32."""
        hidden = np.atleast_2d(hidden)
        if hidden.shape[1] != self.hidden_size:
            raise ValueError(f"expected hidden states of size {self.hidden_size}, got {hidden.shape[1]}")
        weight, bias = self._compress32[:, :-1].T, self._compress32[:, -1]
        out = np.empty((len(hidden), self.dim), dtype=np.float32)
        for start in range(0, len(hidden), block):
            out[start : start + block] = normalize_rows(
                hidden[start : start + block].astype(np.float32) @ weight + bias
            )
        return out

    def queries(self, full_queries: np.ndarray) -> np.ndarray:
        """Compact queries whose inner product with compact vectors is the full-head inner product."""
        full_queries = np.atleast_2d(np.asarray(full_queries, dtype=np.float64))
        if full_queries.shape[1] != self.full_dim:
            raise ValueError(f"expected full-head queries of size {self.full_dim}, got {full_queries.shape[1]}")
        return (full_queries @ self.query_map.T).astype(np.float32)

    def expand(self, compact: np.ndarray) -> np.ndarray:
        """The normalised full-head vectors that compact vectors stand for."""
        return np.asarray(compact, dtype=np.float32) @ self._expand32


class CompactFullHeadIndex:
    """A full-head index over compact vectors: ``add`` takes hidden states, ``search`` full-head queries.

    Same interface as ``VectorIndex`` for reading (``dim`` is the full head's, ``search``,
    ``reconstruct``), so it can stand in as the full index of ``funnel_search``.
    """

    def __init__(self, head: CompactFullHead, index: VectorIndex) -> None:
        if index.dim != head.dim:
            raise ValueError(f"index dimension {index.dim} != compact dimension {head.dim}")
        self.head = head
        self.index = index

    @classmethod
    def create(cls, head: CompactFullHead, factory: str = "Flat") -> CompactFullHeadIndex:
        return cls(head, VectorIndex.create(head.dim, factory))

    @property
    def dim(self) -> int:
        return self.head.full_dim

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def add(self, ids: np.ndarray, hidden: np.ndarray) -> None:
        """Add raw pooled hidden states (``encoder.encode(texts, dim=None, normalize=False)``) under ``ids``."""
        self.index.add(ids, self.head.compress(hidden))

    def search(self, full_queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` by cosine against the normalised full-head vectors."""
        return self.index.search(self.head.queries(full_queries), k)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The exact normalised full-head vectors of ``ids``."""
        return self.head.expand(self.index.reconstruct(ids))

    def save(self, folder: Path) -> None:
        """Write the index, the maps and a small description into ``folder`` (each file atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.index.save(folder / INDEX_FILE)
        tmp = folder / f".{MAP_FILE}.tmp.npz"
        np.savez(tmp, to_compact=self.head.to_compact, query_map=self.head.query_map)
        tmp.replace(folder / MAP_FILE)
        meta = {"factory": self.index.factory, "compact_dim": self.head.dim, "full_dim": self.head.full_dim}
        (folder / f".{META_FILE}.tmp").write_text(json.dumps(meta))
        (folder / f".{META_FILE}.tmp").replace(folder / META_FILE)

    @classmethod
    def load(cls, folder: Path) -> CompactFullHeadIndex:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / MAP_FILE, allow_pickle=False) as maps:
            head = CompactFullHead(maps["to_compact"], maps["query_map"])
        return cls(head, VectorIndex.load(folder / INDEX_FILE, meta["factory"]))
