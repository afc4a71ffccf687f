"""Shared fixtures: a tiny randomly initialised BERT encoder (no weight files), eval data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests run the encoder eagerly unless they choose a backend: ONNX backends have their own tests
# (tests/test_backends.py, test_eval_backends.py), and exporting every tiny test model would only cost time.
os.environ.setdefault("JASPER_BACKEND", "torch")

ROOT = Path(__file__).resolve().parents[1]


def _find_eval_dir() -> Path:
    """Real eval data: ``JASPER_EVAL_DIR`` if set, else the developers' ``../shared/data/eval``, else the
    project cache that ``make eval-data`` fills (``.cache/eval``)."""
    if os.environ.get("JASPER_EVAL_DIR"):
        return Path(os.environ["JASPER_EVAL_DIR"])
    shared = ROOT.parent / "shared" / "data" / "eval"
    return shared if shared.is_dir() else ROOT / ".cache" / "eval"


EVAL_DIR = _find_eval_dir()

TINY_WORDS = (
    "the a of and to in is it that for on with as was by at cat dog sat mat sofa car road fast slow "
    "protein cell cells gene genes cancer risk study water fire earth tree house music data model "
    "search index query answer question paris france capital city river apple banana fruit red blue"
).split()


def stored_faq_cosine(encoder, query: str, question: str, answer: str) -> float:
    """The cosine of ``query`` to the FAQ entry (question, answer) as a store holds it (question and
    answer together), in the encoder's largest head (the searcher's default)."""
    from jasper_rag.store.heads import embed_entry_heads, embed_heads, encoder_heads

    heads = encoder_heads(encoder)
    head = max(heads, key=heads.__getitem__)
    entries = embed_entry_heads(encoder, [[question, answer]])
    return float(embed_heads(encoder, [query])[head][0] @ entries[head][0])


def make_tiny_encoder(tmp_path: Path, heads: dict[str, int] | None = None, seed: int = 0):
    """A 2-layer, 32-wide BERT with a word-level vocab written to ``tmp_path``; fully offline."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from jasper_rag.encoder import EncoderConfig, JasperEncoder

    torch.manual_seed(seed)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(TINY_WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    encoder = JasperEncoder(BertModel(config), tokenizer, EncoderConfig(source="tiny-bert", max_length=64))
    for name, dim in (heads or {}).items():
        encoder.add_head(name, dim)
    return encoder.eval()


@pytest.fixture
def tiny_encoder(tmp_path: Path):
    """Tiny encoder with a full head (48-d) and two reduced heads (16-d, 8-d)."""
    return make_tiny_encoder(tmp_path, {"full": 48, "d16": 16, "d8": 8})


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    from jasper_rag.eval.data import missing_eval_files

    missing = missing_eval_files(EVAL_DIR)
    if missing:
        pytest.skip(
            f"no eval data at {EVAL_DIR} ({missing[0]} missing): set JASPER_EVAL_DIR, or run "
            "`make eval-data` (EVAL_SRC=PATH for a local copy)"
        )
    return EVAL_DIR


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine two threads thrash (5-30x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fresh_settings():
    """Settings are read once per process: re-read them after each test's JASPER_* variables are undone."""
    from jasper_rag.config import get_settings

    yield
    get_settings.cache_clear()


def _milvus_lite_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("pymilvus", "milvus_lite"))


STORE_BACKENDS = [
    "faiss",
    pytest.param(
        "milvus",
        marks=pytest.mark.skipif(
            not _milvus_lite_installed(),
            reason="pymilvus / milvus-lite not installed (pip install 'jasper-rag[milvus]')",
        ),
    ),
]


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request, monkeypatch):
    """Each test that takes it runs on the FAISS store and on Milvus Lite (``JASPER_STORE``; the Milvus Lite
    file defaults to ``<indexes_dir>/milvus.db``); the Milvus Lite servers it started are stopped afterwards."""
    from jasper_rag.config import get_settings

    monkeypatch.setenv("JASPER_STORE", request.param)
    monkeypatch.delenv("JASPER_MILVUS_URI", raising=False)
    get_settings.cache_clear()
    yield request.param
    get_settings.cache_clear()
    if request.param == "milvus":
        from milvus_lite import server_manager_instance

        server_manager_instance.release_all()
