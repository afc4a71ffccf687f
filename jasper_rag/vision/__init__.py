"""Images in the text space: the vision tower, its data and its caption-free start.

``encoder.encode_images(images, dim=...)`` (``jasper_rag.encoder``) embeds PIL images with the
attached tower into the same space as ``encoder.encode(texts, dim=...)``; ``encoder.encode_image_heads``
gives every head's vectors from one pass of the tower.
"""

from jasper_rag.vision.images import ImageLoadError, load_image
from jasper_rag.vision.tower import VisionTower, caption_free_tower

__all__ = ["ImageLoadError", "VisionTower", "caption_free_tower", "load_image"]
