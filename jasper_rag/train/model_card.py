"""The model card and use terms a trained model carries (``README.md`` in its folder, ``terms`` in its config).

A model distilled from a teacher whose licence restricts use (EmbeddingGemma: Gemma Terms of Use)
inherits those terms; they travel with the model in its own metadata and card, and ``jasper-rag
train`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jasper_rag.encoder import CARD_FILE, POOLED, RECIPE_KEY, JasperEncoder
from jasper_rag.files import atomic_write
from jasper_rag.weights import PACKAGED_MODELS

TERMS_KEY = "terms"  # EncoderConfig.extra key: the use terms inherited from the teachers


def inherited_terms(teachers: Sequence[str]) -> list[str]:
    """The use terms of every packaged teacher that has some (empty for Apache-licensed teachers)."""
    return [spec.terms for name in teachers if (spec := PACKAGED_MODELS.get(name)) is not None and spec.terms]


def licence_of(name: str) -> str:
    """A model's licence as recorded for packaged models, or 'see its folder' for other folders."""
    spec = PACKAGED_MODELS.get(name)
    return spec.licence if spec else "see the model folder"


def card_text(name: str, student: str, teachers: Sequence[str], recipe: str, heads: Sequence[str]) -> str:
    """Markdown model card: what the model is, what it was distilled from, and under which terms."""
    terms = inherited_terms(teachers)
    lines = [
        f"# {name}",
        "",
        f"A jasper_rag student distilled with the `{recipe}` recipe (Jasper and Stella, arXiv 2412.19048).",
        f"Heads: {', '.join(heads)}. Load it with `jasper_rag.encoder.load_encoder(folder)`.",
        "",
        "| role | model | licence |",
        "|---|---|---|",
        f"| student (start) | {student} | {licence_of(student)} |",
        *(f"| teacher | {teacher} | {licence_of(teacher)} |" for teacher in teachers),
        "",
        "## Terms of use",
        "",
    ]
    if terms:
        lines += [*terms, ""]
    else:
        lines += ["No teacher adds use restrictions; the student's own licence applies.", ""]
    return "\n".join(lines)


def write_model_card(encoder: JasperEncoder, folder: Path) -> Path | None:
    """Write the card of a trained model (one whose config records its recipe) into its saved ``folder``,
    named after the folder and listing its current heads; None for a model with no recipe (nothing written)."""
    recipe = encoder.config.extra.get(RECIPE_KEY)
    if not recipe:
        return None
    heads = list(encoder.config.heads) or [POOLED]
    text = card_text(folder.name, recipe["student"], recipe["teachers"], recipe["name"], heads)
    path = folder / CARD_FILE
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
