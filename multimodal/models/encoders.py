"""Image and text encoders, with freezing and LoRA adapters.

Image encoders live in one registry, :data:`IMAGE_ENCODERS`, keyed by the part of
``config.image_encoder`` before ``":"`` (``"monai_vit"``, ``"timm:<name>"``, ``"hf:<id-or-path>"``,
``"txrv:<name>"``). Each entry is an :class:`~.image_encoder.ImageEncoder` subclass: it maps
``[B, 1, S, S]`` to patch tokens ``[B, N, C]`` and, as class methods, checks the config values it
depends on and knows its grid. A new kind is one subclass and one line here; the config validator
(:class:`.configuration.MultimodalConfig`) and ``grid_size`` ask the registry.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from preprocessing.errors import ConfigError
from preprocessing.text import resolve_text_encoder

from .attention import explicit_attention_preferred, register_hf_attention
from .hf_vision import HFVisionEncoder
from .image_encoder import ImageEncoder, load_state_file
from .txrv import TorchXRayVisionEncoder

if TYPE_CHECKING:
    from .configuration import MultimodalConfig


class MonaiViTEncoder(ImageEncoder):
    """MONAI ``ViT`` (2-D, one channel, no class token), sized by the ``image_*`` config keys."""

    syntax = "monai_vit"

    def __init__(self, config: MultimodalConfig, name: str, load_pretrained: bool):
        super().__init__(config, name, load_pretrained)
        from monai.networks.nets import ViT

        self.vit = ViT(in_channels=1, img_size=config.image_size, patch_size=config.patch_size,
                       hidden_size=config.image_hidden, mlp_dim=config.image_mlp_dim,
                       num_layers=config.image_layers, num_heads=config.image_heads, classification=False,
                       dropout_rate=config.image_dropout, spatial_dims=2, qkv_bias=True)
        for block in self.vit.blocks:
            # MONAI's SDPA path applies attention dropout even in eval mode: keep dropout on the
            # block outputs only, in both of its paths.
            block.attn.dropout_rate = 0.0
            block.attn.drop_weights = nn.Identity()
            # MONAI builds this LayerNorm even without cross-attention; frozen, it does not make DDP
            # look for gradients that never come (its weights stay in the checkpoint, unchanged).
            block.norm_cross_attn.requires_grad_(False)
        if load_pretrained and config.image_pretrained:
            load_state_file(self.vit, config.image_pretrained)
        side = config.image_size // config.patch_size
        self.out_dim, self.grid_size, self.lora_targets = config.image_hidden, (side, side), ["qkv"]

    @classmethod
    def check(cls, config: MultimodalConfig, name: str) -> None:
        if name:
            raise ConfigError("image_encoder", f"expected 'monai_vit' (no name), got {config.image_encoder!r}")
        if config.image_size % config.patch_size:
            raise ConfigError("patch_size", f"{config.patch_size} does not divide image_size {config.image_size}")
        if config.image_hidden % config.image_heads:
            raise ConfigError("image_heads", f"{config.image_heads} does not divide image_hidden {config.image_hidden}")

    @classmethod
    def grid(cls, config: MultimodalConfig, name: str) -> tuple[int, int]:
        side = config.image_size // config.patch_size
        return side, side

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # SDPA (MONAI's "flash" path) except where an explicit core is faster (see .attention).
        sdpa = not explicit_attention_preferred(pixels.device.type, next(self.vit.parameters()).dtype)
        for block in self.vit.blocks:
            block.attn.use_flash_attention = sdpa
        return self.vit(pixels)[0]

    def stem(self) -> nn.Module:
        return self.vit.patch_embedding

    def blocks(self) -> list[nn.Module]:
        return list(self.vit.blocks)


class TimmEncoder(ImageEncoder):
    """Any timm backbone (``timm:<name>``): ViT patch tokens without prefix tokens, or a CNN's last
    feature map flattened (with ``image_skip_stride``, merged FPN-style with a finer one). Pretrained
    weights from a local file, or a hub id on machines with network."""

    syntax = "timm:<name>"
    takes_output_stride = True

    def __init__(self, config: MultimodalConfig, name: str, load_pretrained: bool):
        super().__init__(config, name, load_pretrained)
        import timm

        kwargs: dict[str, Any] = {"pretrained": False, "in_chans": 1, "num_classes": 0}
        if config.image_output_stride is not None:
            kwargs["output_stride"] = config.image_output_stride
        if load_pretrained and config.image_pretrained:
            # timm adapts the first convolution to one channel when it loads pretrained weights itself.
            source = config.image_pretrained
            overlay = {"file": source} if Path(source).exists() else {"hf_hub_id": source}
            kwargs.update(pretrained=True, pretrained_cfg_overlay=overlay)
        self.lateral: nn.Conv2d | None = None
        try:
            if config.image_skip_stride is not None:
                self.model = self._skip_backbone(timm, name, config.image_skip_stride, kwargs)
            else:
                try:
                    self.model = timm.create_model(name, img_size=config.image_size, **kwargs)
                except TypeError:  # CNNs take no img_size: they accept any size
                    self.model = timm.create_model(name, **kwargs)
        except (RuntimeError, TypeError) as err:  # TypeError: an option the backbone lacks (output_stride)
            raise ConfigError("image_encoder", f"timm could not build {name!r}: {err}") from err
        self.num_prefix_tokens = getattr(self.model, "num_prefix_tokens", 0)
        with torch.no_grad():
            probe = self._features(torch.zeros(1, 1, config.image_size, config.image_size))
        self.grid_size = tuple(probe.shape[-2:]) if probe.ndim == 4 else tuple(self.model.patch_embed.grid_size)
        self.out_dim = probe.shape[1] if self.lateral is not None else self.model.num_features
        self.lora_targets = ["qkv"] if hasattr(self.model, "blocks") else []

    def _skip_backbone(self, timm: Any, name: str, stride: int, kwargs: dict[str, Any]) -> nn.Module:
        """The backbone as timm's ``features_only`` net (every stage's map), ``self.fine``, the index of
        the map at ``stride``, and ``self.lateral``, its 1 x 1 projection to the last map's width."""
        kwargs = {k: v for k, v in kwargs.items() if k != "num_classes"}
        model = timm.create_model(name, features_only=True, **kwargs)
        reductions, channels = model.feature_info.reduction(), model.feature_info.channels()
        if stride not in reductions:
            raise ConfigError("image_skip_stride", f"timm:{name} has feature maps at strides {sorted(set(reductions))}, "
                              f"none at {stride}")
        self.fine = max(i for i, r in enumerate(reductions) if r == stride)
        self.lateral = nn.Conv2d(channels[self.fine], channels[-1], kernel_size=1)
        return model

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` for CNNs (the last map, or the FPN-style merge), ``[B, N, C]`` for ViTs."""
        if self.lateral is None:
            return self.model.forward_features(pixels)
        maps = self.model(pixels)
        fine, last = maps[self.fine], maps[-1]
        top = nn.functional.interpolate(last, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return top + self.lateral(fine)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self._features(pixels)
        if features.ndim == 4:  # CNN feature map [B, C, h, w]
            return features.flatten(2).transpose(1, 2)
        return features[:, self.num_prefix_tokens:]

    def stem(self) -> nn.Module:
        for name in ("patch_embed", "stem", "conv1"):
            if hasattr(self.model, name):
                return getattr(self.model, name)
        return nn.Identity()

    def blocks(self) -> list[nn.Module]:
        for name in ("blocks", "stages", "layers"):
            if hasattr(self.model, name):
                return list(getattr(self.model, name))
        return []


IMAGE_ENCODERS: dict[str, type[ImageEncoder]] = {
    "monai_vit": MonaiViTEncoder,
    "timm": TimmEncoder,
    "hf": HFVisionEncoder,
    "txrv": TorchXRayVisionEncoder,
}


def image_encoder_kind(image_encoder: str) -> tuple[type[ImageEncoder], str]:
    """(registry class, name) for an ``image_encoder`` value; :class:`ConfigError` for an unknown kind."""
    kind, _, name = image_encoder.partition(":")
    if kind not in IMAGE_ENCODERS:
        known = ", ".join(cls.syntax for cls in IMAGE_ENCODERS.values())
        raise ConfigError("image_encoder", f"unknown kind {kind!r} in {image_encoder!r}; known: {known}")
    return IMAGE_ENCODERS[kind], name


def build_image_encoder(config: MultimodalConfig, load_pretrained: bool = False) -> ImageEncoder:
    """The image encoder named by ``config.image_encoder``; pretrained weights only if asked."""
    kind, name = image_encoder_kind(config.image_encoder)
    return kind(config, name, load_pretrained)


def text_encoder_config(config: MultimodalConfig):
    """The text encoder's Hugging Face config: ``config.text_config`` if saved, else read from the encoder."""
    from transformers import AutoConfig

    if config.text_config is not None:
        data = dict(config.text_config)
        return AutoConfig.for_model(data.pop("model_type"), **data)
    text_config = AutoConfig.from_pretrained(resolve_text_encoder(config.text_encoder))
    if config.text_layers is not None:
        if config.text_layers > text_config.num_hidden_layers:
            raise ConfigError("text_layers", f"{config.text_layers} > the encoder's {text_config.num_hidden_layers}")
        text_config.num_hidden_layers = config.text_layers
    # One dropout knob for the whole model. None on attention weights: it pushes SDPA off its fused
    # CPU kernel (3-5x slower attention).
    text_config.hidden_dropout_prob = config.dropout
    text_config.attention_probs_dropout_prob = 0.0
    text_config._attn_implementation = register_hf_attention()
    return text_config


def build_text_encoder(config: MultimodalConfig, load_pretrained: bool) -> nn.Module:
    """A Hugging Face ``AutoModel`` (no pooler): pretrained first ``text_layers`` layers, or random init."""
    from transformers import AutoModel

    text_config = text_encoder_config(config)
    if not load_pretrained:
        return AutoModel.from_config(text_config, add_pooling_layer=False)
    source = resolve_text_encoder(config.text_encoder)
    try:
        with _quiet_transformers():
            model, info = AutoModel.from_pretrained(source, config=text_config, add_pooling_layer=False,
                                                    dtype=torch.float32, output_loading_info=True)
    except OSError as err:
        raise ConfigError("text_encoder", f"cannot load {source!r}: {err}") from err
    if info["missing_keys"] or info["mismatched_keys"]:
        missing = sorted(info["missing_keys"]) + sorted(str(k) for k in info["mismatched_keys"])
        raise ConfigError("text_encoder", f"{source} lacks weights for {missing[:5]} ({len(missing)} in all)")
    return model


@contextmanager
def _quiet_transformers():
    """Silence transformers' progress bar and its report of unused weights (dropping the pooler and
    the layers beyond ``text_layers`` is intended; missing weights are checked by the caller)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def text_layers(encoder: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """(embeddings, transformer layers) of a BERT-family encoder."""
    return encoder.embeddings, encoder.encoder.layer


def apply_freezing(stem: nn.Module, layers: list[nn.Module], everything: nn.Module, policy: str | int) -> None:
    """Freeze ``"all"`` of ``everything``, ``"none"``, or ``stem`` plus the first ``policy`` layers."""
    if policy == "none":
        return
    frozen = [everything] if policy == "all" else [stem, *list(layers)[:policy]]
    for module in frozen:
        module.requires_grad_(False)


def apply_lora(module: nn.Module, lora: dict, default_targets: list[str], key: str) -> None:
    """Inject LoRA adapters (peft) into ``module`` in place; only the adapters stay trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = lora["target_modules"] or default_targets
    if not targets:
        raise ConfigError(f"{key}.target_modules", "this encoder has no default LoRA targets; name some")
    peft_config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                             target_modules=targets)
    try:
        inject_adapter_in_model(peft_config, module)
    except ValueError as err:
        raise ConfigError(f"{key}.target_modules", str(err)) from err
    for name, param in module.named_parameters():
        param.requires_grad_("lora_" in name)


def merge_lora(module: nn.Module) -> int:
    """Fold every LoRA adapter of ``module`` into its base layer's weights (peft's ``merge``) and put
    the plain base layer back in its place, as peft's ``merge_and_unload`` does for a ``PeftModel``;
    returns how many layers were merged. Outputs stay the same up to float rounding."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapted = [(name, m) for name, m in module.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, layer in adapted:
        layer.merge()
        module.set_submodule(name, layer.get_base_layer())
    return len(adapted)
