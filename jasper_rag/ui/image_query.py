"""Search by image: an uploaded picture, embedded by the model's vision tower into every head's space."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError

from ingest.pipeline import can_embed_images
from jasper_rag.search import Hit, Searcher
from jasper_rag.store.heads import head_dim_argument
from jasper_rag.vision.images import ImageLoadError, check_image_size, to_rgb


def supports_image_queries(searcher: Searcher) -> bool:
    """True when the loaded model has a vision tower (``make train-vision``)."""
    return can_embed_images(searcher.encoder)


def read_query_image(data: bytes, name: str = "image") -> Image.Image:
    """The uploaded bytes as an RGB image; ``ImageLoadError`` (with the reason) for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                check_image_size(image, name)
                image.load()
                return to_rgb(image)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(f"{name}: too many pixels ({err})") from err
    except UnidentifiedImageError as err:
        raise ImageLoadError(f"{name}: not a readable image (unknown format or corrupt header)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{name}: corrupt or truncated image ({err})") from err


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
    vectors = {
        name: searcher.encoder.encode_images([image], dim=head_dim_argument(name, size))
        for name, size in searcher.heads.items()
    }
    return searcher.search_vectors(vectors, k, head, kinds, file_types, searcher.funnel_head() if funnel else None)[0]
