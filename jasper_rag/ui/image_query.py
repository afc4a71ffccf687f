"""Search by image: an uploaded picture, embedded by the model's vision tower into every head's space."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from jasper_rag.ingest.pipeline import can_embed_images
from jasper_rag.search import Hit, Searcher


def supports_image_queries(searcher: Searcher) -> bool:
    """True when the loaded model has a vision tower (``make train-vision``)."""
    return can_embed_images(searcher.encoder)


def search_by_image(
    searcher: Searcher,
    image: Image.Image,
    k: int = 10,
    dim: int | None = None,
    kinds: Sequence[str] | None = None,
    file_types: Sequence[str] | None = None,
    funnel: bool = False,
) -> list[Hit]:
    """Top-``k`` hits for an image query (images, and text too: they share one space)."""
    searcher.store.refresh()
    head = searcher.head_for(dim)
    vectors = searcher.encoder.encode_image_heads([image], list(searcher.heads))  # one pass of the tower
    return searcher.search_vectors(vectors, k, head, kinds, file_types, searcher.funnel_head() if funnel else None)[0]
