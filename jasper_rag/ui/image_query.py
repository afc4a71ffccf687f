"""Search by image: an uploaded picture, embedded by the model's vision tower into every head's space.

The upload is bounded on the server like an ingested file: at most ``ingest_max_file_mb`` bytes (checked
before decoding) and ``max_image_pixels`` pixels (read from the header, before any pixel is decoded).
"""

from __future__ import annotations

from PIL import Image

from jasper_rag.ingest.pipeline import can_embed_images
from jasper_rag.search import Hit, Searcher, SearchOptions
from jasper_rag.vision.images import ImageLoadError, decode_image


def supports_image_queries(searcher: Searcher) -> bool:
    """True when the loaded model has a vision tower (``make train-vision``)."""
    return can_embed_images(searcher.encoder)


def read_query_image(name: str, data: bytes, max_mb: float) -> Image.Image:
    """The uploaded query image as RGB; ``ImageLoadError`` when over ``max_mb``, above the pixel limit or unreadable."""
    if len(data) > max_mb * 2**20:
        raise ImageLoadError(f"{name}: too large: {len(data) / 2**20:.3g} MB > limit {max_mb:g} MB")
    return decode_image(data, name)


def search_by_image(searcher: Searcher, image: Image.Image, options: SearchOptions) -> list[Hit]:
    """Top hits for an image query (images, and text too: they share one space); dense by nature."""
    searcher.store.refresh()
    vectors = searcher.encoder.encode_image_heads([image], list(searcher.heads))  # one pass of the tower
    return searcher.search_vectors(vectors, options)[0]
