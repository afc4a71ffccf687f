"""Stage 4: only the vision projection trains; a trained tower retrieves an image's own caption."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jasper_rag.config import get_settings
from jasper_rag.train.stage4_vision import Stage4Config, train_stage4
from jasper_rag.vision.data import SKIMAGE_CAPTIONS, CaptionedImage, read_image_set, skimage_photos
from jasper_rag.vision.images import load_image
from jasper_rag.vision.tower import caption_free_tower
from tests.test_vision_tower import CLASS_NAMES


@pytest.fixture(scope="session")
def imagenet_names() -> list[str]:
    """The ImageNet class names from the project's cache (fetched once), before any test moves the cache."""
    from jasper_rag.vision.classes import imagenet_class_names

    try:
        return imagenet_class_names()
    except RuntimeError as err:
        pytest.skip(f"ImageNet class names unavailable: {err}")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch):
    """Point the feature / run caches at a temporary folder for one test."""
    monkeypatch.setenv("JASPER_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    yield tmp_path / "cache"
    get_settings.cache_clear()


def write_image_set(folder: Path, items: list[tuple[Image.Image, str]]) -> list[CaptionedImage]:
    """Store images + an ``index.jsonl`` the way ``make images`` does (all in the train split)."""
    records = []
    for number, (image, caption) in enumerate(items):
        file = f"files/test/{number}.png"
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / file)
        records.append(CaptionedImage(file, caption, "", "test", "test", "train"))
    (folder / "index.jsonl").write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))
    return records


def test_stage4_updates_only_the_projection(tiny_encoder, tmp_path: Path, cache_dir: Path) -> None:
    torch.manual_seed(0)
    tiny_encoder.attach_vision(caption_free_tower(tiny_encoder, CLASS_NAMES, pretrained=False))
    rng = np.random.default_rng(0)
    captions = ["a red apple", "a blue car", "a dog on a sofa", "the river in paris", "fast music", "a tree"]
    images = [Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)) for _ in captions]
    records = write_image_set(tmp_path / "images", list(zip(images, captions, strict=True)))
    before = {name: tensor.clone() for name, tensor in tiny_encoder.state_dict().items()}

    losses = train_stage4(
        tiny_encoder, records, tmp_path / "images", tmp_path / "run", Stage4Config(lr=1e-2, batch_size=4, max_steps=3)
    )

    assert {"total", "full/total", "d16/total", "d8/total", "full/cos"} <= set(losses)
    after = tiny_encoder.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("vision.projection.") for name in changed)
    assert all(not p.requires_grad for n, p in tiny_encoder.named_parameters() if not n.startswith("vision.projection"))
    assert (tmp_path / "run" / "log.jsonl").is_file()
    assert any((cache_dir / "vectors").iterdir())  # backbone features cached once


@pytest.mark.integration
def test_trained_tower_retrieves_a_photos_own_caption(
    imagenet_names: list[str], tmp_path: Path, cache_dir: Path
) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from jasper_rag.encoder import load_encoder
    from jasper_rag.weights import WeightsNotInstalledError

    photos = [raw for raw in skimage_photos() if raw.path.name in SKIMAGE_CAPTIONS][:8]
    if len(photos) < 4:
        pytest.skip("scikit-image sample photos not found")
    try:
        encoder = load_encoder("minilm-l6")
    except WeightsNotInstalledError as err:
        pytest.skip(str(err))
    encoder.attach_vision(caption_free_tower(encoder, imagenet_names))
    records = write_image_set(tmp_path / "images", [(load_image(raw.path), raw.caption) for raw in photos])
    assert read_image_set(tmp_path / "images", split="train") == records

    train_stage4(encoder, records, tmp_path / "images", tmp_path / "run", Stage4Config(lr=3e-3, epochs=150))

    unrelated = ["the stock market fell sharply on monday", "a recipe for vegetable soup", "rules of chess openings"]
    captions = [r.caption for r in records] + unrelated
    text = encoder.encode(captions)
    images = encoder.encode_images([load_image(tmp_path / "images" / r.file) for r in records])
    similarity = images @ text.T
    assert (similarity.argmax(axis=1) == np.arange(len(records))).all(), similarity.round(2)


def test_train_vision_if_missing_leaves_an_aligned_model_alone(tiny_encoder, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jasper_rag.cli import app
    from jasper_rag.encoder import CONFIG_FILE
    from jasper_rag.train.stage4_vision import STAGE4_KEY, is_aligned

    folder = tiny_encoder.save(tmp_path / "model")
    assert not is_aligned(folder) and not is_aligned(tmp_path / "absent")
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["extra"][STAGE4_KEY] = {"run": "stage4-test", "images": 2, "epochs": 1.0}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    assert is_aligned(folder)
    result = CliRunner().invoke(app, ["train-vision", str(folder), "--if-missing", "--epochs", "1"])
    assert result.exit_code == 0 and "nothing to do" in result.output, result.output
