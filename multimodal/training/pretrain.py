"""Masked-autoencoder pretraining of the MONAI ViT image encoder on unlabelled radiographs (`mmdx pretrain`).

MONAI's ``MaskedAutoEncoderViT`` (He et al., 2022) is the model: its encoder is the same MONAI ViT
block stack the ``monai_vit`` image encoder builds (patch embedding, transformer blocks, final norm),
so the encoder's weights map one to one onto that ViT; only the class token (which the fine-tuned
ViT does not have) and the light decoder are dropped. The loss is the mean squared error on masked
patches, each patch's pixels normalised by their own mean and variance (``norm_pix_loss``, as in the
MAE paper). Images go through the same letterbox, radiograph augmentation and normalisation as
training. The loop runs on Accelerate (devices, mixed precision, resumable state, TensorBoard) like
:func:`multimodal.training.trainer.train`.

Output (``OUT``): ``image_encoder.safetensors`` (the ViT's state dict; ``model.image_pretrained``
loads it), ``pretrain_config.yaml`` (resolved), ``state/`` (resume), ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from multimodal.data.manifest import load_manifest
from multimodal.inference.sources import discover_studies
from multimodal.models.configuration import MultimodalConfig
from multimodal.security.signing import verify_directory
from multimodal.training.config import TrainConfig, apply_overrides
from multimodal.training.trainer import Progress, _save_state, process_precision
from preprocessing.cache import PreprocessCache
from preprocessing.dicom import read_radiograph
from preprocessing.errors import ConfigError, ImageReadError
from preprocessing.transforms import build_image_transforms

log = logging.getLogger(__name__)

WEIGHTS_NAME = "image_encoder.safetensors"
CONFIG_NAME = "pretrain_config.yaml"


class PretrainConfig(BaseModel):
    """MAE pretraining options; ``model`` holds MultimodalConfig fields (only the ``image_*`` sizes,
    ``image_size`` and ``patch_size`` matter), so a training config's ``model`` section fits as is."""

    model_config = ConfigDict(extra="forbid")

    model: dict[str, Any] = Field(default_factory=dict, description="MultimodalConfig fields of the ViT to pretrain")
    mask_ratio: float = Field(0.75, gt=0, lt=1, description="share of patches hidden from the encoder")
    decoder_hidden: int = Field(128, ge=8, description="MAE decoder width")
    decoder_layers: int = Field(2, ge=1, description="MAE decoder depth")
    decoder_heads: int = Field(4, ge=1, description="MAE decoder heads")
    norm_pix_loss: bool = Field(True, description="regress per-patch normalised pixels (MAE paper)")
    splits: list[str] = Field(["train", "val"], description="manifest splits used (test images are never seen)")
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(20, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    halt_after_steps: int | None = Field(None, ge=1, description="save the state and exit after this many steps "
                                         "(continue with --resume)")
    lr: float = Field(1e-3, gt=0, description="AdamW peak learning rate (warmup, then cosine to 0)")
    weight_decay: float = Field(0.05, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    augment: bool = Field(True, description="the training augmentation of preprocessing.transforms")
    cache_dir: str | None = Field(None, description="on-disk cache of decoded images (preprocessing.cache)")
    num_workers: int = Field(0, ge=0)
    checkpoint_every: int = Field(200, ge=1, description="steps between resumable states and weight files")
    log_every: int = Field(10, ge=1, description="steps between TensorBoard scalars")
    precision: str = Field("auto", pattern="^(auto|fp32|bf16|fp16)$")
    tensorboard: bool = True
    progress: bool = True
    seed: int = 0

    def vit(self) -> MultimodalConfig:
        """The validated model config; only ``image_encoder: monai_vit`` can be pretrained here."""
        try:
            config = MultimodalConfig.from_dict(dict(self.model))
        except ConfigError as err:
            raise ConfigError(f"model.{err.key}", err.reason) from err
        if config.image_encoder != "monai_vit":
            raise ConfigError("model.image_encoder", f"MAE pretraining builds the monai_vit encoder, not "
                              f"{config.image_encoder!r}")
        return config


@dataclass
class PretrainResult:
    weights: Path
    steps: int
    images: int
    last_loss: float | None


def load_pretrain_config(config: str | Path | dict | None = None, overrides: list[str] | tuple[str, ...] = ()
                         ) -> PretrainConfig:
    """A PretrainConfig from a YAML file or dict with ``a.b=c`` overrides. A training config works too:
    its ``model`` section and its ``pretrain`` section (if any) are read, the rest is ignored."""
    if config is None:
        tree: dict[str, Any] = {}
    elif isinstance(config, dict):
        tree = dict(config)
    else:
        try:
            tree = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError("--config", f"{config}: {err}") from None
    if "data" in tree or "optim" in tree:  # a training config
        tree = {"model": tree.get("model", {}), **(tree.get("pretrain") or {})}
    tree = apply_overrides(tree, list(overrides))
    try:
        cfg = PretrainConfig.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(".".join(str(p) for p in first["loc"]), first["msg"]) from None
    cfg.vit()
    return cfg


class RadiographImages(Dataset):
    """Image files → ``[1, S, S]`` tensors (letterbox, optional augmentation, normalisation); an
    unreadable file is logged and dropped by :func:`_collate`."""

    def __init__(self, paths: list[str], size: int, augment: bool, cache_dir: str | None):
        self.paths, self.size = paths, size
        self.transforms = build_image_transforms(size, train=augment)
        self.cache = PreprocessCache(cache_dir, {"target_size": size}) if cache_dir else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | None:
        path = self.paths[index]
        try:
            radiograph = (self.cache.read_radiograph(path) if self.cache
                          else read_radiograph(path, target_size=self.size))
        except ImageReadError as err:
            log.warning("skipping %s", err)
            return None
        return torch.as_tensor(self.transforms({"image": radiograph.pixels})["image"]).reshape(1, self.size, self.size)


def _collate(items: list[torch.Tensor | None]) -> torch.Tensor:
    kept = [x for x in items if x is not None]
    return torch.stack(kept) if kept else torch.empty(0)


def image_paths(inputs: list[str | Path], splits: list[str]) -> list[str]:
    """Every image of folders / files / path lists, and of manifests the studies in ``splits``."""
    paths: list[str] = []
    others = []
    for item in inputs:
        if Path(item).suffix.lower() == ".jsonl":
            paths += [p for r in load_manifest(item, splits=splits) for p in r.images]
        else:
            others.append(item)
    if others:
        found = discover_studies(others)
        paths += [p for study in found.studies for p in study.paths]
        for error in found.errors:
            log.warning("not used: %s: %s", error.path, error.reason)
    if not paths:
        raise ConfigError("--images", f"no images found in {[str(i) for i in inputs]}")
    return sorted(set(paths))


def build_mae(cfg: PretrainConfig) -> torch.nn.Module:
    from monai.networks.nets import MaskedAutoEncoderViT

    vit = cfg.vit()
    mae = MaskedAutoEncoderViT(
        in_channels=1, img_size=vit.image_size, patch_size=vit.patch_size, hidden_size=vit.image_hidden,
        mlp_dim=vit.image_mlp_dim, num_layers=vit.image_layers, num_heads=vit.image_heads, masking_ratio=cfg.mask_ratio,
        decoder_hidden_size=cfg.decoder_hidden, decoder_mlp_dim=4 * cfg.decoder_hidden,
        decoder_num_layers=cfg.decoder_layers, decoder_num_heads=cfg.decoder_heads, spatial_dims=2, qkv_bias=True)
    # Under bf16/fp16 autocast the decoder embedding's output is half precision while MONAI writes it
    # into a copy of its fp32 mask tokens (an index put, which needs one dtype): give it back in the
    # mask tokens' dtype; the decoder blocks after it run under autocast again.
    mae.decoder_embed.register_forward_hook(lambda module, args, out: out.to(mae.mask_tokens.dtype))
    return mae


def mae_loss(mae: torch.nn.Module, images: torch.Tensor, patch: int, norm_pix: bool) -> torch.Tensor:
    """Mean squared error on the masked patches; ``images`` ``[B, 1, S, S]``."""
    pred, mask = mae(images)
    b, _, s, _ = images.shape
    n = s // patch
    # [B, 1, S, S] -> [B, n*n, patch*patch]: the patch order of MONAI's convolutional patch embedding.
    target = images.reshape(b, n, patch, n, patch).permute(0, 1, 3, 2, 4).reshape(b, n * n, patch * patch)
    if norm_pix:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = (pred.float() - target.float()).pow(2).mean(-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


def encoder_state(mae: torch.nn.Module, layers: int) -> dict[str, torch.Tensor]:
    """The MAE encoder's weights under the MONAI ViT's names (its last ``blocks`` entry is the ViT's ``norm``)."""
    state = {}
    for key, value in mae.state_dict().items():
        head, _, rest = key.partition(".")
        if head == "patch_embedding":
            state[key] = value
        elif head == "blocks":
            index, _, name = rest.partition(".")
            state[f"blocks.{rest}" if int(index) < layers else f"norm.{name}"] = value
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _write_weights(accelerator: Accelerator, mae: torch.nn.Module, layers: int, out: Path) -> Path:
    from safetensors.torch import save_file

    path = out / WEIGHTS_NAME
    if accelerator.is_main_process:
        tmp = path.with_suffix(".tmp")
        save_file(encoder_state(accelerator.unwrap_model(mae), layers), str(tmp))
        tmp.replace(path)
    return path


def run_pretrain_config(cfg: TrainConfig) -> PretrainConfig:
    """The PretrainConfig of a training config's ``pretrain`` section (its model, precision, seed and
    splits); errors name ``pretrain.<key>``."""
    tree = {"model": cfg.model, "precision": cfg.precision, "seed": cfg.seed,
            "splits": [cfg.data.train_split, cfg.data.val_split], "progress": cfg.logging.progress,
            "tensorboard": cfg.logging.tracker == "tensorboard", **(cfg.pretrain or {})}
    try:
        return load_pretrain_config(tree)
    except ConfigError as err:
        raise ConfigError(err.key if err.key.startswith("model") else f"pretrain.{err.key}", err.reason) from None


def pretrain_for_run(cfg: TrainConfig, run: Path) -> Path:
    """MAE weights for a training run whose config pretrains: ``RUN/pretrain`` on the train and val
    images of ``data.manifest``; an interrupted pretraining resumes, a finished one is reused."""
    out = run / "pretrain"
    result = pretrain(cfg.data.manifest, out, config=run_pretrain_config(cfg).model_dump(),
                      resume=(out / "state").is_dir())
    return result.weights


def pretrain(images: list[str | Path], out: str | Path, config: str | Path | dict | None = None,
             overrides: list[str] | tuple[str, ...] = (), resume: bool = False) -> PretrainResult:
    """MAE-pretrain the ViT described by ``config`` on ``images`` (folders of DICOM/PNG/JPEG, files,
    path lists, manifests) into ``out``; with ``resume`` continue from ``out/state``."""
    cfg, run = load_pretrain_config(config, overrides), Path(out)
    if resume != (run / "state").is_dir():
        raise ConfigError("--resume" if resume else "--out",
                          f"{run / 'state'} does not exist: nothing to resume" if resume else
                          f"{run} already holds a pretraining run; pass --resume or choose another --out")
    vit = cfg.vit()
    paths = image_paths(list(images), cfg.splits)
    accelerator = Accelerator(mixed_precision=process_precision(cfg.precision), project_dir=str(run),
                              log_with="tensorboard" if cfg.tensorboard else None,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    set_seed(cfg.seed)
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        (run / CONFIG_NAME).write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    mae = build_mae(cfg)
    loader = DataLoader(RadiographImages(paths, vit.image_size, cfg.augment, cfg.cache_dir), batch_size=cfg.batch_size,
                        shuffle=True, num_workers=cfg.num_workers, collate_fn=_collate,
                        drop_last=len(paths) > cfg.batch_size)
    decay = [p for n, p in mae.named_parameters() if p.requires_grad and p.ndim > 1 and "token" not in n]
    rest = [p for n, p in mae.named_parameters() if p.requires_grad and not (p.ndim > 1 and "token" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    mae, optimizer, loader = accelerator.prepare(mae, optimizer, loader)
    total = cfg.max_steps or cfg.epochs * len(loader)
    warmup = int(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(warmup, 1)) * 0.5
                                                  * (1 + math.cos(math.pi * min(step, total) / total)))
    progress = Progress()
    accelerator.register_for_checkpointing(scheduler, progress)
    if resume:
        verify_directory(run / "state")  # signed by _save_state; refuse what would be unpickled otherwise
        accelerator.load_state(str(run / "state"))
    if cfg.tensorboard:
        accelerator.init_trackers("tb", config={"lr": cfg.lr, "batch_size": cfg.batch_size,
                                                "mask_ratio": cfg.mask_ratio})
    halt_at = progress.step + cfg.halt_after_steps if cfg.halt_after_steps else None
    bar = tqdm(total=total, initial=progress.step, desc="pretrain", dynamic_ncols=True,
               disable=not (cfg.progress and accelerator.is_main_process))
    loss, t0, seen = None, time.perf_counter(), 0
    mae.train()
    while progress.step < total and progress.step != halt_at:
        epoch, done = divmod(progress.batches, len(loader))
        loader.set_epoch(epoch)
        for batch in accelerator.skip_first_batches(loader, done) if done else loader:
            progress.batches += 1
            if not len(batch):
                continue
            loss = mae_loss(mae, batch, vit.patch_size, cfg.norm_pix_loss)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(mae.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            progress.step += 1
            seen += len(batch)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", images_s=f"{seen / (time.perf_counter() - t0):.1f}")
            if progress.step % cfg.log_every == 0:
                accelerator.log({"pretrain/loss": loss.item(), "lr": scheduler.get_last_lr()[0]}, step=progress.step)
            if progress.step % cfg.checkpoint_every == 0 or progress.step in (total, halt_at):
                _save_state(accelerator, run)
                _write_weights(accelerator, mae, vit.image_layers, run)
            if progress.step in (total, halt_at):
                break
    bar.close()
    accelerator.end_training()
    weights = _write_weights(accelerator, mae, vit.image_layers, run)
    return PretrainResult(weights=weights, steps=progress.step, images=len(paths),
                          last_loss=None if loss is None else float(loss.item()))
