"""Image tasks for models with a vision tower, in the shape of ``jasper_rag.eval.tasks.Task``.

- ``ImageCaptionTask``: text->image and image->text Recall@1/5/10 on the held-out captioned images
  (``make images``, split ``test``). Recall@k is the share of queries with a correct item in the top
  k: for a caption, any image carrying it; for an image, its caption (identical captions are one item).
- ``ZeroShotTask``: each labelled held-out image is given the label whose text ``"a picture of
  {label}"`` is nearest; accuracy per source (Tux Paint categories, Open Clip Art folders) and overall.

``evaluate(encoder)`` takes the head's ``TextEncoder`` view (as the eval runner passes it); the image
side is found behind it (a ``JasperEncoder`` with a vision tower). Encoders without one score None.
Image vectors come from the cached backbone features through the tower's projection and the head,
which is what ``encoder.encode_images`` computes (the backbone is frozen).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jasper_rag.embedding import TextEncoder, normalize_rows
from jasper_rag.encoder import JasperEncoder
from jasper_rag.eval.tasks import Scores, _embed, _sample
from jasper_rag.vision.data import CaptionedImage, read_image_set
from jasper_rag.vision.features import image_features

RECALL_KS = (1, 5, 10)
LABEL_PROMPT = "a picture of {}"


def find_vision_encoder(encoder: object, depth: int = 5) -> JasperEncoder | None:
    """The ``JasperEncoder`` with a vision tower behind a (cached, shared-pass or head) view, if any."""
    for _ in range(depth):
        if isinstance(encoder, JasperEncoder):
            return encoder if encoder.vision is not None else None
        encoder = next((getattr(encoder, a) for a in ("encoder", "shared", "base") if hasattr(encoder, a)), None)
    return None


@torch.inference_mode()
def image_vectors(encoder: JasperEncoder, dim: int, features: np.ndarray) -> np.ndarray:
    """Unit image vectors of the ``dim``-d head (the pooled vector when ``dim`` is the hidden size)."""
    assert encoder.vision is not None
    encoder.eval()
    hidden = encoder.vision.project(torch.from_numpy(features).to(encoder.device))
    return normalize_rows(encoder.head_output(encoder.head_for_dim(dim), hidden).float().cpu().numpy())


def recall_at_ks(similarity: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int] = RECALL_KS) -> list[float]:
    """For each k, the share of rows (queries) with a relevant column in their top k, x100."""
    order = np.argsort(-similarity, axis=1, kind="stable")
    first_hit = np.array(
        [next(rank for rank, col in enumerate(row) if col in hits) for row, hits in zip(order, relevant, strict=True)]
    )
    return [100 * float(np.mean(first_hit < k)) for k in ks]


class _ImageTask:
    """Shared parts: the held-out records and their cached backbone features."""

    def __init__(self, name: str, records: Sequence[CaptionedImage], images_dir: Path) -> None:
        if not records:
            raise ValueError(f"{name}: no held-out images (build them with `make images`)")
        self.name = name
        self.records = list(records)
        self.images_dir = images_dir
        self._features: np.ndarray | None = None

    def features(self, encoder: JasperEncoder) -> np.ndarray:
        if self._features is None:
            assert encoder.vision is not None
            self._features = image_features(encoder.vision, self.images_dir, [r.file for r in self.records])
        return self._features

    def corpus_sample(self, size: int, seed: int = 0) -> list[str]:
        return _sample(self.texts(), size, seed)  # type: ignore[attr-defined]


class ImageCaptionTask(_ImageTask):
    """Text->image and image->text retrieval on held-out captioned images."""

    main_metric = "t2i_recall_at_5"

    def __init__(self, records: Sequence[CaptionedImage], images_dir: Path, name: str = "ImageCaptions") -> None:
        super().__init__(name, records, images_dir)
        self.captions = list(dict.fromkeys(r.caption for r in self.records))

    @classmethod
    def from_folder(cls, images_dir: Path) -> ImageCaptionTask:
        return cls(read_image_set(images_dir, split="test"), images_dir)

    def texts(self) -> list[str]:
        return list(self.captions)

    def evaluate(self, encoder: TextEncoder, batch_size: int = 32) -> Scores:
        names = [f"{way}_recall_at_{k}" for way in ("t2i", "i2t") for k in RECALL_KS]
        vision = find_vision_encoder(encoder)
        if vision is None:
            return dict.fromkeys(names)
        images = image_vectors(vision, encoder.dim, self.features(vision))
        captions = _embed(encoder, self.captions, batch_size)
        caption_of = [self.captions.index(r.caption) for r in self.records]
        images_of = [{i for i, c in enumerate(caption_of) if c == row} for row in range(len(self.captions))]
        similarity = captions @ images.T
        scores = recall_at_ks(similarity, images_of) + recall_at_ks(similarity.T, [{c} for c in caption_of])
        return dict(zip(names, scores, strict=True))


class ZeroShotTask(_ImageTask):
    """Zero-shot classification of labelled held-out images, one label set per source."""

    main_metric = "accuracy"

    def __init__(self, records: Sequence[CaptionedImage], images_dir: Path, name: str = "ZeroShot") -> None:
        super().__init__(name, [r for r in records if r.label], images_dir)
        self.sources = sorted({r.source for r in self.records})
        self.labels = {s: sorted({r.label for r in self.records if r.source == s}) for s in self.sources}

    @classmethod
    def from_folder(cls, images_dir: Path) -> ZeroShotTask:
        return cls(read_image_set(images_dir, split="test"), images_dir)

    def texts(self) -> list[str]:
        return list(dict.fromkeys(LABEL_PROMPT.format(label) for labels in self.labels.values() for label in labels))

    def evaluate(self, encoder: TextEncoder, batch_size: int = 32) -> Scores:
        names = ["accuracy", *(f"accuracy_{source}" for source in self.sources)]
        vision = find_vision_encoder(encoder)
        if vision is None:
            return dict.fromkeys(names)
        images = image_vectors(vision, encoder.dim, self.features(vision))
        prompts = dict(zip(self.texts(), _embed(encoder, self.texts(), batch_size), strict=True))
        correct = np.zeros(len(self.records), dtype=bool)
        scores: Scores = {}
        for source in self.sources:
            rows = [i for i, r in enumerate(self.records) if r.source == source]
            labels = self.labels[source]
            label_vectors = np.stack([prompts[LABEL_PROMPT.format(label)] for label in labels])
            predicted = (images[rows] @ label_vectors.T).argmax(axis=1)
            hits = np.array([labels[p] == self.records[i].label for p, i in zip(predicted, rows, strict=True)])
            correct[rows] = hits
            scores[f"accuracy_{source}"] = 100 * float(hits.mean())
        return {"accuracy": 100 * float(correct.mean()), **scores}
