"""The training loop: schedule, checkpoints, exact resume after an interrupt."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
import torch
from torch import nn

from jasper_rag.train.trainer import CHECKPOINT, LOG_FILE, TrainConfig, Trainer, lr_factor

N_ITEMS = 40


class Interrupted(Exception):
    """Stands in for a crash or Ctrl-C in the middle of training."""


def make_trainer(run_dir, crash_at: int | None = None) -> tuple[nn.Module, Trainer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 4))  # dropout: randomness must resume too
    inputs = torch.randn(N_ITEMS, 4, generator=torch.Generator().manual_seed(1))
    targets = torch.randn(N_ITEMS, 4, generator=torch.Generator().manual_seed(2))
    calls = {"n": 0}

    def step_losses(indices: list[int]) -> dict[str, torch.Tensor]:
        if crash_at is not None and calls["n"] == crash_at:
            raise Interrupted
        calls["n"] += 1
        error = ((model(inputs[indices]) - targets[indices]) ** 2).mean()
        return {"mse": error, "total": error}

    config = TrainConfig(lr=1e-2, epochs=3, batch_size=8, checkpoint_every=2, seed=3)
    return model, Trainer(model, list(model.parameters()), step_losses, N_ITEMS, config, run_dir)


def test_resume_after_interrupt_continues_from_the_checkpoint(tmp_path) -> None:
    reference, trainer = make_trainer(tmp_path / "straight")
    trainer.fit()
    assert trainer.total_steps == 15  # 40 items / batch 8 = 5 steps per epoch, 3 epochs

    _model, crashing = make_trainer(tmp_path / "resumed", crash_at=7)
    with pytest.raises(Interrupted):
        crashing.fit()
    state = json.loads((tmp_path / "resumed" / CHECKPOINT / "state.json").read_text())
    assert state["step"] == 6  # the last checkpoint before the crash
    resumed_model, resumed = make_trainer(tmp_path / "resumed")
    assert resumed.resume() == 6
    resumed.fit()
    for expected, actual in zip(reference.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(actual, expected)
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / LOG_FILE).read_text().splitlines()]
    assert steps == list(range(15))  # no step logged twice


def test_log_has_every_term_and_the_loss_goes_down(tmp_path) -> None:
    _model, trainer = make_trainer(tmp_path)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert {"step", "lr", "grad_norm", "mse", "total", "seconds"} <= set(records[0])
    assert sum(r["total"] for r in records[-5:]) < sum(r["total"] for r in records[:5])


def test_warmup_then_cosine_schedule() -> None:
    factors = [lr_factor(step, total=20, warmup=4) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and all(a >= b for a, b in pairwise(factors[4:]))
    assert factors[-1] < 0.05


def test_nothing_to_train_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="nothing to train"):
        Trainer(nn.Linear(2, 2), [], lambda i: {}, 10, TrainConfig(lr=1e-3), tmp_path)
