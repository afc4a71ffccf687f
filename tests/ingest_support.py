"""Helpers shared by the ingestion and store tests: a saved tiny encoder, stores in tmp folders, test files,
and the databases a store test runs on (``DATABASES``: SQLite, plus PostgreSQL when ``JASPER_TEST_PG_URL`` is set)."""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pypdf import PdfWriter
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from torch import nn

from jasper_rag.config import Settings
from jasper_rag.encoder import load_encoder
from jasper_rag.ingest.sample_build import SAMPLE_DIR, image_pdf, text_pdf
from jasper_rag.store import Store
from tests.conftest import make_tiny_encoder

TINY_HEADS = {"full": 48, "d16": 16, "d8": 8}


def save_tiny_model(folder: Path, heads: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A tiny random encoder saved as a model folder (loadable by ``load_encoder`` / ``--model``)."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder = make_tiny_encoder(folder, TINY_HEADS if heads is None else heads, seed=seed)
    return encoder.save(folder / "model")


def load_tiny(model_dir: Path):
    return load_encoder(model_dir, device="cpu")


class RandomTower(nn.Module):
    """Stands in for a trained vision tower: pixels -> random hidden vectors of ``hidden_size``."""

    def __init__(self, hidden_size: int, seed: int = 0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.rng = np.random.default_rng(seed)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.rng.standard_normal((len(pixels), self.hidden_size)).astype(np.float32))


PG_URL_ENV = "JASPER_TEST_PG_URL"  # e.g. postgresql+psycopg://jasper:jasper@localhost/jasper_test (.ci/run sets it)
DATABASES = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not os.environ.get(PG_URL_ENV), reason=f"{PG_URL_ENV} is not set (no PostgreSQL)"),
    ),
]


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``server_url`` (its role needs CREATEDB), dropped afterwards."""
    name = f"jasper_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def database_url(backend: str, folder: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database: a SQLite file in ``folder``, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'meta.db'}"
    else:
        with postgres_database(os.environ[PG_URL_ENV]) as url:
            yield url


def make_store(root: Path, url: str | None = None) -> Store:
    return Store(url or f"sqlite:///{root / 'meta.db'}", root / "indexes")


def small_settings(**overrides) -> Settings:
    values = {"chunk_tokens": 24, "chunk_overlap": 4, "batch_size": 8, "ingest_commit_chunks": 64}
    return Settings(**{**values, **overrides})


def copy_sample(folder: Path) -> Path:
    """A copy of the built-in sample corpus (every supported type)."""
    shutil.copytree(SAMPLE_DIR, folder)
    return folder


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return buffer.getvalue()


def encrypted_pdf(password: str = "secret") -> bytes:
    writer = PdfWriter()
    writer.append(io.BytesIO(text_pdf(["a secret page about the cat"])))
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def empty_pdf() -> bytes:
    buffer = io.BytesIO()
    PdfWriter().write(buffer)
    return buffer.getvalue()


def write_bad_files(folder: Path) -> dict[str, str]:
    """One file per bad-input case; returns file name -> a fragment of the reason it must get."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "corrupt.pdf": (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>\ngarbage" * 3, "corrupt PDF"),
        "locked.pdf": (encrypted_pdf(), "encrypted PDF"),
        "nopages.pdf": (empty_pdf(), "empty PDF"),
        "scanned.pdf": (image_pdf(Image.new("RGB", (200, 100), "gray"), pages=2), "no text layer"),
        "latin1.txt": ("caf\xe9 cr\xe8me".encode("latin-1"), "undecodable text"),
        "binary.md": (b"abc\x00def", "binary content"),
        "blank.txt": (b"   \n\n  ", "empty"),
        "zero.txt": (b"", "empty file"),
        "data.xyz": (b"some bytes", "unsupported file type"),
        "broken.png": (b"\x89PNG\r\n\x1a\nnot really", "unreadable image"),
        "bad.jsonl": (b'{"question": "q", "answer": "a"}\nnot json\n', "line 2: invalid JSON"),
        "nocols.csv": (b"question,reply\nx,y\n", "needs columns"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    os.symlink(folder / "loop-b.txt", folder / "loop-a.txt")
    os.symlink(folder / "loop-a.txt", folder / "loop-b.txt")
    reasons = {name: reason for name, (_, reason) in files.items()}
    reasons.update({"loop-a.txt": "unreadable", "loop-b.txt": "unreadable"})
    return reasons
