"""White-box FGSM and PGD on the multimodal model: pixels, and optionally the text embeddings.

torchattacks assumes ``model(images) -> logits`` with images in [0, 1]; this model takes four
inputs (views, view mask, tokens, attention mask), scores several losses and normalises its
pixels, so the attacks are a small wrapper of its own (Goodfellow et al. 2015 for FGSM, Madry et al.
2018 for PGD with a random start), in L-infinity:

* ``eps`` is on the [0, 1] intensity scale **before** normalisation (``x' = x + d``, ``|d| <= eps``,
  ``x'`` kept in [0, 1]); in the model's normalised units that is ``eps / IMAGE_STD``. Only present
  views are perturbed.
* ``text_eps`` (optional) perturbs the text encoder's word embeddings, L-infinity per entry in the
  embedding's own units, through a forward hook (:class:`EmbeddingOffset`).
* The loss is the caller's: training attacks the training loss, ``mmdx robustness`` the
  classification loss. Gradients are taken with :func:`torch.autograd.grad` with respect to the
  perturbation only, so the parameters' ``.grad`` (gradient accumulation, DDP buckets) is untouched.
  The loss is scaled by :data:`LOSS_SCALE` first: the sign of the gradient does not change, and
  under fp16 autocast the gradient does not underflow to zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD

METHODS = ("fgsm", "pgd")
LOSS_SCALE = 1024.0
PIXEL_LOW, PIXEL_HIGH = (0.0 - IMAGE_MEAN) / IMAGE_STD, (1.0 - IMAGE_MEAN) / IMAGE_STD


@dataclass(frozen=True)
class Attack:
    """An L-infinity attack. ``steps`` is 1 for FGSM; ``step_size`` (intensity units) defaults to
    ``eps`` for FGSM and ``2.5 * eps / steps`` for PGD (Madry et al.); PGD starts at a uniform random
    point of the eps-ball when ``random_start``."""

    method: str = "pgd"
    eps: float = 2 / 255
    steps: int = 10
    step_size: float | None = None
    random_start: bool = True
    text_eps: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"attack method must be one of {METHODS}, got {self.method!r}")
        if self.eps < 0 or (self.text_eps is not None and self.text_eps < 0):
            raise ValueError("attack budgets must be >= 0")
        if self.steps < 1:
            raise ValueError(f"attack steps must be >= 1, got {self.steps}")

    @property
    def n_steps(self) -> int:
        return 1 if self.method == "fgsm" else self.steps

    def alpha(self, eps: float) -> float:
        """Step size for a budget ``eps`` (pixels: intensity units; text: embedding units)."""
        if self.method == "fgsm":
            return eps
        return (self.step_size * eps / self.eps if self.step_size and self.eps else 2.5 * eps / self.steps)


class EmbeddingOffset:
    """A forward hook on an embedding layer that adds a pending ``[B, T, C]`` offset to its output
    once, on the next forward whose output has that shape, then forgets it."""

    def __init__(self, embedding: nn.Module):
        self.pending: torch.Tensor | None = None
        self.handle = embedding.register_forward_hook(self._hook)

    def _hook(self, _module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor | None:
        offset, self.pending = self.pending, None
        if offset is None or offset.shape != output.shape:
            return None
        return output + offset.to(output.dtype)

    def remove(self) -> None:
        self.handle.remove()


def _step(delta: torch.Tensor, grad: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    return (delta + alpha * grad.sign()).clamp(-eps, eps)


def attack_batch(model: nn.Module, inputs: dict[str, torch.Tensor],
                 loss_fn: Callable[[object], torch.Tensor], attack: Attack,
                 text_offset: EmbeddingOffset | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Perturbations that raise ``loss_fn(model(**inputs))`` within the attack's budgets.

    ``inputs`` are ``model.forward`` keyword arguments (targets included when the loss needs them).
    Returns ``(pixel_values' [B, V, 1, S, S], text offset [B, T, C] or None)``: the adversarial pixel
    values (normalised, each present view within ``eps`` of the original on the [0, 1] scale and in
    [0, 1]) and the word-embedding offset to apply with ``text_offset`` on the next forward. The
    model runs in eval mode during the attack (no dropout noise in the gradient, no BatchNorm
    statistics updated) and returns to its previous mode.
    """
    pixels = inputs["pixel_values"].detach()
    eps = attack.eps / IMAGE_STD
    present = inputs["view_mask"].bool()[..., None, None, None].to(pixels.dtype)
    delta = torch.zeros_like(pixels)
    if attack.method == "pgd" and attack.random_start:
        delta.uniform_(-eps, eps)
    delta = ((pixels + delta * present).clamp(PIXEL_LOW, PIXEL_HIGH) - pixels).requires_grad_(True)
    text_eps = attack.text_eps if text_offset is not None else None
    text_delta = None
    if text_eps:
        width = model.text_encoder.get_input_embeddings().embedding_dim
        text_delta = torch.zeros(*inputs["input_ids"].shape, width, device=pixels.device)
        if attack.method == "pgd" and attack.random_start:
            text_delta.uniform_(-text_eps, text_eps)
        text_delta.requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        for _ in range(attack.n_steps):
            if text_delta is not None:
                text_offset.pending = text_delta
            loss = loss_fn(model(**{**inputs, "pixel_values": pixels + delta}))
            leaves = [delta] + ([text_delta] if text_delta is not None else [])
            grads = torch.autograd.grad(loss.float() * LOSS_SCALE, leaves, allow_unused=True)
            with torch.no_grad():
                grad = grads[0] if grads[0] is not None else torch.zeros_like(delta)
                new = _step(delta, grad, attack.alpha(eps), eps) * present
                delta = ((pixels + new).clamp(PIXEL_LOW, PIXEL_HIGH) - pixels).requires_grad_(True)
                if text_delta is not None:
                    grad = grads[1] if grads[1] is not None else torch.zeros_like(text_delta)
                    text_delta = _step(text_delta, grad, attack.alpha(text_eps), text_eps).requires_grad_(True)
    finally:
        model.train(was_training)
    return (pixels + delta).detach(), (text_delta.detach() if text_delta is not None else None)
