"""Store heads: one forward pass gives every head the same vectors as ``encoder.encode(dim=...)``."""

from __future__ import annotations

import numpy as np

from jasper_rag.store import POOLED, embed_heads, encoder_heads, model_identity
from tests.conftest import make_tiny_encoder

TEXTS = ["the cat sat on the mat", "a", "protein cell gene cancer risk study water fire earth tree"]


def test_embed_heads_matches_encode_for_every_head(tiny_encoder):
    heads = encoder_heads(tiny_encoder)
    assert heads == {"full": 48, "d16": 16, "d8": 8}
    batches = []
    vectors = embed_heads(tiny_encoder, TEXTS, batch_size=2, on_batch=batches.append)
    assert batches == [2, 1]
    for head, dim in heads.items():
        expected = tiny_encoder.encode(TEXTS, dim=dim)
        np.testing.assert_allclose(vectors[head], expected, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(vectors[head], axis=1), 1.0, atol=1e-5)


def test_an_encoder_without_heads_has_one_pooled_index(tmp_path):
    encoder = make_tiny_encoder(tmp_path)
    assert encoder_heads(encoder) == {POOLED: 32}
    vectors = embed_heads(encoder, TEXTS)
    np.testing.assert_allclose(vectors[POOLED], encoder.encode(TEXTS, dim=None), atol=1e-5)
    identity = model_identity(encoder)
    assert identity.fingerprint == encoder.fingerprint() and identity.heads == {POOLED: 32}
