"""Reading images safely and turning them into backbone input tensors.

An image with more than ``max_image_pixels`` pixels (settings) is refused from its header, before
its pixels are decoded (Pillow's process-wide guard is not modified). Transparent images (stamps, clip art)
are flattened onto white; every image is padded to a square with white and resized, so nothing
is cropped away.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from jasper_rag.config import get_settings

IMAGE_SIZE = 224
PIXEL_MEAN = 0.5  # EfficientNet-Lite's own preprocessing: (x - 127) / 128 on 0..255 values
PIXEL_STD = 0.5


class ImageLoadError(ValueError):
    """An image file is missing, unreadable, corrupt or too large."""


def check_image_size(image: Image.Image, name: str = "image") -> None:
    """Refuse an image whose pixel count is above ``max_image_pixels`` (read from the header only)."""
    limit = get_settings().max_image_pixels
    width, height = image.size
    if width * height > limit:
        raise ImageLoadError(
            f"{name}: {width}x{height} = {width * height:,} pixels is above the limit of {limit:,} "
            "(JASPER_MAX_IMAGE_PIXELS)"
        )


def decode_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """An image file (path) or upload (bytes) as RGB, with a clear ``ImageLoadError`` naming ``name``
    (default: the path) for every failure. The size is checked from the header before any pixel is
    decoded; Pillow's own process-wide bomb guard is left as it is and also reported as too large."""
    is_bytes = isinstance(source, bytes)
    name = name or ("image" if is_bytes else str(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if is_bytes else Path(source)) as image:
                check_image_size(image, name)
                image.load()
                return to_rgb(image)
    except ImageLoadError:
        raise
    except FileNotFoundError as err:
        raise ImageLoadError(f"{name}: no such image file") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(f"{name}: image is above Pillow's decompression-bomb limit ({err})") from err
    except UnidentifiedImageError as err:
        raise ImageLoadError(f"{name}: not a readable image (unknown format or corrupt header)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{name}: corrupt or truncated image ({err})") from err


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB (``decode_image`` of a path)."""
    return decode_image(Path(path))


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of an image; transparency is composited onto a white background."""
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def square_resize(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Pad to a white square (centred) and resize to ``size`` x ``size``."""
    image = to_rgb(image)
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas.resize((size, size), Image.Resampling.BICUBIC)


def to_pixels(images: Sequence[Image.Image], size: int = IMAGE_SIZE) -> torch.Tensor:
    """A normalised float batch ``(n, 3, size, size)`` for the backbone."""
    for number, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise ImageLoadError(f"item {number}: expected a PIL.Image, got {type(image).__name__}")
        check_image_size(image, f"item {number}")
    arrays = [np.asarray(square_resize(image, size), dtype=np.float32) / 255.0 for image in images]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (batch - PIXEL_MEAN) / PIXEL_STD
