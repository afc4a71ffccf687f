"""Vectors for the search bench: real cached embeddings, synthetic ones drawn to match them, and heads.

Real vectors are the student start's (``minilm-l6``) pooled vectors already in the on-disk cache
(``jasper_rag.vector_cache`` layout: ``*.keys.npy`` / ``*.vecs.npy`` shard pairs): SciFact, STS
Benchmark and training texts embedded by ``make eval`` / ``make train``. Beyond the real ones, a corpus
repeats them: copy ``j`` of real vector ``v`` is ``normalize(v + NOISE * g / sqrt(dim))`` with ``g``
standard normal, a near-duplicate of a real text (never a vector from a fitted distribution). Head
vectors are ``normalize(W h + b)`` of those hidden vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jasper_rag.embedding import normalize_rows
from jasper_rag.encoder import FULL_HEAD, reduced_head_name
from jasper_rag.vector_cache import KEY_BYTES, text_key


class BenchDataError(ValueError):
    """The cache holds too few vectors for the search bench."""


def read_cache(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every complete shard of a vector-cache folder: ``(keys (n, 16) uint8, vectors (n, dim))``, deduplicated."""
    keys, vectors = [np.zeros((0, KEY_BYTES), np.uint8)], []
    for keys_file in sorted(Path(folder).glob("*.keys.npy")):
        vecs_file = keys_file.with_name(keys_file.name.replace(".keys.npy", ".vecs.npy"))
        if vecs_file.is_file():
            shard_keys, shard_vecs = np.load(keys_file, allow_pickle=False), np.load(vecs_file, allow_pickle=False)
            if len(shard_keys) == len(shard_vecs):
                keys.append(shard_keys)
                vectors.append(shard_vecs)
    if not vectors:
        return keys[0], np.zeros((0, 0), np.float32)
    all_keys, all_vectors = np.concatenate(keys), np.concatenate(vectors).astype(np.float32)
    _, first = np.unique(all_keys.view(f"V{KEY_BYTES}").ravel(), return_index=True)
    first.sort()
    return all_keys[first], all_vectors[first]


def key_rows(keys: np.ndarray) -> dict[bytes, int]:
    return {key.tobytes(): row for row, key in enumerate(keys)}


def without_texts(keys: np.ndarray, vectors: np.ndarray, texts: list[str]) -> np.ndarray:
    """The cached vectors whose text is not one of ``texts`` (e.g. corpus vectors without the queries)."""
    excluded = {text_key(text) for text in texts}
    keep = np.array([key.tobytes() not in excluded for key in keys], dtype=bool)
    return vectors[keep] if len(keys) else vectors


NOISE = 0.4  # isotropic noise of a repeated vector, relative to its unit length (see ``perturbed_copies``)


def perturbed_copies(
    real: np.ndarray, count: int, seed: int = 0, noise: float = NOISE, block: int = 100_000
) -> np.ndarray:
    """``count`` unit vectors repeating ``real`` in order (row ``i`` copies ``real[i % len(real)]``), each
    plus isotropic Gaussian noise of expected norm ``noise`` (per unit of the copied vector's length), normalised."""
    real = normalize_rows(np.asarray(real, dtype=np.float32))
    if len(real) == 0:
        raise BenchDataError("no real vectors to repeat: run `make eval` first")
    rng = np.random.default_rng(seed)
    out = np.empty((count, real.shape[1]), dtype=np.float32)
    scale = noise / np.sqrt(real.shape[1])
    for start in range(0, count, block):
        rows = np.arange(start, min(start + block, count)) % len(real)
        out[start : start + len(rows)] = real[rows] + scale * rng.standard_normal((len(rows), real.shape[1]))
    return normalize_rows(out)


@dataclass(frozen=True)
class Closeness:
    """How close a repeated vector stays to its source, against how close real texts are to each other."""

    copy_to_source: float  # median cosine of a perturbed copy to the real vector it repeats
    real_nearest: float  # median cosine of a real vector to its nearest other real vector

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def closeness(real: np.ndarray, sample: int = 1000, seed: int = 0, noise: float = NOISE) -> Closeness:
    """Median cosines of ``perturbed_copies`` to their sources and of real vectors to their nearest real neighbour."""
    unit = normalize_rows(np.asarray(real, dtype=np.float32))
    rows = np.random.default_rng(seed).choice(len(unit), min(sample, len(unit)), replace=False)
    copies = perturbed_copies(unit[rows], len(rows), seed, noise)
    similar = unit[rows] @ unit.T
    similar[np.arange(len(rows)), rows] = -np.inf
    return Closeness(
        copy_to_source=round(float(np.median(np.sum(copies * unit[rows], axis=1))), 3),
        real_nearest=round(float(np.median(similar.max(axis=1))), 3),
    )


@dataclass(frozen=True)
class Corpus:
    """Hidden vectors of one corpus size, and how many of them are real."""

    hidden: np.ndarray
    real: int


def corpus_of_size(real: np.ndarray, size: int, seed: int = 0) -> Corpus:
    """The first ``size`` real vectors, topped up with perturbed copies of them (``perturbed_copies``)."""
    taken = real[:size]
    if len(taken) == size:
        return Corpus(np.array(taken, dtype=np.float32), size)  # a copy: callers may scale it in place
    extra = perturbed_copies(real, size - len(taken), seed)
    return Corpus(np.concatenate([taken.astype(np.float32), extra]), len(taken))


def project(hidden: np.ndarray, head: nn.Linear, block: int = 100_000) -> np.ndarray:
    """``normalize(W h + b)`` of hidden vectors, computed in blocks (float32)."""
    weight = head.weight.detach().cpu().numpy().astype(np.float32)
    bias = head.bias.detach().cpu().numpy().astype(np.float32)
    out = np.empty((len(hidden), head.out_features), dtype=np.float32)
    for start in range(0, len(hidden), block):
        out[start : start + block] = normalize_rows(hidden[start : start + block] @ weight.T + bias)
    return out


def fit_heads(hidden: np.ndarray, targets: np.ndarray, reduced_dims: list[int]) -> dict[str, nn.Linear]:
    """Heads as the training code starts them: FC1 by least squares to ``targets``, reduced heads by PCA of FC1."""
    from jasper_rag.train.stages import init_head_least_squares, init_heads_pca

    hidden_t, targets_t = torch.from_numpy(np.asarray(hidden, np.float32)), torch.from_numpy(targets)
    full = nn.Linear(hidden.shape[1], targets.shape[1])
    init_head_least_squares(full, hidden_t, targets_t)
    reduced = {reduced_head_name(dim): nn.Linear(hidden.shape[1], dim) for dim in reduced_dims}
    init_heads_pca(list(reduced.values()), full, hidden_t)
    return {FULL_HEAD: full, **reduced}


def paired_rows(
    student: tuple[np.ndarray, np.ndarray], teachers: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Student vectors and ensemble targets (each teacher normalised, concatenated, normalised) of the texts
    cached for the student and every teacher."""
    common = set(key_rows(student[0]))
    maps = {name: key_rows(keys) for name, (keys, _) in teachers.items()}
    for rows in maps.values():
        common &= set(rows)
    order = sorted(common)
    student_rows = key_rows(student[0])
    hidden = student[1][[student_rows[key] for key in order]] if order else np.zeros((0, student[1].shape[1]))
    parts = [normalize_rows(vecs[[maps[name][key] for key in order]]) for name, (_, vecs) in teachers.items()]
    return hidden.astype(np.float32), normalize_rows(np.concatenate(parts, axis=1)) if order else np.zeros((0, 0))
