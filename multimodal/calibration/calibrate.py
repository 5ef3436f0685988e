"""`calibrate(model_dir, manifest, ...)`: fit a model's calibration on a split and store it in its config.

Steps: run the model (single or ensemble directory) over the split; fit the per-observation maps on
its raw logits (:mod:`.fit`); re-tune each observation's F1-optimal threshold on the calibrated
probabilities; fit the indeterminate band around it; write ``config.json`` (in place, or into a copy
of the model directory). The raw logits stay what the model outputs (``MultimodalOutput.logits``);
``probs`` are calibrated from then on wherever the model is loaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from multimodal.calibration.fit import fit_calibration, indeterminate_bands
from multimodal.data.dataset import StudyDataset, collate_studies
from multimodal.data.manifest import load_manifest
from multimodal.evaluation.calibration import calibration_metrics
from multimodal.evaluation.classification import tune_thresholds
from multimodal.evaluation.evaluate import predict
from multimodal.models.calibration import calibrated_probs
from multimodal.models.configuration import CONFIG_NAME
from multimodal.models.modeling import MultimodalModel
from preprocessing.errors import ConfigError

DEFAULT_ERROR_SHARE = 0.5


def calibrate(model_dir: str | Path, manifest: str | Path | list[str | Path], split: str = "val",
              out: str | Path | None = None, method: str = "temperature", error_share: float = DEFAULT_ERROR_SHARE,
              batch_size: int = 16, device: str | None = None) -> dict[str, Any]:
    """Fit calibration, thresholds and indeterminate band of ``model_dir`` on ``split`` of ``manifest``.

    ``out``: a new model directory (a copy with the new config); None rewrites ``model_dir``'s config.
    ``method``: ``temperature`` / ``platt`` / ``isotonic``. ``error_share``: share of the split's
    errors on each side of the threshold that the indeterminate band holds (0: no band).
    Returns ``{"model", "method", "n_studies", "before": {...}, "after": {...}, "thresholds", "indeterminate"}``
    where ``before``/``after`` are the macro ECE / adaptive ECE / Brier / NLL on the split itself
    (in-sample: report held-out numbers with ``mmdx evaluate``).
    """
    manifests = manifest if isinstance(manifest, list) else [manifest]
    records = [r for m in manifests for r in load_manifest(m, splits=split)]
    if not records:
        raise ConfigError("--split", f"no study with split {split!r} in {', '.join(map(str, manifests))}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = MultimodalModel.from_pretrained(model_dir, device=dev)
    config = model.config
    dataset = StudyDataset(records, config, tokenizer=model.tokenizer, train=False, grid_size=model.grid_size)
    pred = predict(model, DataLoader(dataset, batch_size=batch_size, collate_fn=collate_studies), dev, generate=False)
    observations = list(config.observations)
    logits, labels, mask = pred["logits"], pred["labels"], pred["label_mask"]

    fitted = fit_calibration(logits, labels, mask, observations, method)
    probs = calibrated_probs(torch.as_tensor(logits), fitted, observations).numpy()
    thresholds = tune_thresholds(probs, labels, mask)
    fitted["indeterminate"] = indeterminate_bands(probs, labels, mask, observations, thresholds, error_share)
    fitted["fitted_on"] = {"manifest": [Path(m).name for m in manifests], "split": split, "n_studies": len(records),
                           "error_share": error_share}
    config.calibration = fitted
    config.thresholds = {name: float(t) for name, t in zip(observations, thresholds)}
    config.validate()
    target = Path(out) if out is not None else Path(model_dir)
    if out is not None:
        _copy_model_dir(Path(model_dir), target)
    _write_config(config, target)
    before = calibration_metrics(1 / (1 + np.exp(-logits)), labels, mask, observations)["macro"]
    after = calibration_metrics(probs, labels, mask, observations)["macro"]
    return {"model": str(target), "method": method, "split": split, "n_studies": len(records), "before": before,
            "after": after, "thresholds": config.thresholds, "indeterminate": fitted["indeterminate"]}


def _copy_model_dir(source: Path, target: Path) -> None:
    if target.resolve() == source.resolve():
        return
    if target.exists():
        raise ConfigError("--out", f"{target} already exists; choose a new directory")
    shutil.copytree(source, target)


def _write_config(config, directory: Path) -> None:
    """Replace ``config.json`` atomically: a reader never sees half a config."""
    staging = directory / ".calibrating"
    os.replace(config.save(staging), directory / CONFIG_NAME)
    staging.rmdir()
