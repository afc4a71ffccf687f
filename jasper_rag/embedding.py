"""The one protocol every text encoder in the project speaks (student heads, teachers, baselines)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that turns texts into L2-normalised float32 row vectors.

    ``name`` identifies the encoder for caches and reports; ``dim`` is the vector size.
    """

    name: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Return an array of shape (len(texts), dim), rows of unit length."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise each row (rows of zeros stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
