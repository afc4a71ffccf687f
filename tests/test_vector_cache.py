"""The on-disk vector cache: hits, misses, resume after a crash, no pickle."""

from __future__ import annotations

import numpy as np
import pytest

from jasper_rag.vector_cache import CachedEncoder, encoder_key


class CountingEncoder:
    """A deterministic fake encoder that counts the texts it embeds."""

    name = "counting"
    dim = 4

    def __init__(self, fail_after: int | None = None) -> None:
        self.seen = 0
        self.fail_after = fail_after

    def encode(self, texts, batch_size=32, show_progress=False):
        if self.fail_after is not None and self.seen + len(texts) > self.fail_after:
            raise KeyboardInterrupt("simulated interrupt")
        self.seen += len(texts)
        return np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts], dtype=np.float32)


TEXTS = [f"text number {i} {'a' * (i % 5)}" for i in range(25)]


def test_each_text_is_embedded_once(tmp_path) -> None:
    inner = CountingEncoder()
    cache = CachedEncoder(inner, tmp_path)
    first = cache.encode([*TEXTS, TEXTS[0]])
    assert inner.seen == 25
    np.testing.assert_array_equal(first[0], first[-1])
    again = CachedEncoder(inner, tmp_path).encode(TEXTS[::-1])
    assert inner.seen == 25
    np.testing.assert_array_equal(again, first[:25][::-1])


def test_interrupted_fill_resumes_from_finished_chunks(tmp_path) -> None:
    crashing = CachedEncoder(CountingEncoder(fail_after=10), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        crashing.fill(TEXTS, chunk_size=4)
    resumed_inner = CountingEncoder()
    resumed = CachedEncoder(resumed_inner, tmp_path)
    assert len(resumed) == 8  # two finished chunks of 4 survived
    resumed.encode(TEXTS)
    assert resumed_inner.seen == 17
    assert not list(tmp_path.rglob("*.tmp"))


def test_encoder_key_uses_fingerprint(tiny_encoder) -> None:
    view = tiny_encoder.at(16)
    assert encoder_key(view) == f"tiny-bert@d16-{tiny_encoder.fingerprint()}-d16"
    assert encoder_key(CountingEncoder()) == "counting"
