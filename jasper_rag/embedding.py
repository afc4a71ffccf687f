"""The one protocol every text encoder in the project speaks (student heads, teachers, baselines)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

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


Role = Literal["query", "passage", "symmetric"]
ROLES: tuple[Role, ...] = ("query", "passage", "symmetric")


def for_role(encoder: TextEncoder, role: Role) -> TextEncoder:
    """``encoder`` as it embeds texts of ``role`` (its prompt for that role), or itself when it has no roles.

    Encoders with input prompts (e.g. EmbeddingGemma's ``task: search result | query: ``) expose
    ``for_role``; every other encoder embeds queries, passages and sentence pairs alike.
    """
    view = getattr(encoder, "for_role", None)
    return view(role) if callable(view) else encoder
