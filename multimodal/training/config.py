"""`TrainConfig`: the typed training configuration, loaded from YAML with ``--set a.b=c`` overrides.

Every error is a :class:`~preprocessing.errors.ConfigError` naming the dotted key
(``config key 'optim.lr': ...``); an unknown key suggests the closest known one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from multimodal.models.configuration import MultimodalConfig, unknown_key_reason
from multimodal.training.adversarial import AdversarialConfig
from preprocessing.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the studies come from and how they are batched."""

    manifest: list[str] = Field(min_length=1, description="manifest JSONL path(s); splits come from each study")
    train_split: str = "train"
    val_split: str = "val"
    cache_dir: str | None = Field(None, description="on-disk cache of decoded images (preprocessing.cache)")
    num_workers: int = Field(0, ge=0)
    batch_size: int = Field(16, ge=1, description="studies per process and micro-batch")
    eval_batch_size: int | None = Field(None, ge=1)
    augment: bool = True
    decoder_vocab_from_train: bool = Field(False, description="restrict the findings decoder to the word pieces "
                                           "of the training split's findings (sets model.decoder_vocab)")

    @field_validator("manifest", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class OptimConfig(_Section):
    """AdamW with two parameter groups, warmup + cosine, accumulation and clipping."""

    lr: float = Field(3e-4, gt=0, description="fusion, heads, decoder and from-scratch encoders")
    encoder_lr: float = Field(3e-5, ge=0, description="pretrained encoders (text; image when image_pretrained)")
    weight_decay: float = Field(0.01, ge=0, description="not applied to biases and norms")
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int | None = Field(None, ge=0, description="overrides warmup_ratio")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a fraction of the peak")
    grad_accum: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")


class EarlyStoppingConfig(_Section):
    """Which validation metric picks the best checkpoint, and when to give up."""

    metric: Literal["macro_auroc", "macro_ap", "micro_auroc", "macro_f1", "val_loss", "pointing_game",
                    "auroc_pointing"] = Field("macro_auroc", description="pointing_game: on the validation "
                                              "studies with boxes; auroc_pointing: mean of it and macro_auroc")
    patience: int | None = Field(None, ge=1, description="evaluations without improvement; None: never stop")
    min_delta: float = Field(0.0, ge=0)

    @property
    def maximize(self) -> bool:
        return self.metric != "val_loss"


class CalibrationConfig(_Section):
    """Fitted on the validation split when training ends (``mmdx calibrate`` does it for new data)."""

    method: Literal["temperature", "platt", "isotonic", "none"] = "temperature"
    error_share: float = Field(0.5, ge=0, le=1, description="share of the validation errors on each side of "
                               "the threshold that the indeterminate band holds (0: no band)")


class AveragingConfig(_Section):
    """Weight averaging and the top-k checkpoints exported as an ensemble."""

    kind: Literal["none", "ema", "swa"] = "none"
    ema_decay: float = Field(0.999, gt=0, lt=1)
    swa_start: float = Field(0.5, ge=0, lt=1, description="SWA: fraction of the steps after which weights are averaged")
    export_top_k: int = Field(0, ge=0, description="keep the k best evaluations' checkpoints and export them as "
                              "RUN_DIR/ensemble (needs k >= 2; 0: off)")


class LoggingConfig(_Section):
    """Experiment tracking (multimodal.training.tracking) and the progress bar."""

    log_every: int = Field(10, ge=1, description="optimizer steps between logged training scalars")
    tracker: Literal["tensorboard", "mlflow", "wandb", "none"] = Field(
        "tensorboard", description="Accelerate tracker: TensorBoard in RUN_DIR/tb, MLflow local store, W&B offline")
    heatmap_images: int = Field(4, ge=0, description="validation heat maps logged per evaluation")
    figures: bool = Field(True, description="log ROC and reliability figures at each evaluation")
    progress: bool = True


class TrainConfig(_Section):
    """Everything a training run needs; saved resolved as ``RUN_DIR/config.yaml``."""

    model: dict[str, Any] = Field(default_factory=dict, description="MultimodalConfig fields")
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    logging: LoggingConfig = LoggingConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    averaging: AveragingConfig = AveragingConfig()
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    eval_every: int | None = Field(None, ge=1, description="optimizer steps; None: once per epoch")
    checkpoint_every: int | None = Field(None, ge=1, description="steps between resumable states; None: at each evaluation")
    halt_after_steps: int | None = Field(None, ge=1, description="save the state and exit after this many steps "
                                         "(time-boxed jobs; continue with --resume)")
    ddp_find_unused_parameters: bool | None = Field(None, description="DDP: tolerate trainable parameters without "
                                                    "a gradient (the findings decoder on studies without findings); "
                                                    "None: only when some training study has no findings")
    init_from: str | None = Field(None, description="start from this saved model directory (from_pretrained: its "
                                  "config and weights, e.g. a pruned model to fine-tune); the model section must "
                                  "then stay empty")
    pretrain: dict[str, Any] | None = Field(None, description="MAE-pretrain the ViT first on the train and val "
                                            "images of data.manifest (options of multimodal.training.pretrain."
                                            "PretrainConfig); the weights become model.image_pretrained")
    seed: int = 0

    @model_validator(mode="after")
    def _check_model(self) -> TrainConfig:
        if self.data.decoder_vocab_from_train and self.model.get("decoder_vocab") is not None:
            raise ConfigError("data.decoder_vocab_from_train", "model.decoder_vocab is set too; keep one of them")
        if self.init_from is not None:
            for key, value in (("model", self.model), ("pretrain", self.pretrain),
                               ("data.decoder_vocab_from_train", self.data.decoder_vocab_from_train)):
                if value:
                    raise ConfigError(key, "init_from brings the model; leave this unset")
            return self
        self.multimodal_config()
        if self.pretrain is not None:
            from multimodal.training.pretrain import run_pretrain_config

            run_pretrain_config(self)
        return self

    def multimodal_config(self) -> MultimodalConfig:
        """The validated :class:`MultimodalConfig` of the ``model`` section."""
        known = list(MultimodalConfig.model_fields)
        for key in self.model:
            if key not in known:
                raise ConfigError(f"model.{key}", unknown_key_reason(key, known))
        try:
            return MultimodalConfig.from_dict(dict(self.model))
        except ConfigError as err:
            raise ConfigError(f"model.{err.key}", err.reason) from err


def _raise_first(err: ValidationError) -> None:
    """Turn pydantic's first error into a ConfigError naming the dotted key."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join(loc) or "<root>"
    if first["type"] == "extra_forbidden":
        model: type[BaseModel] = TrainConfig
        for part in loc[:-1]:
            model = model.model_fields[part].annotation
        raise ConfigError(key, unknown_key_reason(loc[-1], list(model.model_fields))) from None
    raise ConfigError(key, f"{first['msg']} (got {first.get('input')!r})") from None


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"{part!r} is a value, not a section")
        node = child
    node[leaf] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` strings to a config tree; values are parsed as YAML (``3e-4``, ``[a, b]``, ``null``)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, "an override must look like key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(key.strip(), f"value {text!r} is not valid YAML: {err}") from err
        _set(tree, key.strip(), value)
    return tree


def load_train_config(config: str | Path | dict[str, Any] | TrainConfig, overrides: list[str] | tuple[str, ...] = ()
                      ) -> TrainConfig:
    """Read and validate a training config (YAML path, dict or TrainConfig) with ``--set`` overrides.

    Raises :class:`ConfigError` naming the file or the dotted key at fault.
    """
    if isinstance(config, TrainConfig):
        tree = config.model_dump()
    elif isinstance(config, dict):
        tree = copy.deepcopy(config)
    else:
        path = Path(config)
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError("--config", f"{path} does not exist") from None
        except yaml.YAMLError as err:
            raise ConfigError("--config", f"{path} is not valid YAML: {err}") from None
        if not isinstance(tree, dict):
            raise ConfigError("--config", f"{path} must hold a mapping of sections")
    tree = apply_overrides(tree, list(overrides))
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as err:
        _raise_first(err)
        raise


def save_train_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (every default filled in); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path
