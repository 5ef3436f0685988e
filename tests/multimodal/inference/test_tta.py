"""Test-time augmentation keeps the patient's sides, maps heat maps back, and reports its spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from multimodal.inference import Predictor
from multimodal.models.tta import TTAModel, Variant, augment, map_back, tta_plan
from multimodal.models.modeling import MultimodalOutput
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD

SIZE, PATCH = 64, 8


class BrightnessModel(nn.Module):
    """A stand-in model that sees where the image is bright: its heat map is the mean brightness per
    8-px cell, and its one observation ("right-sided finding") is positive when the image's left
    half (the patient's right) is brighter than its right half."""

    def __init__(self):
        super().__init__()
        self.config, self.tokenizer = None, None

    def forward(self, pixel_values, view_mask, input_ids, attention_mask, **_):
        image = pixel_values[:, 0]  # [B, 1, S, S]
        cells = F.avg_pool2d(image, PATCH)[:, :1]  # [B, 1, h, w]
        left, right = image[..., : SIZE // 2].mean((1, 2, 3)), image[..., SIZE // 2:].mean((1, 2, 3))
        logits = (10 * (left - right))[:, None]
        heat = 4 * cells
        return MultimodalOutput(logits=logits, probs=logits.sigmoid(), heatmaps=heat, zone_logits=logits[..., None],
                                zone_probs=logits[..., None].sigmoid(), fused_image=image, fused_text=image,
                                image_mask=view_mask, text_mask=attention_mask)


def _image_with_finding_at(x: int, y: int) -> torch.Tensor:
    """A normalised ``[1, 1, 1, S, S]`` dark image with one bright 10-px blob centred at (x, y)."""
    raw = torch.full((SIZE, SIZE), 0.2)
    raw[y - 5:y + 5, x - 5:x + 5] = 0.9
    return ((raw - IMAGE_MEAN) / IMAGE_STD)[None, None, None]


def test_no_variant_mirrors_the_image():
    for variant in tta_plan(32):
        assert torch.det(variant.theta()[:, :2]) > 0
        assert abs(variant.degrees) <= 5 and 0.95 <= variant.scale <= 1.05


@pytest.mark.parametrize("x", [14, 50])
def test_a_lateralised_finding_keeps_its_side(x):
    pixels = _image_with_finding_at(x, 30)
    inputs = {"view_mask": torch.ones(1, 1, dtype=torch.bool), "input_ids": torch.zeros(1, 2, dtype=torch.long),
              "attention_mask": torch.ones(1, 2, dtype=torch.long)}
    out = TTAModel(BrightnessModel(), 8)(pixels, **inputs)
    assert out.sample_probs.shape == (1, 8, 1) and out.uncertainty_method == "tta"
    on_patient_right = x < SIZE // 2
    # Every pass, not only the mean, sees the finding on the side where it is.
    assert bool(((out.sample_probs > 0.5) == on_patient_right).all())
    peak_col = int(out.heatmaps[0, 0].argmax()) % (SIZE // PATCH)
    assert peak_col == x // PATCH


def test_heat_maps_are_mapped_back_to_the_original_grid():
    maps = torch.zeros(1, 1, 16, 16)
    maps[0, 0, 5, 3] = 1.0
    variant = Variant(shift_x=0.125, shift_y=-0.0625)  # 2 and -1 cells of 16
    moved = augment(((maps - IMAGE_MEAN) / IMAGE_STD)[:, None], variant)  # as a [B, V, 1, S, S] input
    raw = moved[:, 0] * IMAGE_STD + IMAGE_MEAN
    assert divmod(int(raw[0, 0].argmax()), 16) == (4, 5)  # the content moved right by 2, up by 1
    back, seen = map_back(raw, variant)
    assert divmod(int(back[0, 0].argmax()), 16) == (5, 3) and seen[0, 0, 5, 3] > 0.99


def test_predictor_with_tta_reports_the_spread_of_its_passes(tiny_model_dir):
    image = np.random.default_rng(0).random((80, 64), dtype=np.float32)
    plain = Predictor.from_pretrained(tiny_model_dir, device="cpu").predict(image, generate=False)
    tta = Predictor.from_pretrained(tiny_model_dir, device="cpu", tta=4).predict(image, generate=False)
    assert plain.uncertainty_method is None and all(o.uncertainty is None for o in plain.observations.values())
    assert tta.uncertainty_method == "tta"
    assert all(o.uncertainty is not None and o.uncertainty >= 0 for o in tta.observations.values())
    assert tta.heatmaps.shape == plain.heatmaps.shape
