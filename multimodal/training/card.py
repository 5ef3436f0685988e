"""The model card a training run writes into ``best/`` and ``last/``: its data, recipe and metrics.

:func:`training_card` is built once per run from the manifests and the resolved config;
:func:`with_validation_metrics` adds the per-observation metrics, with bootstrap 95% intervals, of
the evaluation that produced the checkpoint (so ``best/README.md`` holds the numbers of ``best``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

from multimodal.evaluation.classification import classification_metrics
from multimodal.models.model_card import ModelCard, data_summary
from multimodal.training.config import TrainConfig

# Resamples for the card's intervals: they run at every evaluation, so few (about 1-2 s on a CPU).
CARD_BOOTSTRAP = 100


def training_card(cfg: TrainConfig, records_by_split: dict[str, list]) -> ModelCard:
    """A card with the run's data summary (per split) and recipe, without metrics yet."""
    manifests = [Path(p).name for p in cfg.data.manifest]
    data = data_summary(records_by_split, [f"manifest {m}" for m in manifests])
    data["dates"] = {**data["dates"], "trained": date.today().isoformat()}
    return ModelCard(data=data, recipe=cfg.model_dump(mode="json"))


def with_validation_metrics(card: ModelCard, probs: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                            observations: list[str], thresholds: np.ndarray, split: str, step: int) -> ModelCard:
    """``card`` with the metrics of one validation pass (``probs``/``labels``/``masks`` ``[N, D]``)."""
    metrics = classification_metrics(probs, labels, masks, observations, thresholds, n_bootstrap=CARD_BOOTSTRAP)
    return replace(card, metrics={**metrics, "split": split, "step": step, "n_bootstrap": CARD_BOOTSTRAP})
