"""Run any ``TextEncoder`` under the official ``mteb`` package (needs internet for its datasets).

``mteb`` calls ``model.encode(...)`` with a list of strings (mteb 1.x) or with a DataLoader of
batches carrying a ``"text"`` list (mteb 2.x), plus keyword arguments (task name, prompt type, ...)
that this adapter ignores: our encoders use no instructions. Not exercised offline here.

Example::

    import mteb
    from jasper_rag.encoder import load_encoder
    from jasper_rag.eval.mteb_adapter import MTEBModel

    model = MTEBModel(load_encoder("models/jasper-quick").at(256))
    mteb.MTEB(tasks=mteb.get_tasks(tasks=["SciFact", "STSBenchmark"])).run(model, output_folder="results")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from jasper_rag.embedding import TextEncoder


class MTEBModel:
    """A ``TextEncoder`` behind the ``encode`` signature ``mteb`` expects."""

    def __init__(self, encoder: TextEncoder, batch_size: int = 32) -> None:
        self.encoder = encoder
        self.batch_size = batch_size

    def encode(self, inputs: Iterable[str] | Iterable[Mapping[str, Any]], **kwargs: Any) -> np.ndarray:
        """Unit-length float32 vectors, one per input text, in order."""
        texts = _texts(inputs)
        return self.encoder.encode(texts, batch_size=int(kwargs.get("batch_size") or self.batch_size))


def _texts(inputs: Iterable[str] | Iterable[Mapping[str, Any]]) -> list[str]:
    """Flatten mteb 1.x (strings) or 2.x (batches with a ``"text"`` list) inputs into texts."""
    if isinstance(inputs, str):
        return [inputs]
    texts: list[str] = []
    for item in inputs:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, Mapping) and "text" in item:
            texts.extend(item["text"])
        else:
            raise TypeError(f"expected strings or batches with a 'text' field, got {type(item).__name__}")
    return texts
