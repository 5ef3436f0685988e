"""`precision: auto` picks bf16 only where bf16 matrix products are native."""

from __future__ import annotations

import pytest
import torch

from multimodal.precision import native_bf16
from multimodal.training.trainer import resolve_precision


@pytest.mark.parametrize(("amx", "avx512_bf16", "expected"), [(True, False, "bf16"), (False, True, "bf16"),
                                                              (False, False, "no")])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert native_bf16("cpu") is (expected == "bf16")
    assert resolve_precision("auto") == expected
    assert resolve_precision("fp32") == "no" and resolve_precision("bf16") == "bf16"
