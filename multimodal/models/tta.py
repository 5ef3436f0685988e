"""Test-time augmentation: average a model over N radiograph-safe variants of each input.

Variants: small shifts (up to 4 % of the side), scales (0.95-1.05), rotations (up to 5 degrees) and
gamma / contrast changes (0.85-1.15 / 0.9-1.1), drawn once from a fixed seed; pass 0 is the input
itself. **Never a left-right flip**: it swaps the patient's sides (a right-sided effusion would be
scored, and drawn, on the left); every geometric map here has a positive determinant, which is
checked. Probabilities (the model's reported, calibrated ones) are averaged; heat maps are mapped
back to the original patch grid through each variant's inverse transform and averaged in
probability space over the passes that see each cell (a shift leaves a border unseen); zone
probabilities are averaged. ``sample_probs`` keeps the N passes, so their spread is the
uncertainty (``uncertainty_method="tta"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from multimodal.models.modeling import MultimodalOutput, averaged_output
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD

SEED = 0
RANGES = {"shift": 0.04, "scale": (0.95, 1.05), "degrees": 5.0, "gamma": (0.85, 1.15), "contrast": (0.9, 1.1)}


@dataclass(frozen=True)
class Variant:
    """One augmentation: shift (fractions of the side, x right, y down), scale, rotation, intensity."""

    shift_x: float = 0.0
    shift_y: float = 0.0
    scale: float = 1.0
    degrees: float = 0.0
    gamma: float = 1.0
    contrast: float = 1.0

    def theta(self) -> torch.Tensor:
        """``[2, 3]`` affine map from output to input coordinates (``affine_grid``'s [-1, 1] frame).

        The content is scaled by ``scale``, rotated and moved by ``shift``; determinant > 0 (no flip).
        """
        a = math.radians(self.degrees)
        m = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64) / self.scale
        t = -m @ torch.tensor([2 * self.shift_x, 2 * self.shift_y], dtype=torch.float64)
        return torch.cat([m, t[:, None]], 1)


def tta_plan(n: int) -> list[Variant]:
    """The ``n`` variants: the identity, then ``n - 1`` drawn from :data:`RANGES` with a fixed seed."""
    if n < 1:
        raise ValueError(f"tta must be >= 1, got {n}")
    rng = np.random.default_rng(SEED)
    plan = [Variant()]
    for _ in range(n - 1):
        plan.append(Variant(shift_x=rng.uniform(-1, 1) * RANGES["shift"], shift_y=rng.uniform(-1, 1) * RANGES["shift"],
                            scale=rng.uniform(*RANGES["scale"]), degrees=rng.uniform(-1, 1) * RANGES["degrees"],
                            gamma=rng.uniform(*RANGES["gamma"]), contrast=rng.uniform(*RANGES["contrast"])))
    for v in plan:
        if torch.det(v.theta()[:, :2]) <= 0:  # a reflection would swap the patient's sides
            raise AssertionError(f"{v} mirrors the image")
    return plan


def augment(pixel_values: torch.Tensor, variant: Variant) -> torch.Tensor:
    """Apply ``variant`` to normalised ``[B, V, 1, S, S]`` inputs; what moves in from outside is the
    letterbox's black padding."""
    b, v, c, s, _ = pixel_values.shape
    raw = (pixel_values.flatten(0, 1).float() * IMAGE_STD + IMAGE_MEAN).clamp(0, 1)
    raw = ((raw ** variant.gamma - 0.5) * variant.contrast + 0.5).clamp(0, 1)
    grid = F.affine_grid(variant.theta().float().to(raw.device).expand(len(raw), 2, 3), list(raw.shape),
                         align_corners=False)
    raw = F.grid_sample(raw, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return ((raw - IMAGE_MEAN) / IMAGE_STD).view(b, v, c, s, s).to(pixel_values.dtype)


def map_back(maps: torch.Tensor, variant: Variant) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps ``[B, D, h, w]`` computed on an augmented input → the original grid, and a ``[B, 1, h, w]``
    weight that is 0 where the augmented input did not see the original."""
    theta = variant.theta()
    inverse = torch.linalg.inv(torch.cat([theta, torch.tensor([[0.0, 0.0, 1.0]], dtype=theta.dtype)]))[:2]
    inverse = inverse.float().to(maps.device).expand(len(maps), 2, 3)
    grid = F.affine_grid(inverse, list(maps.shape), align_corners=False)
    back = F.grid_sample(maps.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    seen = F.grid_sample(torch.ones_like(maps[:, :1]).float(), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)
    return back, seen


class TTAModel(nn.Module):
    """A model (single or ensemble) scored over :func:`tta_plan` variants; quacks like the model.

    ``forward`` returns a :class:`MultimodalOutput` whose ``probs``/``zone_probs`` are means over the
    passes, ``heatmaps`` the logit of the mean mapped-back heat-map probability, ``logits`` the
    logit of the mean raw probability, ``sample_probs`` ``[B, N, D]``. Findings come from the
    un-augmented input.
    """

    def __init__(self, model: nn.Module, n: int):
        super().__init__()
        self.model, self.plan = model, tta_plan(n)
        self.config, self.tokenizer = model.config, model.tokenizer

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.model.grid_size

    def forward(self, pixel_values: torch.Tensor, view_mask: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, **targets) -> MultimodalOutput:
        outputs = [self.model(augment(pixel_values, v), view_mask, input_ids, attention_mask, **targets)
                   for v in self.plan]
        heat, seen = 0.0, 0.0
        for variant, out in zip(self.plan, outputs):
            back, weight = map_back(out.heatmaps.float().sigmoid(), variant)
            heat, seen = heat + back * weight, seen + weight
        return averaged_output(outputs, heat / seen.clamp_min(1e-6), "tta")

    def generate_findings(self, *args, **kwargs) -> list[str]:
        return self.model.generate_findings(*args, **kwargs)


def with_tta(model: nn.Module, n: int | None) -> nn.Module:
    """``model`` wrapped in :class:`TTAModel` when ``n`` > 1, else ``model`` itself."""
    return TTAModel(model, n).eval() if n and n > 1 else model
