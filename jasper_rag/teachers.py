"""Teachers: any sentence-transformers folder, and the paper's concatenated ensemble (eq. 1).

The ensemble vector of a text is each teacher's vector L2-normalised, concatenated, and
normalised again, so every teacher weighs the same in the target space. Which teachers a model
was distilled from is part of its own record (``model_teachers``): the recipe saved with it.
"""

from __future__ import annotations

import hashlib
import json
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
        self.folder = folder

    def fingerprint(self) -> str:
        """Identity of the weights: hash of the config files, weight-file sizes and their first MiB."""
        digest = hashlib.sha256()
        for file in sorted(self.folder.rglob("*")):
            if file.is_file() and file.suffix in {".json", ".safetensors", ".bin", ".txt"}:
                digest.update(file.relative_to(self.folder).as_posix().encode())
                digest.update(str(file.stat().st_size).encode())
                with file.open("rb") as handle:
                    digest.update(handle.read(1 << 20))
        return digest.hexdigest()[:16]

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

    def fingerprint(self) -> str:
        """Combined identity of the member teachers (for caches)."""
        from jasper_rag.vector_cache import encoder_key

        joined = "|".join(encoder_key(teacher) for teacher in self.teachers)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        parts = [normalize_rows(t.encode(texts, batch_size, show_progress)) for t in self.teachers]
        return normalize_rows(np.concatenate(parts, axis=1))


def load_teachers(names: Sequence[str], device: str | None = None) -> TeacherEnsemble:
    """An ensemble of packaged or folder teachers, e.g. ``("mpnet-base", "minilm-l6")``."""
    return TeacherEnsemble([SentenceTransformerTeacher(name, device=device) for name in names])


def model_teachers(model: str | Path) -> list[str]:
    """The teachers ``model`` (a model folder or packaged name) was distilled from.

    Read from the recipe recorded in the model's ``jasper_config.json`` (``run_recipe`` saves it); a
    model without that record (a packaged start model, or one trained before teachers were recorded)
    gets the recipe its record names when that is a packaged one, else the packaged default recipe's.
    """
    from jasper_rag.encoder import CONFIG_FILE, RECIPE_KEY
    from jasper_rag.train.recipes import DEFAULT_RECIPE, load_recipe, recipe_names

    record: object = None
    config_file = Path(model) / CONFIG_FILE
    if config_file.is_file():
        extra = json.loads(config_file.read_text()).get("extra")
        record = extra.get(RECIPE_KEY) if isinstance(extra, dict) else None
    if isinstance(record, dict) and record.get("teachers"):
        return [str(name) for name in record["teachers"]]
    name = record if isinstance(record, str) and record in recipe_names() else DEFAULT_RECIPE
    return list(load_recipe(name).teachers)
