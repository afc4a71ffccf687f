"""On-disk vector cache: each (encoder, text) is embedded once, ever.

Layout: ``<root>/<encoder key>/`` holds append-only shards, each a pair of ``.npy`` files
(``*.keys.npy``: 16-byte text hashes, ``*.vecs.npy``: float32 vectors), loaded memory-mapped
without pickle. Shards are written every ``chunk_size`` texts through temp file + rename, so an
interrupted run keeps every finished chunk and resumes where it stopped; ``shard_tag`` lets several
processes fill the same cache (e.g. one per rank) without clashing.

Used for teacher vectors (training) and for evaluation embeddings.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jasper_rag.embedding import Role, TextEncoder, for_role

log = logging.getLogger(__name__)

KEY_BYTES = 16


def text_key(text: str) -> bytes:
    """The 16-byte hash that identifies a text in the cache."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES).digest()


def encoder_key(encoder: TextEncoder) -> str:
    """A folder name for an encoder: its name plus its fingerprint when it has one."""
    fingerprint = getattr(encoder, "fingerprint", None)
    value = fingerprint() if callable(fingerprint) else fingerprint
    safe = "".join(c if c.isalnum() or c in "-_.@+" else "_" for c in encoder.name)
    return f"{safe}-{value}" if value else safe


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


class CachedEncoder:
    """A ``TextEncoder`` that serves vectors from the cache and computes only the missing ones."""

    def __init__(self, encoder: TextEncoder, root: str | Path, shard_tag: str = "") -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        self.folder = Path(root) / encoder_key(encoder)
        self.shard_tag = shard_tag
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []

    def for_role(self, role: Role) -> CachedEncoder:
        """The cache of the wrapped encoder's ``role`` view (itself when the encoder has no roles)."""
        view = for_role(self.encoder, role)
        return self if view is self.encoder else CachedEncoder(view, self.folder.parent, self.shard_tag)

    # ----------------------------------------------------------------- reading
    def _load(self) -> dict[bytes, tuple[int, int]]:
        """Map every cached text hash to (shard number, row); shards stay memory-mapped."""
        if self._index is None:
            self._index, self._shards = {}, []
            for keys_file in sorted(self.folder.glob("*.keys.npy")):
                vecs_file = keys_file.with_name(keys_file.name.replace(".keys.npy", ".vecs.npy"))
                if not vecs_file.is_file():
                    continue  # a crash between the two renames: the keys alone are ignored
                keys = np.load(keys_file, allow_pickle=False)
                vecs = np.load(vecs_file, mmap_mode="r", allow_pickle=False)
                if len(keys) != len(vecs) or vecs.shape[1] != self.dim:
                    log.warning("ignoring inconsistent cache shard %s", keys_file)
                    continue
                shard = len(self._shards)
                self._shards.append(vecs)
                for row, key in enumerate(keys):
                    self._index[key.tobytes()] = (shard, row)
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts not yet in the cache, in first-seen order."""
        index = self._load()
        seen: dict[bytes, str] = {}
        for text in texts:
            key = text_key(text)
            if key not in index and key not in seen:
                seen[key] = text
        return list(seen.values())

    # ----------------------------------------------------------------- writing
    def fill(
        self, texts: Sequence[str], batch_size: int = 32, chunk_size: int = 1024, show_progress: bool = False
    ) -> int:
        """Embed the missing texts, writing one shard per ``chunk_size`` texts; returns how many."""
        todo = self.missing(texts)
        if not todo:
            return 0
        bar = tqdm(total=len(todo), desc=f"embedding {self.name}", unit="text", disable=not show_progress)
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            self.store(chunk, self.encoder.encode(chunk, batch_size=batch_size))
            bar.update(len(chunk))
        bar.close()
        return len(todo)

    def store(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Write the given vectors of ``texts`` (computed elsewhere, e.g. on another node) as one shard."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise ValueError(f"{self.name}: {vectors.shape} vectors for {len(texts)} texts of dimension {self.dim}")
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(-1, KEY_BYTES)
        stem = f"shard-{self.shard_tag}{uuid.uuid4().hex[:12]}"
        _atomic_save(self.folder / f"{stem}.vecs.npy", vectors)
        _atomic_save(self.folder / f"{stem}.keys.npy", keys)  # written last: marks the shard complete
        self._index = None

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Vectors for ``texts`` in order, computing (and storing) only what is missing."""
        self.fill(texts, batch_size=batch_size, show_progress=show_progress)
        index = self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            shard, position = index[text_key(text)]
            out[row] = self._shards[shard][position]
        return out
