"""Stage 4 (paper section 3): align the vision tower with the frozen text side.

Student: an image's vector from the vision tower through each head. Teacher: the caption's vector
from the frozen text side through the same head. Loss: the paper's three terms (``DistillationLoss``)
on every head (the pooled vector when the encoder has no heads), averaged over heads. Only the
tower's projection trains (AdamW, lr 1e-4, batch 90 as in the paper); the backbone is frozen, so
its features are computed once per image and cached (``jasper_rag.vision.features``), and the
captions' text vectors are computed once: an epoch is a few matrix products.

    encoder = load_encoder("models/jasper-quick")
    train_stage4(encoder, read_image_set(split="train"), images_dir, run_dir)
    encoder.save("models/jasper-quick")   # now with a trained vision tower
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from jasper_rag.config import get_settings
from jasper_rag.encoder import CONFIG_FILE, POOLED, JasperEncoder, load_encoder
from jasper_rag.train.losses import DistillationLoss, LossWeights
from jasper_rag.train.model_card import write_model_card
from jasper_rag.train.trainer import StepLosses, TrainConfig, Trainer
from jasper_rag.vision.classes import imagenet_class_names
from jasper_rag.vision.data import CaptionedImage, read_image_set
from jasper_rag.vision.features import image_features
from jasper_rag.vision.tower import caption_free_tower

log = logging.getLogger(__name__)

STAGE4_KEY = "vision_stage4"  # EncoderConfig.extra: the stage-4 run that aligned the saved tower


def is_aligned(model: str | Path) -> bool:
    """Whether the saved model folder carries a tower trained by stage 4 (not only the caption-free start)."""
    try:
        config = json.loads((Path(model) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config.get("extra"), dict) and STAGE4_KEY in config["extra"]


@dataclass(frozen=True)
class Stage4Config:
    """Optimisation settings of stage 4 (paper: lr 1e-4, batch 90).

    ``max_pairs``: the relative-similarity term compares this many sampled in-batch pairs (of the
    4,005 in a batch of 90) per head; its cost grows with the square, and it runs on every head."""

    lr: float = 1e-4
    batch_size: int = 90
    epochs: float = 40.0
    max_pairs: int = 512
    seed: int = 0
    max_steps: int | None = None


def vision_heads(encoder: JasperEncoder) -> list[str]:
    """The heads stage 4 aligns: every named head, or the pooled vector (``POOLED``) when there is none."""
    return list(encoder.heads) or [POOLED]


@torch.no_grad()
def caption_targets(encoder: JasperEncoder, captions: Sequence[str]) -> dict[str, torch.Tensor]:
    """The frozen text side's unit caption vectors, per head (the backbone runs once per caption)."""
    raw = encoder.encode_heads(captions, vision_heads(encoder), normalize=False, show_progress=True)
    return {head: torch.nn.functional.normalize(torch.from_numpy(vectors), dim=-1) for head, vectors in raw.items()}


def vision_step_losses(
    encoder: JasperEncoder,
    features: torch.Tensor,
    targets: dict[str, torch.Tensor],
    loss: DistillationLoss,
) -> StepLosses:
    """The batch loss of stage 4: the three terms on every head, the heads' totals averaged."""
    if encoder.vision is None:
        raise ValueError("stage 4 needs an encoder with a vision tower")
    tower = encoder.vision

    def step(indices: list[int]) -> dict[str, torch.Tensor]:
        hidden = tower.project(features[indices].to(encoder.device))
        terms: dict[str, torch.Tensor] = {}
        for head, target in targets.items():
            head_terms = loss(encoder.head_output(head, hidden), target[indices].to(encoder.device))
            terms.update({f"{head}/{name}": value for name, value in head_terms.items()})
        terms["total"] = torch.stack([terms[f"{head}/total"] for head in targets]).mean()
        return terms

    return step


def freeze_all_but_projection(encoder: JasperEncoder) -> list[torch.nn.Parameter]:
    """Freeze the text side and the backbone; return the projection's parameters (all that trains)."""
    if encoder.vision is None:
        raise ValueError("stage 4 needs an encoder with a vision tower (see jasper_rag.vision.caption_free_tower)")
    encoder.requires_grad_(False)
    encoder.vision.projection.requires_grad_(True)
    return list(encoder.vision.projection.parameters())


def train_stage4(
    encoder: JasperEncoder,
    records: Sequence[CaptionedImage],
    images_dir: Path,
    run_dir: Path,
    config: Stage4Config | None = None,
) -> dict[str, float]:
    """Train the tower's projection on captioned images; returns the last steps' mean loss terms.

    ``run_dir`` keeps the checkpoint and ``log.jsonl``: an interrupted run resumes there."""
    config = config or Stage4Config()
    if not records:
        raise ValueError("stage 4 needs at least one captioned training image")
    parameters = freeze_all_but_projection(encoder)
    assert encoder.vision is not None
    features = torch.from_numpy(image_features(encoder.vision, images_dir, [r.file for r in records]))
    targets = caption_targets(encoder, [r.caption for r in records])
    batch = min(config.batch_size, max(2, len(records)))  # a single image: batches of it alone, as with 1
    log.info("stage 4: %d images, heads %s, batch %d", len(records), list(targets), batch)
    trainer = Trainer(
        encoder.vision.projection,
        parameters,
        vision_step_losses(encoder, features, targets, DistillationLoss(LossWeights(max_pairs=config.max_pairs))),
        n_items=len(records),
        config=TrainConfig(
            lr=config.lr, epochs=config.epochs, batch_size=batch, seed=config.seed, max_steps=config.max_steps
        ),
        run_dir=run_dir,
        label="stage4",
    )
    result = trainer.fit()
    encoder.eval()
    return result


def stage4_run_dir(encoder: JasperEncoder, records: Sequence[CaptionedImage], config: Stage4Config) -> Path:
    """Where a run keeps its checkpoint: one folder per (text model, training images, settings)."""
    key = json.dumps([[r.file, r.caption] for r in records] + [asdict(config)], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return get_settings().cache_dir / "runs" / f"stage4-{encoder.fingerprint()}-{digest}"


def align_vision(
    model: str | Path,
    output: str | Path | None = None,
    images_dir: Path | None = None,
    config: Stage4Config | None = None,
) -> tuple[Path, dict[str, float]]:
    """Caption-free start + stage 4 on a saved text model; saves the model with its tower (atomically).

    The tower always starts from the caption-free start, so a rerun gives the same model; an
    interrupted run resumes from its checkpoint. ``output`` defaults to ``model`` (written in place)."""
    config = config or Stage4Config()
    images_dir = images_dir or get_settings().images_dir
    target = Path(output or model)
    if output is None and not Path(model).is_dir():
        raise ValueError(f"'{model}' is a packaged model: give an output folder to save the aligned model in")
    records = read_image_set(images_dir, split="train")
    encoder = load_encoder(model)
    encoder.attach_vision(caption_free_tower(encoder, imagenet_class_names()))
    run_dir = stage4_run_dir(encoder, records, config)
    losses = train_stage4(encoder, records, images_dir, run_dir, config)
    encoder.config.extra[STAGE4_KEY] = {"run": run_dir.name, "images": len(records), "epochs": config.epochs}
    encoder.save(target)
    write_model_card(encoder, target)  # an aligned copy of a trained model carries its card and terms
    return target, losses
