"""FGSM / PGD: raise the loss, stay within the budget on the [0, 1] scale, leave parameters alone."""

from __future__ import annotations

import pytest
import torch

from multimodal.robustness.attacks import Attack, EmbeddingOffset, attack_batch
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD


def _loss(model, batch):
    with torch.no_grad():
        return float(model(**batch).losses["classification"])


def _classification(out):
    return out.losses["classification"]


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_attack_raises_the_loss_and_stays_within_eps_and_range(tiny_model, labelled_batch, method):
    attack = Attack(method=method, eps=4 / 255, steps=3)
    torch.manual_seed(0)
    pixels, text = attack_batch(tiny_model, labelled_batch, _classification, attack)
    assert text is None and pixels.shape == labelled_batch["pixel_values"].shape
    assert _loss(tiny_model, {**labelled_batch, "pixel_values": pixels}) > _loss(tiny_model, labelled_batch)
    before = labelled_batch["pixel_values"] * IMAGE_STD + IMAGE_MEAN
    after = pixels * IMAGE_STD + IMAGE_MEAN
    assert (after - before).abs().max() <= 4 / 255 + 1e-6
    assert after.min() >= -1e-6 and after.max() <= 1 + 1e-6
    assert (after - before).abs().max() > 3 / 255  # the budget is used
    assert torch.equal(pixels[3, 1], labelled_batch["pixel_values"][3, 1])  # the missing view stays empty


def test_one_pgd_step_raises_the_loss(tiny_model, labelled_batch):
    pixels, _ = attack_batch(tiny_model, labelled_batch, _classification,
                             Attack(method="pgd", eps=2 / 255, steps=1, random_start=False))
    assert _loss(tiny_model, {**labelled_batch, "pixel_values": pixels}) > _loss(tiny_model, labelled_batch)


def test_attack_leaves_parameter_gradients_and_mode_alone(tiny_model, labelled_batch):
    tiny_model.train()
    try:
        attack_batch(tiny_model, labelled_batch, _classification, Attack(method="pgd", eps=0.01, steps=2))
        assert tiny_model.training
        assert all(p.grad is None for p in tiny_model.parameters())
    finally:
        tiny_model.eval()


def test_text_embedding_attack_stays_within_text_eps_and_raises_the_loss(tiny_model, labelled_batch):
    offset = EmbeddingOffset(tiny_model.text_encoder.get_input_embeddings())
    try:
        pixels, delta = attack_batch(tiny_model, labelled_batch, _classification,
                                     Attack(method="pgd", eps=0.0, steps=3, text_eps=0.05), offset)
        assert delta.shape == (4, 6, tiny_model.text_encoder.get_input_embeddings().embedding_dim)
        assert delta.abs().max() <= 0.05 + 1e-6
        assert torch.equal(pixels, labelled_batch["pixel_values"])  # eps 0: pixels untouched
        offset.pending = delta
        attacked = _loss(tiny_model, labelled_batch)
        assert offset.pending is None  # applied once
        assert attacked > _loss(tiny_model, labelled_batch)
    finally:
        offset.remove()


def test_bad_attack_settings_are_refused():
    with pytest.raises(ValueError, match="method"):
        Attack(method="cw")
    with pytest.raises(ValueError, match="steps"):
        Attack(steps=0)
