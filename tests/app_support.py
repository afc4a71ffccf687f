"""A tiny model and a small ingested store in a tmp folder, wired to the app through ``JASPER_*`` variables."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jasper_rag.config import get_settings
from jasper_rag.encoder import load_encoder
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.search.faq import FAQ_KEY
from jasper_rag.store import Store
from jasper_rag.vision.backbone import NUM_CLASSES
from jasper_rag.vision.tower import caption_free_tower
from tests.conftest import TINY_WORDS, make_tiny_encoder

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
TINY_HEADS = {"full": 48, "d16": 16, "d8": 8}
# A tiny random model only answers (near-)exact questions: their cosine to question + answer is 0.98-0.99.
FAQ_THRESHOLD = 0.97
DOCS = {
    "cats.txt": "the cat sat on the mat and the dog sat on the sofa",
    "paris.md": "paris is the capital city of france by the river",
    "cells.txt": "protein cells and cancer risk in a gene study",
}
CLASS_NAMES = [f"{TINY_WORDS[i % len(TINY_WORDS)]} {TINY_WORDS[(i * 7) % len(TINY_WORDS)]}" for i in range(NUM_CLASSES)]
FAQ_CSV = "question,answer\nwhat is the capital of france,paris is the capital\nis the dog fast,yes the dog is fast\n"


def configure(monkeypatch: pytest.MonkeyPatch, root: Path, model: str | Path, **extra: str) -> None:
    """Point every setting the app reads at ``root`` (and the model at ``model``)."""
    values = {
        "JASPER_MODEL": str(model),
        "JASPER_INDEXES_DIR": str(root / "indexes"),
        "JASPER_UPLOADS_DIR": str(root / "uploads"),
        "JASPER_REPORTS_DIR": str(root / "reports"),
        "JASPER_CHUNK_TOKENS": "24",
        "JASPER_CHUNK_OVERLAP": "4",
        "JASPER_BATCH_SIZE": "8",
        "JASPER_DEVICE": "cpu",
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def save_tiny_model(folder: Path, calibrated: bool = True, vision: bool = False) -> Path:
    """A tiny random encoder with three heads (an FAQ threshold, a random vision tower) saved as a model folder."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder = make_tiny_encoder(folder, TINY_HEADS)
    if calibrated:
        encoder.config.extra[FAQ_KEY] = {"threshold": FAQ_THRESHOLD, "target_precision": 0.9}
    if vision:
        torch.manual_seed(0)
        encoder.attach_vision(caption_free_tower(encoder, CLASS_NAMES, pretrained=False))
    return encoder.save(folder / "model")


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    (folder / "faq.csv").write_text(FAQ_CSV)
    return folder


def ingest_corpus(model: Path, corpus: Path) -> None:
    """Ingest ``corpus`` with ``model`` into the configured store."""
    settings = get_settings()
    store = Store.open(settings)
    try:
        summary = ingest_paths([corpus], load_encoder(model, device="cpu"), store, settings, progress=False)
    finally:
        store.close()
    assert summary.exit_code == 0, summary.render()
