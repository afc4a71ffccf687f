"""Stages on a tiny model: what each trains, a 2-step run of every stage, the whole recipe."""

from __future__ import annotations

import json

import pytest
import torch

from jasper_rag.encoder import CONFIG_FILE, FULL_HEAD, load_encoder
from jasper_rag.teachers import model_teachers
from jasper_rag.train import pipeline
from jasper_rag.train.losses import DistillationLoss
from jasper_rag.train.recipes import Recipe, RecipeError, load_recipe, recipe_names
from jasper_rag.train.stages import (
    encoder_layers,
    init_head_least_squares,
    init_head_procrustes,
    init_heads_pca,
    set_dropout,
    text_step_losses,
    trainable_parameters,
)
from tests.conftest import TINY_WORDS, make_tiny_encoder

TEXTS = [" ".join(TINY_WORDS[i : i + 3 + i % 5]) for i in range(24)]
TEACHER_DIM = 48


def tiny_recipe(tmp_path, **overrides) -> Recipe:
    settings = {
        "name": "tiny",
        "output": str(tmp_path / "out"),
        "corpus": str(tmp_path / "corpus.jsonl"),
        "reduced_dims": [16, 8],
        "last_layers": 1,
        "teacher_batch_size": 8,
        "stages": {n: {"lr": 1e-3, "batch_size": 8, "max_steps": 2, "checkpoint_every": 1} for n in (1, 2, 3)},
    }
    settings.update(overrides)
    return Recipe.model_validate(settings)


def grads_after_one_step(encoder, stage: int, reduced=()) -> dict[str, bool]:
    targets = torch.randn(len(TEXTS), TEACHER_DIM)
    trainable_parameters(encoder, stage, last_layers=1)
    step = text_step_losses(encoder, TEXTS, targets, DistillationLoss(), reduced)
    encoder.train()
    step(list(range(8)))["total"].backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in encoder.named_parameters()}


def test_stage1_trains_the_full_head_only(tmp_path) -> None:
    encoder = make_tiny_encoder(tmp_path, {FULL_HEAD: TEACHER_DIM})
    grads = grads_after_one_step(encoder, 1)
    assert {name for name, has in grads.items() if has} == {"heads.full.weight", "heads.full.bias"}


def test_stage2_trains_the_full_head_and_the_last_layers(tmp_path) -> None:
    encoder = make_tiny_encoder(tmp_path, {FULL_HEAD: TEACHER_DIM})
    grads = grads_after_one_step(encoder, 2)
    trained = {name for name, has in grads.items() if has}
    assert {"heads.full.weight", "heads.full.bias"} <= trained
    assert all(name.startswith(("heads.full.", "backbone.encoder.layer.1.")) for name in trained)
    assert any(name.startswith("backbone.encoder.layer.1.") for name in trained)
    assert not any(
        name.startswith(("backbone.embeddings.", "backbone.encoder.layer.0.")) for name in grads if grads[name]
    )


def test_stage3_trains_everything_including_reduced_heads(tmp_path) -> None:
    encoder = make_tiny_encoder(tmp_path, {FULL_HEAD: TEACHER_DIM, "d16": 16, "d8": 8})
    grads = grads_after_one_step(encoder, 3, reduced=("d16", "d8"))
    for name in (
        "heads.d16.weight",
        "heads.d8.weight",
        "heads.full.weight",
        "backbone.embeddings.word_embeddings.weight",
    ):
        assert grads[name], name
    assert grads["backbone.encoder.layer.0.attention.self.query.weight"]


def test_self_distillation_keeps_reduced_losses_off_the_full_head(tmp_path) -> None:
    encoder = make_tiny_encoder(tmp_path, {FULL_HEAD: TEACHER_DIM, "d8": 8})
    targets = torch.randn(len(TEXTS), TEACHER_DIM)
    trainable_parameters(encoder, 3)
    step = text_step_losses(encoder, TEXTS, targets, DistillationLoss(), ["d8"], self_distill=True)
    step(list(range(8)))["d8/total"].backward()
    assert encoder.heads[FULL_HEAD].weight.grad is None  # FC1's vectors are the (detached) teacher
    assert encoder.heads["d8"].weight.grad is not None


@pytest.mark.parametrize("weight", [1.0, 0.25, 0.0])
def test_reduced_loss_weight_scales_the_reduced_heads_in_the_total(tmp_path, weight) -> None:
    encoder = make_tiny_encoder(tmp_path, {FULL_HEAD: TEACHER_DIM, "d16": 16, "d8": 8})
    encoder.eval()
    targets = torch.randn(len(TEXTS), TEACHER_DIM)
    step = text_step_losses(encoder, TEXTS, targets, DistillationLoss(), ["d16", "d8"], reduced_weight=weight)
    with torch.no_grad():
        terms = step(list(range(8)))
    expected = terms["full/total"] + weight * (terms["d16/total"] + terms["d8/total"])
    assert torch.allclose(terms["total"], expected)


def test_set_dropout_zero_makes_training_passes_match_inference(tiny_encoder) -> None:
    batch = tiny_encoder.tokenizer(TEXTS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        inference = tiny_encoder.backbone(**batch).last_hidden_state
        tiny_encoder.train()
        assert not torch.allclose(tiny_encoder.backbone(**batch).last_hidden_state, inference)  # BERT's own 0.1
        set_dropout(tiny_encoder.backbone, 0.0)
        assert torch.allclose(tiny_encoder.backbone(**batch).last_hidden_state, inference, atol=1e-6)


def test_encoder_layers_finds_bert_blocks(tiny_encoder) -> None:
    assert len(encoder_layers(tiny_encoder.backbone)) == 2
    with pytest.raises(ValueError, match="transformer layers"):
        encoder_layers(torch.nn.Linear(2, 2))


def test_head_inits_fit_least_squares_and_pca() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(200, 6)
    true = torch.nn.Linear(6, 10)
    full = torch.nn.Linear(6, 10)
    with torch.no_grad():
        init_head_least_squares(full, hidden, true(hidden), ridge=0.0)
        torch.testing.assert_close(full(hidden), true(hidden), atol=1e-4, rtol=1e-4)
        reduced = torch.nn.Linear(6, 6)
        init_heads_pca([reduced], full, hidden)
        # 6 principal directions span the whole (rank-6) output: centred inner products are kept exactly
        centred = full(hidden) - full(hidden).mean(dim=0)
        torch.testing.assert_close(reduced(hidden) @ reduced(hidden).T, centred @ centred.T, atol=1e-3, rtol=1e-3)


def test_procrustes_head_starts_as_an_isometry_aligned_with_the_teacher() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(300, 6) * 3 + 1
    states = torch.nn.functional.normalize(hidden, dim=-1)
    rotation = torch.linalg.qr(torch.randn(10, 10))[0][:, :6]  # an isometry R^6 -> R^10
    targets = torch.cat([states @ rotation.T, states], dim=1) / 2**0.5  # the student is one of two "teachers"
    head = torch.nn.Linear(6, 16)
    init_head_procrustes(head, hidden, targets)
    with torch.no_grad():
        out = torch.nn.functional.normalize(head(hidden), dim=-1)
        torch.testing.assert_close(out @ out.T, states @ states.T, atol=1e-5, rtol=1e-5)  # cosines kept
        torch.testing.assert_close(out, targets, atol=1e-5, rtol=1e-5)  # and the teacher reproduced
        assert torch.count_nonzero(head.bias) == 0


def fake_targets(recipe, texts, dist):
    generator = torch.Generator().manual_seed(1)
    return list(texts), torch.nn.functional.normalize(torch.randn(len(texts), TEACHER_DIM, generator=generator), dim=1)


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    """A saved tiny student, a small corpus, fake teacher vectors and runs under tmp_path."""
    student = make_tiny_encoder(tmp_path).save(tmp_path / "student")
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": t + ". " + t.upper()}) + "\n" for t in TEXTS))
    monkeypatch.setattr(pipeline, "teacher_targets", fake_targets)
    monkeypatch.setattr(pipeline, "get_settings", lambda: type("S", (), {"runs_dir": tmp_path / "runs"})())
    return student


@pytest.mark.parametrize(("self_distill", "dropout"), [(False, None), (True, 0.0)])
def test_two_steps_of_every_stage_produce_a_model(tmp_path, tiny_run, self_distill, dropout) -> None:
    recipe = tiny_recipe(tmp_path, student=str(tiny_run), self_distill=self_distill, dropout=dropout)
    output = pipeline.run_recipe(recipe, device="cpu")
    model = load_encoder(output, device="cpu")
    assert model.config.heads == {FULL_HEAD: TEACHER_DIM, "d16": 16, "d8": 8}
    assert model.config.extra["recipe"]["name"] == "tiny" and model_teachers(output) == recipe.teachers
    assert model.config.extra["terms"] == []  # Apache-licensed teachers add no use terms
    assert "No teacher adds use restrictions" in (output / "README.md").read_text()
    for stage in (1, 2, 3):
        folder = tmp_path / "runs" / "tiny" / f"stage{stage}"
        assert json.loads((folder / "done.json").read_text())["steps"] == 2
        logged = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in logged] == [0, 1]
        assert "full/cos" in logged[0] and "full/resim" in logged[0]
    stage3 = json.loads((tmp_path / "runs" / "tiny" / "stage3" / "log.jsonl").read_text().splitlines()[0])
    assert "d8/sim" in stage3 and "d8/cos" not in stage3
    assert (tmp_path / "runs" / "tiny" / "curves.png").stat().st_size > 0


def test_a_rerun_keeps_a_current_model_and_what_later_steps_added(tmp_path, tiny_run, monkeypatch) -> None:
    recipe = tiny_recipe(tmp_path, student=str(tiny_run))
    output = pipeline.run_recipe(recipe, device="cpu")
    config_file = output / CONFIG_FILE
    config = json.loads(config_file.read_text())
    config["extra"]["faq"] = {"threshold": 0.5}  # what calibrate-faq / train-vision add to the saved model
    config_file.write_text(json.dumps(config))
    monkeypatch.setattr(pipeline, "teacher_targets", lambda *args: pytest.fail("a current model was retrained"))
    assert pipeline.run_recipe(recipe, device="cpu") == output
    assert json.loads(config_file.read_text())["extra"]["faq"] == {"threshold": 0.5}
    # a stage trained again makes the saved model stale: the next run saves it anew
    (tmp_path / "runs" / "tiny" / "stage3" / "done.json").unlink()
    monkeypatch.setattr(pipeline, "teacher_targets", fake_targets)
    pipeline.run_recipe(recipe, device="cpu")
    assert "faq" not in json.loads(config_file.read_text())["extra"]


def test_a_single_stage_needs_the_previous_one(tmp_path, tiny_run) -> None:
    recipe = tiny_recipe(tmp_path, student=str(tiny_run))
    with pytest.raises(FileNotFoundError, match="stage 2 starts from stage 1"):
        pipeline.run_recipe(recipe, stages=[2], device="cpu")
    pipeline.run_recipe(recipe, stages=[1], device="cpu")
    pipeline.run_recipe(recipe, stages=[2], device="cpu")
    assert (tmp_path / "runs" / "tiny" / "stage2" / "done.json").is_file()
    timings = json.loads((tmp_path / "runs" / "tiny" / "timings.json").read_text())
    assert {"teacher_vectors", "stage1", "stage2", "total"} <= set(timings)  # stage 1's time kept by the second run


def test_record_timings_keeps_earlier_stages_and_adds_up_totals(tmp_path) -> None:
    path = tmp_path / "timings.json"
    pipeline.record_timings(path, {"teacher_vectors": 100.0, "stage1": 10.0, "total": 110.0})
    merged = pipeline.record_timings(path, {"teacher_vectors": 2.0, "stage2": 30.0, "total": 32.0})
    assert merged == {"teacher_vectors": 102.0, "stage1": 10.0, "stage2": 30.0, "total": 142.0}
    assert pipeline.record_timings(path, {"stage2": 25.0})["stage2"] == 25.0  # a stage trained again replaces


def test_packaged_recipes_load_and_bad_ones_are_named(tmp_path) -> None:
    assert {"quick", "default", "full"} <= set(recipe_names())
    quick = load_recipe("quick")
    assert quick.output == "models/jasper-quick" and quick.teachers == ["mpnet-base", "minilm-l6"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "output": "o", "stages": {"1": {"lr": -1}}}))
    with pytest.raises(RecipeError, match=r"bad.json: stages.1.lr"):
        load_recipe(bad)
    bad.write_text(json.dumps({"name": "x", "output": "o", "dropout": 1.5, "stages": {}}))
    with pytest.raises(RecipeError, match=r"bad.json: dropout"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no recipe 'nope'"):
        load_recipe("nope")


def test_recipe_stages_and_loss_are_the_trainers_own_types(tmp_path) -> None:
    from jasper_rag.train.losses import LossWeights
    from jasper_rag.train.trainer import TrainConfig

    recipe = tiny_recipe(tmp_path, seed=7, loss={"cos": 0})
    assert isinstance(recipe.stages[1], TrainConfig) and isinstance(recipe.loss, LossWeights)
    assert recipe.loss == LossWeights(cos=0) and recipe.stage_config(2).seed == 7
    bad = tmp_path / "bad.json"
    for field, stage in (("seed", {"lr": 1e-4, "seed": 3}), ("batch_size", {"lr": 1e-4, "batch_size": 1})):
        bad.write_text(json.dumps({"name": "x", "output": "o", "stages": {"1": stage}}))
        with pytest.raises(RecipeError, match=rf"bad.json: stages.*{field}"):
            load_recipe(bad)
    bad.write_text(json.dumps({"name": "x", "output": "o", "loss": {"margin": -1}, "stages": {}}))
    with pytest.raises(RecipeError, match=r"bad.json: loss.margin"):
        load_recipe(bad)
