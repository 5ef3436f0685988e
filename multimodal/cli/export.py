"""mmdx export: the classification and heat-map path as ONNX, verified with ONNX Runtime."""

from __future__ import annotations

import argparse

from multimodal.cli._common import add_command, given, print_json


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command(sub, "export", help="export a model's classification + heat-map path to ONNX (findings decoder "
                    "not exported)",
                    examples=("mmdx export --model runs/tiny/best --format onnx --out runs/tiny.onnx",
                              "mmdx export --model runs/tiny/best --format onnx --out runs/tiny.onnx --quantize int8"))
    s.add_argument("--model", required=True, help="model directory (save_pretrained output)")
    s.add_argument("--out", required=True, help="ONNX file written (with --quantize int8 also <name>.int8.onnx)")
    s.add_argument("--format", default=None, choices=["onnx"], help="export format (default: onnx, the only one so far)")
    s.add_argument("--quantize", default=None, choices=["int8"],
                   help="also write an ONNX Runtime dynamic-int8 copy (default: none)")
    s.add_argument("--tolerance", type=float, default=None,
                   help="largest allowed ONNX Runtime vs PyTorch difference in fp32 (default: 1e-3)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from multimodal.compression.export import export_onnx

    print_json(export_onnx(a.model, a.out, **given(a, quantize="quantize", tolerance="tolerance")), indent=2)
    return 0
