"""`prune(model_dir, out, amount, structured, manifest)`: smaller models that load with ``from_pretrained``.

* **unstructured**: per layer, the ``amount`` fraction of weights with the smallest magnitude in
  every Linear layer of the image encoder, text encoder and fusion, and of every convolution of the
  image encoder (a ResNet backbone, a ViT's patch embedding), is set to zero
  (``torch.nn.utils.prune.l1_unstructured``, made permanent). The architecture and file size stay;
  the zeros compress (``gzip``) and are what sparse kernels would skip.
* **structured**: ``amount`` of the feed-forward (MLP) channels of every transformer block and of the
  attention heads of every attention module are removed, so the model really shrinks. MLP channels:
  MONAI ViT blocks (``image_mlp_dim``), fusion FFNs (``fusion_mlp_ratio``), the text encoder's and
  the findings decoder's BERT layers (they share ``text_config.intermediate_size``); each layer keeps
  its own most important channels, importance = ``|W_in[j]| x |W_out[:, j]|`` (L2 norms of the
  channel's input row and output column), and every layer keeps the same number, so the config's
  sizes describe the smaller model. Heads: the ViT blocks, the fusion attentions, the BERT text
  encoder's self-attention and the findings decoder's self- and cross-attention; each module keeps its
  ``round(heads x (1 - amount))`` (at least one) heads of largest value-row x output-column norm
  (:func:`multimodal.models.head_pruning.head_importance`); the count per module name goes into
  ``config.attention_heads``, from which ``from_pretrained`` rebuilds the narrower projections
  (transformers 5 has no ``prune_heads`` / ``config.pruned_heads`` of its own any more). timm and
  other non-MONAI image encoders keep their MLPs and heads (no config key sizes them). LoRA adapters
  are merged into their base weights first (:meth:`~multimodal.models.modeling.MultimodalModel.merge_lora`):
  the pruned model has none (``lora_image`` / ``lora_text`` are None), and fine-tuning it trains the
  merged encoders as ``freeze_image`` / ``freeze_text`` say.
* **fine-tuning** (``manifest`` given): the pruned model is trained further through
  :func:`multimodal.training.trainer.train` (``init_from`` the pruned model); after unstructured
  pruning a :class:`ZeroMask` puts the pruned weights back to zero after every optimizer step, so
  the sparsity survives; after structured pruning the smaller model is simply trained.

A hand-written shrink of Linear layers rather than torch-pruning: whatever removes the channels,
``from_pretrained`` must rebuild the narrower shapes from ``config.json`` alone, which takes this
code anyway (:mod:`multimodal.models.head_pruning`); the selection itself is a few lines.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from multimodal.models.head_pruning import attention_modules, head_count, head_importance, keep_heads, narrow_linear
from multimodal.models.modeling import MultimodalModel

PRUNED_PARTS = ("image_encoder", "text_encoder", "fusion")


def prunable_layers(model: MultimodalModel) -> list[nn.Linear | nn.Conv2d]:
    """The Linear layers of the image encoder, text encoder and fusion, and the image encoder's
    convolutions (a CNN backbone such as ``timm:resnet18`` is almost all Conv2d)."""
    return [m for part in PRUNED_PARTS for m in getattr(model, part).modules()
            if isinstance(m, nn.Linear) or (part == "image_encoder" and isinstance(m, nn.Conv2d))]


def prune_unstructured(model: MultimodalModel, amount: float) -> MultimodalModel:
    """Zero the ``amount`` smallest-magnitude weights of each prunable layer, in place."""
    for layer in prunable_layers(model):
        torch_prune.l1_unstructured(layer, "weight", amount)
        torch_prune.remove(layer, "weight")
    return model


def _mlp_pairs(model: MultimodalModel) -> dict[str, list[tuple[nn.Linear, nn.Linear]]]:
    """(in, out) Linear pairs of every feed-forward block, by the config key that sizes them."""
    pairs: dict[str, list[tuple[nn.Linear, nn.Linear]]] = {"image": [], "fusion": [], "text": []}
    if model.config.image_encoder == "monai_vit":
        pairs["image"] = [(b.mlp.linear1, b.mlp.linear2) for b in model.image_encoder.blocks()]
    for layer in model.fusion.layers:
        pairs["fusion"] += [(stream.ffn[0], stream.ffn[2]) for stream in (layer.text, layer.image)]
    for bert in (model.text_encoder, model.decoder.lm.bert):
        pairs["text"] += [(layer.intermediate.dense, layer.output.dense) for layer in bert.encoder.layer]
    return pairs


def _keep(first: nn.Linear, second: nn.Linear, k: int) -> None:
    """Shrink ``first`` (out features) and ``second`` (in features) to the ``k`` most important channels."""
    importance = first.weight.norm(dim=1) * second.weight.norm(dim=0)
    keep = importance.topk(k).indices.sort().values
    narrow_linear(first, rows=keep)
    narrow_linear(second, cols=keep)


def prune_heads(model: MultimodalModel, amount: float) -> MultimodalModel:
    """Remove ``amount`` of the heads of every attention module (ViT blocks, fusion, text encoder,
    decoder), in place; records the kept counts in ``model.config.attention_heads``."""
    counts = dict(model.config.attention_heads or {})
    for name, module in attention_modules(model).items():
        k = max(1, round(head_count(module) * (1 - amount)))
        keep_heads(module, head_importance(module).topk(k).indices.sort().values)
        counts[name] = k
    model.config.attention_heads = counts
    return model


def prune_structured(model: MultimodalModel, amount: float) -> MultimodalModel:
    """Merge any LoRA adapters, then remove ``amount`` of every feed-forward block's channels and of
    every attention's heads, in place; updates ``model.config``."""
    model.merge_lora()
    prune_heads(model, amount)
    config = model.config
    for kind, pairs in _mlp_pairs(model).items():
        if not pairs:
            continue
        k = max(1, round(pairs[0][0].out_features * (1 - amount)))
        for first, second in pairs:
            _keep(first, second, k)
        if kind == "image":
            config.image_mlp_dim = k
        elif kind == "fusion":
            # FeedForward builds int(hidden * ratio) channels: half a channel of slack rounds to k.
            config.fusion_mlp_ratio = (k + 0.5) / config.fusion_hidden
        else:
            config.text_config = {**config.text_config, "intermediate_size": k}
            model.text_encoder.config.intermediate_size = k
    return model


def sparsity(model: nn.Module) -> dict[str, float | int]:
    """Parameter count, zero weights and their share over the whole model."""
    total = sum(p.numel() for p in model.parameters())
    zeros = sum(int((p == 0).sum()) for p in model.parameters())
    return {"parameters": total, "zeros": zeros, "zero_fraction": zeros / total}


class ZeroMask:
    """Keeps pruned weights at zero while a pruned model is fine-tuned: built from the pruned model,
    called with the model being trained after every optimizer step (the trainer's ``after_step``).

    Masks are stored by layer name, so the model trained may be another copy (from ``from_pretrained``).
    """

    def __init__(self, model: MultimodalModel):
        names = {id(m): name for name, m in model.named_modules()}
        self.keep = {names[id(layer)]: layer.weight.detach() != 0 for layer in prunable_layers(model)}

    def __call__(self, model: nn.Module) -> None:
        with torch.no_grad():
            for name, keep in self.keep.items():
                weight = model.get_submodule(name).weight
                weight.mul_(keep.to(weight.device))


def finetune(model_dir: str | Path, out: str | Path, manifest: str | list[str], epochs: int,
             overrides: list[str] | tuple[str, ...] = (), keep_zeros: bool = True) -> dict:
    """Fine-tune the saved (pruned) model ``model_dir`` on ``manifest``'s train split for ``epochs``
    with the project's trainer; the run goes to ``out`` and its best checkpoint (by validation) to
    ``out/best``. ``overrides``: training-config ``key=value`` strings (``optim.lr=1e-4``);
    ``keep_zeros``: keep the weights that are zero now at zero (:class:`ZeroMask`).

    Returns the trainer's steps, best metrics and the chosen checkpoint directory.
    """
    from multimodal.training.trainer import train

    hooks = [ZeroMask(MultimodalModel.from_pretrained(model_dir))] if keep_zeros else []
    config = {"init_from": str(model_dir), "data": {"manifest": manifest}, "optim": {"epochs": epochs}}
    result = train(config, out, overrides, after_step=hooks)
    return {"epochs": epochs, "steps": result.steps, "best_metrics": result.best_metrics,
            "model": str(result.best or result.last)}


def prune(model_dir: str | Path, out: str | Path, amount: float = 0.5, structured: bool = False,
          manifest: str | list[str] | None = None, epochs: int = 3, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Prune the model in ``model_dir`` and save it to ``out`` (a ``from_pretrained`` directory).

    With ``manifest`` the pruned model is fine-tuned (:func:`finetune`, ``epochs`` and training-config
    ``overrides``) before it is saved: the pruned-only model stays in ``out/finetune/pruned`` and
    the training run in ``out/finetune/run``. Returns (and writes as ``out/pruning.json``) the
    method, amount, parameter counts and sparsity before and after, and the fine-tuning summary.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    model = MultimodalModel.from_pretrained(model_dir)
    before = sparsity(model)
    (prune_structured if structured else prune_unstructured)(model, amount)
    out = Path(out)
    report = {"source": str(model_dir), "method": "structured" if structured else "unstructured", "amount": amount,
              "before": before}
    if manifest is None:
        model.save_pretrained(out)
    else:
        pruned = model.save_pretrained(out / "finetune" / "pruned")
        report["finetune"] = finetune(pruned, out / "finetune" / "run", manifest, epochs, overrides,
                                      keep_zeros=not structured)
        for file in Path(report["finetune"]["model"]).iterdir():
            if file.is_file():
                shutil.copy2(file, out / file.name)
        model = MultimodalModel.from_pretrained(out)
    report.update(after=sparsity(model), bytes=(out / "model.safetensors").stat().st_size)
    (out / "pruning.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
