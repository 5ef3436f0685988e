"""`hf:<id-or-path>`: a Hugging Face vision backbone as the image encoder (DINOv2 / RAD-DINO, ViT, CLIP and
SigLIP vision towers, Swin, ConvNeXt, ...).

The first build reads the checkpoint's config and its image processor's normalisation into
``config.image_config``; a saved model is rebuilt from that, offline. The data set feeds
``[B, 1, S, S]`` normalised with the project's ``IMAGE_MEAN/IMAGE_STD``; the encoder maps it back to
[0, 1], repeats the grey channel when the checkpoint takes RGB, and normalises with the checkpoint's
own mean/std. Patch tokens (class and register tokens dropped) or a CNN's last feature map become
the image tokens and the heat-map grid.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from preprocessing.errors import ConfigError
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD

from .image_encoder import ImageEncoder

if TYPE_CHECKING:
    from .configuration import MultimodalConfig

LORA_PAIRS = (("q_proj", "v_proj"), ("query", "value"))


class HFVisionEncoder(ImageEncoder):
    """Any ``transformers`` vision model whose output has ``last_hidden_state`` (``[B, N, C]`` or ``[B, C, h, w]``)."""

    syntax = "hf:<id-or-path>"

    def __init__(self, config: MultimodalConfig, name: str, load_pretrained: bool):
        super().__init__(config, name, load_pretrained)
        from transformers import AutoModel

        if config.image_config is None:
            config.image_config = read_checkpoint(name)
        stored = config.image_config
        hf_config = _vision_config(stored["model"])
        if load_pretrained:
            source = config.image_pretrained or name
            try:
                model, info = type(AutoModel.from_config(hf_config)).from_pretrained(
                    source, config=hf_config, dtype=torch.float32, output_loading_info=True)
            except OSError as err:
                raise ConfigError("image_encoder", f"cannot load {source!r}: {err}") from err
            missing = [k for k in info["missing_keys"] if "pooler" not in k]
            if missing or info["mismatched_keys"]:
                raise ConfigError("image_encoder", f"{source} lacks weights for {sorted(missing)[:5]}")
        else:
            model = AutoModel.from_config(hf_config)
        if any(True for _ in getattr(model, "pooler", nn.Identity()).parameters()):
            model.pooler = None  # the pooled output is unused; its weights would never get a gradient
        self.model = model
        channels = getattr(hf_config, "num_channels", 3)
        self.register_buffer("mean", torch.tensor(stored["image_mean"][:channels]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(stored["image_std"][:channels]).view(1, -1, 1, 1), persistent=False)
        self.forward_kwargs = ({"interpolate_pos_encoding": True}
                               if "interpolate_pos_encoding" in inspect.signature(model.forward).parameters else {})
        with torch.no_grad():
            probe = self.model(pixel_values=torch.zeros(1, channels, config.image_size, config.image_size),
                               **self.forward_kwargs).last_hidden_state
        if probe.ndim == 4:
            self.prefix, self.grid_size = 0, tuple(probe.shape[-2:])
        else:
            side = math.isqrt(probe.shape[1])
            self.prefix, self.grid_size = probe.shape[1] - side * side, (side, side)
        self.out_dim = probe.shape[-1] if probe.ndim == 3 else probe.shape[1]
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        self.lora_targets = next((list(pair) for pair in LORA_PAIRS if set(pair) <= names), [])

    @classmethod
    def defaults(cls, name: str, given: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint's image size, unless ``image_size`` or ``image_config`` was given."""
        if not name or "image_size" in given or given.get("image_config") is not None:
            return {}
        return {"image_size": processor_size(_processor_dict(name))}

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels * IMAGE_STD + IMAGE_MEAN  # back to [0, 1], as the checkpoint's processor rescales
        x = (x.expand(-1, self.mean.shape[1], -1, -1) - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        hidden = self.model(pixel_values=x, **self.forward_kwargs).last_hidden_state
        if hidden.ndim == 4:
            return hidden.flatten(2).transpose(1, 2)
        return hidden[:, self.prefix:]

    def _base(self) -> nn.Module:
        return getattr(self.model, "vision_model", self.model)

    def stem(self) -> nn.Module:
        return self._base().embeddings

    def blocks(self) -> list[nn.Module]:
        base = self._base()
        for owner in (getattr(base, "encoder", None), base):
            for attr in ("layer", "layers", "stages"):
                if isinstance(getattr(owner, attr, None), nn.ModuleList):
                    return list(getattr(owner, attr))
        return []


def read_checkpoint(name: str) -> dict[str, Any]:
    """``{"model": vision config dict, "image_mean", "image_std"}`` of a checkpoint (path or hub id)."""
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ConfigError("image_encoder", f"cannot read the config of {name!r}: {err}") from err
    hf_config = getattr(hf_config, "vision_config", hf_config)  # CLIP / SigLIP: the vision tower
    processor = _processor_dict(name)
    mean, std = processor.get("image_mean", [0.0]), processor.get("image_std", [1.0])
    if not processor.get("do_normalize", True):
        mean, std = [0.0], [1.0]
    channels = getattr(hf_config, "num_channels", 3)
    mean, std = (list(v) * channels if len(v) == 1 else list(v) for v in (mean, std))
    return {"model": hf_config.to_diff_dict() | {"model_type": hf_config.model_type},
            "image_mean": [float(m) for m in mean], "image_std": [float(s) for s in std]}


def processor_size(processor: dict[str, Any]) -> int:
    """The square side the checkpoint's image processor feeds (its crop when it crops)."""
    for key in (("crop_size",) if processor.get("do_center_crop") else ()) + ("size",):
        size = processor.get(key)
        if isinstance(size, int):
            return size
        if isinstance(size, dict):
            for k in ("height", "shortest_edge"):
                if k in size:
                    return int(size[k])
    raise ConfigError("image_size", "the checkpoint's image processor gives no size; set image_size")


def _processor_dict(name: str) -> dict[str, Any]:
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        return ImageProcessingMixin.get_image_processor_dict(name)[0]
    except (OSError, ValueError) as err:
        raise ConfigError("image_encoder", f"cannot read the image processor of {name!r}: {err}") from err


def _vision_config(data: dict[str, Any]):
    from transformers import AutoConfig

    data = dict(data)
    return AutoConfig.for_model(data.pop("model_type"), **data)
