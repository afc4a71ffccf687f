"""Encoders that exist only for comparison: reduced-dimension baselines, and head views that share
one backbone pass.

Baselines wrap another (usually cached) encoder, so they cost no extra model run:
- ``TruncatedEncoder``: the first ``dim`` coordinates, re-normalised;
- ``PCAEncoder``: projection on the top ``dim`` principal components of a document sample, re-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jasper_rag.embedding import Role, TextEncoder, normalize_rows
from jasper_rag.encoder import HeadEncoder, JasperEncoder


def _check_dim(base: TextEncoder, dim: int) -> None:
    if not 0 < dim <= base.dim:
        raise ValueError(f"cannot reduce {base.name} ({base.dim}-d) to {dim} dimensions")


class TruncatedEncoder:
    """The first ``dim`` coordinates of ``base``'s vectors, re-normalised."""

    def __init__(self, base: TextEncoder, dim: int) -> None:
        _check_dim(base, dim)
        self.base = base
        self.dim = dim
        self.name = f"truncate{dim}({base.name})"

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return normalize_rows(
            self.base.encode(texts, batch_size=batch_size, show_progress=show_progress)[:, : self.dim]
        )


class PCAEncoder:
    """``base``'s vectors projected on their top ``dim`` principal components, re-normalised.

    Call ``fit(texts)`` with a document sample (no labels) before ``encode``.
    """

    def __init__(self, base: TextEncoder, dim: int) -> None:
        _check_dim(base, dim)
        self.base = base
        self.dim = dim
        self.name = f"pca{dim}({base.name})"
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None

    def fit(self, texts: Sequence[str], batch_size: int = 32) -> PCAEncoder:
        vectors = self.base.encode(texts, batch_size=batch_size).astype(np.float64)
        if len(vectors) < self.dim:
            raise ValueError(f"{self.name}: needs at least {self.dim} texts to fit, got {len(vectors)}")
        self.mean = vectors.mean(axis=0)
        _, _, right = np.linalg.svd(vectors - self.mean, full_matrices=False)
        self.components = right[: self.dim]
        return self

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        if self.components is None or self.mean is None:
            raise RuntimeError(f"{self.name}: call fit() on a document sample first")
        vectors = self.base.encode(texts, batch_size=batch_size, show_progress=show_progress)
        return normalize_rows((vectors - self.mean) @ self.components.T)


class SharedPassHeads:
    """Several heads of one JasperEncoder, computed from a single backbone pass per text.

    ``view(dim)`` has the same name and fingerprint as ``encoder.at(dim)`` (so it shares its vector
    cache), its name followed by ``[tag]`` when there is one (e.g. an inference backend whose vectors
    must be cached apart); asking one view for texts computes every head for them and keeps the other
    heads' vectors until their views ask.
    """

    def __init__(self, encoder: JasperEncoder, dims: Sequence[int], tag: str = "", role: Role | None = None) -> None:
        self.encoder = encoder
        self.dims, self.tag = list(dims), tag
        heads = {dim: encoder.at(dim) for dim in dims}
        if role is not None:
            heads = {dim: head.for_role(role) for dim, head in heads.items()}
        self.prompt = next(iter(heads.values())).prompt if heads else ""
        self.views = {dim: _SharedHeadView(self, head, tag) for dim, head in heads.items()}
        self._pending: dict[int, dict[str, np.ndarray]] = {dim: {} for dim in dims}
        self._roles: dict[str, SharedPassHeads] = {}

    def view(self, dim: int) -> TextEncoder:
        return self.views[dim]

    def for_role(self, role: Role) -> SharedPassHeads:
        """The same heads reading texts with the model's prompt for ``role`` (this object when it is the same)."""
        if self.encoder.at(self.dims[0]).for_role(role).prompt == self.prompt:
            return self
        if role not in self._roles:
            self._roles[role] = SharedPassHeads(self.encoder, self.dims, self.tag, role)
        return self._roles[role]

    def vectors(self, dim: int, texts: Sequence[str], batch_size: int, show_progress: bool) -> np.ndarray:
        """The ``dim``-d vectors of ``texts``, running the backbone only for texts no view computed yet."""
        pending = self._pending[dim]
        unique = list(dict.fromkeys(texts))
        todo = [text for text in unique if text not in pending]
        if todo:
            heads = [view.head for view in self.views.values()]
            prompted = [self.prompt + text for text in todo] if self.prompt else todo
            vectors = self.encoder.encode_heads(prompted, heads, batch_size, show_progress=show_progress)
            for other, view in self.views.items():
                self._pending[other].update(zip(todo, vectors[view.head], strict=True))
        found = {text: pending.pop(text) for text in unique}
        if not texts:
            return np.zeros((0, self.views[dim].dim), dtype=np.float32)
        return np.stack([found[text] for text in texts])


class _SharedHeadView:
    """A ``TextEncoder`` for one head of a ``SharedPassHeads``."""

    def __init__(self, shared: SharedPassHeads, head_view: HeadEncoder, tag: str = "") -> None:
        self.shared = shared
        self.head = head_view.head
        self.name = f"{head_view.name}[{tag}]" if tag else head_view.name
        self.dim = head_view.dim
        self._fingerprint = head_view.fingerprint()

    def fingerprint(self) -> str:
        return self._fingerprint

    def for_role(self, role: Role) -> TextEncoder:
        """This head of the shared pass that reads ``role``'s texts with the model's prompt for it."""
        return self.shared.for_role(role).views[self.dim]

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self.shared.vectors(self.dim, texts, batch_size, show_progress)
