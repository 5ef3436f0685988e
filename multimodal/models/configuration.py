"""`MultimodalConfig`: everything needed to rebuild a model, in the manner of Hugging Face's configs.

A saved model directory holds ``config.json`` (this model as JSON) next to ``model.safetensors``;
``text_config`` / ``image_config`` keep the encoders' own Hugging Face configs so that a saved model
is rebuilt without the original pretrained weights or any network access.

Validated like :class:`~multimodal.training.config.TrainConfig` (pydantic, typed fields with
descriptions): every error is a :class:`ConfigError` naming the key (``lora_text.dropout``); what
an image encoder kind accepts is checked by that kind in the registry (:mod:`.encoders`).
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from preprocessing.errors import ConfigError
from preprocessing.text import DEFAULT_TEXT_ENCODER
from preprocessing.vocab import ZONES, resolve_observations

from .calibration import check_calibration

CONFIG_NAME = "config.json"

LOSS_NAMES = ("classification", "region", "region_peak", "zone", "findings")
LORA_KEYS = {"r", "alpha", "dropout", "target_modules"}

Positive = Annotated[int, Field(strict=True, gt=0)]
Freeze = Literal["none", "all"] | Annotated[int, Field(strict=True, ge=0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


def _default_loss_weights() -> dict[str, float]:
    return {"classification": 1.0, "region": 1.0, "region_peak": 0.0, "zone": 0.5, "findings": 1.0}


class MultimodalConfig(BaseModel):
    """Describes a :class:`~multimodal.models.modeling.MultimodalModel` completely.

    Image: ``image_encoder`` names a kind of :data:`.encoders.IMAGE_ENCODERS` (``"monai_vit"``,
    ``"timm:<name>"``, ``"hf:<id-or-path>"``, ``"txrv:<name>"``); the ``image_hidden/layers/heads/mlp_dim``
    keys size the MONAI ViT (the others bring their own). Text: a Hugging Face BERT-family encoder.
    Freezing: ``"none"``, ``"all"`` or an int N (embeddings + first N layers). LoRA: None or
    ``{"r", "alpha", "dropout", "target_modules"}``; an encoder with LoRA trains only its adapters.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())

    observations: list[str] = Field(default_factory=lambda: list(resolve_observations("chexpert")),
                                    description="a set name of preprocessing.vocab.OBSERVATION_SETS or a list")
    zones: list[str] = Field(default_factory=lambda: list(ZONES), description="zone vocabulary for zone_logits")
    image_encoder: str = Field("monai_vit", description="an image encoder kind of the registry: monai_vit, "
                               "timm:<name>, hf:<id-or-path>, txrv:<name>")
    image_size: Positive = Field(224, description="S: views are letterboxed to S x S pixels")
    patch_size: Positive = Field(16, description="MONAI ViT patch (grid = S / patch)")
    image_hidden: Positive = Field(384, description="MONAI ViT width")
    image_layers: Positive = Field(6, description="MONAI ViT depth")
    image_heads: Positive = Field(12, description="MONAI ViT heads")
    image_mlp_dim: Positive = Field(1536, description="MONAI ViT MLP width")
    image_output_stride: Literal[8, 16, 32] | None = Field(
        None, description="timm CNNs: the backbone's output stride (timm's output_stride; 16 dilates the last "
        "stage: a 14 x 14 heat-map grid at 224 px instead of 7 x 7); None: the backbone's own")
    image_skip_stride: Literal[4, 8] | None = Field(
        None, description="timm CNNs: a finer token grid without running the deep stages at that resolution "
        "(an FPN-style top-down merge): the last feature map is upsampled to this stride and added to a 1 x 1 "
        "projection of the backbone's own feature map at this stride (8: a 28 x 28 heat map at 224 px); "
        "None: tokens at the output stride")
    image_pretrained: str | None = Field(None, description="local weights file (or, for timm/hf, a hub id)")
    image_config: dict[str, Any] | None = Field(None, description="the image backbone's own config, filled at "
                                                "build for hf:/txrv: so from_pretrained rebuilds offline")
    max_views: Positive = Field(2, description="views per study (a learned view embedding each)")
    text_encoder: str = Field(DEFAULT_TEXT_ENCODER, description="Hugging Face BERT-family path or id")
    text_layers: Positive | None = Field(None, description="keep only the first N pretrained layers")
    text_max_length: Positive = Field(128, description="tokens of indication text")
    text_config: dict[str, Any] | None = Field(None, description="the text encoder's HF config, filled at build")
    freeze_image: Freeze = Field("none", description="'none', 'all' or N = stem + first N layers")
    freeze_text: Freeze = Field(0, description="'none', 'all' or N = embeddings + first N layers")
    lora_image: dict[str, Any] | None = Field(None, description="LoRA on the image encoder: {r, alpha, dropout, "
                                              "target_modules}")
    lora_text: dict[str, Any] | None = Field(None, description="LoRA on the text encoder")
    fusion_layers: Positive = 2
    fusion_heads: Positive = 12
    fusion_hidden: Positive = 384
    fusion_mlp_ratio: float = Field(2.0, gt=0)
    attention_heads: dict[str, Positive] | None = Field(
        None, description="heads kept by attention modules that structured pruning narrowed, by module name "
        "(image_encoder.vit.blocks.0.attn, fusion.layers.0.text.self_attn, ...; .head_pruning); None: all")
    dropout: Fraction = Field(0.1, description="residual-branch dropout of text encoder, fusion and decoder")
    image_dropout: Fraction = Field(0.0, description="dropout in the MONAI ViT's blocks")
    decoder_layers: Positive = 2
    decoder_max_length: Positive = 128
    decoder_init_from_text: bool = True
    decoder_vocab: list[Annotated[int, Field(strict=True, ge=0)]] | None = Field(
        None, description="None (full tokenizer vocabulary) or the tokenizer ids the findings decoder uses")
    mil_pooling: Literal["lse", "attention"] = Field("lse", description="heat map -> logit pooling")
    mil_r: float = Field(5.0, gt=0, description="sharpness of the log-mean-exp pooling")
    spatial_prior: bool = Field(False, description="a learned per-observation bias map added to the heat-map "
                                "logits (training starts it from the training boxes)")
    loss_weights: dict[str, float] = Field(default_factory=_default_loss_weights,
                                           description=f"weights >= 0 of the losses {LOSS_NAMES}")
    uncertain_policy: Literal["ignore", "zeros", "ones"] = "ignore"
    thresholds: dict[str, float] = Field(default_factory=dict, description="observation -> decision threshold "
                                         "in [0, 1] (0.5 when not given)")
    calibration: dict[str, Any] | None = Field(None, description="None or the fitted per-observation probability "
                                               "maps and indeterminate band (.calibration)")
    name: str = "mmdx-multimodal"
    version: str = "0.1.0"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _config_error(err) from None

    @field_validator("observations", mode="before")
    @classmethod
    def _observations(cls, v: Any) -> list[str]:
        try:
            return list(resolve_observations(v))
        except ValueError as err:
            raise ConfigError("observations", str(err)) from err

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        unknown = [z for z in v if z not in ZONES]
        if unknown or not v:
            raise ConfigError("zones", f"must be a non-empty subset of {list(ZONES)}; unknown: {unknown}")
        return v

    @field_validator("decoder_vocab")
    @classmethod
    def _unique_ids(cls, v: list[int] | None) -> list[int] | None:
        repeated = sorted(i for i, n in Counter(v or []).items() if n > 1)
        if repeated:
            raise ConfigError("decoder_vocab", f"ids must be unique; repeated: {repeated[:5]}")
        return v

    @field_validator("lora_image", "lora_text")
    @classmethod
    def _lora(cls, v: dict[str, Any] | None, info) -> dict[str, Any] | None:
        return _check_lora(info.field_name, v)

    @field_validator("loss_weights")
    @classmethod
    def _loss_weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if k not in LOSS_NAMES or w < 0}
        if bad:
            raise ConfigError("loss_weights", f"names must be among {LOSS_NAMES} with weights >= 0; bad: {bad}")
        return {**_default_loss_weights(), **v}

    @model_validator(mode="before")
    @classmethod
    def _encoder_defaults(cls, data: Any) -> Any:
        """Fill what the image encoder's checkpoint says (e.g. its image size) where the user said nothing."""
        from .encoders import image_encoder_kind

        if isinstance(data, dict) and isinstance(data.get("image_encoder"), str):
            kind, name = image_encoder_kind(data["image_encoder"])
            data = {**kind.defaults(name, data), **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> MultimodalConfig:
        from .encoders import image_encoder_kind

        kind, name = image_encoder_kind(self.image_encoder)
        kind.check(self, name)
        if self.image_output_stride is not None and not kind.takes_output_stride:
            raise ConfigError("image_output_stride", f"{self.image_encoder!r} takes none; timm CNN encoders do")
        if self.image_skip_stride is not None and not kind.takes_output_stride:
            raise ConfigError("image_skip_stride", f"{self.image_encoder!r} takes none; timm CNN encoders do")
        if self.image_skip_stride is not None and self.image_skip_stride >= (self.image_output_stride or 32):
            raise ConfigError("image_skip_stride", f"{self.image_skip_stride} must be finer than the output stride "
                              f"{self.image_output_stride or 32}")
        if self.fusion_hidden % self.fusion_heads:
            raise ConfigError("fusion_heads", f"{self.fusion_heads} does not divide fusion_hidden {self.fusion_hidden}")
        unknown = [k for k in self.thresholds if k not in self.observations]
        if unknown:
            raise ConfigError("thresholds", f"unknown observations {unknown}")
        thresholds = {name: float(self.thresholds.get(name, 0.5)) for name in self.observations}
        out_of_range = {k: v for k, v in thresholds.items() if not 0.0 <= v <= 1.0}
        if out_of_range:
            raise ConfigError("thresholds", f"must lie in [0, 1]; bad: {out_of_range}")
        self.__dict__["thresholds"] = thresholds
        self.__dict__["calibration"] = check_calibration(self.calibration, self.observations)
        return self

    def validate(self) -> None:
        """Check the config again after fields were assigned (assignment itself is not validated)."""
        checked = type(self).from_dict(self.to_dict())
        self.__dict__.update(checked.__dict__)

    @property
    def grid_size(self) -> tuple[int, int] | None:
        """Heat-map grid (h, w) when the encoder kind knows it from the config; None until built."""
        from .encoders import image_encoder_kind

        kind, name = image_encoder_kind(self.image_encoder)
        return kind.grid(self, name)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultimodalConfig:
        """Build from a dict (e.g. ``config.json``); unknown keys raise :class:`ConfigError`."""
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


def unknown_key_reason(key: str, known: list[str]) -> str:
    """"unknown key" with the closest known key, or the list of known keys."""
    close = difflib.get_close_matches(key, known, n=1)
    return "unknown key" + (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})")


def _config_error(err: ValidationError) -> ConfigError:
    """pydantic's first error as a ConfigError naming the key (the field, not the union branch)."""
    first = err.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else "<root>"
    if first["type"] == "extra_forbidden":
        return ConfigError(key, unknown_key_reason(key, list(MultimodalConfig.model_fields)))
    return ConfigError(key, f"{first['msg']} (got {first.get('input')!r})")


def _check_positive_int(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(key, f"must be a positive integer, got {value!r}")


def _check_lora(key: str, value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Fill LoRA defaults (alpha = 2r, dropout 0.05, encoder-specific targets when None)."""
    if value is None:
        return None
    unknown = sorted(set(value) - LORA_KEYS)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", unknown_key_reason(unknown[0], sorted(LORA_KEYS)))
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
