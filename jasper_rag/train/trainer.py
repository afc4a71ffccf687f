"""One readable training loop: AdamW, warm-up + cosine schedule, clipping, checkpoints, resume.

The loop knows nothing about stages or models: it gets the parameters to train and a function that
turns a list of item indices into named loss terms (one of them ``total``). Data order, dropout and
pair sampling are seeded per step, so a run resumed from a checkpoint continues exactly where the
interrupted one stopped. Under ``torchrun`` every process takes its slice of each global batch and
gradients are averaged before the step (``DistEnv``). bf16 autocast is used on CUDA only.

Files in ``run_dir``: ``checkpoint/`` (model.safetensors, optimizer.pt, state.json; replaced
atomically), ``log.jsonl`` (one line per step: every loss term, learning rate, seconds).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_model, save_model
from torch import nn
from tqdm.auto import tqdm

from jasper_rag.train.distributed import DistEnv

log = logging.getLogger(__name__)

StepLosses = Callable[[list[int]], dict[str, torch.Tensor]]
EpochOrder = Callable[[int, int], torch.Tensor]  # (number of items, seed) -> a permutation of the items
CHECKPOINT = "checkpoint"
LOG_FILE = "log.jsonl"


class TrainConfig(BaseModel):
    """Optimisation settings of one stage (a recipe's ``stages`` entry), checked when built.

    Immutable; unknown fields are refused. ``batch_size`` is global (split across processes) and at
    least 2, as the in-batch losses compare pairs of texts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(gt=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=2)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(100, ge=1)
    neighbour_group: int | None = Field(
        None,
        ge=2,
        description="text stages: batches made of groups of this many teacher-space neighbours "
        "(jasper_rag.train.neighbours); None: plain shuffled batches",
    )
    max_steps: int | None = Field(None, ge=1, description="stop early (tests, smoke runs)")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def random_order(n_items: int, seed: int) -> torch.Tensor:
    """The default epoch order: a seeded shuffle."""
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed))


class Trainer:
    """Trains ``parameters`` of ``model`` by minimising ``step_losses(indices)["total"]``."""

    def __init__(
        self,
        model: nn.Module,
        parameters: Sequence[nn.Parameter],
        step_losses: StepLosses,
        n_items: int,
        config: TrainConfig,
        run_dir: Path,
        dist: DistEnv | None = None,
        label: str = "train",
        epoch_order: EpochOrder | None = None,
    ) -> None:
        if not parameters:
            raise ValueError("nothing to train: the parameter list is empty")
        self.model = model
        self.parameters = list(parameters)
        self.step_losses = step_losses
        self.config = config
        self.run_dir = Path(run_dir)
        self.dist = dist or DistEnv()
        self.label = label
        self.epoch_order = epoch_order or random_order
        self._order: tuple[int, torch.Tensor] | None = None  # (epoch, its order), made once per epoch
        self.local_batch = max(1, config.batch_size // self.dist.world)
        self.steps_per_epoch = max(1, n_items // (self.local_batch * self.dist.world))
        self.n_items = n_items
        total = math.ceil(config.epochs * self.steps_per_epoch)
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.optimizer = torch.optim.AdamW(self.parameters, lr=config.lr, weight_decay=config.weight_decay)
        warmup = max(1, round(config.warmup_ratio * self.total_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.total_steps, warmup)
        )

    # ----------------------------------------------------------------- data order
    def batch_indices(self, step: int) -> list[int]:
        """This process's slice of the global batch of ``step`` (a fresh seeded order each epoch)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, self.epoch_order(self.n_items, self.config.seed * 100_003 + epoch))
        start = (position * self.dist.world + self.dist.rank) * self.local_batch
        return self._order[1][start : start + self.local_batch].tolist()

    # ----------------------------------------------------------------- checkpoints
    def save_checkpoint(self, step: int) -> None:
        """Write model, optimiser and step into ``run_dir/checkpoint`` atomically (main process)."""
        if not self.dist.is_main:
            return
        target = self.run_dir / CHECKPOINT
        tmp = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=self.run_dir))
        save_model(self.model, str(tmp / "model.safetensors"))
        optimizer = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        torch.save(optimizer, tmp / "optimizer.pt")
        state = {"step": step, "total_steps": self.total_steps, "config": self.config.model_dump()}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        old = self.run_dir / ".checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)

    def resume(self) -> int:
        """Load the checkpoint in ``run_dir`` if there is one; returns the step to continue from."""
        folder = self.run_dir / CHECKPOINT
        if not (folder / "state.json").is_file():
            return 0
        state = json.loads((folder / "state.json").read_text())
        load_model(self.model, str(folder / "model.safetensors"), device=str(next(self.model.parameters()).device))
        optim = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(optim["optimizer"])
        self.scheduler.load_state_dict(optim["scheduler"])
        step = int(state["step"])
        log.info("%s: resuming from the checkpoint at step %d of %d", self.label, step, self.total_steps)
        return step

    def _trim_log(self, step: int) -> None:
        """Drop log lines of steps after the checkpoint (they will be run again)."""
        path = self.run_dir / LOG_FILE
        if self.dist.is_main and path.is_file():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] < step]
            path.write_text("".join(f"{line}\n" for line in kept))

    # ----------------------------------------------------------------- the loop
    def fit(self) -> dict[str, float]:
        """Run (or finish) training; returns the mean of each loss term over the last 10 steps."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        start = self.resume()
        self._trim_log(start)
        device_type = "cuda" if str(self.dist.device).startswith("cuda") else "cpu"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device_type == "cuda" else nullcontext()
        recent: list[dict[str, float]] = []
        self.model.train()
        bar = tqdm(total=self.total_steps, initial=start, desc=self.label, unit="step", disable=not self.dist.is_main)
        began = time.perf_counter()
        with (self.run_dir / LOG_FILE).open("a") as log_file:
            for step in range(start, self.total_steps):
                torch.manual_seed(self.config.seed * 1_000_003 + step * self.dist.world + self.dist.rank)
                with autocast:
                    terms = self.step_losses(self.batch_indices(step))
                self.optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                self.dist.average_gradients(self.parameters)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
                lr = self.optimizer.param_groups[0]["lr"]
                self.optimizer.step()
                self.scheduler.step()
                values = self.dist.mean({name: float(value.detach()) for name, value in terms.items()})
                recent = [*recent[-9:], values]
                if self.dist.is_main:
                    record = {"stage": self.label, "step": step, "lr": lr, "grad_norm": float(grad_norm), **values}
                    record["seconds"] = round(time.perf_counter() - began, 3)
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    bar.set_postfix(loss=f"{values['total']:.4f}")
                    bar.update(1)
                if (step + 1) % self.config.checkpoint_every == 0 or step + 1 == self.total_steps:
                    self.save_checkpoint(step + 1)
                    self.dist.barrier()
        bar.close()
        self.model.eval()
        return {name: sum(r[name] for r in recent) / len(recent) for name in recent[0]} if recent else {}
