"""The attention core shared by the fusion layers and the MONAI ViT encoder, with the fastest kernel per case.

:func:`torch.nn.functional.scaled_dot_product_attention` is the right call almost everywhere: fused,
memory-lean, fp16/bf16-safe. One case is an exception: training in bf16/fp16 **on the CPU**. There,
SDPA's CPU kernels (flash and math alike) run the backward pass about 3x slower than an explicit
``softmax(q kᵀ) v`` whose matrix products go through oneDNN in bf16 (AMX/AVX-512-BF16): measured on
this project's 2-core Xeon, one 196-token self-attention (batch 16, 12 heads of 32), forward +
backward: SDPA in bf16 71 ms, SDPA in fp32 46 ms, explicit in bf16 25 ms (``benchmarks/bench_train.py``
records the effect on whole training steps). The softmax runs in the input precision (its CPU
kernel accumulates in fp32); forcing an fp32 softmax there costs more than the explicit path saves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOW_PRECISION = (torch.bfloat16, torch.float16)


def explicit_attention_preferred(device_type: str, dtype: torch.dtype | None = None) -> bool:
    """Whether attention about to run on ``device_type`` should take the explicit path: a CPU
    training pass (autograd on) in bf16/fp16, either as ``dtype`` or from an active CPU autocast."""
    if device_type != "cpu" or not torch.is_grad_enabled():
        return False
    if dtype in LOW_PRECISION:
        return True
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") in LOW_PRECISION


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              scale: float | None = None) -> torch.Tensor:
    """Context ``[B, heads, Tq, d]`` of queries ``q [B, heads, Tq, d]`` over ``k, v [B, heads, Tk, d]``.

    ``mask`` is bool, broadcastable to ``[B, heads, Tq, Tk]``, True where a key may be attended; every
    query row must keep at least one key (the caller handles rows without any).
    """
    if not explicit_attention_preferred(q.device.type, q.dtype):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return _explicit_attention(q, k, v, mask, scale)


def _explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                        scale: float | None, dropout: float = 0.0) -> torch.Tensor:
    """``softmax(q kᵀ · scale) v`` with a bool ``mask`` (True = attend) and dropout on the weights."""
    # Scaling the queries (Tq x d) rather than the scores (Tq x Tk) is the cheaper multiply.
    scores = (q * (q.shape[-1] ** -0.5 if scale is None else scale)) @ k.transpose(-1, -2)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return (F.dropout(weights, p=dropout) if dropout else weights) @ v


HF_ATTENTION = "mmdx"
"""The name under which :func:`hf_attention` is registered with transformers (``attn_implementation``)."""


def hf_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                 **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' attention-interface function for the text encoder and findings decoder: its
    ``sdpa`` function, except on the explicit path of :func:`explicit_attention_preferred`.

    ``query [B, heads, Tq, d]``, ``key/value [B, heads, Tk, d]``; ``attention_mask`` as transformers
    builds it for ``sdpa``: bool ``[B, 1, Tq, Tk]`` (True = attend) or None, where None on a causal
    module with several queries means causal. Returns ``([B, Tq, heads, d], None)``.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not explicit_attention_preferred(query.device.type, query.dtype):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    tq, tk = query.shape[2], key.shape[2]
    mask = attention_mask
    is_causal = kwargs.get("is_causal")
    if mask is None and tq > 1 and (getattr(module, "is_causal", False) if is_causal is None else is_causal):
        # Causal with the queries aligned to the last keys (SDPA's convention when Tq == Tk).
        mask = torch.ones(tq, tk, dtype=torch.bool, device=query.device).tril(tk - tq)
    elif mask is not None and mask.dtype != torch.bool:
        mask = mask == 0  # an additive float mask: 0 where attended
    context = _explicit_attention(query, key, value, mask, scaling, dropout if module.training else 0.0)
    return context.transpose(1, 2).contiguous(), None


def register_hf_attention() -> str:
    """Register :func:`hf_attention` (and ``sdpa``'s mask builder) with transformers; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(HF_ATTENTION, hf_attention)
    AttentionMaskInterface.register(HF_ATTENTION, sdpa_mask)
    return HF_ATTENTION
