"""Backbone features of stored images, computed once and kept in the shared vector cache.

The backbone is frozen in stage 4, so each image's pooled features never change: they are cached
with ``CachedEncoder`` (root ``<cache>/vectors``) keyed by the image's path inside the image set.
Stored file names carry a content hash (``jasper_rag.vision.data``), so a key always means the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from jasper_rag.config import get_settings
from jasper_rag.vector_cache import CachedEncoder
from jasper_rag.vision.backbone import FEATURE_DIM
from jasper_rag.vision.images import IMAGE_SIZE, load_image, to_pixels
from jasper_rag.vision.tower import VisionTower

PREPROCESSING = f"pad-square-{IMAGE_SIZE}-v1"


class ImageFeatureEncoder:
    """Speaks the ``TextEncoder`` protocol over image paths (relative to ``folder``) -> backbone features."""

    def __init__(self, tower: VisionTower, folder: Path) -> None:
        self.tower = tower
        self.folder = folder
        self.name = f"{tower.backbone.name}-features"
        self.dim = FEATURE_DIM

    def fingerprint(self) -> str:
        return PREPROCESSING

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        self.tower.eval()
        device = next(self.tower.parameters()).device
        chunks = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in tqdm(range(0, len(texts), batch_size), desc="image features", disable=not show_progress):
            images = [load_image(self.folder / path) for path in texts[start : start + batch_size]]
            chunks.append(self.tower.features(to_pixels(images).to(device)).float().cpu().numpy())
        return np.concatenate(chunks)


def image_features(tower: VisionTower, folder: Path, files: Sequence[str], show_progress: bool = True) -> np.ndarray:
    """Pooled backbone features ``(len(files), 1280)``, from the cache where already computed."""
    cache = CachedEncoder(ImageFeatureEncoder(tower, folder), get_settings().cache_dir / "vectors")
    cache.fill(list(files), batch_size=16, chunk_size=128, show_progress=show_progress)
    return np.asarray(cache.encode(list(files)), dtype=np.float32)
