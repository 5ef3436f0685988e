"""Fusion attention masks, zone pooling and the masked losses, on hand-made tensors."""

from __future__ import annotations

import math

import torch

from multimodal.models.fusion import Attention, CrossModalFusion
from multimodal.models.heads import DiseaseHeads, classification_loss, region_loss, region_peak_loss
from preprocessing.vocab import ZONES


def test_attention_with_no_valid_key_is_finite_and_silent():
    attention = Attention(hidden=16, heads=2).eval()
    queries, keys = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    key_mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    out, _ = attention(queries, keys, key_mask)
    assert torch.isfinite(out).all()
    assert out[1].abs().max() == 0  # a study without any image: cross-attention adds nothing
    out_weights, weights = attention(queries, keys, key_mask, need_weights=True)
    torch.testing.assert_close(out, out_weights)  # the SDPA and explicit paths agree
    assert weights[0, :, :, 2:].abs().max() == 0


def test_fusion_under_bf16_autocast_is_finite():
    fusion = CrossModalFusion(text_dim=24, image_dim=32, hidden=16, layers=1, heads=2, mlp_ratio=2.0, dropout=0.0)
    text, image = torch.randn(2, 4, 24), torch.randn(2, 6, 32)
    text_mask = torch.tensor([[True, True, False, False], [True] * 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused_text, fused_image, _ = fusion(text, text_mask, image, torch.ones(2, 6, dtype=torch.bool))
    assert fused_text.shape == (2, 4, 16) and fused_image.shape == (2, 6, 16)
    assert torch.isfinite(fused_text.float()).all() and torch.isfinite(fused_image.float()).all()


def test_zone_probabilities_follow_the_heat_map():
    grid = (8, 8)
    heads = DiseaseHeads(hidden=4, num_labels=1, grid_size=grid, zones=list(ZONES), pooling="lse", r=5.0)
    torch.nn.init.zeros_(heads.offset.weight)
    torch.nn.init.zeros_(heads.offset.bias)
    # A patch feature that lights up only the image's lower right (the patient's left lower zone).
    first_view = torch.zeros(1, 64, 4)
    first_view.view(1, 8, 8, 4)[0, 6, 5, 0] = 1.0
    with torch.no_grad():
        heads.patch.weight.zero_()
        heads.patch.weight[0, 0] = 20.0
        heads.patch.bias.fill_(-10.0)
    text = torch.zeros(1, 2, 4)
    logits, heatmaps, zone_logits = heads(text, torch.ones(1, 2, dtype=torch.bool), first_view,
                                          torch.ones(1, 64, dtype=torch.bool), first_view)
    assert heatmaps.shape == (1, 1, 8, 8) and heatmaps[0, 0].argmax() == 6 * 8 + 5
    assert ZONES[zone_logits[0, 0].argmax()] == "left_lower"
    assert logits[0, 0] > -10.0  # one hot patch is enough for the log-sum-exp pool to rise


def test_uncertain_policy_and_unknown_labels():
    logits = torch.tensor([[3.0, -3.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, -1.0]])
    ignore = classification_loss(logits, labels, None, "ignore")
    zeros = classification_loss(logits, labels, None, "zeros")
    unknown = classification_loss(logits, labels, torch.tensor([[True, True, False]]), "zeros")
    torch.testing.assert_close(ignore, unknown)  # an unknown label counts like an ignored uncertain one
    assert zeros > ignore  # the uncertain entry (logit 0) now adds log(2) to be averaged in


def test_region_loss_rewards_heat_inside_the_box():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2, :2] = 1
    inside = torch.where(target > 0, 4.0, -4.0)
    assert region_loss(inside, target, torch.tensor([[True]])) < region_loss(-inside, target, torch.tensor([[True]]))
    assert region_loss(-inside, target, torch.tensor([[False]])) == 0


def test_region_peak_loss_asks_only_that_the_peak_lies_in_the_box():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2, :2] = 1
    one_cell = torch.full((1, 1, 4, 4), -10.0)
    one_cell[0, 0, 0, 0] = 10.0  # a sharp peak on one box cell, the other box cells low
    outside = torch.full((1, 1, 4, 4), -10.0)
    outside[0, 0, 3, 3] = 10.0
    mask = torch.tensor([[True]])
    peak_in, peak_out = region_peak_loss(one_cell, target, mask), region_peak_loss(outside, target, mask)
    assert peak_in < 1e-6 < 10 < peak_out  # ~all softmax mass inside vs ~none: -log(3 e^-20 + ...)
    assert region_loss(one_cell, target, mask) > 2  # the per-cell BCE still punishes the low box cells
    assert region_peak_loss(outside, target, torch.tensor([[False]])) == 0
    # a flat map puts 4 of 16 cells' mass in the box
    torch.testing.assert_close(region_peak_loss(torch.zeros(1, 1, 4, 4), target, mask), torch.tensor(math.log(4.0)))
