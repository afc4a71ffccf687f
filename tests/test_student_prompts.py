"""Student role prompts (recipe ``student_prompts``): training texts per role, the saved prompts, and the
role views eval embeds with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from jasper_rag.embedding import for_role
from jasper_rag.encoder import PROMPTS_KEY, load_encoder
from jasper_rag.eval.encoders import SharedPassHeads
from jasper_rag.train import pipeline
from jasper_rag.train.distributed import DistEnv
from tests.conftest import make_tiny_encoder
from tests.test_train_stages import TEACHER_DIM, TEXTS, tiny_recipe

PROMPTS = {"query": "query: ", "passage": "passage: "}


class RoleTeacher:
    """A fake teacher whose vectors say which role it embedded in (1.0 query, 2.0 passage, 3.0 symmetric)."""

    def __init__(self, role: str = "symmetric") -> None:
        self.role = role

    def for_role(self, role: str) -> RoleTeacher:
        return RoleTeacher(role)


def fake_ensemble(teachers, texts, *args, **kwargs) -> np.ndarray:
    value = {"query": 1.0, "passage": 2.0, "symmetric": 3.0}[teachers[0].role]
    return np.full((len(texts), TEACHER_DIM), value, dtype=np.float32)


@pytest.fixture
def fake_teachers(monkeypatch, tmp_path):
    import jasper_rag.teachers

    monkeypatch.setattr(jasper_rag.teachers, "load_teacher", lambda name, device=None: RoleTeacher())
    monkeypatch.setattr(pipeline, "ensemble_targets", fake_ensemble)
    monkeypatch.setattr(
        pipeline, "get_settings", lambda: type("S", (), {"cache_dir": tmp_path, "runs_dir": tmp_path})()
    )


def test_each_text_is_distilled_once_per_role_against_that_roles_vectors(tmp_path, fake_teachers) -> None:
    recipe = tiny_recipe(tmp_path, student_prompts=PROMPTS)
    texts, targets = pipeline.teacher_targets(recipe, ["a", "b"], DistEnv(device="cpu"))
    assert texts == ["query: a", "query: b", "passage: a", "passage: b"]
    assert targets[:, 0].tolist() == [1.0, 1.0, 2.0, 2.0]


def test_without_prompts_the_texts_stay_as_they_are_in_the_teacher_role(tmp_path, fake_teachers) -> None:
    recipe = tiny_recipe(tmp_path, teacher_role="passage")
    texts, targets = pipeline.teacher_targets(recipe, ["a", "b"], DistEnv(device="cpu"))
    assert texts == ["a", "b"] and targets[:, 0].tolist() == [2.0, 2.0]


@pytest.mark.parametrize("prompts", [{}, {"query": "x: ", "passage": "x: "}, {"question": "q: "}])
def test_bad_prompts_are_refused_naming_the_field(tmp_path, prompts) -> None:
    with pytest.raises(ValidationError, match="student_prompts"):
        tiny_recipe(tmp_path, student_prompts=prompts)


def test_a_model_trained_with_prompts_records_them_and_embeds_each_role_with_its_prefix(tmp_path, monkeypatch) -> None:
    student = make_tiny_encoder(tmp_path).save(tmp_path / "student")
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": t + ". " + t.upper()}) + "\n" for t in TEXTS))

    def fake_targets(recipe, texts, dist):
        generator = np.random.default_rng(0)
        roles = list(recipe.student_prompts.items())
        vectors = generator.standard_normal((len(texts) * len(roles), TEACHER_DIM)).astype(np.float32)
        import torch

        return [prompt + text for _, prompt in roles for text in texts], torch.from_numpy(vectors)

    monkeypatch.setattr(pipeline, "teacher_targets", fake_targets)
    monkeypatch.setattr(pipeline, "get_settings", lambda: type("S", (), {"runs_dir": tmp_path / "runs"})())
    output = pipeline.run_recipe(tiny_recipe(tmp_path, student=str(student), student_prompts=PROMPTS), device="cpu")
    model = load_encoder(output, device="cpu")
    assert model.config.extra[PROMPTS_KEY] == PROMPTS
    head = model.at(16)
    query = for_role(head, "query")
    assert query.prompt == "query: " and for_role(head, "symmetric") is head  # a role without a prompt: as is
    assert np.allclose(query.encode(["red apple"]), head.encode(["query: red apple"]), atol=1e-6)
    fingerprints = {view.fingerprint() for view in (head, query, for_role(head, "passage"))}
    assert len(fingerprints) == 3  # each role's vectors are cached apart
    shared = SharedPassHeads(model, [16, 8]).view(16)
    shared_query = for_role(shared, "query")
    assert shared_query.fingerprint() == query.fingerprint()
    assert np.allclose(shared_query.encode(["red apple"]), query.encode(["red apple"]), atol=1e-6)
    assert for_role(shared, "symmetric") is shared
