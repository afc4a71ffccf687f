"""The vision tower: shapes through every head, caption-free start, save/load round trip."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jasper_rag.encoder import load_encoder
from jasper_rag.vision.backbone import FEATURE_DIM, NUM_CLASSES
from jasper_rag.vision.classes import class_prompts
from jasper_rag.vision.images import to_pixels
from jasper_rag.vision.tower import VisionTower, caption_free_tower
from tests.conftest import TINY_WORDS, make_tiny_encoder

CLASS_NAMES = [f"{TINY_WORDS[i % len(TINY_WORDS)]} {TINY_WORDS[(i * 7) % len(TINY_WORDS)]}" for i in range(NUM_CLASSES)]


def random_images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40 + 9 * i, 50, 3), dtype=np.uint8)) for i in range(count)]


@pytest.fixture(scope="module")
def vision_encoder(tmp_path_factory):
    """A tiny text encoder (heads 48, 16, 8) with an untrained caption-free tower; built once (tests copy to change)."""
    encoder = make_tiny_encoder(tmp_path_factory.mktemp("tiny"), {"full": 48, "d16": 16, "d8": 8})
    torch.manual_seed(0)
    encoder.attach_vision(caption_free_tower(encoder, CLASS_NAMES, pretrained=False))
    return encoder


def test_encode_images_in_every_head_space(vision_encoder) -> None:
    images = random_images(3)
    vectors = vision_encoder.encode_images(images, dim=16, batch_size=2)
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for dim, expected in ((None, 32), (48, 48), (8, 8)):
        assert vision_encoder.encode_images(images[:1], dim=dim).shape == (1, expected)
        assert vision_encoder.encode(["a cat"], dim=dim).shape == (1, expected)
    assert vision_encoder.encode_images([], dim=16).shape == (0, 16)
    with pytest.raises(ValueError, match="no head of dimension"):
        vision_encoder.encode_images(images, dim=5)


def test_encode_images_without_tower_is_a_clear_error(tiny_encoder) -> None:
    with pytest.raises(ValueError, match="no vision tower"):
        tiny_encoder.encode_images(random_images(1))


def test_caption_free_start_mixes_class_text_vectors(vision_encoder) -> None:
    tower: VisionTower = vision_encoder.vision
    pooled = vision_encoder.encode(class_prompts(CLASS_NAMES), dim=None, normalize=False)
    np.testing.assert_allclose(tower.projection.class_vectors.detach().numpy(), pooled, atol=1e-5)
    with torch.no_grad():
        features = tower.features(to_pixels(random_images(2)))
        probabilities = torch.softmax(tower.backbone.logits(features), dim=-1)
        assert features.shape == (2, FEATURE_DIM)
        torch.testing.assert_close(tower.project(features), probabilities @ torch.from_numpy(pooled))


def test_save_load_round_trip_keeps_images_and_text(vision_encoder, tmp_path: Path) -> None:
    vision_encoder = copy.deepcopy(vision_encoder)
    images = random_images(2)
    with torch.no_grad():
        vision_encoder.vision.projection.residual.weight.normal_()  # a "trained" projection
    before_text_fingerprint = vision_encoder.fingerprint()
    expected = vision_encoder.encode_images(images, dim=16)
    vision_encoder.save(tmp_path / "model")
    loaded = load_encoder(tmp_path / "model")
    assert loaded.vision is not None and loaded.config.extra["vision"]["backbone"] == "efficientnet-lite0"
    np.testing.assert_allclose(loaded.encode_images(images, dim=16), expected, atol=1e-5)
    np.testing.assert_allclose(loaded.encode(["red apple"], dim=48), vision_encoder.encode(["red apple"], dim=48))
    assert loaded.fingerprint() == before_text_fingerprint


def test_attaching_a_tower_keeps_the_text_fingerprint(tiny_encoder) -> None:
    before = tiny_encoder.fingerprint()
    tiny_encoder.attach_vision(VisionTower("efficientnet-lite0", tiny_encoder.hidden_size, pretrained=False))
    assert tiny_encoder.fingerprint() == before


def test_backbone_stays_in_eval_mode(vision_encoder) -> None:
    vision_encoder.vision.train()
    assert vision_encoder.vision.projection.training and not vision_encoder.vision.backbone.training
    vision_encoder.eval()


def test_encode_image_heads_runs_the_tower_once_for_every_head(vision_encoder, monkeypatch) -> None:
    from tests.test_encoder import count_calls

    images = random_images(3)
    calls = count_calls(vision_encoder.vision, "features", monkeypatch)
    vectors = vision_encoder.encode_image_heads(images, batch_size=4)
    assert len(calls) == 1 and list(vectors) == ["pooled", "full", "d16", "d8"]
    for name, dim in (("pooled", None), ("full", 48), ("d16", 16), ("d8", 8)):
        np.testing.assert_allclose(vectors[name], vision_encoder.encode_images(images, dim=dim), atol=1e-6)
    assert len(calls) == 1 + 4  # per-head encode_images: a tower pass per head
    assert vision_encoder.encode_image_heads([], heads=["d8"])["d8"].shape == (0, 8)
