"""Dynamic int8 quantization for CPU scoring (PyTorch's ``quantize_dynamic``).

Every ``nn.Linear`` gets int8 weights (per tensor, symmetric) and quantizes its input on the fly;
activations between layers stay fp32. That is where the time of this model goes on a CPU (the ViT,
BERT and fusion blocks are Linear layers), and no calibration data is needed.
"""

from __future__ import annotations

import torch
from torch import nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with int8 dynamic-quantized Linear layers; CPU only."""
    return torch.ao.quantization.quantize_dynamic(model.eval().cpu(), {nn.Linear}, dtype=torch.qint8)
