"""What a model's ``config.calibration`` means: per-observation probability maps and the decision band.

The maps are fitted elsewhere (:mod:`multimodal.calibration`, on validation data); here they are
only applied, so that every consumer of a model (``forward``, the Predictor, evaluation, PACS, the
SR) reads the same calibrated probabilities. ``config.calibration`` is None (probabilities are the
sigmoid of the logits) or::

    {"method": "temperature" | "platt" | "isotonic",
     "params": {observation: {"temperature": T} | {"a": a, "b": b} | {"x": [...], "y": [...]}},
     "indeterminate": {observation: [low, high]},      # decision band around the threshold
     "fitted_on": {...}}                               # provenance (split, study count, ...)

Maps act on each observation's logit z: temperature ``sigmoid(z / T)``, Platt ``sigmoid(a z + b)``,
isotonic a non-decreasing piecewise-linear ``z -> p`` through the knots ``(x, y)`` (flat outside).
"""

from __future__ import annotations

from typing import Any

import torch

from preprocessing.errors import ConfigError

CALIBRATION_METHODS = {"temperature": {"temperature"}, "platt": {"a", "b"}, "isotonic": {"x", "y"}}
DECISIONS = ("present", "absent", "indeterminate")


def check_calibration(value: dict[str, Any] | None, observations: list[str]) -> dict[str, Any] | None:
    """Validate ``config.calibration``; raise :class:`ConfigError` naming the key at fault."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("method") not in CALIBRATION_METHODS:
        raise ConfigError("calibration.method", f"expected one of {sorted(CALIBRATION_METHODS)}, got "
                          f"{value.get('method') if isinstance(value, dict) else value!r}")
    keys = CALIBRATION_METHODS[value["method"]]
    for name, params in (value.get("params") or {}).items():
        if name not in observations:
            raise ConfigError(f"calibration.params.{name}", "unknown observation")
        if not isinstance(params, dict) or set(params) != keys:
            raise ConfigError(f"calibration.params.{name}", f"expected keys {sorted(keys)}, got {params!r}")
        if value["method"] == "temperature" and not params["temperature"] > 0:
            raise ConfigError(f"calibration.params.{name}.temperature", "must be > 0")
        if value["method"] == "isotonic" and (len(params["x"]) != len(params["y"]) or not params["x"]):
            raise ConfigError(f"calibration.params.{name}", "x and y must be non-empty lists of equal length")
    for name, band in (value.get("indeterminate") or {}).items():
        if name not in observations:
            raise ConfigError(f"calibration.indeterminate.{name}", "unknown observation")
        if not (isinstance(band, (list, tuple)) and len(band) == 2 and 0.0 <= band[0] <= band[1] <= 1.0):
            raise ConfigError(f"calibration.indeterminate.{name}", f"expected [low, high] in [0, 1], got {band!r}")
    return value


def calibrated_probs(logits: torch.Tensor, calibration: dict[str, Any] | None, observations: list[str]
                     ) -> torch.Tensor:
    """Probabilities ``[B, D]`` from logits ``[B, D]`` through the per-observation maps (sigmoid where none)."""
    params = (calibration or {}).get("params") or {}
    if not params:
        return logits.sigmoid()
    method = calibration["method"]
    columns = []
    for d, name in enumerate(observations):
        z, p = logits[:, d].float(), params.get(name)
        if p is None:
            columns.append(z.sigmoid())
        elif method == "temperature":
            columns.append((z / p["temperature"]).sigmoid())
        elif method == "platt":
            columns.append((p["a"] * z + p["b"]).sigmoid())
        else:
            columns.append(_interp(z, torch.tensor(p["x"], device=z.device), torch.tensor(p["y"], device=z.device)))
    return torch.stack(columns, 1).to(logits.dtype)


def _interp(z: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``numpy.interp`` in torch: piecewise-linear through (x, y), constant beyond the ends."""
    if len(x) == 1:
        return y.expand_as(z).clone()
    i = torch.searchsorted(x, z.contiguous()).clamp(1, len(x) - 1)
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    t = ((z - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)


def decide(probability: float, threshold: float, band: tuple[float, float] | list[float] | None) -> str:
    """``present`` / ``absent`` / ``indeterminate`` for one calibrated probability.

    Without a band the threshold decides; with ``[low, high]`` a probability in ``[low, high)`` is
    indeterminate, at or above ``high`` present, below ``low`` absent.
    """
    if band is None:
        return "present" if probability >= threshold else "absent"
    low, high = band
    if probability >= high:
        return "present"
    return "absent" if probability < low else "indeterminate"
