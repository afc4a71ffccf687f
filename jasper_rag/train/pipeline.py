"""Run a recipe: corpus -> teacher vectors (cached) -> stages 1-3 -> the saved model.

Each stage works in ``<runs>/<recipe>/stage<N>/`` (checkpoint, ``log.jsonl``) and, when finished,
saves its model there with ``done.json`` (wall time, final losses). Running a recipe again skips the
finished stages and resumes an interrupted one from its checkpoint. Under ``torchrun`` every process
runs this same function; only rank 0 writes models, logs and plots.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jasper_rag.config import get_settings, resolve_device
from jasper_rag.embedding import for_role
from jasper_rag.encoder import (
    CONFIG_FILE,
    FULL_HEAD,
    PROMPTS_KEY,
    RECIPE_KEY,
    JasperEncoder,
    load_encoder,
    reduced_head_name,
)
from jasper_rag.files import atomic_write
from jasper_rag.train.corpus import medline_passages
from jasper_rag.train.data import deduplicate, training_texts
from jasper_rag.train.distributed import DistEnv
from jasper_rag.train.losses import DistillationLoss
from jasper_rag.train.model_card import TERMS_KEY, inherited_terms, write_model_card
from jasper_rag.train.neighbours import nearest_neighbours, neighbour_order
from jasper_rag.train.plots import plot_curves
from jasper_rag.train.recipes import Recipe
from jasper_rag.train.stages import (
    TEXT_STAGES,
    init_head_least_squares,
    init_head_procrustes,
    init_heads_pca,
    keep_layers,
    set_dropout,
    text_step_losses,
    trainable_parameters,
)
from jasper_rag.train.teacher_vectors import ensemble_targets
from jasper_rag.train.trainer import LOG_FILE, EpochOrder, Trainer

log = logging.getLogger(__name__)

DONE_FILE = "done.json"
TIMINGS_FILE = "timings.json"
STAGES_MARKER_KEY = "trained_stages"  # EncoderConfig.extra: which finished stages the saved model comes from
PCA_SAMPLE = 2048  # texts whose pooled states set the reduced heads' PCA start


def pooled_states(encoder: JasperEncoder, texts: Sequence[str], dist: DistEnv, batch_size: int) -> torch.Tensor:
    """Unnormalised pooled backbone vectors of every text (computed round-robin across processes)."""
    local = encoder.encode(
        list(texts[dist.rank :: dist.world]),
        dim=None,
        normalize=False,
        batch_size=batch_size,
        show_progress=dist.is_main,
    )
    return dist.gather_rows(torch.from_numpy(local).to(encoder.device), len(texts))


def teacher_targets(recipe: Recipe, texts: Sequence[str], dist: DistEnv) -> tuple[list[str], torch.Tensor]:
    """The student's training texts and their ensemble vectors, from the shared on-disk cache (filled where
    missing). With ``student_prompts``, every text once per role: prefixed for the student, the teachers'
    vectors for that role as its target; else the texts as they are, the teachers in ``teacher_role``."""
    from jasper_rag.teachers import load_teacher

    loaded = [load_teacher(name, device=dist.device) for name in recipe.teachers]
    root = get_settings().cache_dir / "vectors"
    weights = recipe.teacher_weights or [1.0] * len(loaded)
    prompts = recipe.student_prompts or {recipe.teacher_role: ""}
    student_texts: list[str] = []
    blocks = []
    for role, prompt in prompts.items():
        teachers = [for_role(teacher, role) for teacher in loaded]
        blocks.append(ensemble_targets(teachers, texts, root, dist, weights, batch_size=recipe.teacher_batch_size))
        student_texts += [prompt + text for text in texts]
    del loaded
    return student_texts, torch.from_numpy(np.concatenate(blocks))


def prepare_heads(
    encoder: JasperEncoder,
    recipe: Recipe,
    stage: int,
    texts: Sequence[str],
    targets: torch.Tensor,
    dist: DistEnv,
    pooled: torch.Tensor | None,
) -> list[str]:
    """Add the heads a stage starts with (FC1 in stage 1, reduced heads in stage 3); returns the reduced ones."""
    if stage == 1:
        head = encoder.add_head(FULL_HEAD, targets.shape[1])
        if pooled is not None and recipe.full_head_init != "random":
            init = init_head_procrustes if recipe.full_head_init == "procrustes" else init_head_least_squares
            init(head, pooled, targets.to(pooled.device))
    if stage != 3:
        return []
    names = [reduced_head_name(dim) for dim in recipe.reduced_dims]
    sample = list(texts[:PCA_SAMPLE])
    use_pca = recipe.reduced_head_init == "pca"
    hidden = pooled_states(encoder, sample, dist, recipe.teacher_batch_size) if use_pca else None
    heads = [encoder.add_head(name, dim) for name, dim in zip(names, recipe.reduced_dims, strict=True)]
    if hidden is not None:
        init_heads_pca(heads, encoder.heads[FULL_HEAD], hidden)
    return names


def neighbour_batches(targets: torch.Tensor, group_size: int, dist: DistEnv) -> EpochOrder:
    """The epoch order of a stage with ``neighbour_group``: groups of neighbours in the teachers' space."""
    began = time.perf_counter()
    neighbours = nearest_neighbours(targets, device=dist.device)
    log.info("nearest neighbours of %d teacher vectors in %.1f s", len(targets), time.perf_counter() - began)
    return lambda n_items, seed: neighbour_order(neighbours, group_size, seed)


def run_stage(
    encoder: JasperEncoder,
    recipe: Recipe,
    stage: int,
    texts: Sequence[str],
    targets: torch.Tensor,
    stage_dir: Path,
    dist: DistEnv,
) -> dict[str, object]:
    """Train one stage in place (resuming from its checkpoint) and return its summary."""
    began = time.perf_counter()
    torch.manual_seed(recipe.seed)
    inference_length = encoder.config.max_length  # the saved model keeps its own; training may cut shorter
    encoder.config.max_length = recipe.max_length
    try:
        pooled = pooled_states(encoder, texts, dist, recipe.teacher_batch_size) if stage == 1 else None
        reduced = prepare_heads(encoder, recipe, stage, texts, targets, dist, pooled)
        parameters = trainable_parameters(encoder, stage, recipe.last_layers)
        if recipe.dropout is not None:
            set_dropout(encoder.backbone, recipe.dropout)  # not saved: the model's config keeps its own
        loss = DistillationLoss(recipe.loss)
        step_losses = text_step_losses(
            encoder,
            texts,
            targets,
            loss,
            reduced,
            recipe.self_distill,
            pooled,
            reduced_weight=recipe.reduced_loss_weight,
        )
        config = recipe.stage_config(stage)
        order = neighbour_batches(targets, config.neighbour_group, dist) if config.neighbour_group else None
        trainer = Trainer(encoder, parameters, step_losses, len(texts), config, stage_dir, dist, f"stage{stage}", order)
        final = trainer.fit()
    finally:
        encoder.config.max_length = inference_length
        encoder.requires_grad_(False)
    summary = {
        "stage": stage,
        "seconds": round(time.perf_counter() - began, 1),
        "steps": trainer.total_steps,
        "texts": len(texts),
        "processes": dist.world,
        "trainable_parameters": sum(p.numel() for p in parameters),
        "final_losses": final,
    }
    if dist.is_main:
        encoder.save(stage_dir / "model")
        (stage_dir / DONE_FILE).write_text(json.dumps(summary, indent=2))
    dist.barrier()
    return summary


def record_timings(path: Path, measured: dict[str, float]) -> dict[str, float]:
    """Merge this invocation's wall times into ``path`` and return them all.

    A recipe resumed over several invocations keeps the times of the stages trained before; stage
    times are replaced when a stage is trained again, ``teacher_vectors`` and ``total`` add up.
    """
    merged: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
    for key, seconds in measured.items():
        added = key in ("teacher_vectors", "total")
        merged[key] = round(seconds + (merged.get(key, 0.0) if added else 0.0), 1)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(merged, indent=2)))
    return merged


def stages_marker(run_dir: Path, stages: Sequence[int]) -> str | None:
    """A digest of the stages' ``done.json`` records, or None while one of them is unfinished."""
    digest = hashlib.sha256()
    for stage in stages:
        done = run_dir / f"stage{stage}" / DONE_FILE
        if not done.is_file():
            return None
        digest.update(done.read_bytes())
    return digest.hexdigest()[:16]


def saved_marker(output: Path) -> str | None:
    """The stages marker recorded in a saved model's config (None when absent or unreadable)."""
    try:
        return json.loads((output / CONFIG_FILE).read_text()).get("extra", {}).get(STAGES_MARKER_KEY)
    except (OSError, ValueError, AttributeError):
        return None


def load_student(recipe: Recipe, device: str | None = None) -> JasperEncoder:
    """The recipe's starting model: ``recipe.student``, cut to ``recipe.student_layers`` when set."""
    encoder = load_encoder(recipe.student, device=device)
    if recipe.student_layers is not None:
        keep_layers(encoder, recipe.student_layers)
    return encoder


def recipe_texts(recipe: Recipe) -> list[str]:
    """The recipe's training texts: its corpus sample, then its MEDLINE passages (if any), de-duplicated."""
    texts = training_texts(
        recipe.corpus, recipe.max_texts, recipe.cut_fraction, recipe.max_sentences, recipe.max_words, recipe.seed
    )
    if recipe.medline_passages:
        passages = medline_passages(
            get_settings().cache_dir, recipe.medline_passages, recipe.passage_words, recipe.seed
        )
        texts = deduplicate(texts + passages)
    return texts


def fill_teacher_vectors(recipe: Recipe, device: str | None = None) -> int:
    """Only compute the recipe's teacher vectors into the cache (under ``torchrun`` on as many machines as
    wanted: each process embeds its share); returns the number of training texts. Training later reads them."""
    dist = DistEnv.from_env(resolve_device(device))
    texts = recipe_texts(recipe)
    log.info("recipe %s: teacher vectors of %d training texts from %s", recipe.name, len(texts), recipe.corpus)
    student_texts, _ = teacher_targets(recipe, texts, dist)
    dist.barrier()
    dist.close()
    return len(student_texts)


def run_recipe(recipe: Recipe, stages: Sequence[int] | None = None, device: str | None = None) -> Path:
    """Train the recipe's stages (all text stages by default) and save the model to ``recipe.output``."""
    dist = DistEnv.from_env(resolve_device(device))
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    run_dir = get_settings().runs_dir / recipe.name
    wanted = list(stages or TEXT_STAGES)
    for stage in wanted:
        if stage not in recipe.stages:
            raise ValueError(f"recipe '{recipe.name}' has no settings for stage {stage}")
    output = Path(recipe.output)
    marker = stages_marker(run_dir, wanted)
    if marker is not None and saved_marker(output) == marker:
        log.info("%s is up to date with %s: nothing to train (delete the model to save it again)", output, run_dir)
        dist.close()
        return output
    began = time.perf_counter()
    texts = recipe_texts(recipe)
    log.info("recipe %s: %d training texts from %s", recipe.name, len(texts), recipe.corpus)
    for terms in inherited_terms(recipe.teachers):
        log.warning("recipe %s: %s", recipe.name, terms)
    texts, targets = teacher_targets(recipe, texts, dist)
    timings: dict[str, float] = {"teacher_vectors": round(time.perf_counter() - began, 1)}
    encoder: JasperEncoder | None = None
    for stage in wanted:
        stage_dir = run_dir / f"stage{stage}"
        if (stage_dir / DONE_FILE).is_file():
            log.info("stage %d already finished (%s): skipping; delete the folder to train it again", stage, stage_dir)
            encoder = load_encoder(stage_dir / "model", device=dist.device)
            continue
        if encoder is None:
            previous = run_dir / f"stage{stage - 1}" / "model"
            if stage > 1 and not (previous / "jasper_config.json").is_file():
                raise FileNotFoundError(f"stage {stage} starts from stage {stage - 1}'s model, not found at {previous}")
            encoder = load_encoder(previous, device=dist.device) if stage > 1 else load_student(recipe, dist.device)
        summary = run_stage(encoder, recipe, stage, texts, targets, stage_dir, dist)
        timings[f"stage{stage}"] = summary["seconds"]
        log.info("stage %d done in %.0f s: %s", stage, summary["seconds"], summary["final_losses"])
    if dist.is_main and encoder is not None:
        encoder.config.extra[RECIPE_KEY] = recipe.model_dump(mode="json")  # teachers, student, stages...
        encoder.config.extra[STAGES_MARKER_KEY] = stages_marker(run_dir, wanted)
        encoder.config.extra[TERMS_KEY] = inherited_terms(recipe.teachers)
        if recipe.student_prompts:
            encoder.config.extra[PROMPTS_KEY] = dict(recipe.student_prompts)
        encoder.save(output)
        write_model_card(encoder, output)
        plot_curves([run_dir / f"stage{s}" / LOG_FILE for s in TEXT_STAGES], run_dir / "curves.png")
        timings["total"] = round(time.perf_counter() - began, 1)
        timings = record_timings(run_dir / TIMINGS_FILE, timings)
        log.info("saved %s; wall times (s): %s; curves: %s", output, timings, run_dir / "curves.png")
    dist.barrier()
    dist.close()
    return output
