"""Search bench: recall against exact full-head search, composites, bytes; bench vectors and heads."""

from __future__ import annotations

import numpy as np
import pytest

from jasper_rag.bench.search import SearchBench, exact_top_k, recall_at_k
from jasper_rag.bench.vectors import (
    BenchDataError,
    corpus_of_size,
    fit_heads,
    paired_rows,
    project,
    read_cache,
    synthetic_like,
    without_texts,
)
from jasper_rag.embedding import normalize_rows
from jasper_rag.vector_cache import CachedEncoder


def real_like(count: int = 1500, dim: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return normalize_rows(rng.standard_normal((count, dim)) * np.linspace(0.2, 2, dim) + 0.5)


@pytest.fixture(scope="module")
def heads():
    hidden = real_like()
    targets = normalize_rows(np.tanh(hidden @ np.random.default_rng(2).standard_normal((24, 60)))).astype(np.float32)
    return fit_heads(hidden, targets, [12, 6])


def test_every_option_is_measured_and_exact_options_have_full_recall(heads) -> None:
    bench = SearchBench(queries=30, k=10, shortlist=50, batch_repeats=2)
    corpus = corpus_of_size(real_like(), 2500)
    rows = bench.run(corpus, real_like(40, seed=5), heads, ["Flat", "HNSW32", "SQ8"])
    options = {(row.head, row.index) for row in rows}
    assert {("full", "Flat"), ("d12", "HNSW32"), ("d6", "SQ8"), ("full", "compact")} <= options
    assert {("d6->full", "funnel (Flat)"), ("d6->full", "funnel (compact)")} <= options
    by_option = {(row.head, row.index): row for row in rows}
    assert by_option[("full", "Flat")].recall_at_10 == 1.0
    assert by_option[("full", "compact")].recall_at_10 == 1.0
    assert by_option[("full", "Flat")].bytes_per_vector == pytest.approx(60 * 4 + 8, rel=0.02)
    assert by_option[("d6->full", "funnel (Flat)")].recall_at_10 >= by_option[("d6", "Flat")].recall_at_10
    assert all(row.size == 2500 and row.real_vectors == 1500 for row in rows)
    assert all(row.single_p50_ms > 0 and row.batch_ms_per_query.min > 0 for row in rows)
    (check,) = bench.compact_checks
    assert check.identical_sets == 1.0 and check.compact_dim == 25 and check.full_dim == 60


def test_big_corpora_index_only_the_chosen_heads(heads) -> None:
    bench = SearchBench(queries=10, batch_repeats=1)
    rows = bench.run(corpus_of_size(real_like(), 1200), real_like(10, seed=3), heads, ["Flat"], indexed_heads=["d6"])
    assert [(row.head, row.index) for row in rows] == [
        ("d6", "Flat"),
        ("full", "compact"),
        ("d6->full", "funnel (compact)"),
    ]


def test_exact_top_k_matches_brute_force_across_blocks(heads) -> None:
    hidden, queries = real_like(700), project(real_like(5, seed=9), heads["full"])
    expected = np.argsort(-(queries @ project(hidden, heads["full"]).T), axis=1)[:, :10]
    np.testing.assert_array_equal(exact_top_k(hidden, heads["full"], queries, 10, block=256), expected)
    assert recall_at_k(expected, expected) == 1.0
    assert recall_at_k(expected[:, ::-1], expected) == 1.0  # order does not matter for recall


def test_synthetic_vectors_match_the_real_statistics() -> None:
    real = real_like(3000)
    fake = synthetic_like(real, 20000, seed=1)
    assert fake.shape == (20000, 24) and fake.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fake, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(fake.mean(axis=0), real.mean(axis=0), atol=0.03)
    corpus = corpus_of_size(real, 5000)
    assert corpus.real == 3000 and len(corpus.hidden) == 5000
    assert corpus_of_size(real, 100).real == 100
    with pytest.raises(BenchDataError, match="more than 24 real vectors"):
        synthetic_like(real[:10], 5)


class FakeEncoder:
    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def encode(self, texts, batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        rng = np.random.default_rng(len(texts) + self.dim)
        return normalize_rows(rng.standard_normal((len(texts), self.dim)))


def test_cached_vectors_are_read_and_paired_by_text(tmp_path) -> None:
    student, teacher = CachedEncoder(FakeEncoder("s", 8), tmp_path), CachedEncoder(FakeEncoder("t", 4), tmp_path)
    student.fill(["a", "b", "c", "d"], chunk_size=2)
    student.fill(["a", "e"])  # "a" is already there: not stored twice
    teacher.fill(["c", "a", "z"])
    keys, vectors = read_cache(student.folder)
    assert vectors.shape == (5, 8)
    assert len(without_texts(keys, vectors, ["a", "b"])) == 3
    hidden, targets = paired_rows((keys, vectors), {"t": read_cache(teacher.folder)})
    assert hidden.shape == (2, 8) and targets.shape == (2, 4)
    expected = {tuple(np.round(v, 5)) for v in student.encode(["a", "c"])}
    assert {tuple(np.round(v, 5)) for v in hidden} == expected
    assert read_cache(tmp_path / "missing")[1].shape == (0, 0)
