"""What a finished run does last: calibrate its checkpoints on the validation split and export the
top-k checkpoints as an ensemble (``RUN_DIR/ensemble``, calibrated as a whole)."""

from __future__ import annotations

import logging
from pathlib import Path

from multimodal.calibration.calibrate import calibrate
from multimodal.models.ensemble import build_ensemble
from multimodal.training.config import TrainConfig

log = logging.getLogger(__name__)


def finish_run(cfg: TrainConfig, run: Path, top_k: list[list[float]]) -> Path | None:
    """Calibrate ``best`` and ``last`` in place (``cfg.calibration``); with two or more top-k
    checkpoints, build and calibrate ``run/ensemble``. Returns the ensemble directory or None."""
    method = cfg.calibration.method
    ensemble = None
    if len(top_k) >= 2:
        ensemble = build_ensemble([run / "top_k" / f"step-{int(step)}" for _, step in top_k], run / "ensemble")
    if method == "none":
        return ensemble
    for model_dir in (run / "best", run / "last", ensemble):
        if model_dir is not None and model_dir.is_dir():
            summary = calibrate(model_dir, cfg.data.manifest, split=cfg.data.val_split, method=method,
                                error_share=cfg.calibration.error_share,
                                batch_size=cfg.data.eval_batch_size or cfg.data.batch_size)
            log.info("calibrated %s: macro ECE %.3f -> %.3f on %s", model_dir.name, summary["before"]["ece"],
                     summary["after"]["ece"], cfg.data.val_split)
    return ensemble
