"""Export one head of a saved model as a standard sentence-transformers folder.

The folder holds Transformer (our backbone + tokenizer, same max length) -> Pooling (mean) ->
Dense (the head's weights, identity activation) -> Normalize, so ``SentenceTransformer(folder)``
loads it offline in any tool that speaks that format and returns the same vectors as
``encoder.encode(texts, dim=head)``. Exporting without a head gives the pooled backbone vector.
The model's card (``README.md``, with any use terms inherited from its teachers) goes with it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from jasper_rag.encoder import CARD_FILE, FULL_HEAD, POOLED, load_encoder

try:  # sentence-transformers >= 5.7 moved the modules; older releases keep them in .models
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
except ImportError:  # pragma: no cover - depends on the installed release
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer


def export_sentence_transformers(model: str | Path, to: str | Path, head_dim: int | None = None) -> Path:
    """Write ``model``'s head of size ``head_dim`` (None: full head if any) to ``to`` atomically."""
    from sentence_transformers import SentenceTransformer

    encoder = load_encoder(model, device="cpu")
    if head_dim is None and FULL_HEAD in encoder.heads:
        head_dim = encoder.heads[FULL_HEAD].out_features
    head_name = encoder.head_for_dim(head_dim)
    target = Path(to)
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} exists and is not empty: choose a new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        backbone_dir = Path(tmp) / "backbone"
        encoder.backbone.save_pretrained(backbone_dir)
        encoder.tokenizer.save_pretrained(backbone_dir)
        modules: list[torch.nn.Module] = [
            Transformer(str(backbone_dir), max_seq_length=encoder.config.max_length),
            Pooling(encoder.hidden_size, "mean"),
        ]
        if head_name != POOLED:
            head = encoder.heads[head_name]
            modules.append(
                Dense(
                    head.in_features,
                    head.out_features,
                    bias=True,
                    activation_function=torch.nn.Identity(),
                    init_weight=head.weight.detach().clone(),
                    init_bias=head.bias.detach().clone(),
                )
            )
        modules.append(Normalize())
        staged = Path(tmp) / "model"
        SentenceTransformer(modules=modules, device="cpu").save(str(staged))
        card = Path(model) / CARD_FILE
        if card.is_file():  # the model card carries the terms inherited from the teachers
            shutil.copyfile(card, staged / CARD_FILE)
        if target.exists():
            target.rmdir()
        shutil.move(str(staged), target)
    return target
