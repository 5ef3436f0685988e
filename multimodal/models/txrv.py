"""`txrv:<name>`: a torchxrayvision DenseNet (``densenet121-res224-all``, ``-nih``, ``-chex``, ...) as the
image encoder.

torchxrayvision's models read one channel scaled to [-1024, 1024] (its ``normalize(img, 255)``
convention); the encoder maps the project's normalised input there. Tokens are the last dense
block's feature map after its norm and ReLU (1024 channels, grid S / 32). Weights come from a local
state-dict file (``image_pretrained``, safetensors or a weights-only torch file of the whole
DenseNet; the classifier is dropped); docs/model.md shows how to write one from the package's own
download.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from preprocessing.errors import ConfigError
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD

from .image_encoder import ImageEncoder, load_state_file

if TYPE_CHECKING:
    from .configuration import MultimodalConfig

STRIDE = 32
XRV_RANGE = 1024.0


class TorchXRayVisionEncoder(ImageEncoder):
    """The ``features`` of ``torchxrayvision.models.DenseNet``; ``name`` is one of its weight names."""

    syntax = "txrv:<densenet121-res224-*>"

    def __init__(self, config: MultimodalConfig, name: str, load_pretrained: bool):
        super().__init__(config, name, load_pretrained)
        try:
            import torchxrayvision as xrv
        except ImportError as err:
            raise ConfigError("image_encoder", "txrv: needs the torchxrayvision package "
                              "(pip install 'mmdx[txrv]')") from err
        self.features = xrv.models.DenseNet(weights=None).features
        if load_pretrained and config.image_pretrained:
            load_state_file(_FeaturesOnly(self.features), config.image_pretrained)
        side = config.image_size // STRIDE
        self.out_dim, self.grid_size, self.lora_targets = self.features.norm5.num_features, (side, side), []

    @classmethod
    def check(cls, config: MultimodalConfig, name: str) -> None:
        if not name.startswith("densenet121-"):
            raise ConfigError("image_encoder", f"expected {cls.syntax!r}, got {config.image_encoder!r}")
        if config.image_size % STRIDE:
            raise ConfigError("image_size", f"must be a multiple of {STRIDE} for {config.image_encoder}")

    @classmethod
    def grid(cls, config: MultimodalConfig, name: str) -> tuple[int, int]:
        return config.image_size // STRIDE, config.image_size // STRIDE

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = ((pixels * IMAGE_STD + IMAGE_MEAN) * 2.0 - 1.0) * XRV_RANGE
        return torch.relu(self.features(x)).flatten(2).transpose(1, 2)

    def stem(self) -> nn.Module:
        return nn.ModuleList(list(self.features)[:4])

    def blocks(self) -> list[nn.Module]:
        return list(self.features)[4:]


class _FeaturesOnly(nn.Module):
    """Loads a whole DenseNet state dict (``features.*`` + ``classifier.*``) into the features alone."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        kept = {k: v for k, v in state.items() if k.startswith("features.")}
        return super().load_state_dict(kept, strict=strict, assign=assign)
