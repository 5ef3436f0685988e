"""The sections of ``metrics.json`` that say how far to trust the probabilities: calibration,
selective prediction and subgroups, with their pictures (``reliability.png``, ``risk_coverage.png``,
``subgroups.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from multimodal.data.manifest import StudyRecord
from multimodal.evaluation.calibration import calibration_metrics
from multimodal.evaluation.figures import reliability_figure, save_figure
from multimodal.evaluation.selective import plot_risk_coverage, risk_coverage
from multimodal.evaluation.subgroups import plot_subgroups, subgroup_metrics, subgroup_value


def trust_metrics(pred: dict[str, Any], records: list[StudyRecord], observations: list[str], thresholds: np.ndarray,
                  out: Path, by: list[str] | None = None, n_bootstrap: int = 500, seed: int = 0) -> dict[str, Any]:
    """``{"calibration": {"calibrated", "uncalibrated"}, "selective": ..., "subgroups": ...}``.

    ``pred`` is :func:`~multimodal.evaluation.evaluate.predict`'s output over ``records`` (same order);
    ``calibrated`` judges the probabilities the model reports (its ``config.calibration`` applied),
    ``uncalibrated`` the sigmoid of its raw logits; they are equal for a model without calibration.
    ``subgroups`` is None unless fields are given in ``by``.
    """
    labels, mask = pred["labels"], pred["label_mask"]
    raw = expit(pred["logits"])
    calibration = {"calibrated": calibration_metrics(pred["probs"], labels, mask, observations),
                   "uncalibrated": calibration_metrics(raw, labels, mask, observations)}
    save_figure(reliability_figure({"uncalibrated": raw, "calibrated": pred["probs"]}, labels, mask),
                out / "reliability.png")
    selective = risk_coverage(pred["probs"], labels, mask, thresholds, pred["uncertainty"], pred["uncertainty_method"])
    plot_risk_coverage(selective, out / "risk_coverage.png")
    subgroups = None
    if by:
        groups = {field: [subgroup_value(r, field) for r in records] for field in by}
        subgroups = subgroup_metrics(pred["probs"], labels, mask, observations, thresholds, groups,
                                     n_bootstrap=n_bootstrap, seed=seed)
        plot_subgroups(subgroups, out / "subgroups.png")
    return {"calibration": calibration, "selective": selective, "subgroups": subgroups}


def trust_summary(trust: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers: macro ECE (calibrated, uncalibrated, adaptive), Brier, NLL, AURC, and per
    field the largest subgroup gap in macro AUROC."""
    calibrated, raw = trust["calibration"]["calibrated"]["macro"], trust["calibration"]["uncalibrated"]["macro"]
    gaps = {field: (t["gap"].get("macro") or {}).get("gap") for field, t in (trust["subgroups"] or {}).items()}
    return {"macro_ece": calibrated["ece"], "macro_ece_uncalibrated": raw["ece"],
            "macro_ece_adaptive": calibrated["ece_adaptive"], "macro_brier": calibrated["brier"],
            "macro_nll": calibrated["nll"], "aurc": trust["selective"]["aurc"],
            "subgroup_macro_auroc_gap": gaps or None}
