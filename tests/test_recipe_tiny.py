"""A student cut to some of its layers (``student_layers``): validation, the cut, save and reload."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jasper_rag.encoder import FULL_HEAD, load_encoder
from jasper_rag.train import pipeline
from jasper_rag.train.recipes import Recipe, RecipeError, load_recipe
from jasper_rag.train.stages import encoder_layers
from tests.conftest import TINY_WORDS, make_tiny_encoder
from tests.test_train_stages import tiny_recipe

TEXTS = [" ".join(TINY_WORDS[i : i + 3 + i % 5]) for i in range(24)]
TEACHER_DIM = 48


def recipe(tmp_path, student, **overrides) -> Recipe:
    return tiny_recipe(tmp_path, **{"name": "cut", "student": str(student), **overrides})


@pytest.fixture
def student(tmp_path):
    """A saved 2-layer tiny BERT."""
    return make_tiny_encoder(tmp_path).save(tmp_path / "student")


def test_the_tiny_recipe_is_quick_on_every_other_layer() -> None:
    tiny, quick = load_recipe("tiny"), load_recipe("quick")
    assert tiny.student_layers == [0, 2, 4] and tiny.student == quick.student
    assert tiny.output == "models/jasper-tiny"
    assert tiny.stages[1] == quick.stages[1] and tiny.teachers == quick.teachers and tiny.max_texts == quick.max_texts
    # the cut backbone has to relearn: stages 2 and 3 run longer and faster than quick's
    for stage in (2, 3):
        assert tiny.stages[stage].lr > quick.stages[stage].lr and tiny.stages[stage].epochs > quick.stages[stage].epochs
    assert quick.student_layers is None


@pytest.mark.parametrize("layers", [[], [1, 0], [0, 0], [-1, 2]])
def test_layers_must_be_distinct_ascending_and_not_negative(tmp_path, layers) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "output": "x", "student_layers": layers, "stages": {}}))
    with pytest.raises(RecipeError, match="student_layers"):
        load_recipe(path)


def test_a_layer_the_student_lacks_is_refused(tmp_path, student) -> None:
    with pytest.raises(ValueError, match=r"\[2\]: the student has 2 layers"):
        pipeline.load_student(recipe(tmp_path, student, student_layers=[0, 2]), device="cpu")


def test_the_cut_student_keeps_the_chosen_layers_and_reloads(tmp_path, student) -> None:
    whole = load_encoder(student, device="cpu")
    cut = pipeline.load_student(recipe(tmp_path, student, student_layers=[1]), device="cpu")
    assert len(encoder_layers(cut.backbone)) == 1 and cut.backbone.config.num_hidden_layers == 1
    for kept, original in zip(
        encoder_layers(cut.backbone)[0].state_dict().values(),
        encoder_layers(whole.backbone)[1].state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(kept, original)
    before = cut.encode(TEXTS, dim=None)
    folder = cut.save(tmp_path / "cut")
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 1
    reloaded = load_encoder(folder, device="cpu")
    assert len(encoder_layers(reloaded.backbone)) == 1
    np.testing.assert_allclose(reloaded.encode(TEXTS, dim=None), before, atol=1e-5)
    assert not np.allclose(whole.encode(TEXTS, dim=None), before, atol=1e-3)  # one layer fewer: other vectors


def test_a_recipe_with_student_layers_trains_and_saves_the_cut_model(tmp_path, student, monkeypatch) -> None:
    def fake_targets(recipe, texts, dist):
        generator = torch.Generator().manual_seed(1)
        return list(texts), torch.nn.functional.normalize(
            torch.randn(len(texts), TEACHER_DIM, generator=generator), dim=1
        )

    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": t + ". " + t.upper()}) + "\n" for t in TEXTS))
    monkeypatch.setattr(pipeline, "teacher_targets", fake_targets)
    monkeypatch.setattr(pipeline, "get_settings", lambda: type("S", (), {"runs_dir": tmp_path / "runs"})())
    output = pipeline.run_recipe(recipe(tmp_path, student, student_layers=[0]), device="cpu")
    model = load_encoder(output, device="cpu")
    assert len(encoder_layers(model.backbone)) == 1
    assert model.config.extra["recipe"]["student_layers"] == [0]
    assert model.config.heads[FULL_HEAD] == TEACHER_DIM
    vectors = model.encode(TEXTS, dim=TEACHER_DIM)
    assert vectors.shape == (len(TEXTS), TEACHER_DIM) and np.isfinite(vectors).all()
