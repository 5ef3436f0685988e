"""Monte Carlo dropout (Gal & Ghahramani 2016): average a model over N passes with its dropout on.

Each pass keeps the model in eval mode and makes every ``nn.Dropout`` layer with p > 0 act as in
training (drop with probability p, scale the kept values by 1 / (1 - p)) through a forward hook;
nothing else changes, so batch norm keeps its running statistics and LayerNorm, attention and the
findings decoder behave as in a plain pass. The masks come from a ``torch.Generator`` seeded with
``seed`` at the start of every forward call, not from torch's global generator, and the switch is
per thread: concurrent scoring lanes (:func:`multimodal.inference.scoring.model_lanes`) share one
module tree, so toggling ``.train()`` or reseeding the global generator would leak between them.
The same batch therefore always gives the same numbers; a study's masks depend on the batch it is
scored in (its row and the batch's padding), so another batch size changes its MC samples within
their spread.

Averaging as :mod:`multimodal.models.tta` does: the reported (calibrated) probabilities are averaged
over the passes, ``logits`` are the logit of the mean raw probability, heat maps and zone
probabilities are averaged as probabilities, ``sample_probs`` keeps every pass (every member of
every pass for an ensemble: ``uncertainty_method="ensemble+mc_dropout"``). Findings text comes
from one plain pass (dropout off).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from preprocessing.errors import ConfigError

from .modeling import MultimodalOutput, averaged_output

SEED = 0


def dropout_layers(model: nn.Module) -> list[nn.Dropout]:
    """The ``nn.Dropout`` layers of ``model`` that drop anything (p > 0)."""
    return [m for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]


class MCDropoutModel(nn.Module):
    """A model (single or ensemble) averaged over ``n`` >= 2 dropout passes; quacks like the model.

    Raises :class:`ConfigError` when the model has no dropout layer with p > 0 (every pass would be
    the same plain pass, and the spread 0 would claim a certainty nobody measured).
    """

    def __init__(self, model: nn.Module, n: int, seed: int = SEED):
        super().__init__()
        if n < 2:
            raise ValueError(f"MC dropout needs >= 2 passes, got {n} (with_mc_dropout: 1 is one plain pass)")
        layers = dropout_layers(model)
        if not layers:
            raise ConfigError("mc_dropout", "the model has no dropout layer with p > 0 (config dropout 0), so "
                                            "every pass would be the same; use tta or an ensemble instead")
        self.model, self.n, self.seed = model, n, seed
        self.config, self.tokenizer = model.config, model.tokenizer
        self._active = threading.local()  # .generator: set on this thread while an MC pass runs
        for layer in layers:
            layer.register_forward_hook(self._drop)
        self.train(model.training)  # the wrapper is in the model's mode (eval for scoring), not nn.Module's default

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.model.grid_size

    def _drop(self, layer: nn.Dropout, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Forward hook: during an MC pass on this thread, the layer's training-mode output."""
        generator = getattr(self._active, "generator", None)
        if generator is None:
            return None  # a plain pass: the eval-mode output (the input) stands
        x = args[0]
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= layer.p
        return x * keep.to(x.dtype) / (1.0 - layer.p)

    @contextmanager
    def sampling(self, device: torch.device) -> Iterator[None]:
        """Dropout on for this thread, masks drawn from a generator seeded with ``seed``; off again on
        exit, also when the pass raises."""
        self._active.generator = torch.Generator(device=device).manual_seed(self.seed)
        try:
            yield
        finally:
            self._active.generator = None

    def forward(self, pixel_values: torch.Tensor, view_mask: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, **targets) -> MultimodalOutput:
        """``n`` dropout passes → probabilities etc. averaged, ``sample_probs`` ``[B, n * K, D]``."""
        with self.sampling(pixel_values.device):
            outputs = [self.model(pixel_values, view_mask, input_ids, attention_mask, **targets)
                       for _ in range(self.n)]
        heat = torch.stack([o.heatmaps.float().sigmoid() for o in outputs]).mean(0)
        return averaged_output(outputs, heat, "mc_dropout")

    def generate_findings(self, *args, **kwargs) -> list[str]:
        return self.model.generate_findings(*args, **kwargs)


def with_mc_dropout(model: nn.Module, n: int | None, seed: int = SEED) -> nn.Module:
    """``model`` wrapped in :class:`MCDropoutModel` when ``n`` > 1, else ``model`` itself (one plain
    pass: no uncertainty)."""
    if n is not None and n < 1:
        raise ConfigError("mc_dropout", f"must be >= 1 (1: no MC dropout), got {n}")
    return MCDropoutModel(model, n, seed).eval() if n and n > 1 else model
