"""Pruned models load with from_pretrained, shrink when structured, and keep what mattered."""

from __future__ import annotations

import json

import torch

from multimodal.cli import main
from multimodal.compression.export import ClassificationGraph, example_batch
from multimodal.compression.prune import _mlp_pairs, prunable_linears, prune
from multimodal.models.modeling import MultimodalModel


def _outputs(model, batch):
    with torch.no_grad():
        return ClassificationGraph(model)(**batch)


def test_structured_pruning_removes_dead_channels_and_keeps_outputs(tiny_dir, tmp_path):
    """Half of every feed-forward block's channels are made dead; pruning half removes exactly those."""
    model = MultimodalModel.from_pretrained(tiny_dir)
    with torch.no_grad():
        for pairs in _mlp_pairs(model).values():
            for first, second in pairs:
                dead = torch.arange(0, first.out_features, 2)
                first.weight[dead] = 0
                first.bias[dead] = 0
                second.weight[:, dead] = 0
    model.save_pretrained(tmp_path / "dead")
    assert main(["prune", "--model", str(tmp_path / "dead"), "--amount", "0.5", "--structured",
                 "--out", str(tmp_path / "small")]) == 0
    small = MultimodalModel.from_pretrained(tmp_path / "small")
    assert small.config.image_mlp_dim == 32 and small.config.text_config["intermediate_size"] == model.config.text_config["intermediate_size"] // 2
    assert all(first.out_features == 32 for first, _ in _mlp_pairs(small)["fusion"])
    report = json.loads((tmp_path / "small" / "pruning.json").read_text())
    assert report["after"]["parameters"] < report["before"]["parameters"]
    batch = example_batch(model)
    for a, b in zip(_outputs(model, batch), _outputs(small, batch)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_unstructured_pruning_zeroes_the_smallest_weights_of_each_layer(tiny_dir, tmp_path):
    report = prune(tiny_dir, tmp_path / "sparse", amount=0.5)
    model, source = MultimodalModel.from_pretrained(tmp_path / "sparse"), MultimodalModel.from_pretrained(tiny_dir)
    for layer, original in zip(prunable_linears(model), prunable_linears(source)):
        zero = layer.weight == 0
        assert abs(zero.float().mean() - 0.5) < 0.01
        # what is kept is the larger half, unchanged
        assert original.weight[~zero].abs().min() >= original.weight[zero].abs().max()
        torch.testing.assert_close(layer.weight[~zero], original.weight[~zero])
    torch.testing.assert_close(model.heads.patch.weight, source.heads.patch.weight)  # heads untouched
    assert report["after"]["zeros"] > report["before"]["zeros"] and report["method"] == "unstructured"


def test_unstructured_pruning_of_already_small_weights_keeps_outputs(tiny_dir, tmp_path):
    model = MultimodalModel.from_pretrained(tiny_dir)
    with torch.no_grad():
        for layer in prunable_linears(model):
            w = layer.weight
            w[w.abs() < w.abs().quantile(0.3)] = 0
    model.save_pretrained(tmp_path / "src")
    prune(tmp_path / "src", tmp_path / "p30", amount=0.25)
    batch = example_batch(model)
    for a, b in zip(_outputs(model, batch), _outputs(MultimodalModel.from_pretrained(tmp_path / "p30"), batch)):
        torch.testing.assert_close(a, b)
