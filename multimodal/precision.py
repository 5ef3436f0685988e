"""Which precision runs fastest without loss of results on the device at hand."""

from __future__ import annotations

import torch


def native_bf16(device: torch.device | str) -> bool:
    """True where bf16 matrix products run natively: a CUDA GPU that supports bf16, or a CPU with AMX
    tiles or AVX-512-BF16 (oneDNN then runs bf16 autocast ~2x faster than fp32; on other CPUs bf16 is
    emulated and slower)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # Private but stable helpers (torch >= 2.1); absent ones mean "not known to be native".
        checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return any(check() for check in checks if check is not None)
    return False
