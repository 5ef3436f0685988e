"""Weight averaging (EMA or SWA) during training, and the top-k checkpoints kept for an ensemble.

``WeightAverager`` wraps PyTorch's ``torch.optim.swa_utils.AveragedModel`` (EMA: ``get_ema_multi_avg_fn``;
SWA: the running equal-weight mean, from ``swa_start`` of the steps on). Buffers (batch-norm
statistics) are averaged with the weights; integer buffers (batch norm's ``num_batches_tracked``)
take the current model's value, since PyTorch's SWA mean divides them as integers and fails. While it
is active, validation and the saved ``best`` / ``last`` checkpoints use the averaged weights
(:meth:`WeightAverager.applied`); training continues on the raw ones.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn


class WeightAverager:
    """EMA / SWA of a model's weights; checkpointed with the Accelerate state (``state_dict``)."""

    def __init__(self, model: torch.nn.Module, kind: str, ema_decay: float, start_step: int):
        self.kind, self.start_step = kind, start_step
        fn = get_ema_multi_avg_fn(ema_decay) if kind == "ema" else _swa_mean_of_floats()
        self.averaged = AveragedModel(model, multi_avg_fn=fn, use_buffers=True)

    def update(self, model: torch.nn.Module, step: int) -> None:
        if step >= self.start_step:
            self.averaged.update_parameters(model)

    @property
    def active(self) -> bool:
        return int(self.averaged.n_averaged) > 0

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Inside the block ``model`` holds the averaged weights (when any); afterwards its own again."""
        if not self.active:
            yield
            return
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.averaged.module.state_dict())
        try:
            yield
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)


def _swa_mean_of_floats() -> Callable[..., None]:
    """PyTorch's SWA running mean for floating tensors; integer ones copy the current value.

    ``AveragedModel`` hands the function one list per device and dtype, so a list is all floating or
    all integer."""
    swa = get_swa_multi_avg_fn()

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if averaged and averaged[0].is_floating_point():
            swa(averaged, current, n_averaged)
        else:
            for mine, theirs in zip(averaged, current):
                mine.copy_(theirs)

    return update


def keep_top_k(kept: list[list[float]], value: float, step: int, k: int, maximize: bool, folder: Path,
               save: Callable[[Path], None]) -> list[list[float]]:
    """Save the checkpoint of ``step`` under ``folder/step-<step>`` when it is among the ``k`` best
    (``kept``: ``[value, step]`` pairs, best first); drop the one it pushes out. Returns the new list."""
    sign = 1 if maximize else -1
    ranked = sorted([*kept, [value, step]], key=lambda e: -sign * e[0])
    if [value, step] in ranked[:k]:
        save(folder / f"step-{step}")
    for _, dropped in ranked[k:]:
        shutil.rmtree(folder / f"step-{int(dropped)}", ignore_errors=True)
    return ranked[:k]
