"""Fitting the per-observation probability maps and the indeterminate band on validation data.

Each observation gets its own map of its logit z (the model's raw output, before any calibration):

* ``temperature`` (Guo et al. 2017): ``sigmoid(z / T)``, T > 0 minimising the NLL (SciPy's bounded
  scalar minimiser over log T). One parameter, monotone: AUROC unchanged, safe on small splits.
* ``platt`` (Platt 1999): ``sigmoid(a z + b)``, scikit-learn's logistic regression on z (no penalty).
* ``isotonic`` (Zadrozny & Elkan 2002): scikit-learn's ``IsotonicRegression`` of the label on z, kept
  as its knots; flexible, needs hundreds of validation cases per observation.

An observation without both classes among its valid validation labels keeps the plain sigmoid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit

from multimodal.evaluation.classification import valid_mask
from multimodal.models.calibration import CALIBRATION_METHODS
from preprocessing.errors import ConfigError

LOG_T_RANGE = (-4.0, 4.0)  # temperatures e^-4 .. e^4


def fit_temperature(z: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``{"temperature": T}`` minimising the binary NLL of ``sigmoid(z / T)``."""
    def nll(log_t: float) -> float:
        p = np.clip(expit(z / np.exp(log_t)), 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    best = minimize_scalar(nll, bounds=LOG_T_RANGE, method="bounded")
    return {"temperature": float(np.exp(best.x))}


def fit_platt(z: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``{"a", "b"}`` of ``sigmoid(a z + b)`` by unpenalised logistic regression (``C = inf``)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf).fit(z[:, None], y)
    return {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}


def fit_isotonic(z: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """``{"x", "y"}``: the knots of the isotonic regression of ``y`` on ``z`` (probabilities in [0, 1])."""
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z, y)
    return {"x": [float(v) for v in model.X_thresholds_], "y": [float(v) for v in model.y_thresholds_]}


FITTERS = {"temperature": fit_temperature, "platt": fit_platt, "isotonic": fit_isotonic}


def fit_calibration(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str],
                    method: str = "temperature") -> dict[str, Any]:
    """``{"method", "params"}`` for ``config.calibration`` from validation logits/labels/mask ``[N, D]``."""
    if method not in CALIBRATION_METHODS:
        raise ConfigError("method", f"expected one of {sorted(CALIBRATION_METHODS)}, got {method!r}")
    ok = valid_mask(labels, mask)
    params = {}
    for d, name in enumerate(observations):
        z, y = np.asarray(logits, np.float64)[ok[:, d], d], np.asarray(labels)[ok[:, d], d]
        if 0 < y.sum() < len(y):
            params[name] = FITTERS[method](z, y)
    return {"method": method, "params": params}


def indeterminate_bands(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str],
                        thresholds: np.ndarray, error_share: float) -> dict[str, list[float]]:
    """Per observation the band ``[low, high]`` around its threshold ``t`` that holds ``error_share``
    of the validation errors on each side: that share of the false negatives (the ones closest to
    ``t``) lie in ``[low, t)`` and of the false positives in ``[t, high)``. Probabilities are the
    calibrated ones, ``[N, D]``; 0 gives the empty band ``[t, t]`` (the threshold decides alone), 1
    covers every validation error.
    """
    if not 0.0 <= error_share <= 1.0:
        raise ConfigError("error_share", f"must be in [0, 1], got {error_share}")
    ok = valid_mask(labels, mask)
    bands = {}
    for d, name in enumerate(observations):
        p, y, t = probs[ok[:, d], d], labels[ok[:, d], d], float(thresholds[d])
        missed, false_alarm = np.sort(p[(y == 1) & (p < t)]), np.sort(p[(y == 0) & (p >= t)])
        k_missed, k_false = (math.ceil(error_share * len(e) - 1e-9) for e in (missed, false_alarm))
        low = float(missed[-k_missed]) if k_missed else t
        high = float(min(np.nextafter(false_alarm[k_false - 1], 2.0), 1.0)) if k_false else t
        bands[name] = [low, high]
    return bands
