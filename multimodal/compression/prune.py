"""`prune(model_dir, out, amount, structured)`: smaller models that load with ``from_pretrained``.

* **unstructured**: per layer, the ``amount`` fraction of weights with the smallest magnitude in
  every Linear layer of the image encoder, text encoder and fusion is set to zero
  (``torch.nn.utils.prune.l1_unstructured``, made permanent). The architecture and file size stay;
  the zeros compress (``gzip``) and are what sparse kernels would skip.
* **structured**: the feed-forward (MLP) channels of every transformer block shrink by ``amount``:
  MONAI ViT blocks (``image_mlp_dim``), fusion FFNs (``fusion_mlp_ratio``), the text encoder's and
  the findings decoder's BERT layers (they share ``text_config.intermediate_size``). Each layer keeps
  its own most important channels, importance = ``|W_in[j]| x |W_out[:, j]|`` (L2 norms of the
  channel's input row and output column); every layer keeps the same number, so the model's config
  describes the smaller model and ``from_pretrained`` builds it directly. This is a hand-written
  shrink of Linear pairs (torch-pruning's dependency graph would also do it, but could not write the
  result back into ``MultimodalConfig``); attention heads are not removed. timm image encoders keep
  their MLPs (their width is not a config key).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from multimodal.models.modeling import MultimodalModel

PRUNED_PARTS = ("image_encoder", "text_encoder", "fusion")


def prunable_linears(model: MultimodalModel) -> list[nn.Linear]:
    """The Linear layers of the image encoder, text encoder and fusion."""
    return [m for part in PRUNED_PARTS for m in getattr(model, part).modules() if isinstance(m, nn.Linear)]


def prune_unstructured(model: MultimodalModel, amount: float) -> MultimodalModel:
    """Zero the ``amount`` smallest-magnitude weights of each prunable Linear layer, in place."""
    for layer in prunable_linears(model):
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
    with torch.no_grad():
        first.weight = nn.Parameter(first.weight[keep].clone())
        if first.bias is not None:
            first.bias = nn.Parameter(first.bias[keep].clone())
        second.weight = nn.Parameter(second.weight[:, keep].clone())
    first.out_features = second.in_features = k


def prune_structured(model: MultimodalModel, amount: float) -> MultimodalModel:
    """Remove ``amount`` of every feed-forward block's channels, in place; updates ``model.config``."""
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


def prune(model_dir: str | Path, out: str | Path, amount: float = 0.5, structured: bool = False) -> dict:
    """Prune the model in ``model_dir`` and save it to ``out`` (a ``from_pretrained`` directory).

    Returns (and writes as ``out/pruning.json``) the method, amount, parameter counts and sparsity
    before and after.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    model = MultimodalModel.from_pretrained(model_dir)
    before = sparsity(model)
    (prune_structured if structured else prune_unstructured)(model, amount)
    out = Path(model.save_pretrained(out))
    report = {"source": str(model_dir), "method": "structured" if structured else "unstructured", "amount": amount,
              "before": before, "after": sparsity(model),
              "bytes": (out / "model.safetensors").stat().st_size}
    (out / "pruning.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
