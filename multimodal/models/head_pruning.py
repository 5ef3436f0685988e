"""Attention modules with fewer heads: what structured pruning removes and ``from_pretrained`` rebuilds.

``MultimodalConfig.attention_heads`` maps an attention module's name (``image_encoder.vit.blocks.0.attn``,
``fusion.layers.0.text.self_attn``, ...) to the number of heads it keeps. The model is built at
full size and the named modules are then narrowed (:func:`apply_head_counts`), so the strict weight
load finds the shapes that were saved. A head keeps its width ``d = hidden / heads``; the projections
into attention lose the rows of removed heads and the output projection their columns, so a module
with ``n`` of ``H`` heads computes ``n x d`` instead of ``H x d`` channels.

Two kinds of attention are narrowed: MONAI's ``SABlock`` (the ViT encoder; combined ``qkv`` laid out
``(qkv, head, d)``) and the fusion's :class:`~.fusion.Attention` (``q`` laid out ``(head, d)``,
``kv`` ``(kv, head, d)``).
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


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The attention modules of ``model`` whose heads can be removed, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (SABlock, Attention))}


def head_count(module: nn.Module) -> int:
    return module.num_heads if isinstance(module, SABlock) else module.heads


def _head_width(module: nn.Module) -> int:
    return module.dim_head if isinstance(module, SABlock) else module.q.out_features // module.heads


def _channels(heads: torch.Tensor, width: int, stride: int, parts: int) -> torch.Tensor:
    """Feature indices of ``heads`` in a projection laid out ``(part, head, d)`` (``stride`` = heads x d)."""
    one = (heads[:, None] * width + torch.arange(width)).flatten()
    return torch.cat([one + part * stride for part in range(parts)])


def head_importance(module: nn.Module) -> torch.Tensor:
    """``[heads]``: the L2 norm of each head's value rows times that of its output-projection columns
    (a head with either at zero adds nothing to the output)."""
    heads, width = head_count(module), _head_width(module)
    if isinstance(module, SABlock):
        value = module.qkv.weight[2 * heads * width:]
        out = module.out_proj.weight
    else:
        value, out = module.kv.weight[heads * width:], module.out.weight
    value_norm = value.reshape(heads, width, -1).norm(dim=(1, 2))
    out_norm = out.reshape(out.shape[0], heads, width).norm(dim=(0, 2))
    return value_norm * out_norm


def keep_heads(module: nn.Module, keep: torch.Tensor) -> None:
    """Narrow an attention module to the heads ``keep`` (indices, in the order kept), in place."""
    heads, width = head_count(module), _head_width(module)
    keep = torch.as_tensor(keep, dtype=torch.long)
    if isinstance(module, SABlock):
        narrow_linear(module.qkv, rows=_channels(keep, width, heads * width, 3))
        narrow_linear(module.out_proj, cols=_channels(keep, width, heads * width, 1))
        module.num_heads, module.inner_dim = len(keep), len(keep) * width
        module.input_rearrange = Rearrange("b h (qkv l d) -> qkv b l h d", qkv=3, l=len(keep))
    else:
        narrow_linear(module.q, rows=_channels(keep, width, heads * width, 1))
        narrow_linear(module.kv, rows=_channels(keep, width, heads * width, 2))
        narrow_linear(module.out, cols=_channels(keep, width, heads * width, 1))
        module.heads = len(keep)


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
