"""ONNX export: ONNX Runtime agrees with PyTorch within 1e-3 on other batch sizes, views and text lengths."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

from multimodal.cli import main
from multimodal.compression.export import ClassificationGraph, INPUTS, example_batch, export_onnx
from multimodal.compression.prune import prune
from multimodal.compression.quantize import quantize_int8
from multimodal.inference.predictor import Predictor
from multimodal.models.modeling import MultimodalModel


def test_export_onnx_runs_in_onnx_runtime_like_pytorch_with_dynamic_axes(tiny_dir, tmp_path):
    out = tmp_path / "model.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", "--model", str(tiny_dir), "--format", "onnx", "--out", str(out), "--quantize", "int8"]) == 0
    assert not [w for w in caught if "training mode" in str(w.message)]  # the graph is exported in eval mode
    model = MultimodalModel.from_pretrained(tiny_dir)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for studies, tokens in ((1, 4), (5, 9)):
        batch = example_batch(model, studies=studies, tokens=tokens, seed=studies)
        got = session.run(None, {k: batch[k].numpy() for k in INPUTS})
        with torch.no_grad():
            want = ClassificationGraph(model)(**batch)
        for g, w in zip(got, want):
            assert g.shape == tuple(w.shape)
            np.testing.assert_allclose(g, w.numpy(), atol=1e-3)
    one_view = {k: (v[:, :1] if k in ("pixel_values", "view_mask") else v) for k, v in example_batch(model).items()}
    got = session.run(None, {k: one_view[k].numpy() for k in INPUTS})
    with torch.no_grad():
        np.testing.assert_allclose(got[0], ClassificationGraph(model)(**one_view)[0].numpy(), atol=1e-3)
    int8 = ort.InferenceSession(str(tmp_path / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    probs = int8.run(["probs"], {k: batch[k].numpy() for k in INPUTS})[0]
    assert probs.shape == tuple(want[0].shape) and np.abs(probs - want[0].numpy()).max() < 0.25
    ops = {node.op_type for node in onnx.load(str(tmp_path / "model.int8.onnx")).graph.node}
    assert "Conv" in ops and "ConvInteger" not in ops  # the patch embedding stays fp32
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear"}  # the Linear layers are int8


def test_int8_predictor_quantizes_linear_layers_and_scores_close_to_fp32(tiny_dir):
    fp32, int8 = Predictor.from_pretrained(tiny_dir, device="cpu"), Predictor.from_pretrained(tiny_dir, device="cpu",
                                                                                              precision="int8")
    assert any("quantized" in type(m).__module__ for m in int8.model.modules())
    batch = example_batch(fp32.model)
    with torch.no_grad():
        a, b = fp32.model(**batch).probs, int8.model(**batch).probs
    assert (a - b).abs().max() < 0.1
    assert quantize_int8(MultimodalModel.from_pretrained(tiny_dir)).config.observations == fp32.config.observations


def test_a_model_without_half_its_heads_and_channels_exports_and_agrees_with_pytorch(tiny_dir, tmp_path):
    prune(tiny_dir, tmp_path / "small", amount=0.5, structured=True)
    report = export_onnx(tmp_path / "small", tmp_path / "small.onnx")  # raises beyond 1e-3
    assert max(report["max_abs_diff"].values()) < 1e-3
    small = Predictor.from_pretrained(tmp_path / "small", device="cpu", precision="int8")
    with torch.no_grad():
        probs = small.model(**example_batch(small.model)).probs
    assert small.model.config.attention_heads and probs.isfinite().all()
