"""`export_onnx(model_dir, out)`: the classification and heat-map path as an ONNX graph, checked by ONNX Runtime.

The graph takes the model's four inputs and returns ``probs [B, D]``, ``heatmaps [B, D, h, w]``
(probabilities on the first view's patch grid, as :class:`~multimodal.inference.predictor.Predictor`
reports them) and ``zone_probs [B, D, Z]``; batch, views and text length are dynamic axes
(``torch.onnx.export`` with the dynamo exporter; views only when ``max_views`` > 1). The findings decoder (autoregressive generation)
is **not exported**: score findings with PyTorch. Missing views are encoded as blank images and
their tokens zeroed in the graph, which gives the same result as PyTorch's skipping them.

After export the graph is run by ONNX Runtime on a fixed random batch (2 studies, every view, a
missing second view in one) and compared with PyTorch; the export fails when they differ by more
than ``tolerance``. ``quantize="int8"`` also writes ``<name>.int8.onnx`` with ONNX Runtime's dynamic
int8 quantization (weights of MatMul/Gemm in int8) and reports its difference too (not enforced:
int8 changes the numbers by design).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from multimodal.models.modeling import MultimodalModel

INPUTS = ("pixel_values", "view_mask", "input_ids", "attention_mask")
OUTPUTS = ("probs", "heatmaps", "zone_probs")
OPSET = 18


class ClassificationGraph(nn.Module):
    """The exported part of a model: four inputs to probabilities, heat-map and zone probabilities."""

    def __init__(self, model: MultimodalModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, view_mask: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(pixel_values, view_mask, input_ids, attention_mask)
        return out.probs, out.heatmaps.sigmoid(), out.zone_probs


def example_batch(model: MultimodalModel, studies: int = 2, tokens: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed random batch in the model's shapes: pixels in the normalised [0, 1] range, every view,
    the last study missing its other views, word ids from the tokenizer's range."""
    g = torch.Generator().manual_seed(seed)
    views, size = model.config.max_views, model.config.image_size
    view_mask = torch.ones(studies, views, dtype=torch.bool)
    view_mask[-1, 1:] = False
    ids = torch.randint(1000, min(model.tokenizer.vocab_size, 20000), (studies, tokens), generator=g)
    ids[:, 0], ids[:, -1] = model.tokenizer.cls_token_id, model.tokenizer.sep_token_id
    return {"pixel_values": (torch.rand(studies, views, 1, size, size, generator=g) - 0.5) / 0.25,
            "view_mask": view_mask, "input_ids": ids, "attention_mask": torch.ones(studies, tokens, dtype=torch.long)}


def max_difference(onnx_path: str | Path, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest absolute difference per output between ONNX Runtime (CPU) and PyTorch on ``batch``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUTS), {k: batch[k].numpy() for k in INPUTS})
    with torch.no_grad():
        want = ClassificationGraph(model)(**batch)
    return {name: float(np.abs(g - w.float().numpy()).max()) for name, g, w in zip(OUTPUTS, got, want)}


def int8_op_types() -> list[str]:
    """The ONNX operators dynamic int8 quantization rewrites: every one ONNX Runtime supports but ``Conv``.

    Dynamic quantization suits matrix products (the transformers' Linear layers, the embedding
    Gather), as PyTorch's path (``quantize.py``) does. A ``Conv`` becomes ``ConvInteger``, whose CPU
    kernel was slower than the fp32 convolution (a timm ResNet-18 image encoder on the NIH radiographs:
    0.32x the fp32 graph's samples/s) and whose per-call activation scale moved a probability by 0.21;
    convolutions need static quantization with calibration images, which this export does not do.
    """
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    return [op for op in IntegerOpsRegistry if op != "Conv"]


def export_onnx(model_dir: str | Path, out: str | Path, quantize: str | None = None, tolerance: float = 1e-3) -> dict:
    """Export ``model_dir``'s classification + heat-map path to ``out`` (``.onnx``), verify it with ONNX Runtime.

    Returns ``{"onnx", "max_abs_diff", "int8_onnx"?, "int8_max_abs_diff"?}``; raises ``RuntimeError``
    when the fp32 graph differs from PyTorch by more than ``tolerance``.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    model = MultimodalModel.from_pretrained(model_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = example_batch(model)
    batch_dim, tokens_dim = torch.export.Dim("batch"), torch.export.Dim("tokens", max=model.config.text_max_length)
    # A dynamic axis spans at least 2 values: a one-view model keeps its views axis fixed at 1.
    views = {1: torch.export.Dim("views", max=model.config.max_views)} if model.config.max_views > 1 else {}
    shapes = {"pixel_values": {0: batch_dim, **views}, "view_mask": {0: batch_dim, **views},
              "input_ids": {0: batch_dim, 1: tokens_dim}, "attention_mask": {0: batch_dim, 1: tokens_dim}}
    # from_pretrained returns the model in eval mode; the new wrapper must be too, or the exporter warns.
    torch.onnx.export(ClassificationGraph(model).eval(), (), str(out), kwargs=batch, dynamo=True, opset_version=OPSET,
                      input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_shapes=shapes,
                      external_data=False, verbose=False)
    check = example_batch(model, studies=3, tokens=5, seed=1)
    diff = max_difference(out, model, check)
    if max(diff.values()) > tolerance:
        raise RuntimeError(f"{out}: ONNX Runtime differs from PyTorch by {diff} (> {tolerance})")
    report = {"onnx": str(out), "max_abs_diff": diff}
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = out.with_suffix(".int8.onnx")
        quantize_dynamic(str(out), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=int8_op_types())
        report.update(int8_onnx=str(int8), int8_max_abs_diff=max_difference(int8, model, check))
    return report
