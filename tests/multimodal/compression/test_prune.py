"""Pruned models load with from_pretrained, shrink when structured, and keep what mattered."""

from __future__ import annotations

import json

import torch

from multimodal.cli import main
from multimodal.compression.export import ClassificationGraph, example_batch
from multimodal.compression.prune import _mlp_pairs, prunable_layers, prune, prune_structured
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.head_pruning import attention_modules, head_count, output_projection
from multimodal.models.modeling import MultimodalModel


BERT_ATTENTIONS = ("text_encoder.encoder.layer.0.attention", "decoder.lm.bert.encoder.layer.0.attention",
                   "decoder.lm.bert.encoder.layer.0.crossattention")


def _outputs(model, batch):
    """Probabilities, logits, heat maps, zone logits and the findings decoder's loss on ``batch``."""
    with torch.no_grad():
        findings = model(**batch, findings_ids=batch["input_ids"], findings_mask=batch["attention_mask"])
        return (*ClassificationGraph(model)(**batch), findings.losses["findings"])


def _kill_even_heads(model) -> None:
    """Zero the output-projection columns of every even head: those heads add nothing to the output."""
    with torch.no_grad():
        for module in attention_modules(model).values():
            out = output_projection(module)
            width = out.in_features // head_count(module)
            for head in range(0, head_count(module), 2):
                out.weight[:, head * width:(head + 1) * width] = 0


def test_structured_pruning_removes_dead_channels_and_heads_and_keeps_outputs(tiny_dir, tmp_path):
    """Half of every feed-forward block's channels and of every attention's heads are made dead;
    pruning half removes exactly those: fewer parameters, same outputs, also after from_pretrained."""
    model = MultimodalModel.from_pretrained(tiny_dir)
    with torch.no_grad():
        for pairs in _mlp_pairs(model).values():
            for first, second in pairs:
                dead = torch.arange(0, first.out_features, 2)
                first.weight[dead] = 0
                first.bias[dead] = 0
                second.weight[:, dead] = 0
    _kill_even_heads(model)
    model.save_pretrained(tmp_path / "dead")
    assert main(["prune", "--model", str(tmp_path / "dead"), "--amount", "0.5", "--structured",
                 "--out", str(tmp_path / "small")]) == 0
    small = MultimodalModel.from_pretrained(tmp_path / "small")
    assert small.config.image_mlp_dim == 32 and small.config.text_config["intermediate_size"] == model.config.text_config["intermediate_size"] // 2
    assert all(first.out_features == 32 for first, _ in _mlp_pairs(small)["fusion"])
    heads = {name: head_count(m) for name, m in attention_modules(small).items()}
    assert heads == small.config.attention_heads and set(heads) == set(attention_modules(model))
    assert heads == {name: head_count(m) // 2 for name, m in attention_modules(model).items()}
    assert small.image_encoder.vit.blocks[0].attn.qkv.out_features == 3 * 16
    assert small.fusion.layers[0].image.cross_attn.kv.out_features == 2 * 16
    report = json.loads((tmp_path / "small" / "pruning.json").read_text())
    assert report["after"]["parameters"] < report["before"]["parameters"]
    assert report["after"]["parameters"] == sum(p.numel() for p in small.parameters())
    batch = example_batch(model)
    for a, b in zip(_outputs(model, batch), _outputs(small, batch)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_head_pruning_keeps_the_heads_that_matter_and_round_trips(tiny_dir, tmp_path):
    """Pruning heads that were alive changes the output; the saved model reproduces the pruned one."""
    model = MultimodalModel.from_pretrained(tiny_dir)
    prune(tiny_dir, tmp_path / "p", amount=0.5, structured=True)
    pruned = MultimodalModel.from_pretrained(tmp_path / "p")
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    batch = example_batch(model)
    again = MultimodalModel.from_pretrained(pruned.save_pretrained(tmp_path / "again"))
    for a, b in zip(_outputs(pruned, batch), _outputs(again, batch)):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(_outputs(model, batch)[0], _outputs(pruned, batch)[0])


def test_unstructured_pruning_zeroes_the_smallest_weights_of_each_layer(tiny_dir, tmp_path):
    report = prune(tiny_dir, tmp_path / "sparse", amount=0.5)
    model, source = MultimodalModel.from_pretrained(tmp_path / "sparse"), MultimodalModel.from_pretrained(tiny_dir)
    for layer, original in zip(prunable_layers(model), prunable_layers(source)):
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
        for layer in prunable_layers(model):
            w = layer.weight
            w[w.abs() < w.abs().quantile(0.3)] = 0
    model.save_pretrained(tmp_path / "src")
    prune(tmp_path / "src", tmp_path / "p30", amount=0.25)
    batch = example_batch(model)
    for a, b in zip(_outputs(model, batch), _outputs(MultimodalModel.from_pretrained(tmp_path / "p30"), batch)):
        torch.testing.assert_close(a, b)


def test_unstructured_pruning_reaches_the_convolutions_of_a_cnn_image_encoder(tmp_path):
    """A ResNet image encoder is almost all Conv2d: its convolutions lose the same share as the
    Linear layers, and the pruned model still loads and runs."""
    from torch import nn

    torch.manual_seed(0)
    config = MultimodalConfig(observations="phantom", image_encoder="timm:resnet18", image_size=64, max_views=1,
                              text_layers=1, text_max_length=8, fusion_layers=1, fusion_heads=2, fusion_hidden=32,
                              decoder_layers=1, decoder_max_length=8)
    source = MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(tmp_path / "cnn")
    prune(source, tmp_path / "sparse", amount=0.3)
    model = MultimodalModel.from_pretrained(tmp_path / "sparse")
    convs = [m for m in prunable_layers(model) if isinstance(m, nn.Conv2d)]
    assert len(convs) == sum(isinstance(m, nn.Conv2d) for m in model.image_encoder.modules()) > 10
    for layer in convs:
        assert abs((layer.weight == 0).float().mean() - 0.3) < 0.02
    with torch.no_grad():
        assert torch.isfinite(_outputs(model, example_batch(model))[0]).all()


def test_text_encoder_and_decoder_heads_are_removed_and_the_saved_model_is_exact(tiny_dir, tmp_path):
    """The BERT text encoder's and the decoder's attentions keep half their heads, each recorded under
    its own name; from_pretrained reproduces the pruned model in memory exactly, findings included."""
    model = MultimodalModel.from_pretrained(tiny_dir)
    pruned = prune_structured(MultimodalModel.from_pretrained(tiny_dir), 0.5)
    prune(tiny_dir, tmp_path / "p", amount=0.5, structured=True)
    loaded = MultimodalModel.from_pretrained(tmp_path / "p")
    full, small = attention_modules(model), attention_modules(loaded)
    for name in BERT_ATTENTIONS:
        kept = head_count(full[name]) // 2
        assert loaded.config.attention_heads[name] == head_count(small[name]) == kept
        inner = small[name].self
        channels = kept * full[name].self.attention_head_size
        assert inner.query.out_features == inner.key.out_features == inner.value.out_features == channels
        assert output_projection(small[name]).in_features == channels
    batch = example_batch(model)
    for a, b in zip(_outputs(pruned, batch), _outputs(loaded, batch)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert pruned.generate_findings(**batch) == loaded.generate_findings(**batch)


def test_a_model_with_lora_adapters_is_merged_then_pruned_and_reloads_the_same(tiny_dir, tmp_path):
    """LoRA adapters (made non-zero) are merged first: pruning nothing keeps the outputs; pruning half
    shrinks the merged encoders, leaves no adapters, and the saved model equals the pruned one."""
    torch.manual_seed(0)
    config = MultimodalConfig.from_dict({**MultimodalConfig.load(tiny_dir).to_dict(), "lora_image": {"r": 2},
                                         "lora_text": {"r": 2}})
    model = MultimodalModel.from_config(config, load_pretrained=False).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    model.save_pretrained(tmp_path / "lora")
    batch = example_batch(model)
    prune(tmp_path / "lora", tmp_path / "merged", amount=0.0, structured=True)
    for a, b in zip(_outputs(model, batch), _outputs(MultimodalModel.from_pretrained(tmp_path / "merged"), batch)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    report = prune(tmp_path / "lora", tmp_path / "small", amount=0.5, structured=True)
    small = MultimodalModel.from_pretrained(tmp_path / "small")
    assert small.config.lora_image is None and small.config.lora_text is None
    assert not any("lora_" in name for name, _ in small.named_parameters())
    assert report["after"]["parameters"] < report["before"]["parameters"]
    text = BERT_ATTENTIONS[0]
    assert small.config.attention_heads[text] == head_count(attention_modules(model.merge_lora())[text]) // 2
    pruned = prune_structured(MultimodalModel.from_pretrained(tmp_path / "lora"), 0.5)
    for a, b in zip(_outputs(pruned, batch), _outputs(small, batch)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
