"""The attention core: SDPA or the explicit CPU low-precision training path give the same attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from multimodal.models.attention import attention, explicit_attention_preferred, register_hf_attention


def test_explicit_path_is_chosen_only_for_low_precision_cpu_training():
    assert explicit_attention_preferred("cpu", torch.bfloat16)
    assert explicit_attention_preferred("cpu", torch.float16)
    assert not explicit_attention_preferred("cpu", torch.float32)
    assert not explicit_attention_preferred("cuda", torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert explicit_attention_preferred("cpu", torch.float32)
    with torch.no_grad():
        assert not explicit_attention_preferred("cpu", torch.bfloat16)


def test_explicit_path_matches_sdpa_with_a_key_padding_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[1, ..., 3:] = False
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    qb, kb, vb = (t.bfloat16().requires_grad_() for t in (q, k, v))
    out = attention(qb, kb, vb, mask)  # grad on, bf16, CPU: the explicit path
    torch.testing.assert_close(out.float(), reference, atol=0.03, rtol=0.03)
    out.float().sum().backward()
    assert qb.grad is not None and torch.isfinite(qb.grad.float()).all()
    # A masked key gets no gradient: it is never attended.
    assert (kb.grad[1, :, 3:] == 0).all() and (vb.grad[1, :, 3:] == 0).all()


def _bert(decoder: bool, implementation: str):
    from transformers import BertConfig, BertLMHeadModel, BertModel

    config = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=1,
                        vocab_size=50, is_decoder=decoder, add_cross_attention=decoder,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        attn_implementation=implementation)
    torch.manual_seed(0)
    return (BertLMHeadModel(config).bert if decoder else BertModel(config, add_pooling_layer=False)).eval()


@pytest.mark.parametrize("decoder", [False, True], ids=["encoder", "decoder"])
def test_hf_attention_matches_eager_and_keeps_masks_under_cpu_bf16_training(decoder):
    reference, ours = _bert(decoder, "eager"), _bert(decoder, register_hf_attention())
    ids = torch.randint(5, 50, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    memory = {"encoder_hidden_states": torch.randn(2, 7, 32), "encoder_attention_mask": torch.ones(2, 7, dtype=torch.long)} \
        if decoder else {}
    expected = reference(ids, attention_mask=mask, **memory).last_hidden_state
    with torch.autocast("cpu", dtype=torch.bfloat16):  # grad enabled: the explicit path
        got = ours(ids, attention_mask=mask, **memory).last_hidden_state.float()
        changed = ids.clone()
        changed[1, 5] = 7  # a padded token
        changed[0, 5] = 9  # the last real token of study 0: only itself may change in a decoder
        after = ours(changed, attention_mask=mask, **memory).last_hidden_state.float()
    torch.testing.assert_close(got[0], expected[0], atol=0.05, rtol=0.05)
    torch.testing.assert_close(got[1, :4], expected[1, :4], atol=0.05, rtol=0.05)
    torch.testing.assert_close(after[1, :4], got[1, :4])
    if decoder:
        torch.testing.assert_close(after[0, :5], got[0, :5])  # causal: earlier positions unaffected


def test_hf_attention_is_causal_without_a_padding_mask():
    """With no padding transformers passes no mask and relies on causality: the explicit path must too."""
    ours = _bert(True, register_hf_attention())
    ids = torch.randint(5, 50, (1, 6))
    changed = ids.clone()
    changed[0, 5] = 9 if ids[0, 5] != 9 else 8
    memory = torch.randn(1, 7, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = ours(ids, encoder_hidden_states=memory).last_hidden_state.float()
        after = ours(changed, encoder_hidden_states=memory).last_hidden_state.float()
    torch.testing.assert_close(after[0, :5], before[0, :5])
    assert not torch.allclose(after[0, 5], before[0, 5])
