"""Weight averaging on models with batch norm (integer ``num_batches_tracked`` buffers)."""

import pytest
import torch

from multimodal.training.averaging import WeightAverager


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def _train_step(model: torch.nn.Module, shift: float) -> None:
    model.train()
    model(torch.randn(8, 3) + shift)
    with torch.no_grad():
        model[0].weight.add_(shift)


def test_swa_is_the_equal_weight_mean_of_the_weights_and_batch_norm_statistics():
    model = _model()
    averager = WeightAverager(model, "swa", ema_decay=0.999, start_step=1)
    weights, means = [], []
    for step, shift in enumerate([0.0, 1.0, 2.0, 3.0]):
        _train_step(model, shift)
        averager.update(model, step)
        if step >= 1:
            weights.append(model[0].weight.detach().clone())
            means.append(model[1].running_mean.clone())
    averaged = averager.averaged.module
    torch.testing.assert_close(averaged[0].weight, torch.stack(weights).mean(0))
    torch.testing.assert_close(averaged[1].running_mean, torch.stack(means).mean(0))
    assert averaged[1].num_batches_tracked.item() == model[1].num_batches_tracked.item() == 4


@pytest.mark.parametrize("kind", ["ema", "swa"])
def test_applied_swaps_in_the_averaged_weights_and_restores_the_raw_ones(kind):
    model = _model()
    averager = WeightAverager(model, kind, ema_decay=0.5, start_step=0)
    for step, shift in enumerate([0.0, 1.0, 2.0]):
        _train_step(model, shift)
        averager.update(model, step)
    raw = model[0].weight.detach().clone()
    with averager.applied(model):
        torch.testing.assert_close(model[0].weight, averager.averaged.module[0].weight)
        assert not torch.equal(model[0].weight, raw)
    torch.testing.assert_close(model[0].weight, raw)
