"""Refit a trained model's reduced heads to a body of text, the backbone and the full head untouched.

A reduced head keeps the directions along which its fitting text varies most. Stage 3 fits them on the
training corpus, whose biggest differences are between genres (tweets, speeches, news); refitted on
text of one domain (the documents you search) the small heads keep that domain's distinctions. Each
head becomes the top principal directions of the full head's outputs on the texts (``init_heads_pca``),
so no teacher is needed: one backbone pass over the texts, then a closed-form fit.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path

import torch

from jasper_rag.encoder import CONFIG_FILE, FULL_HEAD, JasperEncoder, load_encoder
from jasper_rag.files import atomic_write
from jasper_rag.train.data import load_documents
from jasper_rag.train.model_card import write_model_card
from jasper_rag.train.stages import init_heads_pca

log = logging.getLogger(__name__)

FIT_RECORD = "fitted_heads.json"  # written beside the model: which heads were refitted, on what


def reduced_heads(encoder: JasperEncoder, names: Sequence[str] | None = None) -> list[str]:
    """The reduced heads to refit: ``names`` (checked against the model) or every head except the full one."""
    available = [name for name in encoder.heads if name != FULL_HEAD]
    if FULL_HEAD not in encoder.heads or not available:
        heads = list(encoder.heads)
        raise ValueError(f"the model needs a '{FULL_HEAD}' head and reduced heads to refit; it has {heads}")
    if not names:
        return available
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(f"no reduced head named {unknown}; this model's are {available}")
    return list(names)


@torch.no_grad()
def fit_reduced_heads(
    encoder: JasperEncoder, texts: Sequence[str], heads: Sequence[str] | None = None, show_progress: bool = True
) -> list[str]:
    """Set each reduced head (all by default) to the top principal directions of the full head's
    outputs on ``texts``; return the names refitted. Needs at least as many texts as the largest head."""
    names = reduced_heads(encoder, heads)
    largest = max(encoder.heads[name].out_features for name in names)
    if len(texts) < largest:
        raise ValueError(f"fitting a {largest}-d head needs at least {largest} texts, got {len(texts)}")
    hidden = encoder.pool_texts(list(texts), show_progress=show_progress)
    init_heads_pca([encoder.heads[name] for name in names], encoder.heads[FULL_HEAD], hidden)
    return names


def fit_heads_on_file(
    model: str | Path,
    texts_path: str | Path,
    to: str | Path,
    heads: Sequence[str] | None = None,
    source: str | None = None,
    max_texts: int = 3000,
    seed: int = 0,
) -> dict[str, object]:
    """Load ``model``, refit its reduced heads on a seeded sample of ``max_texts`` documents from
    ``texts_path`` (.txt / .jsonl / folder; ``source`` keeps only JSONL records with that ``source``
    field), save the result atomically to ``to`` with a ``fitted_heads.json`` record, and return it."""
    if max_texts < 1:
        raise ValueError(f"max_texts must be at least 1, got {max_texts}")
    to = Path(to)
    if to.exists() and not (to / CONFIG_FILE).is_file() and (not to.is_dir() or any(to.iterdir())):
        raise ValueError(f"{to}: exists and is not a saved model; give a new folder (nothing was written)")
    documents = load_documents(texts_path, source=source)
    if not documents:
        where = f" with source '{source}'" if source else ""
        raise ValueError(f"{texts_path}: no documents{where} to fit the heads on")
    sample = random.Random(seed).sample(documents, min(max_texts, len(documents)))
    encoder = load_encoder(model)
    names = fit_reduced_heads(encoder, sample, heads)
    record = {
        "model": str(model),
        "texts": str(texts_path),
        "source": source,
        "documents": len(sample),
        "seed": seed,
        "heads": {name: encoder.heads[name].out_features for name in names},
    }
    folder = encoder.save(to)
    write_model_card(encoder, folder)  # a refitted copy of a trained model carries its card and terms
    atomic_write(folder / FIT_RECORD, lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
    log.info("refitted %s on %d documents from %s -> %s", ", ".join(names), len(sample), texts_path, folder)
    return record
