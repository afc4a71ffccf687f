"""Training speed: examples/s of each text stage on this machine, with the training code's own pieces.

Each stage runs a few steps of ``Trainer`` (the real loop: AdamW, schedule, clipping) on the
recipe's batch size and max length, with the stage's trainable parameters and loss
(``trainable_parameters``, ``text_step_losses``). Step times come from the trainer's own
``log.jsonl``; the first step (warm-up) is left out. Stage 1 trains FC1 on pooled states computed
once beforehand, as the pipeline does (that encoding pass is not counted).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from jasper_rag.bench.stats import Spread
from jasper_rag.encoder import FULL_HEAD, JasperEncoder, reduced_head_name
from jasper_rag.train.distributed import DistEnv
from jasper_rag.train.losses import DistillationLoss
from jasper_rag.train.stages import TEXT_STAGES, text_step_losses, trainable_parameters
from jasper_rag.train.trainer import LOG_FILE, TrainConfig, Trainer


@dataclass(frozen=True)
class StageSpeed:
    """Examples per second of one stage (min / median / max over the timed steps)."""

    stage: int
    batch_size: int
    max_length: int
    timed_steps: int
    trainable_parameters: int
    examples_per_s: Spread

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def step_seconds(log_file: Path) -> list[float]:
    """Durations of each logged step (the log holds cumulative seconds)."""
    marks = [json.loads(line)["seconds"] for line in log_file.read_text().splitlines() if line]
    return list(np.diff([0.0, *marks]))


def measure_stage(
    encoder: JasperEncoder,
    stage: int,
    texts: Sequence[str],
    targets: torch.Tensor,
    reduced_dims: Sequence[int],
    batch_size: int,
    steps: int,
    max_length: int,
    device: str = "cpu",
) -> StageSpeed:
    """Run ``steps`` steps of ``stage`` on ``encoder`` (changed in place) and time them (bf16 autocast on CUDA)."""
    if FULL_HEAD not in encoder.heads:
        encoder.add_head(FULL_HEAD, targets.shape[1])
    reduced: list[str] = []
    if stage == 3:
        reduced = [reduced_head_name(dim) for dim in reduced_dims]
        for name, dim in zip(reduced, reduced_dims, strict=True):
            if name not in encoder.heads:
                encoder.add_head(name, dim)
    encoder.config.max_length = max_length
    pooled = None
    if stage == 1:
        pooled = torch.from_numpy(encoder.encode(texts, dim=None, normalize=False, batch_size=batch_size))
    parameters = trainable_parameters(encoder, stage)
    step_losses = text_step_losses(encoder, texts, targets, DistillationLoss(), reduced, False, pooled)
    config = TrainConfig(lr=1e-5, batch_size=batch_size, max_steps=steps + 1, checkpoint_every=10**9)
    with tempfile.TemporaryDirectory(prefix="jasper-bench-train-") as run_dir:
        trainer = Trainer(
            encoder, parameters, step_losses, len(texts), config, Path(run_dir), DistEnv(device=device), f"stage{stage}"
        )
        trainer.fit()
        seconds = step_seconds(Path(run_dir) / LOG_FILE)[1:]
    encoder.requires_grad_(False)
    return StageSpeed(
        stage=stage,
        batch_size=batch_size,
        max_length=max_length,
        timed_steps=len(seconds),
        trainable_parameters=sum(parameter.numel() for parameter in parameters),
        examples_per_s=Spread.of([batch_size / value for value in seconds]),
    )


def measure_training(
    load_student: Callable[[], JasperEncoder],
    texts: Sequence[str],
    targets: np.ndarray,
    reduced_dims: Sequence[int],
    batch_size: int,
    steps: int,
    max_length: int,
) -> list[StageSpeed]:
    """``measure_stage`` for stages 1-3, each on a freshly loaded student."""
    needed = batch_size * (steps + 1)
    if len(texts) < needed:
        raise ValueError(f"training bench needs {needed} texts ({steps + 1} batches of {batch_size}), got {len(texts)}")
    texts, target_tensor = list(texts[:needed]), torch.from_numpy(np.asarray(targets[:needed], dtype=np.float32))
    return [
        measure_stage(load_student(), stage, texts, target_tensor, reduced_dims, batch_size, steps, max_length)
        for stage in TEXT_STAGES
    ]
