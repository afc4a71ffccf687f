"""Batches of teacher-space neighbours: the neighbour search, the seeded grouping, and a stage trained with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jasper_rag.train import pipeline
from jasper_rag.train.neighbours import nearest_neighbours, neighbour_order
from jasper_rag.train.recipes import RecipeError, load_recipe
from jasper_rag.train.trainer import TrainConfig, Trainer
from tests.conftest import make_tiny_encoder
from tests.test_recipe_tiny import TEXTS
from tests.test_train_stages import tiny_recipe

CLUSTERS, PER_CLUSTER, DIM = 6, 4, 48


def clustered(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``CLUSTERS`` tight clusters of ``PER_CLUSTER`` vectors, rows shuffled; returns vectors and cluster labels."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLUSTERS, DIM, generator=generator)
    labels = torch.randperm(CLUSTERS * PER_CLUSTER, generator=generator) % CLUSTERS
    vectors = centres[labels] + 0.05 * torch.randn(len(labels), DIM, generator=generator)
    return vectors, labels.numpy()


def test_nearest_neighbours_are_the_other_members_of_the_cluster_nearest_first() -> None:
    vectors, labels = clustered()
    neighbours = nearest_neighbours(vectors, k=PER_CLUSTER - 1, chunk=5)  # chunks that cut clusters apart
    assert neighbours.shape == (len(vectors), PER_CLUSTER - 1)
    for item, found in enumerate(neighbours):
        assert item not in found and set(labels[found]) == {labels[item]}
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    similarities = (unit[0] @ unit[torch.from_numpy(neighbours[0])].T).numpy()
    assert list(similarities) == sorted(similarities, reverse=True)
    assert nearest_neighbours(vectors[:3], k=10).shape == (3, 2)  # never more than the other rows


def test_each_epoch_is_a_seeded_permutation_of_groups_of_neighbours() -> None:
    vectors, labels = clustered()
    neighbours = nearest_neighbours(vectors)
    order = neighbour_order(neighbours, group_size=PER_CLUSTER, seed=7)
    assert sorted(order.tolist()) == list(range(len(vectors)))
    assert all(len(set(labels[group])) == 1 for group in order.numpy().reshape(-1, PER_CLUSTER))
    assert torch.equal(order, neighbour_order(neighbours, PER_CLUSTER, seed=7))
    assert not torch.equal(order, neighbour_order(neighbours, PER_CLUSTER, seed=8))
    halves = neighbour_order(neighbours, group_size=2, seed=7).numpy().reshape(-1, 2)
    assert all(labels[a] == labels[b] for a, b in halves)


def test_groups_left_short_still_cover_every_item_once() -> None:
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [4, 0], [3, 0]])  # 0-1-2 close, 3-4 close
    order = neighbour_order(neighbours, group_size=4, seed=0)
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4]


def test_the_trainer_takes_batches_in_the_given_epoch_order(tmp_path) -> None:
    seen: list[tuple[int, int]] = []

    def reversed_order(n_items: int, seed: int) -> torch.Tensor:
        seen.append((n_items, seed))
        return torch.arange(n_items - 1, -1, -1)

    model = torch.nn.Linear(2, 2)
    config = TrainConfig(lr=1e-3, epochs=2, batch_size=4)
    trainer = Trainer(model, list(model.parameters()), lambda i: {}, 8, config, tmp_path, epoch_order=reversed_order)
    assert [trainer.batch_indices(step) for step in range(4)] == [[7, 6, 5, 4], [3, 2, 1, 0]] * 2
    assert seen == [(8, 0), (8, 1)]  # one order per epoch, each with its own seed


def test_a_group_of_one_is_refused_with_the_field_named(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "output": "x", "stages": {"3": {"lr": 1e-4, "neighbour_group": 1}}}))
    with pytest.raises(RecipeError, match=r"stages\.3\.neighbour_group"):
        load_recipe(path)


def test_a_stage_with_neighbour_group_trains_on_groups_of_teacher_neighbours(tmp_path, monkeypatch) -> None:
    vectors, labels = clustered()
    batches: dict[str, list[list[int]]] = {}

    class RecordingTrainer(Trainer):
        def batch_indices(self, step: int) -> list[int]:
            indices = super().batch_indices(step)
            batches.setdefault(self.label, []).append(indices)
            return indices

    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    monkeypatch.setattr(pipeline, "teacher_targets", lambda recipe, texts, dist: (list(texts), vectors[: len(texts)]))
    monkeypatch.setattr(pipeline, "get_settings", lambda: type("S", (), {"runs_dir": tmp_path / "runs"})())
    monkeypatch.setattr(pipeline, "Trainer", RecordingTrainer)
    stages = {n: {"lr": 1e-3, "batch_size": 8, "max_steps": 3, "checkpoint_every": 1} for n in (1, 2, 3)}
    stages[3]["neighbour_group"] = PER_CLUSTER
    student = make_tiny_encoder(tmp_path).save(tmp_path / "student")
    pipeline.run_recipe(tiny_recipe(tmp_path, student=str(student), stages=stages), device="cpu")
    assert len(batches["stage3"]) == 3
    for batch in batches["stage3"]:
        assert all(len(set(labels[group])) == 1 for group in np.reshape(batch, (-1, PER_CLUSTER)))
    mixed = [len(set(labels[group])) > 1 for batch in batches["stage2"] for group in np.reshape(batch, (-1, 4))]
    assert any(mixed)  # stage 2 keeps plain shuffled batches
