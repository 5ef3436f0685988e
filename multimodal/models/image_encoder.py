"""`ImageEncoder`: what every kind of the image encoder registry (:mod:`.encoders`) is and declares.

A kind is one subclass: it builds itself from the config, maps ``[B, 1, S, S]`` (normalised with
:data:`preprocessing.letterbox.IMAGE_MEAN` / ``IMAGE_STD``) to patch tokens ``[B, N, C]``, and says,
as class methods, which config values it accepts (:meth:`check`), which values its checkpoint
supplies (:meth:`defaults`) and its patch grid when known before building (:meth:`grid`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from preprocessing.errors import ConfigError

if TYPE_CHECKING:
    from .configuration import MultimodalConfig


class ImageEncoder(nn.Module):
    """Base of the registry's encoders: ``forward([B, 1, S, S]) -> [B, N, C]`` patch tokens, N = h * w.

    Subclasses set ``syntax`` (how the kind is written in ``image_encoder``), and once built
    ``out_dim`` (C), ``grid_size`` (h, w), ``lora_targets`` (default LoRA module names); they implement
    ``stem()`` (what precedes the blocks) and ``blocks()`` (the layers in order): freezing "first N
    layers" means ``stem()`` plus ``blocks()[:N]``.
    """

    syntax: str
    takes_output_stride: bool = False  # whether config.image_output_stride / image_skip_stride apply to this kind
    out_dim: int
    grid_size: tuple[int, int]
    lora_targets: list[str]

    def __init__(self, config: MultimodalConfig, name: str, load_pretrained: bool):
        super().__init__()

    @classmethod
    def check(cls, config: MultimodalConfig, name: str) -> None:
        """Raise :class:`ConfigError` naming the key when ``config`` does not fit this kind."""
        if not name:
            raise ConfigError("image_encoder", f"expected {cls.syntax!r}, got {config.image_encoder!r}")

    @classmethod
    def defaults(cls, name: str, given: dict[str, Any]) -> dict[str, Any]:
        """Config values the checkpoint ``name`` supplies for keys missing from ``given``."""
        return {}

    @classmethod
    def grid(cls, config: MultimodalConfig, name: str) -> tuple[int, int] | None:
        """The patch grid (h, w) if known without building the encoder, else None."""
        return None

    def stem(self) -> nn.Module:
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        raise NotImplementedError


def load_state_file(module: nn.Module, path: str, key: str = "image_pretrained") -> None:
    """Load a safetensors or torch state dict file into ``module`` (strict; names the file on error)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(key, f"{file} is not a file")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        state = torch.load(file, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    except RuntimeError as err:
        raise ConfigError(key, f"{file} does not fit the image encoder: {err}") from err
