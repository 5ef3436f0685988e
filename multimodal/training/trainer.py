"""`train(config, out, overrides, resume)`: fine-tuning on Hugging Face Accelerate.

One code path for one CPU, one GPU, several GPUs (``accelerate launch``) and several nodes
(``torchrun``): Accelerate owns devices, processes, mixed precision, gradient accumulation and the
resumable state. The run directory holds::

    RUN_DIR/config.yaml    the resolved TrainConfig
    RUN_DIR/best/, last/   model directories (safetensors + config.json with tuned thresholds + tokenizer),
                           calibrated on the validation split at the end (``calibration``)
    RUN_DIR/top_k/, ensemble/  with ``averaging.export_top_k``: the k best checkpoints, and them as an ensemble
    RUN_DIR/state/         optimizer, scheduler, scaler, RNG and progress, for --resume
    RUN_DIR/tb/            TensorBoard logs (logging.tracker; multimodal.training.tracking)
    RUN_DIR/history.jsonl  one line of validation metrics per evaluation
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import gather_object, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from multimodal.data.dataset import StudyDataset, box_frequency, collate_studies
from multimodal.data.manifest import load_manifest
from multimodal.evaluation.classification import point_metrics, tune_thresholds
from multimodal.evaluation.figures import reliability_figure, roc_figure
from multimodal.evaluation.region import pointing_game, pointing_trials
from multimodal.models.decoder_vocab import build_decoder_vocab
from multimodal.precision import native_bf16
from multimodal.models.model_card import ModelCard
from multimodal.models.heads import prior_from_box_frequency
from multimodal.models.modeling import MultimodalModel
from multimodal.security.signing import sign_directory, verify_directory
from multimodal.training.adversarial import Adversary
from multimodal.training.averaging import WeightAverager, keep_top_k
from multimodal.training.card import training_card, with_validation_metrics
from multimodal.training.finish import finish_run
from multimodal.training.config import OptimConfig, TrainConfig, load_train_config, save_train_config
from multimodal.training.tracking import Tracking, check_installed
from preprocessing.errors import ConfigError
from preprocessing.text import load_tokenizer


@dataclass
class TrainResult:
    """What a run produced: checkpoint directories, its last validation metrics and the best ones."""

    run_dir: Path
    best: Path | None
    last: Path
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False


@dataclass
class Progress:
    """Loop position and early-stopping memory; checkpointed with the Accelerate state."""

    step: int = 0  # optimizer steps taken
    batches: int = 0  # micro-batches consumed, over all epochs (the data position for resume)
    best: float | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    top_k: list[list[float]] = field(default_factory=list)  # [metric, step] of the kept checkpoints, best first

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def resolve_precision(precision: str) -> str:
    """Map the config's precision to Accelerate's ``mixed_precision`` (``"no"``, ``"bf16"``, ``"fp16"``).

    ``auto`` is bf16 where it runs natively (a bf16 GPU, or a CPU with AMX / AVX-512-BF16), else fp32.
    """
    cuda = torch.cuda.is_available()
    if precision == "auto":
        return "bf16" if native_bf16("cuda" if cuda else "cpu") else "no"
    if precision == "fp16" and not cuda:
        raise ConfigError("precision", "fp16 (with loss scaling) needs a CUDA device; use bf16 or fp32 on CPU")
    return {"fp32": "no"}.get(precision, precision)


def process_precision(precision: str) -> str:
    """:func:`resolve_precision`, and let a single process train again at another precision (a
    notebook, a test session, ``prune --finetune`` after an fp32 run, ``pretrain`` then ``train``):
    Accelerate keeps one precision per process and refuses a second. A multi-process launch keeps its
    state: there the launcher chose the precision once. Call it right before building an Accelerator."""
    mixed_precision = resolve_precision(precision)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision and PartialState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return mixed_precision


def split_records(cfg: TrainConfig, split: str) -> list:
    """The studies of one split across the config's manifests; raises ConfigError when there are none."""
    found = [r for path in cfg.data.manifest for r in load_manifest(path, splits=split)]
    if not found:
        raise ConfigError("data.manifest", f"no study with split {split!r} in {cfg.data.manifest}")
    return found


def build_loaders(cfg: TrainConfig, model: MultimodalModel, train_records: list) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders: over ``train_records`` (:func:`split_records` of the training
    split, read once by the caller) and the manifests' validation split."""
    def loader(records: list, train: bool, batch_size: int) -> DataLoader:
        dataset = StudyDataset(records, model.config, tokenizer=model.tokenizer, train=train and cfg.data.augment,
                               cache_dir=cfg.data.cache_dir, grid_size=model.grid_size)
        # A private generator: creating a loader iterator then does not consume the global RNG, so
        # a resumed run draws the same dropout masks as an uninterrupted one.
        return DataLoader(dataset, batch_size=batch_size, shuffle=train, collate_fn=collate_studies,
                          num_workers=cfg.data.num_workers, persistent_workers=cfg.data.num_workers > 0,
                          generator=torch.Generator().manual_seed(cfg.seed))

    eval_bs = cfg.data.eval_batch_size or cfg.data.batch_size
    return (loader(train_records, True, cfg.data.batch_size),
            loader(split_records(cfg, cfg.data.val_split), False, eval_bs))


def train_decoder_vocab(train_records: list, text_encoder: str) -> list[int]:
    """The decoder vocabulary of the training studies' findings (``data.decoder_vocab_from_train``)."""
    return build_decoder_vocab([r.findings for r in train_records], load_tokenizer(text_encoder))


def find_unused_parameters(cfg: TrainConfig, train_records: list) -> bool:
    """DDP's ``find_unused_parameters``: the config's choice, or (None) True unless every training study
    has findings, i.e. unless every batch gives the findings decoder (like every other part) a gradient."""
    if cfg.ddp_find_unused_parameters is not None:
        return cfg.ddp_find_unused_parameters
    return not all(r.findings.strip() for r in train_records)


def init_spatial_prior(model: MultimodalModel, train_records: list, cfg: TrainConfig) -> torch.Tensor:
    """Start the heads' spatial prior from the training split's boxes (no augmentation; validation and
    test studies are never read): :func:`~multimodal.models.heads.prior_from_box_frequency` of
    :func:`~multimodal.data.dataset.box_frequency`. Returns the frequencies ``[D, h, w]``."""
    dataset = StudyDataset(train_records, model.config, tokenizer=model.tokenizer, train=False,
                           cache_dir=cfg.data.cache_dir, grid_size=model.grid_size)
    frequency = box_frequency(dataset)
    with torch.no_grad():
        model.heads.prior.copy_(prior_from_box_frequency(frequency))
    return frequency


def build_optimizer(model: MultimodalModel, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW with ``encoder_lr`` for pretrained encoders and ``lr`` elsewhere; no decay on biases/norms.

    ``fused=True``: PyTorch's default AdamW loops over tensors one by one, which cost 1.3-1.8 s per step
    on this model on CPU against 0.26-0.31 s fused (benchmarks/bench_train.py --optimizer adamw-fused).
    """
    pretrained = [model.text_encoder] + ([model.image_encoder] if model.config.image_pretrained else [])
    encoder_ids = {id(p) for m in pretrained for p in m.parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in encoder_ids, p.ndim >= 2), []).append(p)
    return torch.optim.AdamW(
        [{"params": ps, "lr": optim.encoder_lr if enc else optim.lr, "weight_decay": optim.weight_decay if decay else 0.0}
         for (enc, decay), ps in sorted(groups.items())], betas=optim.betas, fused=True)


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` (or constant), per optimizer step."""
    warmup = optim.warmup_steps if optim.warmup_steps is not None else round(optim.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if optim.schedule == "constant":
            return 1.0
        t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, observations: list[str]
             ) -> tuple[dict[str, float], np.ndarray, dict[str, torch.Tensor], tuple[np.ndarray, ...]]:
    """Validation loss, classification metrics and the pointing game (all processes; ``auroc_pointing``
    is the mean of ``macro_auroc`` and ``pointing_game``), tuned thresholds, a first batch.

    Returns ``(metrics, thresholds [D], first, (probs, labels, masks) [N, D])`` where ``first`` holds
    the first batch's ``pixel_values``, ``heatmaps`` and ``probs`` for the tracker's pictures.
    """
    model.eval()
    losses, probs, labels, masks, first, hits = [], [], [], [], {}, []
    for batch, meta in loader:
        out = model(**batch)
        trials = pointing_trials(out.heatmaps.float().cpu().numpy(), meta["boxes"], observations,
                                 batch["pixel_values"].shape[-1])
        hits += [(observations[d], hit) for _, d, _, _, hit in trials]
        # One mean per process and batch: plain gather (gather_for_metrics would trim it as if per sample).
        losses.append(accelerator.gather(out.loss.detach().float().reshape(1)).cpu())
        p, y, m = accelerator.gather_for_metrics((out.probs.float(), batch["labels"], batch["label_mask"]))
        probs.append(p.cpu()), labels.append(y.cpu()), masks.append(m.cpu())
        if not first:
            first = {"pixel_values": batch["pixel_values"][:, 0, 0].float().cpu(),
                     "heatmaps": out.heatmaps.float().sigmoid().cpu(), "probs": out.probs.float().cpu()}
    model.train()
    probs_np, labels_np, masks_np = (torch.cat(t).numpy() for t in (probs, labels, masks))
    thresholds = tune_thresholds(probs_np, labels_np, masks_np)
    scores = point_metrics(probs_np, labels_np, masks_np, observations, thresholds)
    metrics = {"val_loss": float(torch.cat(losses).mean())}
    metrics.update({f"macro_{k}": v for k, v in scores["macro"].items() if v is not None})
    metrics.update({f"micro_{k}": v for k, v in scores["micro"].items() if v is not None})
    hits = [h for part in gather_object([hits]) for h in part] if accelerator.num_processes > 1 else hits
    by_observation: dict[str, list[bool]] = {}
    for name, hit in hits:
        by_observation.setdefault(name, []).append(hit)
    pointing = pointing_game(by_observation)["mean"]
    if pointing is not None:
        metrics["pointing_game"] = pointing
        if "macro_auroc" in metrics:
            metrics["auroc_pointing"] = (metrics["macro_auroc"] + pointing) / 2
    return metrics, thresholds, first, (probs_np, labels_np, masks_np)


def heatmap_grid(first: dict[str, torch.Tensor], n: int) -> torch.Tensor:
    """``[n, 3, S, S]`` pictures: the input in gray with its most probable observation's map in red."""
    images = first["pixel_values"][:n]
    images = (images - images.amin((1, 2), keepdim=True)) / (images.amax((1, 2), keepdim=True) - images.amin((1, 2), keepdim=True) + 1e-6)
    top = first["probs"][:n].argmax(1)
    maps = first["heatmaps"][torch.arange(len(top)), top][:, None]
    maps = torch.nn.functional.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    rgb = images[:, None].repeat(1, 3, 1, 1) * 0.7
    rgb[:, 0] += 0.3 * maps
    return rgb.clamp(0, 1)


def _save_model(accelerator: Accelerator, model: torch.nn.Module, thresholds: np.ndarray, path: Path,
                card: ModelCard | None = None) -> None:
    """Main process: write ``path`` as a from_pretrained directory with the tuned thresholds."""
    if accelerator.is_main_process:
        inner = accelerator.unwrap_model(model)
        inner.config.thresholds = {name: float(t) for name, t in zip(inner.config.observations, thresholds)}
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        inner.save_pretrained(tmp, card)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    accelerator.wait_for_everyone()


def _save_state(accelerator: Accelerator, run: Path) -> None:
    """Save the resumable state atomically: a kill during the save leaves the previous one intact."""
    tmp, final = run / "state.tmp", run / "state"
    # Accelerate warns at every save that it stores the tied decoder weights once; the model re-ties
    # them when it is built, so the warning is noise here.
    tied_weights_log = logging.getLogger("accelerate.utils.other")
    level = tied_weights_log.level
    tied_weights_log.setLevel(logging.ERROR)
    try:
        accelerator.save_state(str(tmp))
    finally:
        tied_weights_log.setLevel(level)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        sign_directory(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    accelerator.wait_for_everyone()


def _prepare_run_dir(run: Path, resume: bool) -> None:
    if resume and not (run / "state").is_dir():
        raise ConfigError("--resume", f"{run / 'state'} does not exist: nothing to resume")
    if not resume and (run / "state").exists():
        raise ConfigError("--out", f"{run} already holds a run; pass --resume to continue it or choose another --out")


def build_model(cfg: TrainConfig, run: Path, train_records: list) -> MultimodalModel:
    """The model a run starts from: ``cfg.init_from`` as saved (in training mode), or a fresh one from
    the model section (after MAE pretraining and the training decoder vocabulary when asked)."""
    if cfg.init_from is not None:
        return MultimodalModel.from_pretrained(cfg.init_from).train()
    model_config = cfg.multimodal_config()
    if cfg.pretrain is not None:  # the recipe pretrains: MAE on the manifests' train and val images first
        from multimodal.training.pretrain import pretrain_for_run

        model_config.image_pretrained = str(pretrain_for_run(cfg, run))
    if cfg.data.decoder_vocab_from_train:
        model_config.decoder_vocab = train_decoder_vocab(train_records, model_config.text_encoder)
    return MultimodalModel.from_config(model_config)


def train(config: str | Path | dict | TrainConfig, out: str | Path, overrides: list[str] | tuple[str, ...] = (),
          resume: bool = False, after_step: Sequence[Callable[[torch.nn.Module], None]] = ()) -> TrainResult:
    """Train a model from a config (YAML path, dict or TrainConfig) into the run directory ``out``.

    ``overrides`` are ``"a.b=value"`` strings (YAML values). With ``resume`` the run continues from
    ``out/state`` exactly where it stopped (weights, optimizer, scheduler, scaler, RNG, data position).
    Launch with ``accelerate launch`` or ``torchrun`` for several processes; nothing else changes.
    ``after_step``: callables given the (unwrapped) model after every optimizer step, e.g. one that
    keeps pruned weights at zero (:class:`multimodal.compression.prune.ZeroMask`).
    """
    cfg, run = load_train_config(config, overrides), Path(out)
    _prepare_run_dir(run, resume)
    check_installed(cfg.logging.tracker)
    train_records = split_records(cfg, cfg.data.train_split)
    mixed_precision = process_precision(cfg.precision)
    accelerator = Accelerator(
        mixed_precision=mixed_precision, gradient_accumulation_steps=cfg.optim.grad_accum,
        log_with=None if cfg.logging.tracker == "none" else cfg.logging.tracker, project_dir=str(run),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters(cfg, train_records))])
    set_seed(cfg.seed)
    if accelerator.is_main_process:
        save_train_config(cfg, run / "config.yaml")
    model = build_model(cfg, run, train_records)
    if model.heads.prior is not None and not resume and cfg.init_from is None:
        init_spatial_prior(model, train_records, cfg)  # a resumed or init_from model holds its prior
    observations = list(model.config.observations)
    train_loader, val_loader = build_loaders(cfg, model, train_records)
    optimizer = build_optimizer(model, cfg.optim)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    adversary = Adversary(cfg.adversarial, accelerator.unwrap_model(model))
    steps_per_epoch = math.ceil(len(train_loader) / cfg.optim.grad_accum)
    total = cfg.optim.max_steps or cfg.optim.epochs * steps_per_epoch
    scheduler = build_scheduler(optimizer, cfg.optim, total)
    progress = Progress()
    val_records = split_records(cfg, cfg.data.val_split)
    card = training_card(cfg, {cfg.data.train_split: train_records, cfg.data.val_split: val_records})
    accelerator.register_for_checkpointing(scheduler, progress)
    averager = None
    if cfg.averaging.kind != "none":
        averager = WeightAverager(accelerator.unwrap_model(model), cfg.averaging.kind, cfg.averaging.ema_decay,
                                  round(cfg.averaging.swa_start * total) if cfg.averaging.kind == "swa" else 0)
        accelerator.register_for_checkpointing(averager)
    if resume:
        verify_directory(run / "state")
        accelerator.load_state(str(run / "state"))
    tracking = Tracking(accelerator, cfg.logging.tracker, cfg.model_dump(mode="json"), run)
    eval_every, save_every = cfg.eval_every or steps_per_epoch, cfg.checkpoint_every or cfg.eval_every or steps_per_epoch
    halt_at = progress.step + cfg.halt_after_steps if cfg.halt_after_steps else None
    bar = tqdm(total=total, initial=progress.step, disable=not (cfg.logging.progress and accelerator.is_main_process),
               desc="train", dynamic_ncols=True)
    metrics, thresholds, stop, seen, t0 = {}, np.full(len(observations), 0.5), False, 0, time.perf_counter()
    model.train()
    while progress.step < total and not stop:
        epoch, done = divmod(progress.batches, len(train_loader))
        train_loader.set_epoch(epoch)
        for batch, _ in accelerator.skip_first_batches(train_loader, done) if done else train_loader:
            with accelerator.accumulate(model):
                out = model(**adversary.perturb(batch))
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and cfg.optim.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if accelerator.sync_gradients:
                for hook in after_step:
                    hook(accelerator.unwrap_model(model))
            progress.batches += 1
            seen += len(batch["labels"]) * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            progress.step += 1
            if averager is not None:
                averager.update(accelerator.unwrap_model(model), progress.step)
            bar.update(1)
            bar.set_postfix(loss=f"{out.loss.item():.3f}", samples_s=f"{seen / (time.perf_counter() - t0):.1f}")
            if progress.step % cfg.logging.log_every == 0:
                accelerator.log({"train/loss": out.loss.item(), **{f"train/{k}": v.item() for k, v in out.losses.items()},
                                 "lr/head": scheduler.get_last_lr()[0], "lr/encoder": scheduler.get_last_lr()[-1]},
                                step=progress.step)
            if progress.step % eval_every == 0 or progress.step == total:
                with averager.applied(accelerator.unwrap_model(model)) if averager else nullcontext():
                    metrics, thresholds, first, predictions = validate(model, val_loader, accelerator, observations)
                    card = with_validation_metrics(card, *predictions, observations, thresholds, cfg.data.val_split,
                                                   progress.step)
                    _track_validation(tracking, cfg, first, predictions, observations, progress.step)
                    stop = _after_evaluation(accelerator, cfg, run, model, progress, metrics, thresholds, card)
            if progress.step % save_every == 0 or progress.step == total or stop or progress.step == halt_at:
                _save_state(accelerator, run)
            if stop or progress.step >= total or progress.step == halt_at:
                break
        if progress.step == halt_at:
            break
    bar.close()
    if accelerator.is_main_process and (stop or progress.step >= total):
        finish_run(cfg, run, progress.top_k)
    best = run / "best" if (run / "best").is_dir() else None
    tracking.model_card(best or run / "last", progress.step)
    accelerator.end_training()
    return TrainResult(run_dir=run, best=best, last=run / "last", steps=progress.step, metrics=metrics,
                       best_metrics=progress.best_metrics, stopped_early=stop)


def _track_validation(tracking: Tracking, cfg: TrainConfig, first: dict[str, torch.Tensor],
                      predictions: tuple[np.ndarray, ...], observations: list[str], step: int) -> None:
    """Pictures of one validation for the tracker: heat-map samples, ROC and reliability figures."""
    if tracking.active and cfg.logging.heatmap_images:
        tracking.images("val/heatmaps", heatmap_grid(first, cfg.logging.heatmap_images), step)
    if tracking.active and cfg.logging.figures:
        tracking.figure("val/roc", roc_figure(*predictions, observations), step)
        tracking.figure("val/reliability", reliability_figure(*predictions), step)


def _after_evaluation(accelerator: Accelerator, cfg: TrainConfig, run: Path, model: torch.nn.Module,
                      progress: Progress, metrics: dict[str, float], thresholds: np.ndarray,
                      card: ModelCard) -> bool:
    """Log, write last (and best when improved), update early stopping; True when patience ran out."""
    es = cfg.early_stopping
    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=progress.step)
    if accelerator.is_main_process:
        with open(run / "history.jsonl", "a") as f:
            f.write(json.dumps({"step": progress.step, **metrics}) + "\n")
    _save_model(accelerator, model, thresholds, run / "last", card)
    value = metrics.get(es.metric)
    if cfg.averaging.export_top_k and value is not None:
        progress.top_k = keep_top_k(progress.top_k, value, progress.step, cfg.averaging.export_top_k, es.maximize,
                                    run / "top_k", lambda path: _save_model(accelerator, model, thresholds, path, card))
    sign = 1 if es.maximize else -1
    if value is not None and (progress.best is None or sign * (value - progress.best) > es.min_delta):
        progress.best, progress.best_metrics, progress.bad_evals = value, dict(metrics), 0
        _save_model(accelerator, model, thresholds, run / "best", card)
    else:
        progress.bad_evals += 1
    return es.patience is not None and progress.bad_evals >= es.patience
