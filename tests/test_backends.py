"""Inference backends (JASPER_BACKEND): ONNX vectors against eager, the export cache, store identity, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from jasper_rag.backends import (
    CACHE_FILES,
    IDENTITY_TOLERANCE,
    KEEPS_IDENTITY,
    agreement,
    cached_onnx,
)
from jasper_rag.config import AUTO_BACKEND, CPU_BACKEND, Settings
from jasper_rag.encoder import POOLED, load_encoder
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.search import Searcher
from jasper_rag.store import StoreModelMismatchError
from jasper_rag.store.heads import model_identity
from tests.ingest_support import TINY_HEADS, make_store, save_tiny_model, small_settings

TEXTS = ["the cat sat on the mat", "a dog", "protein cells and cancer risk in a study of the city river", "fire"]
# The stated bound of int8 (docs/performance.md): every vector within 0.1 of eager in cosine.
INT8_TOLERANCE = 0.1
WORDS = ["cat dog mat", "protein cells cancer", "city river study", "fire risk"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def backend_env(monkeypatch, tmp_path, fresh_settings):
    """``use(backend)``: JASPER_BACKEND set, with the ONNX cache in this test's folder."""

    def use(backend: str) -> None:
        from jasper_rag.config import get_settings

        monkeypatch.setenv("JASPER_BACKEND", backend)
        monkeypatch.setenv("JASPER_CACHE_DIR", str(tmp_path / "cache"))
        get_settings.cache_clear()

    return use


def test_onnx_vectors_match_eager_for_every_head_and_int8_within_its_bound(tmp_path, tiny_encoder) -> None:
    fp32 = agreement(tiny_encoder, TEXTS, "onnx", tmp_path)
    int8 = agreement(tiny_encoder, TEXTS, "onnx-int8", tmp_path)
    assert set(fp32) == set(int8) == {POOLED, *TINY_HEADS}
    assert all(worst <= IDENTITY_TOLERANCE for worst, _ in fp32.values()), fp32
    assert all(worst <= INT8_TOLERANCE for worst, _ in int8.values()), int8
    # on real text int8 is measured beyond the identity tolerance (docs/performance.md): its own identity
    assert "onnx-int8" not in KEEPS_IDENTITY and "onnx" in KEEPS_IDENTITY


def test_int8_quantises_every_transformer_matmul_with_per_channel_scales(tmp_path, tiny_encoder) -> None:
    import onnx

    graph = onnx.load(str(cached_onnx(tiny_encoder, "onnx-int8", tmp_path))).graph
    kinds = [node.op_type for node in graph.node]
    layers = tiny_encoder.backbone.config.num_hidden_layers
    assert kinds.count("MatMulInteger") >= 6 * layers  # q, k, v, attention output, FFN in and out
    scales = {item.name: list(item.dims) for item in graph.initializer if item.name.endswith("_scale")}
    assert any(shape and shape[0] > 1 for shape in scales.values())  # one scale per output channel


def test_encoder_delegates_every_head_to_onnx_in_one_pass(tmp_path, tiny_encoder) -> None:
    eager = tiny_encoder.encode_heads(TEXTS)
    tiny_encoder.use_backend("onnx", tmp_path)
    batches = []
    onnx = tiny_encoder.encode_heads(TEXTS, batch_size=3, on_batch=batches.append)
    assert batches == [3, 1] and list(onnx) == list(eager)
    for name in eager:
        np.testing.assert_allclose(onnx[name], eager[name], atol=1e-5)
        assert onnx[name].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(tiny_encoder.encode(TEXTS, dim=16), axis=1), 1.0, atol=1e-5)
    assert tiny_encoder.encode([], dim=8).shape == (0, 8)


def test_identity_kept_by_fp32_onnx_and_changed_by_int8(tmp_path, tiny_encoder) -> None:
    weights = tiny_encoder.fingerprint()
    tiny_encoder.use_backend("onnx", tmp_path)
    assert tiny_encoder.fingerprint() == weights == tiny_encoder.weights_fingerprint()
    tiny_encoder.use_backend("onnx-int8", tmp_path)
    assert tiny_encoder.fingerprint() == f"{weights}-onnx-int8" and tiny_encoder.at(16).fingerprint() != weights
    tiny_encoder.train()  # training changes the weights an export froze: back to eager torch
    assert tiny_encoder.backend == "torch" and tiny_encoder.fingerprint() == weights


def test_export_is_cached_per_fingerprint_and_reused(model_dir, backend_env, tmp_path, monkeypatch, caplog) -> None:
    backend_env("onnx-int8")
    first = load_encoder(model_dir, device="cpu")
    with caplog.at_level("INFO", logger="jasper_rag.backends"):
        vectors = first.encode(TEXTS, dim=48)
    folder = tmp_path / "cache" / "onnx" / first.weights_fingerprint()
    assert {path.name for path in folder.glob("*.onnx")} == set(CACHE_FILES.values())
    assert "exporting" in caplog.text and not list(folder.glob(".*.tmp")) and first.backend == "onnx-int8"

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    caplog.clear()
    with caplog.at_level("INFO", logger="jasper_rag.backends"):
        again = load_encoder(model_dir, device="cpu").encode(TEXTS, dim=48)
    np.testing.assert_array_equal(again, vectors)
    assert "exporting" not in caplog.text


def test_ingest_and_search_through_onnx_and_the_store_identity_rules(model_dir, backend_env, tmp_path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for number, words in enumerate(WORDS):
        (corpus / f"note{number}.txt").write_text(f"{words} {words}\n")
    store = make_store(tmp_path)
    backend_env("torch")
    eager = load_encoder(model_dir, device="cpu")
    summary = ingest_paths([corpus], eager, store, small_settings(), progress=False)
    assert summary.exit_code == 0, summary.render()
    eager_hits = Searcher(store, eager).search("protein cells", k=3)

    backend_env("onnx")
    onnx = load_encoder(model_dir, device="cpu")
    assert model_identity(onnx) == model_identity(eager)  # same store, no rebuild
    hits = Searcher(store, onnx).search("protein cells", k=3)
    assert [hit.id for hit in hits] == [hit.id for hit in eager_hits]
    assert [hit.score for hit in hits] == pytest.approx([hit.score for hit in eager_hits], abs=1e-4)

    backend_env("onnx-int8")
    with pytest.raises(StoreModelMismatchError, match="rebuild"):
        Searcher(store, load_encoder(model_dir, device="cpu"))
    rebuilt = make_store(tmp_path / "int8")
    int8 = load_encoder(model_dir, device="cpu")
    assert ingest_paths([corpus], int8, rebuilt, small_settings(), progress=False).exit_code == 0
    assert Searcher(rebuilt, int8).search("protein cells", k=3)


def test_unknown_backend_and_missing_onnxruntime_are_clear_errors(tiny_encoder, monkeypatch) -> None:
    with pytest.raises(ValidationError, match="JASPER_BACKEND must be one of torch, onnx, onnx-int8"):
        Settings(backend="tensorrt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeError, match=r"JASPER_BACKEND=onnx.*onnxruntime"):
        tiny_encoder.use_backend("onnx")


def test_default_backend_is_the_cpu_choice_torch_on_cuda_or_without_onnxruntime(monkeypatch, fresh_settings) -> None:
    import importlib.util

    from jasper_rag import config
    from jasper_rag.config import get_settings

    monkeypatch.delenv("JASPER_BACKEND", raising=False)
    monkeypatch.delenv("JASPER_DEVICE", raising=False)
    monkeypatch.setattr(config, "cpu_only_torch", lambda: False)  # a CUDA build, whose GPU the test switches
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert CPU_BACKEND == AUTO_BACKEND and Settings().backend == CPU_BACKEND
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Settings().backend == "torch" and Settings(device="cuda").backend == "torch"
    assert Settings(device="cpu").backend == CPU_BACKEND  # a GPU present but not used: the CPU choice
    monkeypatch.setenv("JASPER_BACKEND", "onnx-int8")  # an explicit choice always wins
    get_settings.cache_clear()
    assert get_settings().backend == "onnx-int8"
    monkeypatch.delenv("JASPER_BACKEND")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    assert Settings().backend == "torch"  # onnx / onnxruntime not installed (the bench extra)


def test_a_cpu_only_torch_build_resolves_auto_to_cpu_without_asking_cuda(monkeypatch) -> None:
    from jasper_rag import config

    monkeypatch.setattr(config, "cpu_only_torch", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # would say cuda if it were asked
    assert config.resolve_device("auto") == "cpu" and config.resolve_device("cuda") == "cuda"
