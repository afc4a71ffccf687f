"""JasperEncoder on a tiny random BERT: shapes, normalisation, heads, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jasper_rag.encoder import CARD_FILE, POOLED, JasperEncoder, load_encoder
from jasper_rag.teachers import TeacherEnsemble, model_teachers

TEXTS = ["the cat sat on the mat", "protein cells and cancer risk", "paris is the capital of france", "a"]


def test_encode_shapes_and_unit_norm(tiny_encoder: JasperEncoder) -> None:
    for dim, expected in ((None, 32), (48, 48), (16, 16), (8, 8)):
        vectors = tiny_encoder.encode(TEXTS, dim=dim, batch_size=3)
        assert vectors.shape == (4, expected)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_unnormalized_and_empty(tiny_encoder: JasperEncoder) -> None:
    raw = tiny_encoder.encode(TEXTS, dim=48, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert tiny_encoder.encode([], dim=16).shape == (0, 16)


def test_order_is_kept_whatever_the_batching(tiny_encoder: JasperEncoder) -> None:
    together = tiny_encoder.encode(TEXTS, dim=16, batch_size=4)
    one_by_one = np.concatenate([tiny_encoder.encode([t], dim=16) for t in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_pool_texts_matches_one_padded_batch_with_gradients(tiny_encoder: JasperEncoder) -> None:
    texts = [*TEXTS, "cancer " * 30, "the mat"]
    tiny_encoder.eval()  # no dropout: the two paths must agree exactly
    one_batch = tiny_encoder.pool(**tiny_encoder.tokenize(texts))
    chunked = tiny_encoder.pool_texts(texts, chunk_size=2)
    torch.testing.assert_close(chunked, one_batch, atol=1e-5, rtol=1e-5)
    chunked.sum().backward()
    assert any(p.grad is not None for p in tiny_encoder.backbone.parameters())


def test_head_selection(tiny_encoder: JasperEncoder) -> None:
    assert tiny_encoder.dims == [32, 48, 16, 8]
    assert tiny_encoder.head_for_dim(None) == POOLED
    assert tiny_encoder.head_for_dim(32) == POOLED
    assert tiny_encoder.head_for_dim(16) == "d16"
    with pytest.raises(ValueError, match="no head of dimension 7"):
        tiny_encoder.head_for_dim(7)
    view = tiny_encoder.at(8)
    assert view.dim == 8 and view.name == "tiny-bert@d8"
    np.testing.assert_allclose(view.encode(TEXTS), tiny_encoder.encode(TEXTS, dim=8), atol=1e-6)


def test_save_load_round_trip(tiny_encoder: JasperEncoder, tmp_path) -> None:
    folder = tiny_encoder.save(tmp_path / "model")
    loaded = load_encoder(folder)
    assert loaded.config.heads == {"full": 48, "d16": 16, "d8": 8}
    assert loaded.fingerprint() == tiny_encoder.fingerprint()
    for dim in (None, 48, 16, 8):
        np.testing.assert_array_equal(loaded.encode(TEXTS, dim=dim), tiny_encoder.encode(TEXTS, dim=dim))
    # saving again over an existing folder replaces it atomically and keeps it loadable
    tiny_encoder.add_head("d4", 4)
    tiny_encoder.save(folder)
    assert load_encoder(folder).dims == [32, 48, 16, 8, 4]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_saving_over_a_model_folder_keeps_its_model_card(tiny_encoder: JasperEncoder, tmp_path) -> None:
    # calibrate-faq, fit-heads and train-vision save over a trained model: its card (and use terms) must stay
    folder = tiny_encoder.save(tmp_path / "model")
    card = "# jasper-sota\n\nGemma Terms of Use apply.\n"
    (folder / CARD_FILE).write_text(card)
    tiny_encoder.config.extra["faq"] = {"threshold": 0.7}
    tiny_encoder.save(folder)
    assert (folder / CARD_FILE).read_text() == card
    assert load_encoder(folder).config.extra["faq"] == {"threshold": 0.7}
    assert not (tiny_encoder.save(tmp_path / "fresh") / CARD_FILE).exists()  # no card is made up


def test_fingerprint_changes_with_weights(tiny_encoder: JasperEncoder) -> None:
    before = tiny_encoder.fingerprint()
    with __import__("torch").no_grad():
        tiny_encoder.heads["d8"].bias.add_(1.0)
    assert tiny_encoder.fingerprint() != before


def test_ensemble_normalises_each_teacher_then_the_concatenation(tmp_path) -> None:
    from tests.conftest import make_tiny_encoder

    first, second = make_tiny_encoder(tmp_path, seed=1).at(None), make_tiny_encoder(tmp_path, seed=2).at(None)
    ensemble = TeacherEnsemble([first, second])
    vectors = ensemble.encode(TEXTS)
    assert ensemble.dim == 64 and vectors.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # each half is the teacher's unit vector scaled by 1/sqrt(2)
    np.testing.assert_allclose(vectors[:, :32] * np.sqrt(2), first.encode(TEXTS), atol=1e-5)
    with pytest.raises(ValueError):
        TeacherEnsemble([])


def test_model_teachers_come_from_the_models_own_recipe_record(tiny_encoder: JasperEncoder, tmp_path) -> None:
    default = ["mpnet-base", "minilm-l6"]
    assert model_teachers("minilm-l6") == default  # a packaged start model: the default recipe's
    folder = tiny_encoder.save(tmp_path / "model")
    assert model_teachers(folder) == default  # no record
    tiny_encoder.config.extra["recipe"] = {"name": "mine", "teachers": ["minilm-l6"]}
    assert model_teachers(tiny_encoder.save(folder)) == ["minilm-l6"]
    tiny_encoder.config.extra["recipe"] = "quick"  # a record naming a packaged recipe (models saved before)
    assert model_teachers(tiny_encoder.save(folder)) == default


def test_settings_are_read_at_load_time_not_by_encode(tiny_encoder: JasperEncoder, tmp_path, monkeypatch) -> None:
    import jasper_rag.encoder as encoder_module
    from jasper_rag.config import get_settings

    folder = tiny_encoder.save(tmp_path / "model")
    monkeypatch.setenv("JASPER_BATCH_SIZE", "3")
    get_settings.cache_clear()
    try:
        loaded = load_encoder(folder, device="cpu")
    finally:
        get_settings.cache_clear()
    assert loaded.batch_size == 3 and tiny_encoder.batch_size == 32
    monkeypatch.setattr(encoder_module, "get_settings", lambda: pytest.fail("encode read the settings"))
    np.testing.assert_allclose(loaded.encode(TEXTS, dim=16), tiny_encoder.encode(TEXTS, dim=16), atol=1e-6)


def count_calls(module: torch.nn.Module, method: str, monkeypatch) -> list[int]:
    """Wrap ``module.<method>`` so that every call appends 1 to the returned list."""
    calls: list[int] = []
    original = getattr(module, method)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, method, counted)
    return calls


def test_encode_heads_gives_every_heads_encode_from_one_backbone_pass(tiny_encoder: JasperEncoder, monkeypatch) -> None:
    calls = count_calls(tiny_encoder.backbone, "forward", monkeypatch)
    vectors = tiny_encoder.encode_heads(TEXTS, batch_size=len(TEXTS))
    assert len(calls) == 1  # four outputs, one pass
    assert list(vectors) == [POOLED, "full", "d16", "d8"]
    for name, dim in ((POOLED, None), ("full", 48), ("d16", 16), ("d8", 8)):
        np.testing.assert_allclose(vectors[name], tiny_encoder.encode(TEXTS, dim=dim, batch_size=2), atol=1e-6)
    assert len(calls) == 1 + 4 * 2  # per-head encode: a pass per head (two batches each)
    raw = tiny_encoder.encode_heads(TEXTS, heads=["d8", POOLED], normalize=False)
    assert list(raw) == ["d8", POOLED]
    np.testing.assert_allclose(raw["d8"], tiny_encoder.encode(TEXTS, dim=8, normalize=False), atol=1e-6)
    batches: list[int] = []
    tiny_encoder.encode_heads(TEXTS, heads=["d16"], batch_size=3, on_batch=batches.append)
    assert batches == [3, 1]
    assert tiny_encoder.encode_heads([], heads=["d16", POOLED])["d16"].shape == (0, 16)
    with pytest.raises(ValueError, match="no head named"):
        tiny_encoder.encode_heads(TEXTS, heads=["d7"])
    with pytest.raises(ValueError, match="names the pooled vector"):
        tiny_encoder.add_head(POOLED, 4)
