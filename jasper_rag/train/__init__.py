"""Distillation training (paper stages 1-3): losses, data, teacher vectors, stages, trainer, recipes.

Entry points: ``run_recipe(load_recipe("quick"))`` or ``jasper-rag train --recipe quick``.
Reusable pieces for other stages (e.g. stage 4, vision): ``DistillationLoss`` takes any
(student, teacher) batches; ``Trainer`` trains any parameter list with any batch-loss function.
"""

from jasper_rag.train.losses import DistillationLoss, LossWeights
from jasper_rag.train.recipes import Recipe, load_recipe
from jasper_rag.train.trainer import TrainConfig, Trainer

__all__ = ["DistillationLoss", "LossWeights", "Recipe", "TrainConfig", "Trainer", "load_recipe"]
