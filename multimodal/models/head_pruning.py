"""Attention modules with fewer heads: what structured pruning removes and ``from_pretrained`` rebuilds.

``MultimodalConfig.attention_heads`` maps an attention module's name (``image_encoder.vit.blocks.0.attn``,
``fusion.layers.0.text.self_attn``, ``text_encoder.encoder.layer.0.attention``,
``decoder.lm.bert.encoder.layer.0.crossattention``, ...) to the number of heads it keeps. The model
is built at full size and the named modules are then narrowed (:func:`apply_head_counts`), so the
strict weight load finds the shapes that were saved. Full names keep the text encoder's and the
findings decoder's heads apart although both are built from ``config.text_config``. A head keeps its
width ``d = hidden / heads``; the projections into attention lose the rows of removed heads and the
output projection their columns, so a module with ``n`` of ``H`` heads computes ``n x d`` instead
of ``H x d`` channels.

Three kinds of attention are narrowed: MONAI's ``SABlock`` (the ViT encoder; combined ``qkv`` laid
out ``(qkv, head, d)``), the fusion's :class:`~.fusion.Attention` (``q`` laid out ``(head, d)``,
``kv`` ``(kv, head, d)``) and the BERT-family attention of Hugging Face transformers (``BertAttention``:
``self.query/key/value`` ``(head, d)`` each, output ``output.dense``; self- and cross-attention alike),
in the text encoder and the findings decoder. transformers 5 dropped its own ``prune_heads`` /
``config.pruned_heads``; its BERT attention reshapes to ``(-1, d)``, so narrowed projections are
all it needs.
"""

from __future__ import annotations

import torch
from einops.layers.torch import Rearrange
from monai.networks.blocks.selfattention import SABlock
from torch import nn

from preprocessing.errors import ConfigError

from .fusion import Attention


def narrow_linear(layer: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> None:
    """Keep only output features ``rows`` and input features ``cols`` of ``layer`` (in place)."""
    with torch.no_grad():
        weight = layer.weight if rows is None else layer.weight[rows]
        weight = weight if cols is None else weight[:, cols]
        layer.weight = nn.Parameter(weight.clone(), requires_grad=layer.weight.requires_grad)
        if layer.bias is not None and rows is not None:
            layer.bias = nn.Parameter(layer.bias[rows].clone(), requires_grad=layer.bias.requires_grad)
    layer.out_features, layer.in_features = layer.weight.shape


def _is_bert_attention(module: nn.Module) -> bool:
    """A transformers BERT-family attention block: ``self.query/key/value`` and ``output.dense`` Linears."""
    inner, output = getattr(module, "self", None), getattr(module, "output", None)
    return (all(isinstance(getattr(inner, name, None), nn.Linear) for name in ("query", "key", "value"))
            and isinstance(getattr(output, "dense", None), nn.Linear))


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The attention modules of ``model`` whose heads can be removed, by module name."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (SABlock, Attention)) or _is_bert_attention(m)}


def head_count(module: nn.Module) -> int:
    if isinstance(module, SABlock):
        return module.num_heads
    return module.heads if isinstance(module, Attention) else module.self.num_attention_heads


def _head_width(module: nn.Module) -> int:
    if isinstance(module, SABlock):
        return module.dim_head
    return module.q.out_features // module.heads if isinstance(module, Attention) else module.self.attention_head_size


def _projections(module: nn.Module) -> tuple[list[tuple[nn.Linear, int]], nn.Linear]:
    """(projections into attention, each with its number of parts laid out ``(part, head, d)``, the
    value part last), output projection."""
    if isinstance(module, SABlock):
        return [(module.qkv, 3)], module.out_proj
    if isinstance(module, Attention):
        return [(module.q, 1), (module.kv, 2)], module.out
    return [(module.self.query, 1), (module.self.key, 1), (module.self.value, 1)], module.output.dense


def output_projection(module: nn.Module) -> nn.Linear:
    """The Linear layer that maps an attention module's heads ``[..., heads x d]`` back to its width."""
    return _projections(module)[1]


def _channels(heads: torch.Tensor, width: int, stride: int, parts: int) -> torch.Tensor:
    """Feature indices of ``heads`` in a projection laid out ``(part, head, d)`` (``stride`` = heads x d)."""
    one = (heads[:, None] * width + torch.arange(width)).flatten()
    return torch.cat([one + part * stride for part in range(parts)])


def head_importance(module: nn.Module) -> torch.Tensor:
    """``[heads]``: the L2 norm of each head's value rows times that of its output-projection columns
    (a head with either at zero adds nothing to the output)."""
    heads, width = head_count(module), _head_width(module)
    projections, out = _projections(module)
    last, parts = projections[-1]
    value = last.weight[(parts - 1) * heads * width:]
    value_norm = value.reshape(heads, width, -1).norm(dim=(1, 2))
    out_norm = out.weight.reshape(out.weight.shape[0], heads, width).norm(dim=(0, 2))
    return value_norm * out_norm


def keep_heads(module: nn.Module, keep: torch.Tensor) -> None:
    """Narrow an attention module to the heads ``keep`` (indices, in the order kept), in place."""
    heads, width = head_count(module), _head_width(module)
    keep = torch.as_tensor(keep, dtype=torch.long)
    projections, out = _projections(module)
    for layer, parts in projections:
        narrow_linear(layer, rows=_channels(keep, width, heads * width, parts))
    narrow_linear(out, cols=_channels(keep, width, heads * width, 1))
    if isinstance(module, SABlock):
        module.num_heads, module.inner_dim = len(keep), len(keep) * width
        module.input_rearrange = Rearrange("b h (qkv l d) -> qkv b l h d", qkv=3, l=len(keep))
    elif isinstance(module, Attention):
        module.heads = len(keep)
    else:
        module.self.num_attention_heads, module.self.all_head_size = len(keep), len(keep) * width


def apply_head_counts(model: nn.Module, counts: dict[str, int]) -> None:
    """Narrow each named attention module of a freshly built ``model`` to its recorded head count
    (the first heads; the weights are loaded afterwards). Raises :class:`ConfigError` for a name that
    is not an attention module or a count above the module's heads."""
    modules = attention_modules(model)
    for name, n in counts.items():
        if name not in modules:
            raise ConfigError("attention_heads", f"{name!r} is not an attention module of this model")
        if n > head_count(modules[name]):
            raise ConfigError("attention_heads", f"{name!r} has {head_count(modules[name])} heads, not {n}")
        keep_heads(modules[name], torch.arange(n))
