"""Search bench: tuned index types, recall against exact search, composites, bytes; bench vectors and heads."""

from __future__ import annotations

import numpy as np
import pytest

from jasper_rag.bench.search import (
    EF_SEARCH,
    TARGET_RECALL,
    Queries,
    SearchBench,
    exact_top_k,
    factories_for,
    ivf_lists,
    recall_at_k,
)
from jasper_rag.bench.vectors import (
    BenchDataError,
    closeness,
    corpus_of_size,
    fit_heads,
    paired_rows,
    perturbed_copies,
    project,
    read_cache,
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


def plan(heads, index_types) -> dict[str, list[str]]:
    return {name: list(index_types) for name in heads}


def test_every_option_is_tuned_measured_and_exact_options_have_full_recall(heads) -> None:
    bench = SearchBench(queries=30, k=10, batch_repeats=2)
    corpus = corpus_of_size(real_like(), 2500)
    queries = Queries(real_like(40, seed=5), real_like(40, seed=6))
    rows = bench.run(corpus, queries, heads, plan(heads, ["Flat", "HNSW32", "IVF,Flat", "SQ"]))
    options = {(row.head, row.index) for row in rows}
    assert {("full", "Flat"), ("d12", "HNSW32"), ("d6", "SQ"), ("full", "IVF,Flat"), ("full", "compact")} <= options
    assert {("d6->full", "funnel (Flat)"), ("d6->full", "funnel (compact)")} <= options
    by_option = {(row.head, row.index): row for row in rows}
    for head in heads:
        assert by_option[(head, "Flat")].recall_at_10 == 1.0  # against exact search with the same head
    assert by_option[("full", "compact")].recall_at_10 == 1.0
    assert by_option[("d6", "Flat")].full_overlap_at_10 < 1.0 == by_option[("full", "Flat")].full_overlap_at_10
    assert by_option[("full", "Flat")].bytes_per_vector == pytest.approx(60 * 4 + 8, rel=0.02)
    assert by_option[("full", "IVF,Flat")].params.startswith(f"IVF{ivf_lists(2500)},Flat nprobe=")
    assert by_option[("full", "HNSW32")].params.startswith("HNSW32 efSearch=")
    assert by_option[("d6", "SQ")].params in ("SQ4", "SQ8", "SQfp16")
    assert all(row.tune_recall_at_10 >= TARGET_RECALL for row in rows)  # only settings that reached the target
    assert all(row.size == 2500 and row.real_vectors == 1500 for row in rows)
    assert all(row.single_p50_ms > 0 and row.batch_ms_per_query.min > 0 for row in rows)
    (check,) = bench.compact_checks
    assert check.identical_sets == 1.0 and check.compact_dim == 25 and check.full_dim == 60


def test_tuning_takes_the_cheapest_setting_that_reaches_the_target_on_the_tuning_queries(heads) -> None:
    bench = SearchBench(queries=20, batch_repeats=1)
    corpus = corpus_of_size(real_like(), 3000)
    queries = Queries(real_like(20, seed=5), real_like(20, seed=6))
    bench.run(corpus, queries, heads, {"full": ["HNSW32", "SQ"], "d6": ["Flat"]})
    for tuning in bench.tunings:
        recalls = [recall for _, recall in tuning.tried]
        assert all(recall < TARGET_RECALL for recall in recalls[:-1])  # stopped at the first that reached it
        assert (tuning.chosen is not None) == (recalls[-1] >= TARGET_RECALL)
        if tuning.chosen is not None:
            assert tuning.chosen == tuning.tried[-1][0]
    hnsw = next(t for t in bench.tunings if t.index == "HNSW32")
    assert [setting for setting, _ in hnsw.tried] == [f"HNSW32 efSearch={ef}" for ef in EF_SEARCH][: len(hnsw.tried)]


def test_an_index_type_that_never_reaches_the_target_is_dropped(heads, monkeypatch) -> None:
    import jasper_rag.bench.search as search

    monkeypatch.setattr(search, "TARGET_RECALL", 1.01)  # unreachable: every type is dropped, even Flat
    bench = SearchBench(queries=10, batch_repeats=1)
    queries = Queries(real_like(10, seed=3), real_like(10, seed=4))
    rows = bench.run(corpus_of_size(real_like(), 1600), queries, heads, {"full": ["Flat", "SQ"], "d6": ["Flat"]})
    assert [(row.head, row.index) for row in rows] == [("full", "compact")]  # no small Flat index: no funnel
    assert {(t.head, t.index) for t in bench.tunings if t.chosen is None} == {
        ("full", "Flat"),
        ("full", "SQ"),
        ("d6", "Flat"),
    }
    sq = next(t for t in bench.tunings if t.index == "SQ")
    assert [setting for setting, _ in sq.tried] == ["SQ4", "SQ8", "SQfp16"]


def test_big_corpora_index_only_the_planned_heads(heads) -> None:
    bench = SearchBench(queries=10, batch_repeats=1)
    queries = Queries(real_like(10, seed=3), real_like(10, seed=4))
    rows = bench.run(corpus_of_size(real_like(), 1200), queries, heads, {"d6": ["Flat"]})
    assert [(row.head, row.index) for row in rows] == [
        ("d6", "Flat"),
        ("full", "compact"),
        ("d6->full", "funnel (compact)"),
    ]


def test_family_settings_grow_in_cost() -> None:
    assert ivf_lists(10_000) == 128 and ivf_lists(100_000) == 256 and ivf_lists(1_000_000) == 1024
    assert factories_for("IVF,PQ", 1152, 100_000) == ["IVF256,PQ288x4fs", "IVF256,PQ576x4fs"]
    assert factories_for("SQ", 64, 10) == ["SQ4", "SQ8", "SQfp16"]
    assert factories_for("HNSW32", 64, 10) == ["HNSW32"]


def test_exact_top_k_matches_brute_force_across_blocks(heads) -> None:
    hidden, queries = real_like(700), project(real_like(5, seed=9), heads["full"])
    expected = np.argsort(-(queries @ project(hidden, heads["full"]).T), axis=1)[:, :10]
    np.testing.assert_array_equal(exact_top_k(hidden, heads["full"], queries, 10, block=256), expected)
    assert recall_at_k(expected, expected) == 1.0
    assert recall_at_k(expected[:, ::-1], expected) == 1.0  # order does not matter for recall


def test_corpora_beyond_the_real_vectors_repeat_them_with_small_noise() -> None:
    real = real_like(3000)
    copies = perturbed_copies(real, 7000, seed=1)
    assert copies.shape == (7000, 24) and copies.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(copies, axis=1), 1, atol=1e-5)
    source = normalize_rows(real)[np.arange(7000) % 3000]
    cosines = np.sum(copies * source, axis=1)
    assert np.all(cosines < 1) and np.median(cosines) > 0.9  # near-duplicates of their sources, never equal
    nearest_other = np.sort(copies[:50] @ normalize_rows(real).T, axis=1)[:, -2]
    assert np.all(cosines[:50] > nearest_other)  # closest to the vector each one repeats
    close = closeness(real, sample=200)
    assert close.copy_to_source == pytest.approx(np.median(cosines), abs=0.02)
    assert close.real_nearest < close.copy_to_source
    corpus = corpus_of_size(real, 5000)
    assert corpus.real == 3000 and len(corpus.hidden) == 5000
    assert corpus_of_size(real, 100).real == 100
    with pytest.raises(BenchDataError, match="no real vectors"):
        perturbed_copies(real[:0], 5)


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


def test_the_report_lists_tuned_settings_dropped_types_and_the_fastest_full_head_index() -> None:
    from jasper_rag.bench.report import dropped_text, fastest_text, search_table

    def row(head: str, dim: int, index: str, params: str, p50: float) -> dict:
        spread = {"median": 1.0, "min": 1.0, "max": 1.0}
        return {
            "size": 100, "real_vectors": 50, "head": head, "dim": dim, "index": index, "params": params,
            "build_s": 0.1, "bytes_per_vector": 4.0, "recall_at_10": 0.97, "full_overlap_at_10": 0.5,
            "tune_recall_at_10": 0.96, "single_p50_ms": p50, "single_p95_ms": 2 * p50, "batch_ms_per_query": spread,
        }  # fmt: skip

    payload = {
        "search": [
            row("full", 60, "Flat", "Flat", 2.0),
            row("full", 60, "HNSW32", "HNSW32 efSearch=64", 0.5),
            row("full", 60, "compact", "Flat over 25-d", 0.1),
            row("d6", 6, "Flat", "Flat", 0.05),
        ],
        "search_tuning": [
            {"size": 100, "head": "full", "index": "IVF,PQ", "chosen": None, "tried": [["a", 0.4], ["b", 0.6]]},
            {"size": 100, "head": "full", "index": "HNSW32", "chosen": "HNSW32 efSearch=64", "tried": []},
        ],
        "search_target": 0.95,
    }
    assert "| full | 60 | HNSW32 | HNSW32 efSearch=64 | 0.970 | 0.500 |" in search_table(payload, 100)
    assert fastest_text(payload, 100).startswith("Fastest full-head store index in the table: HNSW32 efSearch=64")
    assert dropped_text(payload, 100).endswith("IVF,PQ on full (best: b, 0.600)")
    assert fastest_text(payload, 7) is None and dropped_text(payload, 7) is None
