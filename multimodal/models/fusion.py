"""Bidirectional cross-attention fusion of image and text tokens.

Every attention takes a key-padding mask (True = a real token), so padded text tokens and missing
views are never attended; unlike MONAI's Transchex, whose text mask is all ones. Attention runs
through :func:`.attention.attention` (SDPA, or an explicit core where that is faster) unless weights
are asked for.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import attention


class Attention(nn.Module):
    """Multi-head attention of queries ``[B, Tq, H]`` over keys/values ``[B, Tk, H]``.

    ``key_mask`` is bool ``[B, Tk]``, True where a key may be attended. A query whose keys are all
    masked gets a zero output (SDPA would give NaN), so its residual stream passes unchanged.
    No dropout on the attention weights: with it, SDPA on CPU leaves its fused kernel for a
    math path 3-5x slower; the blocks drop out on the residual branches instead.
    """

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (output ``[B, Tq, H]``, weights ``[B, heads, Tq, Tk]`` or None)."""
        b, tq, _ = queries.shape
        q = self.q(queries).view(b, tq, self.heads, -1).transpose(1, 2)
        k, v = self.kv(keys).view(b, keys.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        has_keys = key_mask.any(dim=1)
        # Rows without any key attend to all of them (finite) and are zeroed below.
        mask = (key_mask | ~has_keys[:, None])[:, None, None, :]
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            context = weights @ v
        else:
            context = attention(q, k, v, mask)
        out = self.out(context.transpose(1, 2).reshape(b, tq, -1))
        return out * has_keys[:, None, None].to(out.dtype), weights


class FeedForward(nn.Sequential):
    """Linear → GELU → Linear. Dropout is on the residual branch (as in BERT), not on the wider inner
    activations, where on CPU it would cost twice as much."""

    def __init__(self, hidden: int, ratio: float):
        inner = int(hidden * ratio)
        super().__init__(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden))
        self._register_load_state_dict_pre_hook(_rename_pre_0_2_output_layer)


def _rename_pre_0_2_output_layer(state_dict: dict, prefix: str, *_args) -> None:
    """Checkpoints written before the inner dropout was removed name the output layer ``3``, not ``2``."""
    for name in ("weight", "bias"):
        if prefix + "3." + name in state_dict:
            state_dict[prefix + "2." + name] = state_dict.pop(prefix + "3." + name)


class StreamBlock(nn.Module):
    """The per-stream parts of a fusion layer: pre-norm self-attention, cross-attention and FFN."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm_self = nn.LayerNorm(hidden)
        self.self_attn = Attention(hidden, heads)
        self.norm_query = nn.LayerNorm(hidden)
        self.norm_context = nn.LayerNorm(hidden)
        self.cross_attn = Attention(hidden, heads)
        self.norm_ffn = nn.LayerNorm(hidden)
        self.ffn = FeedForward(hidden, mlp_ratio)
        self.drop = nn.Dropout(dropout)

    def attend_self(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm_self(x)
        return x + self.drop(self.self_attn(y, y, mask)[0])

    def attend_other(self, x: torch.Tensor, other: torch.Tensor, other_mask: torch.Tensor,
                     need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, weights = self.cross_attn(self.norm_query(x), self.norm_context(other), other_mask, need_weights)
        x = x + self.drop(out)
        return x + self.drop(self.ffn(self.norm_ffn(x))), weights


class FusionLayer(nn.Module):
    """One layer: self-attention in each stream, then text→image and image→text cross-attention
    computed from the same (post self-attention) states, then a feed-forward in each stream."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.text = StreamBlock(hidden, heads, mlp_ratio, dropout)
        self.image = StreamBlock(hidden, heads, mlp_ratio, dropout)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor,
                need_weights: bool = False):
        """Return (text ``[B, T, H]``, image ``[B, N, H]``, text→image weights, image→text weights)."""
        text = self.text.attend_self(text, text_mask)
        image = self.image.attend_self(image, image_mask)
        new_text, text_to_image = self.text.attend_other(text, image, image_mask, need_weights)
        new_image, image_to_text = self.image.attend_other(image, text, text_mask, need_weights)
        return new_text, new_image, text_to_image, image_to_text


class CrossModalFusion(nn.Module):
    """Projects both streams to ``hidden`` and runs ``layers`` :class:`FusionLayer` s.

    Inputs: text ``[B, T, Ct]`` with mask ``[B, T]``, image ``[B, N, Ci]`` with mask ``[B, N]``
    (bool, True = real token). Outputs are layer-normed ``[B, T, H]`` and ``[B, N, H]``, plus the
    per-layer cross-attention weights when ``need_weights``.
    """

    def __init__(self, text_dim: int, image_dim: int, hidden: int, layers: int, heads: int, mlp_ratio: float,
                 dropout: float):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, hidden) if text_dim != hidden else nn.Identity()
        self.image_proj = nn.Linear(image_dim, hidden) if image_dim != hidden else nn.Identity()
        self.layers = nn.ModuleList(FusionLayer(hidden, heads, mlp_ratio, dropout) for _ in range(layers))
        self.text_norm = nn.LayerNorm(hidden)
        self.image_norm = nn.LayerNorm(hidden)

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor,
                need_weights: bool = False):
        text, image = self.text_proj(text), self.image_proj(image)
        text_to_image, image_to_text = [], []
        for layer in self.layers:
            text, image, t2i, i2t = layer(text, text_mask, image, image_mask, need_weights)
            text_to_image.append(t2i)
            image_to_text.append(i2t)
        attentions = {"text_to_image": tuple(text_to_image), "image_to_text": tuple(image_to_text)} \
            if need_weights else None
        return self.text_norm(text), self.image_norm(image), attentions
