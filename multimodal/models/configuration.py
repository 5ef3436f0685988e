"""`MultimodalConfig`: everything needed to rebuild a model, in the manner of Hugging Face's configs.

A saved model directory holds ``config.json`` (this dataclass as JSON) next to ``model.safetensors``;
``text_config`` keeps the text encoder's own Hugging Face config so that a saved model is rebuilt
without the original pretrained weights or any network access.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preprocessing.errors import ConfigError
from preprocessing.text import DEFAULT_TEXT_ENCODER
from preprocessing.vocab import ZONES, resolve_observations

CONFIG_NAME = "config.json"

FREEZE_CHOICES = ("none", "all")
MIL_POOLINGS = ("lse", "attention")
UNCERTAIN_POLICIES = ("ignore", "zeros", "ones")
LOSS_NAMES = ("classification", "region", "zone", "findings")
LORA_KEYS = {"r", "alpha", "dropout", "target_modules"}


def _default_loss_weights() -> dict[str, float]:
    return {"classification": 1.0, "region": 1.0, "zone": 0.5, "findings": 1.0}


@dataclass
class MultimodalConfig:
    """Describes a :class:`~multimodal.models.modeling.MultimodalModel` completely.

    Image: ``image_encoder`` is ``"monai_vit"`` or ``"timm:<name>"`` (see :mod:`.encoders`); the
    ``image_hidden/layers/heads/mlp_dim`` keys size the MONAI ViT (a timm model brings its own).
    ``image_pretrained`` is a local weights file, or for timm a hub id (needs network), or None.
    Text: ``text_encoder`` is a Hugging Face path or id, or the packaged MiniLM
    (:data:`preprocessing.text.DEFAULT_TEXT_ENCODER`); ``text_layers`` keeps only its first N layers.
    Freezing: ``"none"``, ``"all"`` or an int N (embeddings + first N layers). LoRA: None or
    ``{"r", "alpha", "dropout", "target_modules"}``; an encoder with LoRA trains only its adapters.
    ``decoder_vocab``: None (the full tokenizer vocabulary) or the tokenizer ids the findings decoder
    reads and emits (see :mod:`.decoder_vocab`); the model adds the special ids and sorts it.
    ``mil_pooling`` ties the heat map to the image-level logits (``"lse"`` with sharpness
    ``mil_r``, or ``"attention"``). ``thresholds`` maps observation name to decision threshold.
    """

    observations: list[str] = field(default_factory=lambda: list(resolve_observations("chexpert")))
    zones: list[str] = field(default_factory=lambda: list(ZONES))
    image_encoder: str = "monai_vit"
    image_size: int = 224
    patch_size: int = 16
    image_hidden: int = 384
    image_layers: int = 6
    image_heads: int = 12
    image_mlp_dim: int = 1536
    image_pretrained: str | None = None
    max_views: int = 2
    text_encoder: str = DEFAULT_TEXT_ENCODER
    text_layers: int | None = None
    text_max_length: int = 128
    text_config: dict[str, Any] | None = None
    freeze_image: str | int = "none"
    freeze_text: str | int = 0
    lora_image: dict[str, Any] | None = None
    lora_text: dict[str, Any] | None = None
    fusion_layers: int = 2
    fusion_heads: int = 12
    fusion_hidden: int = 384
    fusion_mlp_ratio: float = 2.0
    dropout: float = 0.1
    image_dropout: float = 0.0
    decoder_layers: int = 2
    decoder_max_length: int = 128
    decoder_init_from_text: bool = True
    decoder_vocab: list[int] | None = None
    mil_pooling: str = "lse"
    mil_r: float = 5.0
    loss_weights: dict[str, float] = field(default_factory=_default_loss_weights)
    uncertain_policy: str = "ignore"
    thresholds: dict[str, float] = field(default_factory=dict)
    name: str = "mmdx-multimodal"
    version: str = "0.1.0"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Normalise and check every key; raise :class:`ConfigError` naming the first bad one."""
        try:
            self.observations = list(resolve_observations(self.observations))
        except ValueError as err:
            raise ConfigError("observations", str(err)) from err
        unknown = [z for z in self.zones if z not in ZONES]
        if unknown or not self.zones:
            raise ConfigError("zones", f"must be a non-empty subset of {list(ZONES)}; unknown: {unknown}")
        self.zones = list(self.zones)
        if not (self.image_encoder == "monai_vit" or self.image_encoder.startswith("timm:")):
            raise ConfigError("image_encoder", f"expected 'monai_vit' or 'timm:<name>', got {self.image_encoder!r}")
        for key in ("image_size", "patch_size", "image_hidden", "image_layers", "image_heads", "image_mlp_dim",
                    "max_views", "text_max_length", "fusion_layers", "fusion_heads", "fusion_hidden",
                    "decoder_layers", "decoder_max_length"):
            _check_positive_int(key, getattr(self, key))
        if self.image_encoder == "monai_vit":
            if self.image_size % self.patch_size:
                raise ConfigError("patch_size", f"{self.patch_size} does not divide image_size {self.image_size}")
            if self.image_hidden % self.image_heads:
                raise ConfigError("image_heads", f"{self.image_heads} does not divide image_hidden {self.image_hidden}")
        if self.fusion_hidden % self.fusion_heads:
            raise ConfigError("fusion_heads", f"{self.fusion_heads} does not divide fusion_hidden {self.fusion_hidden}")
        if self.text_layers is not None:
            _check_positive_int("text_layers", self.text_layers)
        if self.text_config is not None and not isinstance(self.text_config, dict):
            raise ConfigError("text_config", "must be a dict (the text encoder's Hugging Face config) or null")
        if self.decoder_vocab is not None:
            ids = self.decoder_vocab
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                    for i in ids):
                raise ConfigError("decoder_vocab", "must be null or a list of tokenizer ids (integers >= 0)")
            repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
            if repeated:
                raise ConfigError("decoder_vocab", f"ids must be unique; repeated: {repeated[:5]}")
        for key in ("freeze_image", "freeze_text"):
            value = getattr(self, key)
            if not (value in FREEZE_CHOICES or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)):
                raise ConfigError(key, f"expected 'none', 'all' or a number of layers >= 0, got {value!r}")
        for key in ("lora_image", "lora_text"):
            setattr(self, key, _check_lora(key, getattr(self, key)))
        for key in ("dropout", "image_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(key, f"must be in [0, 1), got {getattr(self, key)}")
        if self.fusion_mlp_ratio <= 0:
            raise ConfigError("fusion_mlp_ratio", f"must be > 0, got {self.fusion_mlp_ratio}")
        if self.mil_pooling not in MIL_POOLINGS:
            raise ConfigError("mil_pooling", f"expected one of {MIL_POOLINGS}, got {self.mil_pooling!r}")
        if self.mil_r <= 0:
            raise ConfigError("mil_r", f"must be > 0, got {self.mil_r}")
        if self.uncertain_policy not in UNCERTAIN_POLICIES:
            raise ConfigError("uncertain_policy", f"expected one of {UNCERTAIN_POLICIES}, got {self.uncertain_policy!r}")
        weights = {**_default_loss_weights(), **self.loss_weights}
        bad = {k: v for k, v in weights.items() if k not in LOSS_NAMES or not isinstance(v, (int, float)) or v < 0}
        if bad:
            raise ConfigError("loss_weights", f"names must be among {LOSS_NAMES} with weights >= 0; bad: {bad}")
        self.loss_weights = {k: float(v) for k, v in weights.items()}
        unknown = [k for k in self.thresholds if k not in self.observations]
        if unknown:
            raise ConfigError("thresholds", f"unknown observations {unknown}")
        thresholds = {name: float(self.thresholds.get(name, 0.5)) for name in self.observations}
        out_of_range = {k: v for k, v in thresholds.items() if not 0.0 <= v <= 1.0}
        if out_of_range:
            raise ConfigError("thresholds", f"must lie in [0, 1]; bad: {out_of_range}")
        self.thresholds = thresholds

    @property
    def grid_size(self) -> tuple[int, int] | None:
        """Patch grid (h, w) of the MONAI ViT; None for timm backbones (known once built)."""
        if self.image_encoder != "monai_vit":
            return None
        side = self.image_size // self.patch_size
        return side, side

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultimodalConfig:
        """Build from a dict (e.g. ``config.json``); unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown key (known: {sorted(known)})")
        return cls(**data)

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` into ``directory``; return its path."""
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> MultimodalConfig:
        """Read ``config.json`` from a directory (or the file itself)."""
        path = Path(directory)
        path = path / CONFIG_NAME if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise ConfigError("config.json", f"{path} does not exist") from err
        except json.JSONDecodeError as err:
            raise ConfigError("config.json", f"{path} is not valid JSON: {err}") from err
        return cls.from_dict(data)


def _check_positive_int(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(key, f"must be a positive integer, got {value!r}")


def _check_lora(key: str, value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Fill LoRA defaults (alpha = 2r, dropout 0.05, encoder-specific targets when None)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - LORA_KEYS:
        raise ConfigError(key, f"must be null or a dict with keys among {sorted(LORA_KEYS)}, got {value!r}")
    r = value.get("r", 8)
    _check_positive_int(f"{key}.r", r)
    lora = {"r": r, "alpha": value.get("alpha", 2 * r), "dropout": value.get("dropout", 0.05),
            "target_modules": value.get("target_modules")}
    if not 0.0 <= lora["dropout"] < 1.0:
        raise ConfigError(f"{key}.dropout", f"must be in [0, 1), got {lora['dropout']}")
    targets = lora["target_modules"]
    if targets is not None and (not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)):
        raise ConfigError(f"{key}.target_modules", f"must be a list of module names or null, got {targets!r}")
    return lora
