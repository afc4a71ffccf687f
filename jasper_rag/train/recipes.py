"""Training recipes: one small JSON file per profile in ``jasper_rag/train/recipes/``.

``load_recipe("quick")`` reads the packaged recipe of that name; a path to a ``.json`` file works too.
Every field is checked (pydantic): a bad value is reported with the file and the field's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jasper_rag.embedding import Role
from jasper_rag.train.losses import LossWeights
from jasper_rag.train.trainer import TrainConfig

RECIPES_DIR = Path(__file__).parent / "recipes"
DEFAULT_RECIPE = "quick"


class RecipeError(ValueError):
    """A recipe is missing or invalid."""


class Recipe(BaseModel):
    """Everything a training run needs: model, teachers, data, heads, stages."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    student: str = "minilm-l6"
    student_layers: list[int] | None = Field(
        None,
        min_length=1,
        description="encoder layers of the student kept (0-based, ascending), e.g. [0, 2, 4]; None keeps all",
    )
    teachers: list[str] = Field(default_factory=lambda: ["mpnet-base", "minilm-l6"], min_length=1)
    teacher_weights: list[float] | None = Field(
        None, description="one positive weight per teacher, scaling its block of the target (None: all 1)"
    )
    teacher_role: Role = Field(
        "symmetric", description="the role (query, passage, symmetric) whose prompt teachers embed training texts with"
    )
    student_prompts: dict[Role, str] | None = Field(
        None,
        description="role -> prefix the student reads that role's texts with, e.g. {'query': 'query: ', 'passage': "
        "'passage: '}: each training text is distilled once per role listed, prefixed, against the teachers' vectors "
        "for that role (teacher_role is then unused); the model records the prompts and eval uses them",
    )
    output: str = Field(description="folder of the trained model, e.g. models/jasper-quick")
    corpus: str = "data/corpus/default.jsonl"
    max_texts: int | None = Field(None, ge=2)
    max_words: int | None = Field(None, ge=1)
    cut_fraction: float = Field(0.3, ge=0, le=1)
    max_sentences: int = Field(10, ge=1)
    medline_passages: int = Field(
        0,
        ge=0,
        description="add this many MEDLINE titles + abstracts (>= 80 words, cut to passage_words; downloaded once, "
        "see jasper-rag corpus --medline) to the corpus's texts: long scientific passages to distil",
    )
    passage_words: int = Field(200, ge=1, description="words kept of each medline passage")
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
    loss: LossWeights = Field(default_factory=LossWeights)
    stages: dict[int, TrainConfig]

    @field_validator("student_layers")
    @classmethod
    def _ascending_layers(cls, layers: list[int] | None) -> list[int] | None:
        if layers is not None and (layers[0] < 0 or layers != sorted(set(layers))):
            raise ValueError(f"{layers}: distinct layer numbers >= 0 in ascending order")
        return layers

    @field_validator("student_prompts")
    @classmethod
    def _prompts_differ(cls, prompts: dict[str, str] | None) -> dict[str, str] | None:
        if prompts is not None and (not prompts or len(set(prompts.values())) != len(prompts)):
            raise ValueError("one distinct prefix per role listed, at least one role")
        return prompts

    @model_validator(mode="after")
    def _weights_per_teacher(self) -> Recipe:
        weights = self.teacher_weights
        if weights is not None and (len(weights) != len(self.teachers) or any(w <= 0 for w in weights)):
            raise ValueError(f"teacher_weights must be {len(self.teachers)} positive numbers, one per teacher")
        return self

    @field_validator("stages")
    @classmethod
    def _one_seed(cls, stages: dict[int, TrainConfig]) -> dict[int, TrainConfig]:
        for number, config in stages.items():
            if "seed" in config.model_fields_set:
                raise ValueError(f"stage {number} sets 'seed': the recipe's own 'seed' seeds every stage")
        return stages

    def stage_config(self, stage: int) -> TrainConfig:
        """The optimisation settings of ``stage``, seeded with the recipe's ``seed``."""
        return self.stages[stage].model_copy(update={"seed": self.seed})


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
