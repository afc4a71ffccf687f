"""Compact exact storage: (hidden+1)-d vectors that rank exactly like the normalised full head."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from jasper_rag.bench.compact_index import CompactFullHead, CompactFullHeadIndex
from jasper_rag.embedding import normalize_rows
from jasper_rag.search.funnel import funnel_search
from jasper_rag.store import VectorIndex

TEXTS = [
    "the cat sat on the mat",
    "a dog on the sofa",
    "protein cells and cancer risk in a study",
    "paris is the capital city of france",
    "water fire earth tree house",
    "fast car on the road",
    "search index query answer question",
    "red apple banana fruit",
    "music data model",
    "the river in the city",
]


def flat_index(vectors: np.ndarray) -> VectorIndex:
    index = VectorIndex.create(vectors.shape[1], "Flat")
    index.add(np.arange(len(vectors)), vectors)
    return index


def test_encoder_hidden_states_rank_exactly_like_the_full_head(tiny_encoder) -> None:
    hidden = tiny_encoder.encode(TEXTS, dim=None, normalize=False)
    full = tiny_encoder.encode(TEXTS, dim=48)
    compact = CompactFullHeadIndex.create(CompactFullHead.from_head(tiny_encoder.heads["full"]))
    compact.add(np.arange(len(TEXTS)), hidden)
    expected_scores, expected_ids = flat_index(full).search(full, 5)
    scores, ids = compact.search(full, 5)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    np.testing.assert_allclose(compact.reconstruct(np.array([3, 0])), full[[3, 0]], atol=1e-5)
    assert compact.head.dim == tiny_encoder.hidden_size + 1 and compact.dim == 48


def test_a_384_to_1152_head_is_stored_in_a_third_of_the_bytes() -> None:
    rng = np.random.default_rng(0)
    head = nn.Linear(384, 1152)
    hidden = rng.standard_normal((2000, 384)).astype(np.float32) + 0.3
    full = normalize_rows(hidden @ head.weight.detach().numpy().T + head.bias.detach().numpy())
    queries = full[:50] + 0.05 * rng.standard_normal((50, 1152)).astype(np.float32)
    compact = CompactFullHeadIndex.create(CompactFullHead.from_head(head))
    compact.add(np.arange(2000), hidden)
    reference = flat_index(full)
    np.testing.assert_array_equal(compact.search(queries, 10)[1], reference.search(queries, 10)[1])
    compact_bytes = compact.head.dim * 4 + 8
    assert compact.head.dim == 385
    assert compact_bytes / (1152 * 4 + 8) == pytest.approx(385 / 1152, abs=0.002)


def test_a_narrow_head_keeps_its_own_rank_and_stays_exact() -> None:
    rng = np.random.default_rng(1)
    weight, bias = rng.standard_normal((16, 32)), rng.standard_normal(16)
    head = CompactFullHead.from_linear(weight, bias)
    assert head.dim == 16  # rank of [W b] is at most the head's output size
    hidden = rng.standard_normal((200, 32))
    full = normalize_rows(hidden @ weight.T + bias)
    np.testing.assert_allclose(head.compress(hidden) @ head.queries(full[:7]).T, full @ full[:7].T, atol=1e-5)


def test_funnel_search_can_rescore_from_the_compact_index(tiny_encoder) -> None:
    hidden = tiny_encoder.encode(TEXTS, dim=None, normalize=False)
    full, small = tiny_encoder.encode(TEXTS, dim=48), tiny_encoder.encode(TEXTS, dim=8)
    compact = CompactFullHeadIndex.create(CompactFullHead.from_head(tiny_encoder.heads["full"]))
    compact.add(np.arange(len(TEXTS)), hidden)
    small_index = flat_index(small)
    with_flat = funnel_search(small_index, flat_index(full), small[:3], full[:3], k=4, shortlist=6)
    with_compact = funnel_search(small_index, compact, small[:3], full[:3], k=4, shortlist=6)
    np.testing.assert_array_equal(with_compact[1], with_flat[1])
    np.testing.assert_allclose(with_compact[0], with_flat[0], atol=1e-5)


def test_save_and_load_round_trip(tmp_path, tiny_encoder) -> None:
    hidden = tiny_encoder.encode(TEXTS, dim=None, normalize=False)
    full = tiny_encoder.encode(TEXTS, dim=48)
    compact = CompactFullHeadIndex.create(CompactFullHead.from_head(tiny_encoder.heads["full"]))
    compact.add(np.arange(100, 100 + len(TEXTS)), hidden)
    compact.save(tmp_path / "compact")
    loaded = CompactFullHeadIndex.load(tmp_path / "compact")
    np.testing.assert_array_equal(loaded.search(full, 3)[1], compact.search(full, 3)[1])
    assert loaded.ntotal == len(TEXTS)


def test_wrong_shapes_are_refused(tiny_encoder) -> None:
    head = CompactFullHead.from_head(tiny_encoder.heads["full"])
    with pytest.raises(ValueError, match="hidden states of size 32"):
        head.compress(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="full-head queries of size 48"):
        head.queries(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="index dimension"):
        CompactFullHeadIndex(head, VectorIndex.create(7))
