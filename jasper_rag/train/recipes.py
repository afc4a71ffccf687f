"""Training recipes: one small JSON file per profile in ``jasper_rag/train/recipes/``.

``load_recipe("quick")`` reads the packaged recipe of that name; a path to a ``.json`` file works too.
Every field is checked (pydantic): a bad value is reported with the file and the field's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jasper_rag.train.losses import LossWeights
from jasper_rag.train.trainer import TrainConfig

RECIPES_DIR = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "quick"


class RecipeError(ValueError):
    """A recipe is missing or invalid."""


class StageSettings(BaseModel):
    """Optimisation of one stage."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(gt=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=2)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(100, ge=1)
    max_steps: int | None = Field(None, ge=1)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(seed=seed, **self.model_dump())


class LossSettings(BaseModel):
    """Weights of the three losses and the hinge margin."""

    model_config = ConfigDict(extra="forbid")

    cos: float = Field(10.0, ge=0)
    sim: float = Field(200.0, ge=0)
    resim: float = Field(20.0, ge=0)
    margin: float = Field(0.015, ge=0)
    max_pairs: int = Field(2048, ge=2, description="relative loss: pairs compared per batch (memory bound)")

    def weights(self) -> LossWeights:
        return LossWeights(**self.model_dump())


class Recipe(BaseModel):
    """Everything a training run needs: model, teachers, data, heads, stages."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    student: str = "minilm-l6"
    teachers: list[str] = Field(default_factory=lambda: ["mpnet-base", "minilm-l6"], min_length=1)
    output: str = Field(description="folder of the trained model, e.g. models/jasper-quick")
    corpus: str = "data/corpus/default.jsonl"
    max_texts: int | None = Field(None, ge=2)
    max_words: int | None = Field(None, ge=1)
    cut_fraction: float = Field(0.3, ge=0, le=1)
    max_sentences: int = Field(10, ge=1)
    max_length: int = Field(256, ge=8, description="student tokens per text while training (the model keeps its own)")
    reduced_dims: list[int] = Field(default_factory=lambda: [256, 128, 64])
    self_distill: bool = False
    reduced_loss_weight: float = Field(
        1.0, ge=0, description="stage 3: weight of each reduced head's loss in the total (1 = the paper's sum)"
    )
    full_head_init: Literal["procrustes", "least_squares", "random"] = "procrustes"
    reduced_head_init: Literal["pca", "random"] = "pca"
    last_layers: int = Field(3, ge=1, description="stage 2: how many top encoder layers train")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="stages 2-3: the backbone's dropout while training (None keeps the model's own)"
    )
    teacher_batch_size: int = Field(32, ge=1)
    seed: int = 0
    loss: LossSettings = Field(default_factory=LossSettings)
    stages: dict[int, StageSettings]


def recipe_names() -> list[str]:
    """Names of the packaged recipes."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.json"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A packaged recipe by name, or a recipe JSON file."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = RECIPES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise RecipeError(f"no recipe '{name_or_path}': use one of {recipe_names()} or a path to a .json file")
    try:
        return Recipe.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as err:
        raise RecipeError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise RecipeError(f"{path}: {problems}") from err
