"""Length-sorted encoding batches: the order they run in, and vectors equal to unsorted batches in input order."""

from __future__ import annotations

import numpy as np
import pytest

from jasper_rag.batching import inverse, sorted_batches, token_lengths

TEXTS = [
    "cat",
    "the cat sat on the mat with the dog and the fire in the house by the river",
    "protein cells",
    "a study of cancer risk in genes",
    "paris is the capital city of france and the river runs fast",
    "red apple",
    "the dog sat on the sofa",
]


def test_batches_run_longest_first_and_cover_every_row_once() -> None:
    lengths = [3, 9, 1, 9, 5]
    batches = list(sorted_batches(lengths, 2))
    assert [batch.tolist() for batch in batches] == [[1, 3], [4, 0], [2]]  # ties keep input order
    order = np.concatenate(batches)
    rows = np.arange(100, 105)[order]
    assert rows[inverse(order)].tolist() == [100, 101, 102, 103, 104]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        list(sorted_batches([1, 2], 0))


def test_token_lengths_count_special_tokens_and_stop_at_max_length(tiny_encoder) -> None:
    lengths = token_lengths(tiny_encoder.tokenizer, ["cat", "the cat sat on the mat"], 5)
    assert lengths.tolist() == [3, 5]  # [CLS] cat [SEP]; truncated to 5
    assert token_lengths(tiny_encoder.tokenizer, [], 5).shape == (0,)


def test_sorted_batches_give_the_vectors_of_unsorted_batches_in_input_order(tiny_encoder) -> None:
    sorted_heads = tiny_encoder.encode_heads(TEXTS, batch_size=3)
    # the simple way: batches of 3 in arrival order, each padded to its own longest text
    parts = [tiny_encoder.encode_heads(TEXTS[start : start + 3], batch_size=3) for start in range(0, len(TEXTS), 3)]
    alone = [tiny_encoder.encode_heads([text], batch_size=1) for text in TEXTS]
    assert list(sorted_heads) == ["pooled", "full", "d16", "d8"]
    for name, vectors in sorted_heads.items():
        assert vectors.shape[0] == len(TEXTS)
        np.testing.assert_allclose(vectors, np.vstack([part[name] for part in parts]), atol=1e-5)
        np.testing.assert_allclose(vectors, np.vstack([one[name] for one in alone]), atol=1e-5)


def test_batches_are_padded_only_to_their_own_longest_text(tiny_encoder, monkeypatch) -> None:
    widths: list[int] = []
    pool = tiny_encoder.pool

    def watched(input_ids, attention_mask, **kwargs):
        widths.append(int(input_ids.shape[1]))
        return pool(input_ids, attention_mask, **kwargs)

    monkeypatch.setattr(tiny_encoder, "pool", watched)
    tiny_encoder.encode_heads(TEXTS, batch_size=2)
    lengths = token_lengths(tiny_encoder.tokenizer, TEXTS, tiny_encoder.config.max_length)
    expected = [int(lengths[batch].max()) for batch in sorted_batches(lengths, 2)]
    assert widths == expected and widths == sorted(widths, reverse=True)
