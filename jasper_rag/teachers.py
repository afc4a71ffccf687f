"""Teachers: any sentence-transformers folder, and the paper's concatenated ensemble (eq. 1).

The ensemble vector of a text is each teacher's vector L2-normalised, concatenated, and
normalised again, so every teacher weighs the same in the target space.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jasper_rag.config import resolve_device
from jasper_rag.embedding import TextEncoder, normalize_rows


class SentenceTransformerTeacher:
    """A teacher loaded from a sentence-transformers folder or a packaged short name."""

    def __init__(self, name_or_path: str | Path, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        from jasper_rag.weights import model_path

        folder = model_path(name_or_path)
        self.name = str(name_or_path) if not Path(name_or_path).is_dir() else Path(name_or_path).name
        self.model = SentenceTransformer(str(folder), device=resolve_device(device), local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=show_progress, convert_to_numpy=True
        )
        return normalize_rows(vectors)


class TeacherEnsemble:
    """Concatenation of several teachers, each normalised, then normalised again."""

    def __init__(self, teachers: Sequence[TextEncoder]) -> None:
        if not teachers:
            raise ValueError("a teacher ensemble needs at least one teacher")
        self.teachers = list(teachers)
        self.name = "+".join(teacher.name for teacher in self.teachers)
        self.dim = sum(teacher.dim for teacher in self.teachers)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        parts = [normalize_rows(t.encode(texts, batch_size, show_progress)) for t in self.teachers]
        return normalize_rows(np.concatenate(parts, axis=1))


def load_teachers(names: Sequence[str], device: str | None = None) -> TeacherEnsemble:
    """An ensemble of packaged or folder teachers, e.g. ``("mpnet-base", "minilm-l6")``."""
    return TeacherEnsemble([SentenceTransformerTeacher(name, device=device) for name in names])
